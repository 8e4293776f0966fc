//! Text output for the operator verbs: aligned tables, JSON shown as an indented outline, times,
//! sizes and numbers. Everything here is pure; the values come from the appliance, so every
//! string printed passes through [`crate::api::printable`].

use std::fmt::Write as _;

use serde_json::Value;

use crate::api::printable;

/// Longest cell printed.
const MAX_CELL: usize = 120;

/// Prints `value` as indented JSON with `--json`, else as `text(value)` (a table, a summary).
pub fn print_value(
    value: &Value,
    json: bool,
    text: impl FnOnce(&Value) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", text(value));
    }
    Ok(())
}

/// Rows under headers, columns left-aligned and two spaces apart, no trailing spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let clean: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c, MAX_CELL)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &clean {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths
                    .get(i)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(cell.chars().count());
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in &clean {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// A scalar as a short string: numbers via [`number`], strings as they are, `-` for null.
pub fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => number(f),
            _ => n.to_string(),
        },
        Value::String(s) => printable(s, MAX_CELL),
        Value::Array(items) if items.iter().all(is_scalar) => {
            items.iter().map(scalar).collect::<Vec<_>>().join(", ")
        }
        other => printable(&other.to_string(), MAX_CELL),
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

/// A metric or loss: four decimals, or scientific notation when tiny or huge.
pub fn number(f: f64) -> String {
    if !f.is_finite() {
        return f.to_string();
    }
    let magnitude = f.abs();
    if magnitude != 0.0 && !(1e-4..1e6).contains(&magnitude) {
        format!("{f:.3e}")
    } else if f.fract() == 0.0 && magnitude < 1e6 {
        format!("{f:.0}")
    } else {
        format!("{f:.4}")
    }
}

/// Any JSON as an indented outline: `key: value` for scalars, nested objects indented, arrays of
/// objects as tables when their fields are scalars, else as numbered items.
pub fn outline(value: &Value) -> String {
    let mut out = String::new();
    write_outline(&mut out, value, 0);
    out
}

fn write_outline(out: &mut String, value: &Value, depth: usize) {
    let pad = "  ".repeat(depth);
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let key = printable(key, 60);
                match v {
                    Value::Object(inner) if inner.is_empty() => {
                        let _ = writeln!(out, "{pad}{key}: -");
                    }
                    Value::Object(_) => {
                        let _ = writeln!(out, "{pad}{key}:");
                        write_outline(out, v, depth + 1);
                    }
                    Value::Array(items) if !items.is_empty() && !items.iter().all(is_scalar) => {
                        let _ = writeln!(out, "{pad}{key}:");
                        write_outline(out, v, depth + 1);
                    }
                    Value::Array(items) if items.is_empty() => {
                        let _ = writeln!(out, "{pad}{key}: none");
                    }
                    _ => {
                        let _ = writeln!(out, "{pad}{key}: {}", scalar(v));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(table) = object_table(items) {
                for line in table.lines() {
                    let _ = writeln!(out, "{pad}{line}");
                }
            } else {
                for (i, item) in items.iter().enumerate() {
                    if is_scalar(item) {
                        let _ = writeln!(out, "{pad}- {}", scalar(item));
                    } else {
                        let _ = writeln!(out, "{pad}[{}]", i + 1);
                        write_outline(out, item, depth + 1);
                    }
                }
            }
        }
        scalar_value => {
            let _ = writeln!(out, "{pad}{}", scalar(scalar_value));
        }
    }
}

/// Objects whose fields are all scalars (or short scalar lists), as one table over the union of
/// their keys in first-seen order, a naming key (`name`, `column`, `id`, `field`) first.
fn object_table(items: &[Value]) -> Option<String> {
    let mut keys: Vec<&str> = Vec::new();
    for item in items {
        let map = item.as_object()?;
        for (k, v) in map {
            if !is_scalar(v) && !v.as_array().is_some_and(|a| a.iter().all(is_scalar)) {
                return None;
            }
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
    }
    if keys.is_empty() {
        return None;
    }
    // What names a row comes first (JSON objects arrive with their keys sorted).
    keys.sort_by_key(|k| !matches!(*k, "name" | "column" | "id" | "field"));
    let headers: Vec<String> = keys.iter().map(|k| k.to_uppercase()).collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            keys.iter()
                .map(|k| item.get(*k).map(scalar).unwrap_or_else(|| "-".into()))
                .collect()
        })
        .collect();
    Some(table(&headers, &rows))
}

/// A byte count for people: `812 B`, `3.4 KiB`, `1.2 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    #[allow(clippy::cast_precision_loss)] // display only
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Unix seconds as UTC, `2025-11-28 03:56:07Z`.
pub fn utc(secs: u64) -> String {
    hearth_audit::Timestamp::from_unix_millis(secs.saturating_mul(1000)).map_or_else(
        || format!("{secs} s"),
        hearth_audit::Timestamp::to_seconds_string,
    )
}

/// A time field that may be Unix seconds or milliseconds (`created` or `created_unix_ms`).
pub fn time_field(object: &Value, seconds_key: &str, millis_key: &str) -> String {
    if let Some(s) = object.get(seconds_key).and_then(Value::as_u64) {
        utc(s)
    } else if let Some(ms) = object.get(millis_key).and_then(Value::as_u64) {
        utc(ms / 1000)
    } else {
        "-".to_owned()
    }
}

/// The string at `key`, printable, or `-`.
pub fn text(object: &Value, key: &str) -> String {
    match object.get(key) {
        Some(Value::String(s)) => printable(s, MAX_CELL),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => scalar(other),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_align_columns_without_trailing_spaces() {
        let t = table(
            &["NAME", "KIND", "MISSING"],
            &[
                vec!["age".into(), "numeric".into(), "0".into()],
                vec!["country".into(), "categorical".into(), "12".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME     KIND         MISSING\n\
             age      numeric      0\n\
             country  categorical  12\n"
        );
    }

    #[test]
    fn table_cells_from_the_network_are_made_printable() {
        let t = table(&["A"], &[vec!["x\x1b[2Jy".into()]]);
        assert_eq!(t, "A\nx?[2Jy\n");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(0.123_456), "0.1235");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.000_012_3), "1.230e-5");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(scalar(&json!(0.5)), "0.5000");
        assert_eq!(scalar(&json!(2000)), "2000");
        assert_eq!(scalar(&json!(null)), "-");
        assert_eq!(scalar(&json!(["a", 1])), "a, 1");
    }

    #[test]
    fn outlines_show_nested_json_readably() {
        let v = json!({
            "rows": 2000,
            "accuracy": 0.91,
            "columns": [
                {"name": "age", "missing": 0},
                {"name": "income", "missing": 3, "note": "skewed"}
            ],
            "warnings": [],
            "by_group": {"a": {"n": 1}},
            "tags": ["x", "y"]
        });
        let text = outline(&v);
        assert!(text.contains("rows: 2000\n"), "{text}");
        assert!(text.contains("accuracy: 0.9100\n"), "{text}");
        assert!(
            text.contains("columns:\n  NAME    MISSING  NOTE\n"),
            "{text}"
        );
        assert!(text.contains("  income  3        skewed\n"), "{text}");
        assert!(text.contains("  age     0        -\n"), "{text}");
        assert!(text.contains("warnings: none\n"), "{text}");
        assert!(text.contains("by_group:\n  a:\n    n: 1\n"), "{text}");
        assert!(text.contains("tags: x, y\n"), "{text}");
    }

    #[test]
    fn sizes_and_times() {
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(3 * 1024 + 400), "3.4 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(utc(1_764_302_167), "2025-11-28 03:56:07Z");
        let v = json!({"created_unix_ms": 1_764_302_167_123_u64});
        assert_eq!(
            time_field(&v, "created", "created_unix_ms"),
            "2025-11-28 03:56:07Z"
        );
        assert_eq!(time_field(&json!({}), "created", "created_unix_ms"), "-");
    }
}
