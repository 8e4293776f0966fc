"""Shared by the parity and peer scripts: hearth-ml's PRNG, its train/validation/test split, and
its preprocessing of numeric columns, re-implemented so that Python sees exactly the rows and
features that Rust does (see services/ml/src/train.rs and src/prep.rs)."""

import io
import math

import numpy as np

MASK = (1 << 64) - 1


class Rng:
    """crate::Rng: xoshiro256** seeded by SplitMix64 (services/ml/src/rng.rs)."""

    def __init__(self, seed):
        x = seed & MASK
        s = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & MASK
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
            s.append(z ^ (z >> 31))
        self.s = s

    def next_u64(self):
        s = self.s
        r = (((s[1] * 5) & MASK) << 7 | ((s[1] * 5) & MASK) >> 57) & MASK
        result = (r * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = ((s[3] << 45) | (s[3] >> 19)) & MASK
        return result

    def below(self, n):
        return (self.next_u64() * n) >> 64

    def shuffle(self, v):
        for i in range(len(v) - 1, 0, -1):
            j = self.below(i + 1)
            v[i], v[j] = v[j], v[i]


def split(labelled, validation_fraction, test_fraction, seed):
    """hearth_ml::train::Split::new: shuffle the labelled row indices (in frame order) with
    Rng(seed); the test split is the last round(n * test_fraction) (at least 1), validation the
    round(n * validation_fraction) before it, training the rest (in shuffled order)."""
    rows = list(labelled)
    Rng(seed).shuffle(rows)
    n = len(rows)

    def count(f):
        # Rust's f64::round rounds halves away from zero; so does floor(x + 0.5) for x >= 0.
        return max(1, math.floor(n * f + 0.5)) if f > 0 else 0

    n_test = min(count(test_fraction), n)
    n_val = min(count(validation_fraction), n - n_test)
    n_train = n - n_test - n_val
    return (
        np.array(rows[:n_train]),
        np.array(rows[n_train : n_train + n_val]),
        np.array(rows[n_train + n_val :]),
    )


def read_numeric_csv(path):
    """A CSV of numbers with empty fields for missing values → (header, float64 matrix)."""
    with open(path) as f:
        header = f.readline().rstrip("\n").split(",")
        text = f.read()
    # Empty fields → nan, so that numpy's fast C parser reads the rest.
    text = text.replace(",,", ",nan,").replace(",,", ",nan,")
    text = text.replace("\n,", "\nnan,").replace(",\n", ",nan\n")
    if text.startswith(","):
        text = "nan" + text
    data = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2)
    return header, data


class Standardizer:
    """hearth_ml::prep for numeric columns: training mean and population std; missing → 0
    after scaling, plus a 0/1 indicator column right after each column that had missing values
    in training. (Constant and all-missing columns would be dropped; the tables used here have
    none.)"""

    def fit(self, x):
        self.mean = np.nanmean(x, axis=0)
        std = np.nanstd(x, axis=0)
        self.std = np.where(std > 0, std, 1.0)
        self.indicator = np.isnan(x).any(axis=0)
        return self

    def transform(self, x):
        z = (x - self.mean) / self.std
        missing = np.isnan(z)
        z[missing] = 0.0
        cols = []
        for j in range(x.shape[1]):
            cols.append(z[:, j])
            if self.indicator[j]:
                cols.append(missing[:, j].astype(np.float64))
        return np.column_stack(cols).astype(np.float32)
