"""scikit-learn on the table that hearth-ml's parity test trains on; writes sklearn.json.

    cargo run -p hearth-ml --release --example synth -- fraud 1000000 1 /tmp/fraud.csv
    python3 services/ml/parity/sklearn_parity.py /tmp/fraud.csv --rows 1000000 --seed 1

The split, the preprocessing and the training protocol are hearth-ml's (see common.py and the
Rust test `parity` in services/ml/tests/train.rs):
- split: the labelled rows shuffled by hearth-ml's PRNG seeded with SPLIT_SEED; 70 % train,
  10 % validation, 20 % test;
- features: every numeric column standardized on the training split, missing → 0 plus a
  missing indicator;
- logistic regression: LogisticRegression (lbfgs, scikit-learn's default C = 1, which with
  700,000 rows is a negligible penalty) fitted to convergence;
- MLP: MLPClassifier, ReLU hidden layers of HIDDEN units, Adam with the learning rate and batch
  size below, no L2 penalty (hearth-ml has none), one epoch per partial_fit, the validation log
  loss checked after each epoch, stopping after PATIENCE epochs without improvement and keeping
  the best epoch's weights — as hearth-ml's train() does.
"""

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
from sklearn.neural_network import MLPClassifier

sys.path.insert(0, str(Path(__file__).parent))
from common import Standardizer, read_numeric_csv, split  # noqa: E402

TARGET = "is_fraud"
SPLIT_SEED = 7
VALIDATION_FRACTION = 0.1
TEST_FRACTION = 0.2
HIDDEN = (64, 64)
LEARNING_RATE = 1e-3
BATCH_SIZE = 512
MAX_EPOCHS = 20
PATIENCE = 3
MLP_SEED = 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("csv")
    p.add_argument("--rows", type=int, required=True, help="rows the table was generated with")
    p.add_argument("--seed", type=int, required=True, help="seed the table was generated with")
    p.add_argument("--out", default=str(Path(__file__).parent / "sklearn.json"))
    args = p.parse_args()

    pinned = [int(i) for i in split(range(10), 0.1, 0.2, 42)[2]]
    print("split pin (test rows of 0..10, seed 42):", pinned)

    t0 = time.time()
    header, data = read_numeric_csv(args.csv)
    assert data.shape[0] == args.rows, data.shape
    y_col = header.index(TARGET)
    y = data[:, y_col]
    x = np.delete(data, y_col, axis=1)
    labelled = np.flatnonzero(~np.isnan(y))
    train, val, test = split(labelled, VALIDATION_FRACTION, TEST_FRACTION, SPLIT_SEED)
    prep = Standardizer().fit(x[train])
    xtr, xva, xte = prep.transform(x[train]), prep.transform(x[val]), prep.transform(x[test])
    ytr, yva, yte = y[train], y[val], y[test]
    print(f"read and prepared in {time.time() - t0:.1f}s: {xtr.shape[1]} features, "
          f"{len(train)}/{len(val)}/{len(test)} rows, {int(yte.sum())} test positives")

    t = time.time()
    lr = LogisticRegression(max_iter=1000).fit(xtr, ytr)
    p_lr = lr.predict_proba(xte)[:, 1]
    logreg = {
        "roc_auc": roc_auc_score(yte, p_lr),
        "pr_auc": average_precision_score(yte, p_lr),
        "log_loss": log_loss(yte, p_lr),
        "iterations": int(lr.n_iter_[0]),
        "seconds": round(time.time() - t, 1),
    }
    print("logistic regression:", logreg)

    t = time.time()
    mlp = MLPClassifier(HIDDEN, alpha=0.0, batch_size=BATCH_SIZE,
                        learning_rate_init=LEARNING_RATE, random_state=MLP_SEED)
    best, best_loss, best_epoch, since = None, float("inf"), 0, 0
    epochs = 0
    for epoch in range(1, MAX_EPOCHS + 1):
        mlp.partial_fit(xtr, ytr, classes=[0.0, 1.0])
        epochs = epoch
        val_loss = log_loss(yva, mlp.predict_proba(xva)[:, 1], labels=[0.0, 1.0])
        print(f"  epoch {epoch}: val log loss {val_loss:.5f}", flush=True)
        if val_loss < best_loss:
            best, best_loss, best_epoch, since = copy.deepcopy(mlp), val_loss, epoch, 0
        else:
            since += 1
            if since >= PATIENCE:
                break
    p_mlp = best.predict_proba(xte)[:, 1]
    mlp_result = {
        "hidden": list(HIDDEN),
        "roc_auc": roc_auc_score(yte, p_mlp),
        "pr_auc": average_precision_score(yte, p_mlp),
        "log_loss": log_loss(yte, p_mlp),
        "epochs_run": epochs,
        "best_epoch": best_epoch,
        "seconds": round(time.time() - t, 1),
    }
    print("MLP:", mlp_result)

    result = {
        "table": f"hearth_ml::synth::fraud({args.rows}, {args.seed})",
        "rows": args.rows,
        "table_seed": args.seed,
        "split": {
            "seed": SPLIT_SEED,
            "validation_fraction": VALIDATION_FRACTION,
            "test_fraction": TEST_FRACTION,
            "train": len(train),
            "validation": len(val),
            "test": len(test),
            "test_positives": int(yte.sum()),
            "pin_test_rows_of_0_to_10_seed_42": pinned,
        },
        "features": int(xtr.shape[1]),
        "logreg": logreg,
        "mlp": {**mlp_result, "learning_rate": LEARNING_RATE, "batch_size": BATCH_SIZE,
                "max_epochs": MAX_EPOCHS, "patience": PATIENCE, "alpha": 0.0,
                "random_state": MLP_SEED},
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
        },
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores",
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
