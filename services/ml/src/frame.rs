//! An in-memory table: named, typed columns of equal length. Datasets are read into a `Frame`
//! for quality reports and training; nothing here does I/O.

use serde::{Deserialize, Serialize};

/// What a column holds, as schema inference decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    /// Numbers (integers or decimals).
    Numeric,
    /// Few distinct strings (codes, classes).
    Categorical,
    /// true/false, yes/no, 0/1 spelled as such.
    Boolean,
    /// Free text (many distinct strings).
    Text,
    /// Dates and times (RFC 3339 or `YYYY-MM-DD[ HH:MM:SS]`), kept as Unix seconds.
    Timestamp,
}

/// A column's values. Missing values are `NaN` for numbers and `None` otherwise. Equality treats
/// a missing number as equal to a missing number (NaN == NaN here), so frames with gaps compare.
#[derive(Clone, Debug)]
pub enum ColumnData {
    Numeric(Vec<f64>),
    Boolean(Vec<Option<bool>>),
    /// Categorical and text columns.
    Text(Vec<Option<String>>),
    /// Unix seconds.
    Timestamp(Vec<Option<i64>>),
}

impl PartialEq for ColumnData {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ColumnData::Numeric(a), ColumnData::Numeric(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
            }
            (ColumnData::Boolean(a), ColumnData::Boolean(b)) => a == b,
            (ColumnData::Text(a), ColumnData::Text(b)) => a == b,
            (ColumnData::Timestamp(a), ColumnData::Timestamp(b)) => a == b,
            _ => false,
        }
    }
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Numeric(v) => v.len(),
            ColumnData::Boolean(v) => v.len(),
            ColumnData::Text(v) => v.len(),
            ColumnData::Timestamp(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether row `i` is missing.
    pub fn is_missing(&self, i: usize) -> bool {
        match self {
            ColumnData::Numeric(v) => v.get(i).is_none_or(|x| x.is_nan()),
            ColumnData::Boolean(v) => v.get(i).is_none_or(Option::is_none),
            ColumnData::Text(v) => v.get(i).is_none_or(Option::is_none),
            ColumnData::Timestamp(v) => v.get(i).is_none_or(Option::is_none),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
    pub data: ColumnData,
}

/// Columns of equal length with distinct names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    columns: Vec<Column>,
    rows: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("column {name:?} has {len} rows; the others have {rows}")]
    Length {
        name: String,
        len: usize,
        rows: usize,
    },
    #[error("column {name:?} appears twice")]
    Duplicate { name: String },
    #[error("no column {name:?}")]
    Missing { name: String },
}

impl Frame {
    pub fn new(columns: Vec<Column>) -> Result<Frame, FrameError> {
        let rows = columns.first().map_or(0, |c| c.data.len());
        for (i, c) in columns.iter().enumerate() {
            if c.data.len() != rows {
                return Err(FrameError::Length {
                    name: c.name.clone(),
                    len: c.data.len(),
                    rows,
                });
            }
            if columns[..i].iter().any(|o| o.name == c.name) {
                return Err(FrameError::Duplicate {
                    name: c.name.clone(),
                });
            }
        }
        Ok(Frame { columns, rows })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn column(&self, name: &str) -> Result<&Column, FrameError> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| FrameError::Missing {
                name: name.to_owned(),
            })
    }

    pub fn into_columns(self) -> Vec<Column> {
        self.columns
    }

    /// The rows at `indices`, in that order (for splits and shuffles).
    pub fn take(&self, indices: &[usize]) -> Frame {
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                kind: c.kind,
                data: match &c.data {
                    ColumnData::Numeric(v) => {
                        ColumnData::Numeric(indices.iter().map(|&i| v[i]).collect())
                    }
                    ColumnData::Boolean(v) => {
                        ColumnData::Boolean(indices.iter().map(|&i| v[i]).collect())
                    }
                    ColumnData::Text(v) => {
                        ColumnData::Text(indices.iter().map(|&i| v[i].clone()).collect())
                    }
                    ColumnData::Timestamp(v) => {
                        ColumnData::Timestamp(indices.iter().map(|&i| v[i]).collect())
                    }
                },
            })
            .collect();
        Frame {
            columns,
            rows: indices.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(name: &str, v: Vec<f64>) -> Column {
        Column {
            name: name.into(),
            kind: ColumnKind::Numeric,
            data: ColumnData::Numeric(v),
        }
    }

    #[test]
    fn frames_check_lengths_and_names() {
        assert!(matches!(
            Frame::new(vec![num("a", vec![1.0]), num("b", vec![])]),
            Err(FrameError::Length { .. })
        ));
        assert!(matches!(
            Frame::new(vec![num("a", vec![1.0]), num("a", vec![2.0])]),
            Err(FrameError::Duplicate { .. })
        ));
        let f = Frame::new(vec![num("a", vec![1.0, f64::NAN, 3.0])]).unwrap_or_default();
        assert_eq!(f.rows(), 3);
        assert!(f.column("a").is_ok_and(|c| c.data.is_missing(1)));
        assert_eq!(f.clone(), f, "missing numbers compare equal");
        let t = f.take(&[2, 0]);
        assert_eq!(
            t.column("a").map(|c| c.data.clone()),
            Ok(ColumnData::Numeric(vec![3.0, 1.0]))
        );
    }
}
