//! `hearth datasets …`: upload a CSV or Parquet file as a dataset version, list and inspect
//! datasets (schema, quality, personal data), pseudonymize columns into a new version. Talks to a
//! running appliance through [`crate::api`].

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::api::{Client, Connection, UsageError, encode};
use crate::render::{self, print_value, table, text};

/// The upload's progress bar; it takes the terminal's width.
pub const UPLOAD_BAR: &str = "{msg} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec}";
/// The same for input of unknown length (a pipe).
pub const UPLOAD_SPINNER: &str = "{msg} {spinner} {bytes} {binary_bytes_per_sec}";

/// Longest dataset name the appliance takes.
pub const MAX_NAME: usize = 64;

#[derive(Args, Debug)]
pub struct DatasetsArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: DatasetsCommand,
}

#[derive(Subcommand, Debug)]
pub enum DatasetsCommand {
    /// Upload a CSV or Parquet file (streamed, any size) as a new dataset, or a new version of
    /// one.
    Upload {
        /// The CSV file (with a header line) or Parquet file (told apart by its first bytes, not
        /// its name).
        file: PathBuf,
        /// Dataset name, 1-64 of `a-z 0-9 . _ -` [default: the file's name without its
        /// extension, lowercased, other characters replaced by `-`].
        #[arg(long)]
        name: Option<String>,
        /// Print the new version as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the datasets and their versions.
    List {
        /// Print the appliance's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a dataset: its versions and one version's columns; optionally its quality report and
    /// personal-data findings.
    Show {
        name: String,
        /// Which version [default: the latest].
        #[arg(long)]
        version: Option<u64>,
        /// Also show the quality report (missing values, duplicates, outliers, …).
        #[arg(long)]
        quality: bool,
        /// With --quality: the column a model would predict (class balance, leakage).
        #[arg(long, requires = "quality", value_name = "COLUMN")]
        target: Option<String>,
        /// Also show the personal-data (PII) findings.
        #[arg(long)]
        pii: bool,
        /// Print the appliance's JSON (one object with `dataset` and, when asked, `quality` and
        /// `pii`; only the dataset without either).
        #[arg(long)]
        json: bool,
    },
    /// Replace the values of columns with keyed pseudonyms, as a new version.
    Pseudonymize {
        name: String,
        /// The version to start from.
        #[arg(long)]
        version: u64,
        /// Columns to pseudonymize, comma-separated.
        #[arg(long, value_delimiter = ',', required = true, value_name = "A,B")]
        columns: Vec<String>,
        /// Print the new version as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: DatasetsArgs) -> Result<()> {
    // Arguments are checked before anything is sent.
    if let DatasetsCommand::Upload { file, name, .. } = &args.command {
        upload_name(file, name.as_deref())?;
        let meta =
            std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
        if meta.is_dir() {
            anyhow::bail!(
                "{} is a directory, not a CSV or Parquet file",
                file.display()
            );
        }
    }
    if let DatasetsCommand::Show { name, .. } | DatasetsCommand::Pseudonymize { name, .. } =
        &args.command
    {
        check_name(name)?;
    }
    let client = args.connection.client()?;
    match args.command {
        DatasetsCommand::Upload { file, name, json } => {
            let name = upload_name(&file, name.as_deref())?;
            upload(&client, &file, &name, json).await
        }
        DatasetsCommand::List { json } => list(&client, json).await,
        DatasetsCommand::Show {
            name,
            version,
            quality,
            target,
            pii,
            json,
        } => {
            let asked = Asked {
                version,
                quality,
                target,
                pii,
                json,
            };
            show(&client, &name, asked).await
        }
        DatasetsCommand::Pseudonymize {
            name,
            version,
            columns,
            json,
        } => pseudonymize(&client, &name, version, &columns, json).await,
    }
}

/// Whether `name` is a dataset name the appliance takes: 1-64 of `a-z 0-9 . _ -`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

fn check_name(name: &str) -> Result<(), UsageError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(UsageError(format!(
            "dataset name {:?}: use 1-{MAX_NAME} of a-z 0-9 . _ -",
            crate::api::printable(name, 80)
        )))
    }
}

/// A dataset name made from a file name: its stem, lowercased, each run of other characters
/// replaced by one `-`, no `-` or `.` at either end, at most 64 characters.
pub fn sanitize_name(stem: &str) -> String {
    let mut out = String::new();
    for c in stem.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut name: String = out
        .trim_matches(['-', '.'])
        .chars()
        .take(MAX_NAME)
        .collect();
    while name.ends_with(['-', '.']) {
        name.pop();
    }
    name
}

/// The name to upload `file` under: `--name` if given (checked), else one made from the file.
fn upload_name(file: &Path, name: Option<&str>) -> Result<String, UsageError> {
    if let Some(name) = name {
        check_name(name)?;
        return Ok(name.to_owned());
    }
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = sanitize_name(&stem);
    if name.is_empty() {
        return Err(UsageError(format!(
            "cannot make a dataset name from {:?}: pass --name",
            file.display().to_string()
        )));
    }
    Ok(name)
}

async fn upload(client: &Client, file: &Path, name: &str, json: bool) -> Result<()> {
    let path = format!("/api/v1/datasets/{}", encode(name));
    // A cheap authenticated call first: a bad token is answered before any bytes go out.
    match client.get::<Value>(&path).await {
        Ok(_) => {}
        Err(e) if e.status() == Some(hyper::StatusCode::NOT_FOUND) => {}
        Err(e) => return Err(e.into()),
    }
    let meta =
        std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
    let bar = if !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else if meta.is_file() {
        let bar = ProgressBar::new(meta.len());
        bar.set_style(
            ProgressStyle::with_template(UPLOAD_BAR)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    } else {
        // A pipe: no length to go by.
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template(UPLOAD_SPINNER)
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    };
    bar.set_message(format!("uploading {name}"));
    let progress = bar.clone();
    let content_type = content_type(file);
    let result = client
        .upload::<Value>(&path, file, content_type, move |sent| {
            progress.set_position(sent)
        })
        .await;
    bar.finish_and_clear();
    let version = result?;
    if json {
        println!("{}", serde_json::to_string_pretty(&version)?);
        return Ok(());
    }
    print!("{}", version_summary(&version, name));
    Ok(())
}

/// The upload's `Content-Type`, by the file's first bytes: Parquet files start with `PAR1`.
/// Only a label: the appliance looks at the bytes itself. A pipe is not read ahead (that would
/// take its bytes), and labelled CSV.
pub fn content_type(file: &Path) -> &'static str {
    let mut head = [0u8; 4];
    let parquet = std::fs::metadata(file).is_ok_and(|m| m.is_file())
        && std::fs::File::open(file)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
            .is_ok()
        && &head == b"PAR1";
    if parquet {
        "application/vnd.apache.parquet"
    } else {
        "text/csv"
    }
}

/// `name@version: rows, columns, size`, the digest and the columns table.
fn version_summary(version: &Value, fallback_name: &str) -> String {
    let name = version
        .get("name")
        .or_else(|| version.get("dataset"))
        .and_then(Value::as_str)
        .unwrap_or(fallback_name);
    let schema = schema(version);
    let mut out = format!(
        "{}@{}: {} rows, {} columns, {}\nsha256 {}\n",
        crate::api::printable(name, 80),
        text(version, "version"),
        text(version, "rows"),
        schema.len(),
        version
            .get("bytes")
            .and_then(Value::as_u64)
            .map(render::bytes)
            .unwrap_or_else(|| "size unknown".into()),
        text(version, "sha256"),
    );
    if let Some(lineage) = version.get("lineage").filter(|l| !l.is_null())
        && let Some(transform) = lineage.get("transform").and_then(Value::as_str)
    {
        let parent = lineage
            .get("parent")
            .map(|p| format!("{}@{}", text(p, "dataset"), text(p, "version")))
            .unwrap_or_else(|| "?".into());
        out.push_str(&format!(
            "from {parent}: {}\n",
            crate::api::printable(transform, 200)
        ));
    }
    out.push_str(&table(&["COLUMN", "KIND", "MISSING"], &schema));
    out
}

/// The version's columns as table rows: name, kind, missing.
fn schema(version: &Value) -> Vec<Vec<String>> {
    version
        .get("schema")
        .and_then(Value::as_array)
        .map(|cols| {
            cols.iter()
                .map(|c| vec![text(c, "name"), text(c, "kind"), text(c, "missing")])
                .collect()
        })
        .unwrap_or_default()
}

/// The version numbers of a dataset, whether it lists them as numbers or as version objects.
fn version_numbers(dataset: &Value) -> Vec<u64> {
    dataset
        .get("versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter_map(|v| v.as_u64().or_else(|| v.get("version")?.as_u64()))
                .collect()
        })
        .unwrap_or_default()
}

/// The version object `number` of a dataset, if it lists version objects.
fn version_object(dataset: &Value, number: u64) -> Option<&Value> {
    dataset
        .get("versions")?
        .as_array()?
        .iter()
        .find(|v| v.get("version").and_then(Value::as_u64) == Some(number) && v.is_object())
}

async fn list(client: &Client, json: bool) -> Result<()> {
    let datasets: Value = client.get("/api/v1/datasets").await?;
    print_value(&datasets, json, datasets_table)
}

/// The datasets as a table: name, versions, latest, (sizes when the list carries them), created.
fn datasets_table(datasets: &Value) -> String {
    let items = datasets.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return "no datasets yet: upload one with `hearth datasets upload FILE.csv`\n".into();
    }
    // The list may carry version numbers only; then there are no sizes to show.
    let detailed = items.iter().any(|d| {
        version_numbers(d)
            .iter()
            .any(|n| version_object(d, *n).is_some())
    });
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|d| {
            let numbers = version_numbers(d);
            let latest = numbers.iter().max().copied();
            let mut row = vec![
                text(d, "name"),
                numbers
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                latest.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            ];
            if detailed {
                match latest.and_then(|n| version_object(d, n)) {
                    Some(v) => row.extend([
                        text(v, "rows"),
                        schema(v).len().to_string(),
                        v.get("bytes")
                            .and_then(Value::as_u64)
                            .map(render::bytes)
                            .unwrap_or_else(|| "-".into()),
                    ]),
                    None => row.extend(["-".into(), "-".into(), "-".into()]),
                }
            }
            row.push(render::time_field(d, "created", "created_unix_ms"));
            row
        })
        .collect();
    let headers: &[&str] = if detailed {
        &[
            "NAME", "VERSIONS", "LATEST", "ROWS", "COLUMNS", "SIZE", "CREATED",
        ]
    } else {
        &["NAME", "VERSIONS", "LATEST", "CREATED"]
    };
    table(headers, &rows)
}

/// What `hearth datasets show` was asked for.
#[derive(Debug)]
struct Asked {
    version: Option<u64>,
    quality: bool,
    target: Option<String>,
    pii: bool,
    json: bool,
}

async fn show(client: &Client, name: &str, asked: Asked) -> Result<()> {
    let base = format!("/api/v1/datasets/{}", encode(name));
    let dataset: Value = client.get(&base).await?;
    let numbers = version_numbers(&dataset);
    let version = match asked.version {
        Some(v) if !numbers.is_empty() && !numbers.contains(&v) => {
            anyhow::bail!(
                "{name} has no version {v} (versions: {})",
                numbers
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Some(v) => Some(v),
        None => numbers.iter().max().copied(),
    };
    let needs_version = asked.quality || asked.pii;
    let version_path = match version {
        Some(v) => format!("{base}/{v}"),
        None if needs_version => anyhow::bail!("{name} has no versions"),
        None => base.clone(),
    };
    let quality: Option<Value> = if asked.quality {
        let query = asked
            .target
            .as_deref()
            .map(|t| format!("?target={}", encode(t)))
            .unwrap_or_default();
        Some(
            client
                .get(&format!("{version_path}/quality{query}"))
                .await?,
        )
    } else {
        None
    };
    let pii: Option<Value> = if asked.pii {
        Some(client.get(&format!("{version_path}/pii")).await?)
    } else {
        None
    };

    if asked.json {
        let out = if quality.is_none() && pii.is_none() {
            dataset
        } else {
            let mut out = json!({ "dataset": dataset });
            if let Some(q) = quality {
                out["quality"] = q;
            }
            if let Some(p) = pii {
                out["pii"] = p;
            }
            out
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }

    println!(
        "dataset {}: {} version{}",
        text(&dataset, "name"),
        numbers.len(),
        if numbers.len() == 1 { "" } else { "s" }
    );
    // Versions as objects: one line each; then the chosen version's summary.
    let objects: Vec<&Value> = numbers
        .iter()
        .filter_map(|n| version_object(&dataset, *n))
        .collect();
    if !objects.is_empty() {
        let rows: Vec<Vec<String>> = objects
            .iter()
            .map(|v| {
                let sha = text(v, "sha256");
                vec![
                    text(v, "version"),
                    text(v, "rows"),
                    schema(v).len().to_string(),
                    v.get("bytes")
                        .and_then(Value::as_u64)
                        .map(render::bytes)
                        .unwrap_or_else(|| "-".into()),
                    sha.chars().take(16).collect(),
                    render::time_field(v, "created", "created_unix_ms"),
                    v.get("lineage")
                        .and_then(|l| l.get("transform"))
                        .and_then(Value::as_str)
                        .unwrap_or("upload")
                        .to_owned(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &[
                    "VERSION", "ROWS", "COLUMNS", "SIZE", "SHA256", "CREATED", "ORIGIN"
                ],
                &rows
            )
        );
    }
    if let Some(v) = version {
        // The version object from the dataset, else ask for it.
        let detail = match version_object(&dataset, v) {
            Some(obj) => Some(obj.clone()),
            None => client.get::<Value>(&format!("{base}/{v}")).await.ok(),
        };
        if let Some(detail) = detail {
            println!();
            print!("{}", version_summary(&detail, name));
        }
    }
    if let Some(q) = quality {
        println!();
        println!(
            "quality of {name}@{}{}:",
            version.map(|v| v.to_string()).unwrap_or_default(),
            asked
                .target
                .as_deref()
                .map(|t| format!(" (target {})", crate::api::printable(t, 80)))
                .unwrap_or_default()
        );
        print!("{}", indent(&quality_text(&q)));
    }
    if let Some(p) = pii {
        println!();
        println!(
            "personal data in {name}@{}:",
            version.map(|v| v.to_string()).unwrap_or_default()
        );
        print!("{}", indent(&pii_text(&p)));
    }
    Ok(())
}

/// A quality report as text: one line per column, then duplicates, constants, the target's
/// classes and the warnings. Shapes this hearth does not know are shown as an outline.
fn quality_text(q: &Value) -> String {
    let Some(columns) = q.get("columns").and_then(Value::as_array) else {
        return render::outline(q);
    };
    let mut out = format!(
        "{} rows, {} duplicate rows\n",
        text(q, "rows"),
        text(q, "duplicate_rows")
    );
    let rows: Vec<Vec<String>> = columns
        .iter()
        .map(|c| {
            let share = c
                .get("missing_share")
                .and_then(Value::as_f64)
                .map(|s| format!(" ({:.1}%)", s * 100.0))
                .unwrap_or_default();
            let outliers = match c.get("outliers").filter(|o| o.is_object()) {
                Some(o) => format!(
                    "{} beyond fences, {} beyond 4 sd",
                    text(o, "beyond_fences"),
                    text(o, "beyond_z4")
                ),
                None => "-".to_owned(),
            };
            vec![
                text(c, "name"),
                text(c, "kind"),
                format!("{}{share}", text(c, "missing")),
                text(c, "distinct"),
                outliers,
            ]
        })
        .collect();
    out.push_str(&table(
        &["COLUMN", "KIND", "MISSING", "DISTINCT", "OUTLIERS"],
        &rows,
    ));
    let constant = q
        .get("constant_columns")
        .map(render::scalar)
        .filter(|c| !c.is_empty() && c != "-")
        .unwrap_or_else(|| "none".to_owned());
    out.push_str(&format!("constant columns: {constant}\n"));
    if let Some(target) = q.get("target").filter(|t| t.is_object()) {
        out.push_str(&format!(
            "target {}: {} classes, {} missing\n",
            text(target, "column"),
            text(target, "distinct"),
            text(target, "missing")
        ));
        if let Some(classes) = target.get("classes").and_then(Value::as_array) {
            let rows: Vec<Vec<String>> = classes
                .iter()
                .map(|c| {
                    vec![
                        text(c, "value"),
                        text(c, "count"),
                        c.get("share")
                            .and_then(Value::as_f64)
                            .map(|s| format!("{:.1}%", s * 100.0))
                            .unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            out.push_str(&indent(&table(&["CLASS", "COUNT", "SHARE"], &rows)));
        }
    }
    let warnings: Vec<String> = q
        .get("warnings")
        .and_then(Value::as_array)
        .map(|w| {
            w.iter()
                .map(|w| crate::api::printable(w.as_str().unwrap_or_default(), 300))
                .collect()
        })
        .unwrap_or_default();
    if warnings.is_empty() {
        out.push_str("warnings: none\n");
    } else {
        out.push_str("warnings:\n");
        for w in warnings {
            out.push_str(&format!("  - {w}\n"));
        }
    }
    out
}

/// A personal-data report as a table: per column the kinds found, matches among the values
/// sampled, what the name suggests, and whether it is already pseudonymized.
fn pii_text(p: &Value) -> String {
    let Some(columns) = p.get("columns").and_then(Value::as_array) else {
        return render::outline(p);
    };
    let rows: Vec<Vec<String>> = columns
        .iter()
        .map(|c| {
            let kinds = c
                .get("kinds")
                .map(render::scalar)
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| "-".into());
            let matches = c
                .get("matches")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k} {}", render::scalar(v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "-".into());
            let pseudonymized = match c.get("pseudonymized").and_then(Value::as_bool) {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            };
            vec![
                text(c, "name"),
                kinds,
                matches,
                text(c, "sampled"),
                text(c, "name_hint"),
                pseudonymized.to_owned(),
            ]
        })
        .collect();
    let found = columns
        .iter()
        .filter(|c| {
            c.get("kinds")
                .and_then(Value::as_array)
                .is_some_and(|k| !k.is_empty())
        })
        .count();
    let mut out = format!(
        "{found} of {} columns may hold personal data\n",
        columns.len()
    );
    out.push_str(&table(
        &[
            "COLUMN",
            "FOUND",
            "MATCHES",
            "SAMPLED",
            "NAME HINT",
            "PSEUDONYMIZED",
        ],
        &rows,
    ));
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

async fn pseudonymize(
    client: &Client,
    name: &str,
    version: u64,
    columns: &[String],
    json: bool,
) -> Result<()> {
    let columns: Vec<&str> = columns
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .collect();
    if columns.is_empty() {
        return Err(UsageError("--columns: name at least one column".into()).into());
    }
    let new: Value = client
        .post(
            &format!("/api/v1/datasets/{}/{version}/pseudonymize", encode(name)),
            &json!({ "columns": columns }),
        )
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&new)?);
        return Ok(());
    }
    println!(
        "pseudonymized {} of {name}@{version}: new version {}",
        columns.join(", "),
        text(&new, "version")
    );
    print!("{}", version_summary(&new, name));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn file_stems_become_dataset_names() {
        assert_eq!(sanitize_name("Customers"), "customers");
        assert_eq!(sanitize_name("Sales Q3 (final)"), "sales-q3-final");
        assert_eq!(sanitize_name("churn_2024.v2"), "churn_2024.v2");
        assert_eq!(sanitize_name("--.x.--"), "x");
        assert_eq!(sanitize_name("Äpfel & Birnen"), "pfel-birnen");
        assert_eq!(sanitize_name("日本"), "");
        let long = sanitize_name(&format!("{}-{}", "a".repeat(63), "b".repeat(10)));
        assert_eq!(long, "a".repeat(63), "cut to 64, then no trailing dash");
        assert!(is_valid_name(&sanitize_name("Whatever You Like.tar")));
    }

    #[test]
    fn upload_names_come_from_the_file_unless_given() {
        let name = |file: &str, given: Option<&str>| upload_name(Path::new(file), given);
        assert_eq!(name("/tmp/My Data.csv", None).unwrap(), "my-data");
        assert_eq!(name("data.csv.gz", None).unwrap(), "data.csv");
        assert_eq!(name("x.csv", Some("other")).unwrap(), "other");
        name("x.csv", Some("Other")).unwrap_err();
        name("x.csv", Some(&"a".repeat(65))).unwrap_err();
        name("x.csv", Some("")).unwrap_err();
        let err = name("/tmp/???.csv", None).unwrap_err().to_string();
        assert!(err.contains("--name"), "{err}");
    }

    #[test]
    fn names_are_validated_like_the_appliance_does() {
        assert!(is_valid_name("a"));
        assert!(is_valid_name("sales-2024_v1.csv"));
        assert!(is_valid_name(&"z".repeat(64)));
        assert!(!is_valid_name(&"z".repeat(65)));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("Sales"));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name("a/b"));
    }

    #[test]
    fn versions_may_be_numbers_or_objects() {
        let numbers = json!({"name": "d", "versions": [1, 2, 4]});
        assert_eq!(version_numbers(&numbers), vec![1, 2, 4]);
        assert!(version_object(&numbers, 2).is_none());
        let objects = json!({"name": "d", "versions": [{"version": 1, "rows": 3}, {"version": 2}]});
        assert_eq!(version_numbers(&objects), vec![1, 2]);
        assert_eq!(version_object(&objects, 1).unwrap()["rows"], 3);
    }

    #[test]
    fn dataset_lists_show_sizes_only_when_they_have_them() {
        let numbers = json!([
            {"name": "churn", "created_unix_ms": 1_764_302_167_000_u64, "versions": [1, 2]}
        ]);
        assert_eq!(
            datasets_table(&numbers),
            "NAME   VERSIONS  LATEST  CREATED\n\
             churn  1,2       2       2025-11-28 03:56:07Z\n"
        );
        let objects = json!([{"name": "d", "versions": [
            {"version": 1, "rows": 10, "bytes": 2048, "schema": [{"name": "a"}]}
        ]}]);
        assert_eq!(
            datasets_table(&objects),
            "NAME  VERSIONS  LATEST  ROWS  COLUMNS  SIZE     CREATED\n\
             d     1         1       10    1        2.0 KiB  -\n"
        );
        assert!(datasets_table(&json!([])).starts_with("no datasets yet"));
    }

    #[test]
    fn quality_reports_read_as_tables() {
        let q = json!({
            "rows": 3, "duplicate_rows": 1, "constant_columns": ["k"],
            "columns": [
                {"name": "age", "kind": "numeric", "missing": 1, "missing_share": 0.3333,
                 "distinct": 2, "constant": false,
                 "outliers": {"beyond_fences": 0, "beyond_z4": 0, "q1": 1.0}},
                {"name": "k", "kind": "categorical", "missing": 0, "missing_share": 0.0,
                 "distinct": 1, "constant": true, "outliers": null}
            ],
            "target": {"column": "y", "distinct": 2, "missing": 0, "classes": [
                {"value": "1", "count": 2, "share": 0.6667},
                {"value": "0", "count": 1, "share": 0.3333}
            ]},
            "warnings": ["k is constant"]
        });
        let text = quality_text(&q);
        assert!(text.starts_with("3 rows, 1 duplicate rows\n"), "{text}");
        assert!(
            text.contains(
                "age     numeric      1 (33.3%)  2         0 beyond fences, 0 beyond 4 sd\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("k       categorical  0 (0.0%)   1         -\n"),
            "{text}"
        );
        assert!(text.contains("constant columns: k\n"), "{text}");
        assert!(text.contains("target y: 2 classes, 0 missing\n"), "{text}");
        assert!(text.contains("  1      2      66.7%\n"), "{text}");
        assert!(text.ends_with("warnings:\n  - k is constant\n"), "{text}");
        // Unknown shapes still show.
        assert_eq!(quality_text(&json!({"score": 1})), "score: 1\n");
    }

    #[test]
    fn pii_reports_read_as_tables() {
        let p = json!({"columns": [
            {"name": "email", "kinds": ["email"], "matches": {"email": 60}, "sampled": 60,
             "name_hint": "email", "pseudonymized": false},
            {"name": "city", "kinds": [], "matches": {}, "sampled": 60, "name_hint": null,
             "pseudonymized": false}
        ]});
        let text = pii_text(&p);
        assert!(
            text.starts_with("1 of 2 columns may hold personal data\n"),
            "{text}"
        );
        assert!(
            text.contains("email   email  email 60  60       email      no\n"),
            "{text}"
        );
        assert!(
            text.contains("city    -      -         60       -          no\n"),
            "{text}"
        );
    }

    #[test]
    fn a_version_summary_names_rows_columns_and_digest() {
        let v = json!({
            "name": "churn", "version": 2, "rows": 2000, "bytes": 51_200, "sha256": "ab12",
            "schema": [
                {"name": "age", "kind": "numeric", "missing": 0},
                {"name": "plan", "kind": "categorical", "missing": 5}
            ],
            "lineage": {"parent": {"dataset": "churn", "version": 1}, "transform": "pseudonymized: email"}
        });
        let text = version_summary(&v, "x");
        assert!(
            text.starts_with("churn@2: 2000 rows, 2 columns, 50.0 KiB\nsha256 ab12\n"),
            "{text}"
        );
        assert!(
            text.contains("from churn@1: pseudonymized: email\n"),
            "{text}"
        );
        assert!(text.contains("plan    categorical  5\n"), "{text}");
    }
}
