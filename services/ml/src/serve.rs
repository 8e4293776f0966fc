//! Serving: request rows (JSON objects by column name, or arrays in the model's input order)
//! validated against a model's inputs, and batched prediction over many requests' rows at once.

use serde::Serialize;

use crate::ColumnKind;
use crate::model::{Model, PredictError, Scratch, argmax};
use crate::prep::{TargetEncoding, Value};

/// Most rows one request may carry.
pub const MAX_ROWS: usize = 10_000;

/// One input value, owned.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Missing,
    Number(f64),
    Bool(bool),
    Text(String),
    Timestamp(i64),
}

impl Cell {
    pub fn as_value(&self) -> Value<'_> {
        match self {
            Cell::Missing => Value::Missing,
            Cell::Number(x) => Value::Number(*x),
            Cell::Bool(b) => Value::Bool(*b),
            Cell::Text(s) => Value::Text(s),
            Cell::Timestamp(t) => Value::Timestamp(*t),
        }
    }
}

/// Why a request's rows do not fit the model: which row, which field, what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {problem}", .row.map(|r| format!("row {r}")).unwrap_or_else(|| "body".into()), .field.as_ref().map(|f| format!(", field {f:?}")).unwrap_or_default())]
pub struct InputError {
    pub row: Option<usize>,
    pub field: Option<String>,
    pub problem: String,
}

fn body_error(problem: impl Into<String>) -> InputError {
    InputError {
        row: None,
        field: None,
        problem: problem.into(),
    }
}

fn kind_name(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Numeric => "a number",
        ColumnKind::Categorical | ColumnKind::Text => "a string",
        ColumnKind::Boolean => "true or false",
        ColumnKind::Timestamp => "Unix seconds (an integer)",
    }
}

fn cell(kind: ColumnKind, v: &serde_json::Value) -> Result<Cell, String> {
    use serde_json::Value as J;
    match (kind, v) {
        (_, J::Null) => Ok(Cell::Missing),
        (ColumnKind::Numeric, J::Number(n)) => n
            .as_f64()
            .filter(|x| x.is_finite())
            .map(Cell::Number)
            .ok_or_else(|| "not a finite number".to_owned()),
        (ColumnKind::Boolean, J::Bool(b)) => Ok(Cell::Bool(*b)),
        (ColumnKind::Categorical | ColumnKind::Text, J::String(s)) => Ok(Cell::Text(s.clone())),
        (ColumnKind::Timestamp, J::Number(n)) => n
            .as_i64()
            .map(Cell::Timestamp)
            .ok_or_else(|| "expected Unix seconds (an integer)".to_owned()),
        (kind, other) => Err(format!(
            "expected {}, found {}",
            kind_name(kind),
            match other {
                J::Bool(_) => "a boolean",
                J::Number(_) => "a number",
                J::String(_) => "a string",
                J::Array(_) => "an array",
                J::Object(_) => "an object",
                J::Null => "null",
            }
        )),
    }
}

/// Parses `{"rows": [...]}` against `inputs` (name, kind in the model's order). Each row is an
/// object by column name (absent columns are missing values; unknown ones are refused) or an
/// array of exactly one value per input.
pub fn parse_rows(
    inputs: &[(&str, ColumnKind)],
    body: &[u8],
) -> Result<Vec<Vec<Cell>>, InputError> {
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| body_error(format!("not JSON: {e}")))?;
    let rows = doc
        .get("rows")
        .and_then(|r| r.as_array())
        .ok_or_else(|| body_error("expected {\"rows\": [...]}"))?;
    if let Some(obj) = doc.as_object()
        && let Some(k) = obj.keys().find(|k| *k != "rows")
    {
        return Err(InputError {
            row: None,
            field: Some(k.clone()),
            problem: "unknown top-level field".into(),
        });
    }
    if rows.is_empty() || rows.len() > MAX_ROWS {
        return Err(body_error(format!(
            "1 to {MAX_ROWS} rows, found {}",
            rows.len()
        )));
    }
    let mut out = Vec::with_capacity(rows.len());
    for (r, row) in rows.iter().enumerate() {
        let mut cells = Vec::with_capacity(inputs.len());
        match row {
            serde_json::Value::Object(map) => {
                if let Some(k) = map.keys().find(|k| !inputs.iter().any(|(n, _)| n == k)) {
                    return Err(InputError {
                        row: Some(r),
                        field: Some(k.clone()),
                        problem: "the model has no such input".into(),
                    });
                }
                for (name, kind) in inputs {
                    let v = map.get(*name).unwrap_or(&serde_json::Value::Null);
                    cells.push(cell(*kind, v).map_err(|problem| InputError {
                        row: Some(r),
                        field: Some((*name).to_owned()),
                        problem,
                    })?);
                }
            }
            serde_json::Value::Array(values) => {
                if values.len() != inputs.len() {
                    return Err(InputError {
                        row: Some(r),
                        field: None,
                        problem: format!(
                            "{} values; the model takes {} ({})",
                            values.len(),
                            inputs.len(),
                            inputs
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                }
                for ((name, kind), v) in inputs.iter().zip(values) {
                    cells.push(cell(*kind, v).map_err(|problem| InputError {
                        row: Some(r),
                        field: Some((*name).to_owned()),
                        problem,
                    })?);
                }
            }
            _ => {
                return Err(InputError {
                    row: Some(r),
                    field: None,
                    problem: "a row is an object or an array".into(),
                });
            }
        }
        out.push(cells);
    }
    Ok(out)
}

/// The inputs of `model` as [`parse_rows`] takes them.
pub fn inputs(model: &Model) -> Vec<(&str, ColumnKind)> {
    model
        .prep
        .features
        .iter()
        .map(|f| (f.name.as_str(), f.kind))
        .collect()
}

/// One row's prediction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// The predicted class (classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Each class's probability, in the model's class order (classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Vec<f64>>,
    /// The predicted value (regression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// Reusable buffers for [`predict_batch`].
#[derive(Debug, Default)]
pub struct BatchBuffers {
    x: Vec<f32>,
    scratch: Scratch,
}

/// Predicts every row of every request in `batches` in one forward pass (rows encoded into one
/// matrix). Returns the predictions per request, in order.
pub fn predict_batch(
    model: &Model,
    batches: &[&[Vec<Cell>]],
    buf: &mut BatchBuffers,
) -> Result<Vec<Vec<Prediction>>, PredictError> {
    let width = model.prep.width;
    let n: usize = batches.iter().map(|b| b.len()).sum();
    buf.x.clear();
    buf.x.resize(n * width, 0.0);
    let mut values = Vec::with_capacity(model.prep.features.len());
    for (i, row) in batches.iter().flat_map(|b| b.iter()).enumerate() {
        values.clear();
        values.extend(row.iter().map(Cell::as_value));
        model
            .prep
            .encode_row(&values, &mut buf.x[i * width..(i + 1) * width])?;
    }
    let y = model.network.forward(&buf.x, n, &mut buf.scratch, 1);
    model.network.loss.finish(y);
    let outputs = model.network.outputs();
    let mut rows = y
        .chunks_exact(outputs.max(1))
        .map(|o| match &model.target.encoding {
            TargetEncoding::Classes { classes } if classes.len() == 2 => {
                let p = f64::from(o[0]);
                Prediction {
                    label: Some(classes[usize::from(p >= 0.5)].clone()),
                    probabilities: Some(vec![1.0 - p, p]),
                    value: None,
                }
            }
            TargetEncoding::Classes { classes } => {
                let p: Vec<f64> = o.iter().map(|&v| f64::from(v)).collect();
                Prediction {
                    label: classes.get(argmax(&p)).cloned(),
                    probabilities: Some(p),
                    value: None,
                }
            }
            TargetEncoding::Values { mean, std } => Prediction {
                label: None,
                probabilities: None,
                value: Some(f64::from(o[0]) * std + mean),
            },
        });
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        out.push(rows.by_ref().take(b.len()).collect());
    }
    Ok(out)
}
