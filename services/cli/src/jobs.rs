//! `hearth train …` and `hearth jobs …`: submit a training job to a running appliance, follow its
//! epochs live (server-sent events), and list, show or cancel jobs.

use std::io::IsTerminal as _;

use anyhow::{Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{Client, Connection, UsageError, encode, printable};
use crate::render::{self, print_value, table, text};

/// The progress bar over epochs; it takes the terminal's width.
const EPOCH_BAR: &str = "epoch {pos}/{len} [{wide_bar}] {msg} {elapsed}";

/// Exit code when the user stopped following with Ctrl-C (the job keeps running).
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Model {
    /// Logistic regression.
    Logreg,
    /// A multi-layer perceptron (see --hidden).
    Mlp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Precision {
    Auto,
    F32,
    Bf16,
    Tf32,
}

impl Model {
    fn as_str(self) -> &'static str {
        match self {
            Model::Logreg => "logreg",
            Model::Mlp => "mlp",
        }
    }
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The dataset to train on.
    #[arg(long)]
    pub dataset: String,
    /// Its version [default: the latest].
    #[arg(long)]
    pub version: Option<u64>,
    /// The column to predict.
    #[arg(long, value_name = "COLUMN")]
    pub target: String,
    #[arg(long, value_enum)]
    pub model: Model,
    /// With --model mlp: hidden layer widths, comma-separated [default: the appliance's].
    #[arg(long, value_delimiter = ',', value_name = "WIDTHS")]
    pub hidden: Option<Vec<usize>>,
    /// Passes over the training data [default: the appliance's].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// A column to report fairness by (metrics per group).
    #[arg(long, value_name = "COLUMN")]
    pub group: Option<String>,
    /// Seed for the split and the initial weights (training is deterministic given it).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The training products' arithmetic: auto (bfloat16 products on CPUs with AVX-512 BF16,
    /// TF32 on GPUs with tensor cores; float32 sums), f32, bf16 (CPU) or tf32 (GPU)
    /// [default: auto].
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
    /// Submit and print the job's id, without following it.
    #[arg(long)]
    pub detach: bool,
    /// Print the job (when finished, or as submitted with --detach) as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct JobsArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: JobsCommand,
}

#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// List training jobs, newest first.
    List {
        /// Print the appliance's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a job: its parameters, state, loss per epoch and report.
    Show {
        id: String,
        /// Print the appliance's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a queued or running job (a running one stops at its next epoch).
    Cancel { id: String },
}

/// The parts of a job the CLI reads; the rest is shown from the JSON as it is.
#[derive(Clone, Debug, Default, Deserialize)]
struct Job {
    id: String,
    state: String,
    #[serde(default)]
    epochs: u64,
    #[serde(default)]
    progress: Vec<Point>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
struct Point {
    epoch: u64,
    /// `null` when the loss was not finite (JSON has no NaN).
    train_loss: Option<f64>,
    val_loss: Option<f64>,
}

/// `event: progress` and `event: state`.
#[derive(Clone, Debug, Deserialize)]
struct JobEvent {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    point: Option<Point>,
    #[serde(default)]
    epochs: u64,
}

fn finished(state: &str) -> bool {
    matches!(state, "done" | "failed" | "cancelled")
}

fn parse_job(value: &Value) -> Result<Job> {
    serde_json::from_value(value.clone()).map_err(|e| {
        anyhow::anyhow!("the appliance answered with a job this hearth cannot read: {e}")
    })
}

/// The exit code for a finished job: 0 done, 1 failed or cancelled.
fn exit_for(state: &str) -> u8 {
    if state == "done" {
        0
    } else {
        crate::EXIT_ERROR
    }
}

/// The request body of `POST /api/v1/jobs`.
fn job_spec(args: &TrainArgs) -> Result<Value, UsageError> {
    if args.hidden.is_some() && args.model != Model::Mlp {
        return Err(UsageError("--hidden is for --model mlp".into()));
    }
    if let Some(hidden) = &args.hidden
        && (hidden.is_empty() || hidden.contains(&0))
    {
        return Err(UsageError(
            "--hidden: widths are positive, e.g. --hidden 256,256".into(),
        ));
    }
    if args.epochs == Some(0) {
        return Err(UsageError("--epochs: at least 1".into()));
    }
    if !crate::datasets::is_valid_name(&args.dataset) {
        return Err(UsageError(format!(
            "--dataset {:?}: dataset names are 1-64 of a-z 0-9 . _ -",
            printable(&args.dataset, 80)
        )));
    }
    let mut spec = json!({
        "dataset": args.dataset,
        "target": args.target,
        "model": args.model.as_str(),
    });
    let optional = [
        ("version", args.version.map(Value::from)),
        ("hidden", args.hidden.clone().map(Value::from)),
        ("epochs", args.epochs.map(Value::from)),
        ("group", args.group.clone().map(Value::from)),
        ("seed", args.seed.map(Value::from)),
        (
            "precision",
            args.precision.map(|p| {
                Value::from(match p {
                    Precision::Auto => "auto",
                    Precision::F32 => "f32",
                    Precision::Bf16 => "bf16",
                    Precision::Tf32 => "tf32",
                })
            }),
        ),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            spec[key] = value;
        }
    }
    Ok(spec)
}

/// `hearth train`: the exit code (0 done, 1 failed or cancelled, 130 interrupted).
pub async fn train(args: TrainArgs) -> Result<u8> {
    let spec = job_spec(&args)?;
    let client = args.connection.client()?;
    let submitted: Value = client.post("/api/v1/jobs", &spec).await?;
    let job = parse_job(&submitted)?;
    if args.detach {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&submitted)?);
        } else {
            println!("{}", job.id);
        }
        eprintln!(
            "job {} {}: follow it with `hearth jobs show {}`",
            job.id, job.state, job.id
        );
        return Ok(0);
    }
    eprintln!(
        "job {} {} on {} ({} on {}, target {})",
        job.id,
        job.state,
        client.target(),
        args.model.as_str(),
        args.dataset,
        printable(&args.target, 80)
    );
    let mut view = EpochView::new(job.epochs);
    match follow(&client, &job, &mut view).await? {
        Followed::Finished => {}
        Followed::Interrupted => {
            eprintln!(
                "stopped following job {id}; it keeps running on the appliance.\n\
                 See it with `hearth jobs show {id}`, cancel it with `hearth jobs cancel {id}`.",
                id = job.id
            );
            return Ok(EXIT_INTERRUPTED);
        }
    }
    let last: Value = client
        .get(&format!("/api/v1/jobs/{}", encode(&job.id)))
        .await?;
    let done = parse_job(&last)?;
    // Epochs the stream did not carry (a job that ran before the stream opened).
    for point in &done.progress {
        view.point(point);
    }
    if !finished(&done.state) {
        bail!(
            "the appliance closed the event stream while job {id} is {state}; follow it with \
             `hearth jobs show {id}`",
            id = done.id,
            state = done.state
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&last)?);
    } else {
        print!("{}", outcome(&last));
    }
    Ok(exit_for(&done.state))
}

enum Followed {
    /// The stream ended (after a finished state, or early: the caller checks the job).
    Finished,
    /// Ctrl-C.
    Interrupted,
}

/// Shows the job's epochs as they come, until it finishes or the user presses Ctrl-C.
async fn follow(client: &Client, job: &Job, view: &mut EpochView) -> Result<Followed> {
    let mut events = client
        .events(&format!("/api/v1/jobs/{}/events", encode(&job.id)))
        .await?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = &mut ctrl_c => {
                view.bar.abandon();
                return Ok(Followed::Interrupted);
            }
        };
        let Some(event) = event? else {
            view.bar.finish_and_clear();
            return Ok(Followed::Finished);
        };
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
            continue; // not ours to judge: the final GET tells
        };
        let state = match event.event.as_str() {
            "snapshot" => {
                let Ok(snapshot) = parse_job(&data) else {
                    continue;
                };
                view.total(snapshot.epochs);
                for point in &snapshot.progress {
                    view.point(point);
                }
                snapshot.state
            }
            "progress" | "state" => {
                let Ok(update) = serde_json::from_value::<JobEvent>(data) else {
                    continue;
                };
                view.total(update.epochs);
                if let Some(point) = &update.point {
                    view.point(point);
                }
                update.state.unwrap_or_default()
            }
            _ => continue,
        };
        view.state(&state);
        if finished(&state) {
            view.bar.finish_and_clear();
            return Ok(Followed::Finished);
        }
    }
}

/// The progress bar over epochs (or, when stderr is not a terminal, one line per epoch).
struct EpochView {
    bar: ProgressBar,
    lines: bool,
    total: u64,
    last_state: String,
    /// The last epoch shown: points arrive from the snapshot, the stream and the final job.
    last_epoch: u64,
}

impl EpochView {
    fn new(total: u64) -> EpochView {
        let terminal = std::io::stderr().is_terminal();
        let bar = if terminal {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(EPOCH_BAR)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message("queued");
            bar.enable_steady_tick(std::time::Duration::from_millis(250));
            bar
        } else {
            ProgressBar::hidden()
        };
        EpochView {
            bar,
            lines: !terminal,
            total,
            last_state: String::new(),
            last_epoch: 0,
        }
    }

    fn total(&mut self, epochs: u64) {
        if epochs > 0 && epochs != self.total {
            self.total = epochs;
            self.bar.set_length(epochs);
        }
    }

    fn point(&mut self, p: &Point) {
        if p.epoch <= self.last_epoch {
            return;
        }
        self.last_epoch = p.epoch;
        let losses = format!(
            "train {}, validation {}",
            p.train_loss.map_or_else(|| "-".into(), render::number),
            p.val_loss.map_or_else(|| "-".into(), render::number)
        );
        if !self.bar.is_finished() {
            self.bar.set_position(p.epoch);
            self.bar.set_message(losses.clone());
        }
        // Into a log: about 50 lines however long the run, the first and the last included.
        let step = (self.total / 50).max(1);
        if self.lines && (p.epoch.is_multiple_of(step) || p.epoch <= 1 || p.epoch >= self.total) {
            eprintln!("epoch {}/{}: loss {losses}", p.epoch, self.total);
        }
    }

    fn state(&mut self, state: &str) {
        if state.is_empty() || state == self.last_state {
            return;
        }
        if matches!(state, "queued" | "running") && self.last_epoch == 0 {
            self.bar.set_message(state.to_owned());
        }
        if self.lines && !finished(state) {
            eprintln!("{state}");
        }
        self.last_state = state.to_owned();
    }
}

/// The final lines for a finished job: state, headline metrics, backend and energy.
fn outcome(job: &Value) -> String {
    let mut out = format!(
        "job {} {}{}\n",
        text(job, "id"),
        text(job, "state"),
        describe_spec(job)
    );
    if let Some(error) = job.get("error").and_then(Value::as_str) {
        out.push_str(&format!("error: {}\n", printable(error, 500)));
    }
    let report = job.get("report").unwrap_or(&Value::Null);
    let metrics = headline_metrics(report);
    if !metrics.is_empty() {
        let split = report.get("metrics").filter(|m| m.get("rows").is_some());
        if let Some(split) = split {
            out.push_str(&format!(
                "on the test split ({} rows{}):\n",
                text(split, "rows"),
                split
                    .get("task")
                    .and_then(Value::as_str)
                    .map(|t| format!(", {}", printable(t, 40)))
                    .unwrap_or_default()
            ));
        }
        let width = metrics.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in metrics {
            out.push_str(&format!("  {k:width$}  {v}\n"));
        }
    }
    out.push_str(&report_details(report));
    let backend = text(job, "backend");
    let energy = text(job, "energy");
    if backend != "-" || energy != "-" {
        out.push_str(&format!("backend {backend}, energy {energy}\n"));
    }
    out
}

/// ` (logreg on churn@1, target y)` from the job's spec.
fn describe_spec(job: &Value) -> String {
    let Some(spec) = job.get("spec") else {
        return String::new();
    };
    let version = job
        .get("version")
        .filter(|v| !v.is_null())
        .or_else(|| spec.get("version").filter(|v| !v.is_null()))
        .map(|v| format!("@{}", render::scalar(v)))
        .unwrap_or_default();
    format!(
        " ({} on {}{version}, target {})",
        text(spec, "model"),
        text(spec, "dataset"),
        text(spec, "target")
    )
}

/// The report's headline numbers: the scalars of `metrics` (preferring its `test` or
/// `validation` part when it is split) but its counts, else the report's own top-level numbers.
fn headline_metrics(report: &Value) -> Vec<(String, String)> {
    const COUNTS: [&str; 3] = ["rows", "positives", "threshold"];
    let numbers = |object: &Value, skip: &[&str]| -> Vec<(String, String)> {
        object
            .as_object()
            .map(|map| {
                map.iter()
                    .filter(|(k, v)| v.is_number() && !skip.contains(&k.as_str()))
                    .map(|(k, v)| (printable(k, 40), render::scalar(v)))
                    .collect()
            })
            .unwrap_or_default()
    };
    if let Some(metrics) = report.get("metrics").filter(|m| m.is_object()) {
        for split in ["test", "validation", "val"] {
            if let Some(part) = metrics.get(split).filter(|p| p.is_object()) {
                let found = numbers(part, &COUNTS);
                if !found.is_empty() {
                    return found;
                }
            }
        }
        let found = numbers(metrics, &COUNTS);
        if !found.is_empty() {
            return found;
        }
    }
    numbers(report, &[])
}

/// The report beyond the metrics, where present: epochs, the split, the features that mattered
/// most, fairness across groups, excluded columns.
fn report_details(report: &Value) -> String {
    let mut out = String::new();
    if let (Some(best), Some(run)) = (
        report.get("best_epoch").and_then(Value::as_u64),
        report.get("epochs_run").and_then(Value::as_u64),
    ) {
        let early = if report.get("stopped_early").and_then(Value::as_bool) == Some(true) {
            ", stopped early"
        } else {
            ""
        };
        out.push_str(&format!("kept epoch {best} of {run} run{early}\n"));
    }
    if let Some(rows) = report.get("rows").filter(|r| r.is_object()) {
        out.push_str(&format!(
            "rows: {} train, {} validation, {} test, {} unlabelled\n",
            text(rows, "train"),
            text(rows, "validation"),
            text(rows, "test"),
            text(rows, "unlabelled")
        ));
    }
    if let Some(importance) = report.get("importance").and_then(Value::as_array) {
        let top: Vec<String> = importance
            .iter()
            .take(5)
            .map(|i| {
                format!(
                    "{} {}",
                    text(i, "column"),
                    render::scalar(i.get("drop").unwrap_or(&Value::Null))
                )
            })
            .collect();
        if !top.is_empty() {
            out.push_str(&format!(
                "most important ({} drop): {}\n",
                text(report, "importance_metric"),
                top.join(", ")
            ));
        }
    }
    if let Some(fairness) = report.get("fairness").filter(|f| f.is_object()) {
        out.push_str(&format!(
            "fairness by {}: demographic parity difference {}, equal opportunity difference {}\n",
            text(fairness, "column"),
            render::scalar(
                fairness
                    .get("demographic_parity_difference")
                    .unwrap_or(&Value::Null)
            ),
            render::scalar(
                fairness
                    .get("equal_opportunity_difference")
                    .unwrap_or(&Value::Null)
            )
        ));
    }
    if let Some(excluded) = report.get("excluded").and_then(Value::as_array) {
        let names: Vec<String> = excluded
            .iter()
            .map(|e| format!("{} ({})", text(e, "column"), text(e, "reason")))
            .collect();
        if !names.is_empty() {
            out.push_str(&format!("not used: {}\n", names.join(", ")));
        }
    }
    out
}

pub async fn jobs(args: JobsArgs) -> Result<u8> {
    let client = args.connection.client()?;
    match args.command {
        JobsCommand::List { json } => {
            let jobs: Value = client.get("/api/v1/jobs").await?;
            print_value(&jobs, json, jobs_table)?;
            Ok(0)
        }
        JobsCommand::Show { id, json } => {
            let job: Value = client.get(&format!("/api/v1/jobs/{}", encode(&id))).await?;
            print_value(&job, json, job_detail)?;
            Ok(0)
        }
        JobsCommand::Cancel { id } => {
            let job: Value = client
                .post(&format!("/api/v1/jobs/{}/cancel", encode(&id)), &json!({}))
                .await?;
            let state = text(&job, "state");
            if state == "cancelled" {
                println!("job {} cancelled", text(&job, "id"));
            } else {
                println!(
                    "job {} {state}: cancel requested, it stops at its next epoch",
                    text(&job, "id")
                );
            }
            Ok(0)
        }
    }
}

fn jobs_table(jobs: &Value) -> String {
    let items = jobs.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return "no jobs yet: start one with `hearth train`\n".into();
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|j| {
            let spec = j.get("spec").cloned().unwrap_or(Value::Null);
            let version = j
                .get("version")
                .filter(|v| !v.is_null())
                .map(|v| format!("@{}", render::scalar(v)))
                .unwrap_or_default();
            let done = j
                .get("progress")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            vec![
                text(j, "id"),
                text(j, "state"),
                text(&spec, "model"),
                format!("{}{version}", text(&spec, "dataset")),
                text(&spec, "target"),
                format!("{done}/{}", text(j, "epochs")),
                render::time_field(j, "created", "created_unix_ms"),
            ]
        })
        .collect();
    table(
        &[
            "ID", "STATE", "MODEL", "DATASET", "TARGET", "EPOCHS", "CREATED",
        ],
        &rows,
    )
}

fn job_detail(job: &Value) -> String {
    let mut out = outcome(job);
    let times = [
        ("created", "created"),
        ("started", "started"),
        ("finished", "finished"),
    ];
    for (key, label) in times {
        if let Some(t) = job.get(key).and_then(Value::as_u64) {
            out.push_str(&format!("{label} {}\n", render::utc(t)));
        }
    }
    if let Some(owner) = job.get("owner").and_then(Value::as_str) {
        out.push_str(&format!("owner {}\n", printable(owner, 80)));
    }
    if let Some(spec) = job.get("spec") {
        out.push_str("parameters:\n");
        for line in render::outline(spec).lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    let progress = job
        .get("progress")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !progress.is_empty() {
        let rows: Vec<Vec<String>> = progress
            .iter()
            .map(|p| {
                vec![
                    text(p, "epoch"),
                    render::scalar(p.get("train_loss").unwrap_or(&Value::Null)),
                    render::scalar(p.get("val_loss").unwrap_or(&Value::Null)),
                ]
            })
            .collect();
        out.push_str(&table(&["EPOCH", "TRAIN LOSS", "VALIDATION LOSS"], &rows));
    }
    if let Some(report) = job.get("report").filter(|r| !r.is_null()) {
        out.push_str(&confusion_text(report));
        if let Some(groups) = report
            .get("fairness")
            .and_then(|f| f.get("groups"))
            .filter(|g| g.as_array().is_some_and(|g| !g.is_empty()))
        {
            out.push_str("fairness by group:\n");
            for line in render::outline(groups).lines() {
                out.push_str(&format!("  {line}\n"));
            }
        }
        out.push_str("(the whole report: --json)\n");
    }
    out
}

/// The confusion matrix on the test split: actual classes down, predicted across.
fn confusion_text(report: &Value) -> String {
    let Some(confusion) = report.get("confusion").filter(|c| c.is_object()) else {
        return String::new();
    };
    let labels: Vec<String> = confusion
        .get("labels")
        .and_then(Value::as_array)
        .map(|l| l.iter().map(render::scalar).collect())
        .unwrap_or_default();
    let counts = confusion
        .get("counts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if labels.is_empty() || counts.len() != labels.len() {
        return String::new();
    }
    let mut headers = vec!["ACTUAL \\ PREDICTED"];
    headers.extend(labels.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = labels
        .iter()
        .zip(&counts)
        .map(|(label, row)| {
            let mut cells = vec![label.clone()];
            cells.extend(
                row.as_array()
                    .map(|r| r.iter().map(render::scalar).collect::<Vec<_>>())
                    .unwrap_or_default(),
            );
            cells
        })
        .collect();
    let mut out = "confusion on the test split:\n".to_owned();
    for line in table(&headers, &rows).lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser as _;

    use super::*;
    use crate::{Cli, Command};

    fn train_args(args: &[&str]) -> TrainArgs {
        let mut argv = vec!["hearth", "train"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Train(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn train_arguments_become_the_job_spec() {
        let args = train_args(&[
            "--dataset",
            "churn",
            "--target",
            "y",
            "--model",
            "mlp",
            "--hidden",
            "256,128",
            "--epochs",
            "5",
            "--group",
            "region",
            "--seed",
            "7",
            "--version",
            "2",
            "--precision",
            "f32",
        ]);
        assert_eq!(
            job_spec(&args).unwrap(),
            json!({
                "dataset": "churn", "version": 2, "target": "y", "model": "mlp",
                "hidden": [256, 128], "epochs": 5, "group": "region", "seed": 7,
                "precision": "f32"
            })
        );
        let args = train_args(&["--dataset", "d", "--target", "y", "--model", "logreg"]);
        assert_eq!(
            job_spec(&args).unwrap(),
            json!({"dataset": "d", "target": "y", "model": "logreg"})
        );
        assert!(!args.detach);
    }

    #[test]
    fn train_arguments_that_cannot_work_are_refused_before_sending() {
        let err = |a: &[&str]| job_spec(&train_args(a)).unwrap_err().to_string();
        let base = ["--dataset", "d", "--target", "y"];
        let with = |extra: &[&'static str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            v
        };
        assert!(err(&with(&["--model", "logreg", "--hidden", "8"])).contains("mlp"));
        assert!(err(&with(&["--model", "mlp", "--hidden", "8,0"])).contains("positive"));
        assert!(err(&with(&["--model", "mlp", "--epochs", "0"])).contains("at least 1"));
        let bad = ["--dataset", "Bad Name", "--target", "y", "--model", "mlp"];
        assert!(err(&bad).contains("dataset names"));
        Cli::try_parse_from(["hearth", "train", "--dataset", "d", "--target", "y"])
            .expect_err("--model is required");
        Cli::try_parse_from([
            "hearth",
            "train",
            "--dataset",
            "d",
            "--target",
            "y",
            "--model",
            "forest",
        ])
        .unwrap_err();
    }

    #[test]
    fn headline_metrics_prefer_the_held_out_split() {
        let report = json!({"metrics": {
            "train": {"accuracy": 0.99},
            "test": {"accuracy": 0.91, "auc": 0.95, "confusion": [[1, 2], [3, 4]]}
        }});
        assert_eq!(
            headline_metrics(&report),
            vec![
                ("accuracy".to_owned(), "0.9100".to_owned()),
                ("auc".to_owned(), "0.9500".to_owned())
            ]
        );
        let flat = json!({"metrics": {"accuracy": 0.8, "kind": "binary"}});
        assert_eq!(
            headline_metrics(&flat),
            vec![("accuracy".to_owned(), "0.8000".to_owned())]
        );
        let top = json!({"accuracy": 0.7, "rows": 100, "importance": {}});
        assert_eq!(headline_metrics(&top).len(), 2);
        let binary = json!({"metrics": {
            "task": "binary", "rows": 400, "positives": 180, "threshold": 0.5,
            "accuracy": 0.8, "roc_auc": null, "f1": 0.75
        }});
        assert_eq!(
            headline_metrics(&binary),
            vec![
                ("accuracy".to_owned(), "0.8000".to_owned()),
                ("f1".to_owned(), "0.7500".to_owned())
            ]
        );
        assert!(headline_metrics(&Value::Null).is_empty());
    }

    #[test]
    fn a_finished_job_reads_as_one_paragraph() {
        let job = json!({
            "id": "00112233aabbccdd", "state": "done", "version": 1,
            "spec": {"dataset": "churn", "target": "y", "model": "logreg"},
            "epochs": 5, "progress": [], "error": null,
            "report": {"metrics": {"accuracy": 0.875}},
            "backend": "cpu", "energy": "not measured"
        });
        assert_eq!(
            outcome(&job),
            "job 00112233aabbccdd done (logreg on churn@1, target y)\n  accuracy  0.8750\n\
             backend cpu, energy not measured\n"
        );
        assert_eq!(exit_for("done"), 0);
        assert_eq!(exit_for("failed"), 1);
        assert_eq!(exit_for("cancelled"), 1);
        let job = json!({
            "id": "00112233aabbccdd", "state": "done",
            "report": {
                "metrics": {"task": "binary", "rows": 400, "positives": 190, "threshold": 0.5,
                            "accuracy": 0.8125, "roc_auc": 0.9},
                "epochs_run": 5, "best_epoch": 4, "stopped_early": false,
                "rows": {"train": 1400, "validation": 200, "test": 400, "unlabelled": 0},
                "importance_metric": "roc_auc",
                "importance": [{"column": "calls", "drop": 0.12, "std": 0.01},
                               {"column": "tenure", "drop": 0.08, "std": 0.01}],
                "fairness": {"column": "plan", "groups": [],
                             "demographic_parity_difference": 0.05,
                             "equal_opportunity_difference": 0.03},
                "excluded": [{"column": "note", "reason": "text"}]
            }
        });
        assert_eq!(
            outcome(&job),
            "job 00112233aabbccdd done\n\
             on the test split (400 rows, binary):\n\
             \x20 accuracy  0.8125\n\
             \x20 roc_auc   0.9000\n\
             kept epoch 4 of 5 run\n\
             rows: 1400 train, 200 validation, 400 test, 0 unlabelled\n\
             most important (roc_auc drop): calls 0.1200, tenure 0.0800\n\
             fairness by plan: demographic parity difference 0.0500, equal opportunity \
             difference 0.0300\n\
             not used: note (text)\n"
        );
        let failed = json!({"id": "x", "state": "failed", "error": "target y is constant"});
        assert!(outcome(&failed).contains("error: target y is constant\n"));
    }

    #[test]
    fn the_progress_bar_template_is_valid() {
        ProgressStyle::with_template(EPOCH_BAR).unwrap();
        ProgressStyle::with_template(crate::datasets::UPLOAD_BAR).unwrap();
        ProgressStyle::with_template(crate::datasets::UPLOAD_SPINNER).unwrap();
    }

    #[test]
    fn the_confusion_matrix_is_a_small_table() {
        let report =
            json!({"confusion": {"labels": ["no", "yes"], "counts": [[120, 87], [85, 108]]}});
        assert_eq!(
            confusion_text(&report),
            "confusion on the test split:\n\
             \x20 ACTUAL \\ PREDICTED  no   yes\n\
             \x20 no                  120  87\n\
             \x20 yes                 85   108\n"
        );
        assert_eq!(confusion_text(&json!({"confusion": null})), "");
        let ragged = json!({"confusion": {"labels": ["a"], "counts": []}});
        assert_eq!(confusion_text(&ragged), "");
    }

    #[test]
    fn jobs_list_as_a_table() {
        let jobs = json!([{
            "id": "00112233aabbccdd", "state": "running", "version": 3, "epochs": 20,
            "spec": {"dataset": "churn", "target": "y", "model": "mlp"},
            "progress": [{"epoch": 1, "train_loss": 0.6, "val_loss": 0.7}],
            "created": 1_764_302_167_u64
        }]);
        let t = jobs_table(&jobs);
        assert!(
            t.starts_with("ID                STATE    MODEL  DATASET"),
            "{t}"
        );
        assert!(
            t.contains(
                "00112233aabbccdd  running  mlp    churn@3  y       1/20    2025-11-28 03:56:07Z"
            ),
            "{t}"
        );
        assert!(jobs_table(&json!([])).starts_with("no jobs yet"));
    }

    #[test]
    fn job_events_parse_as_the_appliance_sends_them() {
        let progress: JobEvent = serde_json::from_str(
            r#"{"id":"a","state":"running","point":{"epoch":2,"train_loss":0.5,"val_loss":0.6},"epochs":0}"#,
        )
        .unwrap();
        assert_eq!(
            progress.point,
            Some(Point {
                epoch: 2,
                train_loss: Some(0.5),
                val_loss: Some(0.6)
            })
        );
        let state: JobEvent =
            serde_json::from_str(r#"{"id":"a","state":"done","epochs":5}"#).unwrap();
        assert_eq!(state.state.as_deref(), Some("done"));
        assert!(finished("done") && finished("failed") && finished("cancelled"));
        assert!(!finished("running") && !finished("queued"));
    }
}
