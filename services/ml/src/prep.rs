//! Preprocessing: turns a [`Frame`]'s typed columns into the dense row-major `f32` matrix that a
//! network reads, and a target column into what its loss trains on. Everything here is learned
//! from the training split only and stored with the model, so that prediction applies exactly
//! what training saw.
//!
//! - Numeric and timestamp (Unix seconds) columns are standardized with the training mean and
//!   (population) standard deviation; a missing value becomes the mean, i.e. 0, and a column
//!   that had missing values in training gets a 0/1 missing indicator beside it.
//! - Boolean columns become 0/1 (missing: the training share of `true`, plus the indicator).
//! - Categorical columns are one-hot over their `max_categories` most frequent training values
//!   (ties broken by name) plus one "other" column for the rest; missing is all zeros.
//! - Text columns are not features. Neither are constant or all-missing columns.

use std::collections::HashMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::cpu::{Loss, f32_of};
use crate::frame::{Column, ColumnData, ColumnKind, Frame, FrameError};

/// How features are encoded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrepConfig {
    /// One-hot columns per categorical feature, besides "other".
    pub max_categories: usize,
    /// Add a 0/1 column beside each numeric, timestamp or boolean feature that has missing
    /// values in training.
    pub missing_indicators: bool,
}

impl Default for PrepConfig {
    fn default() -> PrepConfig {
        PrepConfig {
            max_categories: 32,
            missing_indicators: true,
        }
    }
}

/// One input column and where its encoding lies in a row of the matrix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    pub kind: ColumnKind,
    /// First matrix column of this feature.
    pub offset: usize,
    pub encoding: Encoding,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Encoding {
    /// `(x − mean) / std`; missing → 0 (and 1 in the indicator column that follows, if any).
    Standardize {
        mean: f64,
        std: f64,
        indicator: bool,
    },
    /// true → 1, false → 0, missing → `fill` (and 1 in the indicator column, if any).
    Boolean { fill: f64, indicator: bool },
    /// One column per category, then "other"; missing → all zeros.
    OneHot { categories: Vec<String> },
}

impl Encoding {
    /// Matrix columns this encoding writes.
    pub fn width(&self) -> usize {
        match self {
            Encoding::Standardize { indicator, .. } | Encoding::Boolean { indicator, .. } => {
                1 + usize::from(*indicator)
            }
            Encoding::OneHot { categories } => categories.len() + 1,
        }
    }
}

impl Feature {
    /// The matrix columns this feature writes.
    pub fn columns(&self) -> Range<usize> {
        self.offset..self.offset + self.encoding.width()
    }
}

/// A column that was asked for (or offered by default) but is not a feature, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excluded {
    pub column: String,
    pub reason: ExcludedReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExcludedReason {
    /// Free text: not encoded.
    Text,
    /// Every training value is missing.
    AllMissing,
    /// One value throughout training, none missing.
    Constant,
}

/// A single input value, for the one-row prediction path.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Missing,
    Number(f64),
    Bool(bool),
    /// A categorical value.
    Text(&'a str),
    /// Unix seconds.
    Timestamp(i64),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrepError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("column {column:?} holds {found:?} values; the model was trained on {expected:?}")]
    Kind {
        column: String,
        expected: ColumnKind,
        found: ColumnKind,
    },
    #[error("a row has {found} values; the model reads {expected}")]
    RowLength { expected: usize, found: usize },
    #[error("the output has room for {found} values; {expected} are needed")]
    OutputLength { expected: usize, found: usize },
}

/// The learned encoding of every feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    pub features: Vec<Feature>,
    /// Matrix columns per row.
    pub width: usize,
}

fn missing_number(x: f64) -> bool {
    !x.is_finite()
}

/// Mean and population standard deviation of the present values (two passes, f64).
fn moments(values: impl Iterator<Item = f64> + Clone) -> Option<(f64, f64, usize)> {
    let (mut n, mut sum) = (0usize, 0.0f64);
    for x in values.clone() {
        n += 1;
        sum += x;
    }
    if n == 0 {
        return None;
    }
    let mean = sum / n as f64;
    let var = values.map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
    Some((mean, var.sqrt(), n))
}

impl Preprocessor {
    /// Learns the encoding of `columns` from the rows `rows` of `frame`.
    pub fn fit(
        frame: &Frame,
        columns: &[String],
        rows: &[usize],
        config: &PrepConfig,
    ) -> Result<(Preprocessor, Vec<Excluded>), PrepError> {
        let mut features = Vec::new();
        let mut excluded = Vec::new();
        let mut offset = 0;
        for name in columns {
            let column = frame.column(name)?;
            let encoding = match fit_column(column, rows, config) {
                Ok(e) => e,
                Err(reason) => {
                    excluded.push(Excluded {
                        column: name.clone(),
                        reason,
                    });
                    continue;
                }
            };
            let width = encoding.width();
            features.push(Feature {
                name: name.clone(),
                kind: column.kind,
                offset,
                encoding,
            });
            offset += width;
        }
        Ok((
            Preprocessor {
                features,
                width: offset,
            },
            excluded,
        ))
    }

    /// Encodes rows `rows` of `frame` into `out` (`rows.len() × width`, row-major).
    pub fn transform(
        &self,
        frame: &Frame,
        rows: Range<usize>,
        out: &mut [f32],
    ) -> Result<(), PrepError> {
        let n = rows.len();
        if out.len() != n * self.width {
            return Err(PrepError::OutputLength {
                expected: n * self.width,
                found: out.len(),
            });
        }
        let w = self.width;
        for f in &self.features {
            let column = frame.column(&f.name)?;
            let at = |r: usize, j: usize| (r - rows.start) * w + f.offset + j;
            match (&f.encoding, &column.data) {
                (
                    Encoding::Standardize {
                        mean,
                        std,
                        indicator,
                    },
                    ColumnData::Numeric(v),
                ) if f.kind == ColumnKind::Numeric => {
                    for r in rows.clone() {
                        let x = v[r];
                        let missing = missing_number(x);
                        out[at(r, 0)] = if missing {
                            0.0
                        } else {
                            f32_of((x - mean) / std)
                        };
                        if *indicator {
                            out[at(r, 1)] = if missing { 1.0 } else { 0.0 };
                        }
                    }
                }
                (
                    Encoding::Standardize {
                        mean,
                        std,
                        indicator,
                    },
                    ColumnData::Timestamp(v),
                ) => {
                    for r in rows.clone() {
                        let x = v[r];
                        #[allow(clippy::cast_precision_loss)]
                        let scaled = x.map(|s| f32_of((s as f64 - mean) / std));
                        out[at(r, 0)] = scaled.unwrap_or(0.0);
                        if *indicator {
                            out[at(r, 1)] = if x.is_none() { 1.0 } else { 0.0 };
                        }
                    }
                }
                (Encoding::Boolean { fill, indicator }, ColumnData::Boolean(v)) => {
                    for r in rows.clone() {
                        let x = v[r];
                        out[at(r, 0)] = match x {
                            Some(true) => 1.0,
                            Some(false) => 0.0,
                            None => f32_of(*fill),
                        };
                        if *indicator {
                            out[at(r, 1)] = if x.is_none() { 1.0 } else { 0.0 };
                        }
                    }
                }
                (Encoding::OneHot { categories }, ColumnData::Text(v)) => {
                    let index: HashMap<&str, usize> = categories
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.as_str(), i))
                        .collect();
                    let k = categories.len();
                    for r in rows.clone() {
                        out[at(r, 0)..=at(r, k)].fill(0.0);
                        if let Some(s) = &v[r] {
                            out[at(r, index.get(s.as_str()).copied().unwrap_or(k))] = 1.0;
                        }
                    }
                }
                _ => {
                    return Err(PrepError::Kind {
                        column: f.name.clone(),
                        expected: f.kind,
                        found: column.kind,
                    });
                }
            }
        }
        Ok(())
    }

    /// Encodes one row given as values in the order of [`Preprocessor::features`].
    pub fn encode_row(&self, values: &[Value<'_>], out: &mut [f32]) -> Result<(), PrepError> {
        if values.len() != self.features.len() {
            return Err(PrepError::RowLength {
                expected: self.features.len(),
                found: values.len(),
            });
        }
        if out.len() != self.width {
            return Err(PrepError::OutputLength {
                expected: self.width,
                found: out.len(),
            });
        }
        for (f, &value) in self.features.iter().zip(values) {
            let out = &mut out[f.columns()];
            let wrong = |found: ColumnKind| PrepError::Kind {
                column: f.name.clone(),
                expected: f.kind,
                found,
            };
            match &f.encoding {
                Encoding::Standardize {
                    mean,
                    std,
                    indicator,
                } => {
                    #[allow(clippy::cast_precision_loss)]
                    let x = match (value, f.kind) {
                        (Value::Number(x), ColumnKind::Numeric) if !missing_number(x) => Some(x),
                        (Value::Timestamp(s), ColumnKind::Timestamp) => Some(s as f64),
                        (Value::Missing | Value::Number(_), ColumnKind::Numeric)
                        | (Value::Missing, ColumnKind::Timestamp) => None,
                        (v, _) => return Err(wrong(value_kind(v))),
                    };
                    out[0] = x.map_or(0.0, |x| f32_of((x - mean) / std));
                    if *indicator {
                        out[1] = if x.is_none() { 1.0 } else { 0.0 };
                    }
                }
                Encoding::Boolean { fill, indicator } => {
                    let x = match value {
                        Value::Bool(b) => Some(b),
                        Value::Missing => None,
                        v => return Err(wrong(value_kind(v))),
                    };
                    out[0] = match x {
                        Some(true) => 1.0,
                        Some(false) => 0.0,
                        None => f32_of(*fill),
                    };
                    if *indicator {
                        out[1] = if x.is_none() { 1.0 } else { 0.0 };
                    }
                }
                Encoding::OneHot { categories } => {
                    out.fill(0.0);
                    match value {
                        Value::Text(s) => {
                            let k = categories.iter().position(|c| c == s);
                            out[k.unwrap_or(categories.len())] = 1.0;
                        }
                        Value::Missing => {}
                        v => return Err(wrong(value_kind(v))),
                    }
                }
            }
        }
        Ok(())
    }
}

fn value_kind(v: Value<'_>) -> ColumnKind {
    match v {
        Value::Missing | Value::Number(_) => ColumnKind::Numeric,
        Value::Bool(_) => ColumnKind::Boolean,
        Value::Text(_) => ColumnKind::Categorical,
        Value::Timestamp(_) => ColumnKind::Timestamp,
    }
}

fn fit_column(
    column: &Column,
    rows: &[usize],
    config: &PrepConfig,
) -> Result<Encoding, ExcludedReason> {
    if column.kind == ColumnKind::Text {
        return Err(ExcludedReason::Text);
    }
    match &column.data {
        ColumnData::Numeric(v) => {
            let present = rows.iter().map(|&r| v[r]).filter(|x| !missing_number(*x));
            standardize(moments(present), rows.len(), config)
        }
        ColumnData::Timestamp(v) => {
            #[allow(clippy::cast_precision_loss)]
            let present = rows.iter().filter_map(|&r| v[r]).map(|s| s as f64);
            standardize(moments(present), rows.len(), config)
        }
        ColumnData::Boolean(v) => {
            let (mut trues, mut present) = (0usize, 0usize);
            for &r in rows {
                if let Some(b) = v[r] {
                    present += 1;
                    trues += usize::from(b);
                }
            }
            if present == 0 {
                return Err(ExcludedReason::AllMissing);
            }
            let missing = present < rows.len();
            if !missing && (trues == 0 || trues == present) {
                return Err(ExcludedReason::Constant);
            }
            Ok(Encoding::Boolean {
                fill: trues as f64 / present as f64,
                indicator: missing && config.missing_indicators,
            })
        }
        ColumnData::Text(v) => {
            let mut counts: HashMap<&str, usize> = HashMap::new();
            let mut present = 0;
            for &r in rows {
                if let Some(s) = &v[r] {
                    present += 1;
                    *counts.entry(s.as_str()).or_default() += 1;
                }
            }
            if present == 0 {
                return Err(ExcludedReason::AllMissing);
            }
            if counts.len() == 1 && present == rows.len() {
                return Err(ExcludedReason::Constant);
            }
            let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            Ok(Encoding::OneHot {
                categories: ranked
                    .into_iter()
                    .take(config.max_categories)
                    .map(|(s, _)| s.to_owned())
                    .collect(),
            })
        }
    }
}

fn standardize(
    moments: Option<(f64, f64, usize)>,
    rows: usize,
    config: &PrepConfig,
) -> Result<Encoding, ExcludedReason> {
    let (mean, std, present) = moments.ok_or(ExcludedReason::AllMissing)?;
    let missing = present < rows;
    if std == 0.0 && !missing {
        return Err(ExcludedReason::Constant);
    }
    Ok(Encoding::Standardize {
        mean,
        std: if std > 0.0 && std.is_finite() {
            std
        } else {
            1.0
        },
        indicator: missing && config.missing_indicators,
    })
}

/// Most classes a classification target may have.
pub const MAX_CLASSES: usize = 100;

/// The target column and what the network learns of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub kind: ColumnKind,
    pub encoding: TargetEncoding,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetEncoding {
    /// Classification. With two classes the second is the positive one; with more, they are in
    /// name order.
    Classes { classes: Vec<String> },
    /// Regression on `(y − mean) / std`.
    Values { mean: f64, std: f64 },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("target column {column:?} has no values")]
    Empty { column: String },
    #[error("target column {column:?} has one class ({class:?}); a model needs at least two")]
    OneClass { column: String, class: String },
    #[error("target column {column:?} has {classes} classes; at most {MAX_CLASSES} are supported")]
    TooManyClasses { column: String, classes: usize },
    #[error("target column {column:?} holds {kind:?} values, which cannot be a target")]
    Unsupported { column: String, kind: ColumnKind },
}

impl Target {
    /// Decides the task from `column`: a numeric column with exactly two distinct values, a
    /// boolean, categorical or text column → classification, any other numeric column →
    /// regression. Classes come from every labelled row (so a class rare enough to miss the
    /// training split still has an index); a regression's scale from `train_rows` only.
    ///
    /// The positive class of a binary target is the larger number, `true`, or the rarer
    /// category (ties: the later name), as in fraud or risk labels.
    pub fn fit(column: &Column, train_rows: &[usize]) -> Result<Target, TargetError> {
        let empty = || TargetError::Empty {
            column: column.name.clone(),
        };
        let classes = |classes: Vec<String>| -> Result<TargetEncoding, TargetError> {
            match classes.len() {
                0 => Err(empty()),
                1 => Err(TargetError::OneClass {
                    column: column.name.clone(),
                    class: classes[0].clone(),
                }),
                n if n > MAX_CLASSES => Err(TargetError::TooManyClasses {
                    column: column.name.clone(),
                    classes: n,
                }),
                _ => Ok(TargetEncoding::Classes { classes }),
            }
        };
        let encoding = match &column.data {
            ColumnData::Numeric(v) => {
                let mut distinct: Vec<f64> = Vec::new();
                for &x in v.iter().filter(|x| !missing_number(**x)) {
                    if !distinct.contains(&x) {
                        distinct.push(x);
                        if distinct.len() > 2 {
                            break;
                        }
                    }
                }
                distinct.sort_by(f64::total_cmp);
                if distinct.len() <= 2 {
                    classes(distinct.iter().map(|x| x.to_string()).collect())?
                } else {
                    let present = train_rows
                        .iter()
                        .map(|&r| v[r])
                        .filter(|x| !missing_number(*x));
                    let (mean, std, _) = moments(present).ok_or_else(empty)?;
                    TargetEncoding::Values {
                        mean,
                        std: if std > 0.0 { std } else { 1.0 },
                    }
                }
            }
            ColumnData::Boolean(v) => {
                let mut seen = [false; 2];
                for b in v.iter().flatten() {
                    seen[usize::from(*b)] = true;
                }
                classes(
                    [("false", seen[0]), ("true", seen[1])]
                        .into_iter()
                        .filter(|(_, s)| *s)
                        .map(|(c, _)| c.to_owned())
                        .collect(),
                )?
            }
            ColumnData::Text(v) => {
                let mut counts: HashMap<&str, usize> = HashMap::new();
                for s in v.iter().flatten() {
                    *counts.entry(s.as_str()).or_default() += 1;
                }
                let mut names: Vec<&str> = counts.keys().copied().collect();
                names.sort_unstable();
                if names.len() == 2 && counts[names[0]] < counts[names[1]] {
                    names.swap(0, 1);
                }
                classes(names.into_iter().map(str::to_owned).collect())?
            }
            ColumnData::Timestamp(_) => {
                return Err(TargetError::Unsupported {
                    column: column.name.clone(),
                    kind: column.kind,
                });
            }
        };
        Ok(Target {
            name: column.name.clone(),
            kind: column.kind,
            encoding,
        })
    }

    /// The loss that trains this target.
    pub fn loss(&self) -> Loss {
        match &self.encoding {
            TargetEncoding::Classes { classes } if classes.len() == 2 => Loss::Logistic,
            TargetEncoding::Classes { classes } => Loss::Softmax {
                classes: classes.len(),
            },
            TargetEncoding::Values { .. } => Loss::Squared,
        }
    }

    /// Every row's training target (0/1, a class index, or a standardized value), `None` where
    /// it is missing or a class the encoding does not know.
    pub fn encode(&self, column: &Column) -> Result<Vec<Option<f32>>, PrepError> {
        let wrong = || PrepError::Kind {
            column: self.name.clone(),
            expected: self.kind,
            found: column.kind,
        };
        #[allow(clippy::cast_precision_loss)]
        let index = |i: usize| i as f32;
        match (&self.encoding, &column.data) {
            (TargetEncoding::Values { mean, std }, ColumnData::Numeric(v)) => Ok(v
                .iter()
                .map(|&x| (!missing_number(x)).then(|| f32_of((x - mean) / std)))
                .collect()),
            (TargetEncoding::Classes { classes }, ColumnData::Numeric(v)) => {
                let values: Vec<f64> = classes.iter().filter_map(|c| c.parse().ok()).collect();
                Ok(v.iter()
                    .map(|x| values.iter().position(|c| c == x).map(index))
                    .collect())
            }
            (TargetEncoding::Classes { classes }, ColumnData::Boolean(v)) => Ok(v
                .iter()
                .map(|b| {
                    b.and_then(|b| {
                        let name = if b { "true" } else { "false" };
                        classes.iter().position(|c| c == name).map(index)
                    })
                })
                .collect()),
            (TargetEncoding::Classes { classes }, ColumnData::Text(v)) => {
                let lookup: HashMap<&str, usize> = classes
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.as_str(), i))
                    .collect();
                Ok(v.iter()
                    .map(|s| s.as_deref().and_then(|s| lookup.get(s).copied()).map(index))
                    .collect())
            }
            _ => Err(wrong()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        let col = |name: &str, kind, data| Column {
            name: name.into(),
            kind,
            data,
        };
        Frame::new(vec![
            col(
                "x",
                ColumnKind::Numeric,
                ColumnData::Numeric(vec![1.0, 2.0, f64::NAN, 3.0, 100.0]),
            ),
            col(
                "c",
                ColumnKind::Categorical,
                ColumnData::Text(
                    ["a", "b", "a", "c", "zz"]
                        .iter()
                        .map(|s| Some((*s).to_owned()))
                        .collect(),
                ),
            ),
            col(
                "b",
                ColumnKind::Boolean,
                ColumnData::Boolean(vec![Some(true), None, Some(false), Some(true), None]),
            ),
            col(
                "t",
                ColumnKind::Timestamp,
                ColumnData::Timestamp(vec![Some(0), Some(10), Some(20), None, Some(0)]),
            ),
            col(
                "notes",
                ColumnKind::Text,
                ColumnData::Text(vec![None, None, None, None, None]),
            ),
            col("k", ColumnKind::Numeric, ColumnData::Numeric(vec![5.0; 5])),
        ])
        .unwrap_or_default()
    }

    #[test]
    fn encodings_are_learned_from_training_rows_only() {
        let f = frame();
        let names: Vec<String> = ["x", "c", "b", "t", "notes", "k"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let config = PrepConfig {
            max_categories: 1,
            missing_indicators: true,
        };
        // Row 4 (x = 100, c = "zz") is held out.
        let (p, excluded) =
            Preprocessor::fit(&f, &names, &[0, 1, 2, 3], &config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            excluded.iter().map(|e| e.reason).collect::<Vec<_>>(),
            vec![ExcludedReason::Text, ExcludedReason::Constant]
        );
        // x: 2 + indicator; c: "a" + other; b: 1 + indicator; t: 1 + indicator.
        assert_eq!(p.width, 8);
        assert_eq!(
            p.features[0].encoding,
            Encoding::Standardize {
                mean: 2.0,
                std: (2.0f64 / 3.0).sqrt(),
                indicator: true
            }
        );
        assert_eq!(
            p.features[1].encoding,
            Encoding::OneHot {
                categories: vec!["a".into()]
            }
        );
        let mut out = vec![0.0; 5 * p.width];
        p.transform(&f, 0..5, &mut out)
            .unwrap_or_else(|e| panic!("{e}"));
        let row = |r: usize| &out[r * 8..(r + 1) * 8];
        let s = f32_of(1.0 / (2.0f64 / 3.0).sqrt());
        // t: 0, 10, 20 (and one missing) standardize like x.
        assert_eq!(row(0), &[-s, 0.0, 1.0, 0.0, 1.0, 0.0, -s, 0.0]);
        // Missing x → 0 with its indicator; missing b → share of true (2/3) with indicator.
        assert_eq!(row(2)[..4], [0.0, 1.0, 1.0, 0.0]);
        assert!((row(1)[4] - 2.0 / 3.0).abs() < 1e-6 && row(1)[5] == 1.0);
        assert_eq!(row(3)[6..], [0.0, 1.0]);
        // The held-out category goes to "other".
        assert_eq!(row(4)[2..4], [0.0, 1.0]);

        // The one-row path agrees with the frame path.
        let mut one = vec![0.0; p.width];
        let values = [
            Value::Number(1.0),
            Value::Text("a"),
            Value::Bool(true),
            Value::Timestamp(0),
        ];
        p.encode_row(&values, &mut one)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one, row(0));
        assert!(matches!(
            p.encode_row(&[Value::Bool(true); 4], &mut one),
            Err(PrepError::Kind { .. })
        ));
    }

    #[test]
    fn targets_choose_their_task() {
        let num = |v: Vec<f64>| Column {
            name: "y".into(),
            kind: ColumnKind::Numeric,
            data: ColumnData::Numeric(v),
        };
        let t = Target::fit(&num(vec![0.0, 1.0, f64::NAN, 1.0]), &[0, 1, 3]);
        let t = t.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.loss(), Loss::Logistic);
        assert_eq!(
            t.encode(&num(vec![1.0, f64::NAN, 0.0, 7.0])),
            Ok(vec![Some(1.0), None, Some(0.0), None])
        );
        assert!(matches!(
            Target::fit(&num(vec![1.0, 1.0]), &[0, 1]),
            Err(TargetError::OneClass { .. })
        ));
        let t = Target::fit(&num(vec![1.0, 2.0, 3.0, 6.0]), &[0, 1, 2]);
        assert_eq!(
            t.map(|t| t.encoding),
            Ok(TargetEncoding::Values {
                mean: 2.0,
                std: (2.0f64 / 3.0).sqrt()
            })
        );
        let text = Column {
            name: "y".into(),
            kind: ColumnKind::Categorical,
            data: ColumnData::Text(
                ["ok", "fraud", "ok"]
                    .iter()
                    .map(|s| Some((*s).to_owned()))
                    .collect(),
            ),
        };
        let t = Target::fit(&text, &[0, 1, 2]).unwrap_or_else(|e| panic!("{e}"));
        // The rarer class is the positive one.
        assert_eq!(
            t.encoding,
            TargetEncoding::Classes {
                classes: vec!["ok".into(), "fraud".into()]
            }
        );
    }
}
