//! Data quality: what an operator should know about a table before training on it. Missing values
//! per column, duplicate rows, constant columns, outliers per numeric column, the class balance of
//! the target, and warnings that say it in words.
//!
//! Everything is exact (no sampling): one pass per column, plus a hash of every row for
//! duplicates (rows whose hashes collide are compared value by value).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use serde::{Deserialize, Serialize};

use crate::frame::{ColumnData, ColumnKind, Frame};

/// A column whose share of missing values reaches this gets a warning.
pub const MISSING_WARN_SHARE: f64 = 0.2;
/// A target class whose share of the (non-missing) target values is below this gets an
/// "imbalanced" warning.
pub const IMBALANCE_SHARE: f64 = 0.1;
/// Most target classes listed (the most frequent first).
pub const MAX_CLASSES: usize = 100;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    pub rows: usize,
    pub columns: Vec<ColumnQuality>,
    /// Rows equal to an earlier row (all columns, missing equal to missing).
    pub duplicate_rows: usize,
    /// Columns with at most one distinct value (all missing included).
    pub constant_columns: Vec<String>,
    /// The class balance of the target column, if one was named and exists.
    pub target: Option<ClassBalance>,
    /// What deserves attention, in words.
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnQuality {
    pub name: String,
    pub kind: ColumnKind,
    pub missing: usize,
    /// `missing / rows` (0 for an empty table).
    pub missing_share: f64,
    /// Distinct values, missing not counted.
    pub distinct: usize,
    pub constant: bool,
    /// Numeric columns with at least one value.
    pub outliers: Option<Outliers>,
}

/// Outliers of a numeric column by two rules: Tukey's fences (beyond 1.5 × IQR outside the
/// quartiles) and |z| > 4.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outliers {
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub lower_fence: f64,
    pub upper_fence: f64,
    /// Values below the lower or above the upper fence.
    pub beyond_fences: usize,
    pub mean: f64,
    /// Population standard deviation.
    pub std_dev: f64,
    /// Values more than 4 standard deviations from the mean (none when `std_dev` is 0).
    pub beyond_z4: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassBalance {
    pub column: String,
    /// Most frequent first (ties by value); at most [`MAX_CLASSES`].
    pub classes: Vec<ClassCount>,
    /// Distinct classes in all (may exceed `classes.len()`).
    pub distinct: usize,
    pub missing: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassCount {
    pub value: String,
    pub count: usize,
    /// Of the non-missing target values.
    pub share: f64,
}

/// One value of a column, comparable and hashable; `None` is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Cell<'a> {
    Missing,
    /// f64 bits, with -0.0 as 0.0 (NaN is missing).
    Number(u64),
    Bool(bool),
    Text(&'a str),
    Time(i64),
}

fn cell(data: &ColumnData, i: usize) -> Cell<'_> {
    match data {
        ColumnData::Numeric(v) => match v.get(i) {
            Some(x) if !x.is_nan() => Cell::Number(if *x == 0.0 { 0 } else { x.to_bits() }),
            _ => Cell::Missing,
        },
        ColumnData::Boolean(v) => v
            .get(i)
            .copied()
            .flatten()
            .map_or(Cell::Missing, Cell::Bool),
        ColumnData::Text(v) => v
            .get(i)
            .and_then(Option::as_deref)
            .map_or(Cell::Missing, Cell::Text),
        ColumnData::Timestamp(v) => v
            .get(i)
            .copied()
            .flatten()
            .map_or(Cell::Missing, Cell::Time),
    }
}

/// How a value reads in a report.
fn show(c: Cell<'_>) -> String {
    match c {
        Cell::Missing => String::new(),
        Cell::Number(bits) => f64::from_bits(bits).to_string(),
        Cell::Bool(b) => b.to_string(),
        Cell::Text(s) => s.to_owned(),
        Cell::Time(t) => t.to_string(),
    }
}

/// The value at `num/den` of the way through `sorted` (linear interpolation between closest
/// ranks, as R's type 7). `sorted` is not empty.
fn quantile(sorted: &[f64], num: usize, den: usize) -> f64 {
    let n = sorted.len();
    let pos = (n - 1) * num;
    let (lo, rem) = (pos / den, pos % den);
    let a = sorted[lo];
    match sorted.get(lo + 1) {
        Some(&b) if rem > 0 => a + (b - a) * (rem as f64 / den as f64),
        _ => a,
    }
}

fn outliers(values: &[f64]) -> Option<Outliers> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let (q1, median, q3) = (
        quantile(&sorted, 1, 4),
        quantile(&sorted, 1, 2),
        quantile(&sorted, 3, 4),
    );
    let iqr = q3 - q1;
    let (lower_fence, upper_fence) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
    let n = sorted.len() as f64;
    let mean = sorted.iter().sum::<f64>() / n;
    let std_dev = (sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    Some(Outliers {
        q1,
        median,
        q3,
        lower_fence,
        upper_fence,
        beyond_fences: sorted
            .iter()
            .filter(|&&x| x < lower_fence || x > upper_fence)
            .count(),
        mean,
        std_dev,
        beyond_z4: if std_dev > 0.0 {
            sorted
                .iter()
                .filter(|&&x| ((x - mean) / std_dev).abs() > 4.0)
                .count()
        } else {
            0
        },
    })
}

fn percent(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

/// Rows equal to an earlier row.
fn duplicate_rows(frame: &Frame) -> usize {
    let columns = frame.columns();
    let row_hash = |i: usize| {
        let mut h = DefaultHasher::new();
        for c in columns {
            cell(&c.data, i).hash(&mut h);
        }
        h.finish()
    };
    let same = |a: usize, b: usize| columns.iter().all(|c| cell(&c.data, a) == cell(&c.data, b));
    let mut first_of: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut duplicates = 0;
    for i in 0..frame.rows() {
        match first_of.entry(row_hash(i)) {
            Entry::Vacant(e) => {
                e.insert(vec![i]);
            }
            Entry::Occupied(mut e) => {
                if e.get().iter().any(|&j| same(i, j)) {
                    duplicates += 1;
                } else {
                    e.get_mut().push(i);
                }
            }
        }
    }
    duplicates
}

/// Whether a class value reads as the positive class of a binary target.
fn is_positive(value: &str) -> bool {
    ["true", "1", "yes", "positive", "pos"]
        .iter()
        .any(|p| value.eq_ignore_ascii_case(p))
}

fn class_balance(frame: &Frame, target: &str, warnings: &mut Vec<String>) -> Option<ClassBalance> {
    let Ok(column) = frame.column(target) else {
        warnings.push(format!("target column {target:?} does not exist"));
        return None;
    };
    let mut counts: HashMap<Cell<'_>, usize> = HashMap::new();
    let mut missing = 0;
    for i in 0..frame.rows() {
        match cell(&column.data, i) {
            Cell::Missing => missing += 1,
            c => *counts.entry(c).or_default() += 1,
        }
    }
    let present = frame.rows() - missing;
    let mut classes: Vec<ClassCount> = counts
        .into_iter()
        .map(|(c, count)| ClassCount {
            value: show(c),
            count,
            share: count as f64 / present.max(1) as f64,
        })
        .collect();
    classes.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    let distinct = classes.len();
    classes.truncate(MAX_CLASSES);
    if missing > 0 {
        warnings.push(format!(
            "target {target:?} is missing in {missing} rows ({})",
            percent(missing as f64 / frame.rows() as f64)
        ));
    }
    match distinct {
        0 => warnings.push(format!("target {target:?} has no values")),
        1 => warnings.push(format!("target {target:?} has a single class")),
        d if d > MAX_CLASSES || (d > 20 && column.kind == ColumnKind::Numeric) => {
            warnings.push(format!(
                "target {target:?} has {d} distinct values: a regression target, not classes?"
            ));
        }
        _ => {
            let binary_positive = (distinct == 2)
                .then(|| classes.iter().find(|c| is_positive(&c.value)))
                .flatten();
            if let Some(pos) = binary_positive {
                if pos.share < IMBALANCE_SHARE || pos.share > 1.0 - IMBALANCE_SHARE {
                    warnings.push(format!(
                        "target is {} positive: imbalanced",
                        percent(pos.share)
                    ));
                }
            } else {
                for c in classes.iter().filter(|c| c.share < IMBALANCE_SHARE) {
                    warnings.push(format!(
                        "target class {:?} is {} of rows: imbalanced",
                        c.value,
                        percent(c.share)
                    ));
                }
            }
        }
    }
    Some(ClassBalance {
        column: target.to_owned(),
        classes,
        distinct,
        missing,
    })
}

impl QualityReport {
    /// The report for `frame`; with `target`, also that column's class balance.
    pub fn compute(frame: &Frame, target: Option<&str>) -> QualityReport {
        let rows = frame.rows();
        let mut warnings = Vec::new();
        let mut columns = Vec::with_capacity(frame.columns().len());
        let mut constant_columns = Vec::new();
        for c in frame.columns() {
            let mut distinct = HashSet::new();
            let mut missing = 0;
            for i in 0..rows {
                match cell(&c.data, i) {
                    Cell::Missing => missing += 1,
                    v => {
                        distinct.insert(v);
                    }
                }
            }
            let missing_share = if rows == 0 {
                0.0
            } else {
                missing as f64 / rows as f64
            };
            let constant = distinct.len() <= 1;
            if rows > 0 && missing == rows {
                warnings.push(format!("column {:?} has no values", c.name));
            } else if missing_share >= MISSING_WARN_SHARE {
                warnings.push(format!(
                    "column {:?} is {} missing",
                    c.name,
                    percent(missing_share)
                ));
            }
            if constant {
                constant_columns.push(c.name.clone());
                if rows > 0 && missing < rows {
                    warnings.push(format!("column {:?} is constant", c.name));
                }
            }
            let outliers = match &c.data {
                ColumnData::Numeric(v) => outliers(v),
                _ => None,
            };
            if let Some(o) = outliers.as_ref().filter(|o| o.beyond_z4 > 0) {
                warnings.push(format!(
                    "column {:?} has {} extreme values (|z| > 4)",
                    c.name, o.beyond_z4
                ));
            }
            columns.push(ColumnQuality {
                name: c.name.clone(),
                kind: c.kind,
                missing,
                missing_share,
                distinct: distinct.len(),
                constant,
                outliers,
            });
        }
        let duplicate_rows = duplicate_rows(frame);
        if duplicate_rows > 0 {
            warnings.push(format!(
                "{duplicate_rows} duplicate rows ({})",
                percent(duplicate_rows as f64 / rows as f64)
            ));
        }
        let target = target.and_then(|t| class_balance(frame, t, &mut warnings));
        QualityReport {
            rows,
            columns,
            duplicate_rows,
            constant_columns,
            target,
            warnings,
        }
    }

    pub fn column(&self, name: &str) -> Option<&ColumnQuality> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Column;

    fn num(name: &str, v: Vec<f64>) -> Column {
        Column {
            name: name.into(),
            kind: ColumnKind::Numeric,
            data: ColumnData::Numeric(v),
        }
    }

    #[test]
    fn quantiles_interpolate_like_type_7() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 1, 4), 1.75);
        assert_eq!(quantile(&v, 1, 2), 2.5);
        assert_eq!(quantile(&v, 3, 4), 3.25);
        assert_eq!(quantile(&[7.0], 3, 4), 7.0);
    }

    #[test]
    fn outliers_by_fences_and_z() {
        // 100 values 0..100 and one far away.
        let mut v: Vec<f64> = (0..100).map(f64::from).collect();
        v.push(10_000.0);
        v.push(f64::NAN);
        let o = outliers(&v).unwrap();
        assert_eq!(o.beyond_fences, 1);
        assert_eq!(o.beyond_z4, 1);
        let flat = outliers(&[3.0; 10]).unwrap();
        assert_eq!(
            (flat.beyond_fences, flat.beyond_z4, flat.std_dev),
            (0, 0, 0.0)
        );
        assert_eq!(outliers(&[f64::NAN]), None);
    }

    #[test]
    fn zero_and_negative_zero_are_one_value() {
        let f = Frame::new(vec![num("a", vec![0.0, -0.0, f64::NAN, f64::NAN])]).unwrap();
        let r = QualityReport::compute(&f, None);
        assert_eq!(r.duplicate_rows, 2);
        assert_eq!(r.columns[0].distinct, 1);
    }

    #[test]
    fn binary_targets_report_their_positive_share() {
        let labels: Vec<Option<bool>> = (0..200).map(|i| Some(i < 2)).collect();
        let f = Frame::new(vec![Column {
            name: "y".into(),
            kind: ColumnKind::Boolean,
            data: ColumnData::Boolean(labels),
        }])
        .unwrap();
        let r = QualityReport::compute(&f, Some("y"));
        assert!(
            r.warnings
                .contains(&"target is 1.0 % positive: imbalanced".to_owned()),
            "{:?}",
            r.warnings
        );
        let t = r.target.unwrap();
        assert_eq!(t.classes[0].value, "false");
        assert_eq!((t.classes[0].count, t.classes[1].count), (198, 2));
        let r = QualityReport::compute(&f, Some("nope"));
        assert!(r.target.is_none());
        assert!(r.warnings.iter().any(|w| w.contains("does not exist")));
    }
}
