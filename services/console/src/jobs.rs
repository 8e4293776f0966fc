//! Training jobs: a queue persisted in the store (queued, running, done, failed, cancelled), one
//! worker thread that runs them in order on a leased GPU or the CPU, live progress for the console
//! (server-sent events), cancellation, and energy where the machine reports it.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use hearth_store::{Json, Table};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::app::{Actor, App, ServiceError};

/// Jobs by id (16 hex digits).
pub const JOBS: Table<str, Json<Job>> = Table::new("ml/jobs");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn finished(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }
}

/// What to train, as the API takes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub dataset: String,
    /// Latest when absent.
    #[serde(default)]
    pub version: Option<u64>,
    pub target: String,
    /// `logreg` or `mlp`.
    pub model: String,
    /// Hidden layer widths for `mlp` (default 64,64).
    #[serde(default)]
    pub hidden: Option<Vec<usize>>,
    #[serde(default)]
    pub epochs: Option<usize>,
    /// A column to report fairness by.
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// The training products' arithmetic: `auto` (bfloat16 on CPUs with AVX-512 BF16, TF32 on
    /// GPUs with tensor cores), `f32`, `bf16` (CPU) or `tf32` (GPU).
    #[serde(default)]
    pub precision: Option<hearth_ml::train::Precision>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochPoint {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub owner: String,
    pub spec: JobSpec,
    /// The dataset version actually used.
    pub version: Option<u64>,
    pub state: JobState,
    pub created: u64,
    pub started: Option<u64>,
    pub finished: Option<u64>,
    pub epochs: usize,
    pub progress: Vec<EpochPoint>,
    pub error: Option<String>,
    /// The training report (metrics, fairness, importance), when done.
    pub report: Option<serde_json::Value>,
    /// The trained model's encrypted blob, when done.
    pub model_blob: Option<String>,
    pub backend: String,
    /// Joules, or why not measured.
    pub energy: String,
    /// The model version registered from this job (`name@version`), when done.
    #[serde(default)]
    pub model: Option<String>,
}

/// A change to a job, for live views.
#[derive(Clone, Debug, Serialize)]
pub struct JobEvent {
    pub id: String,
    pub state: JobState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub point: Option<EpochPoint>,
    pub epochs: usize,
}

/// The queue and its worker.
pub struct Jobs {
    tx: Mutex<Option<mpsc::Sender<String>>>,
    cancelled: Mutex<HashSet<String>>,
    pub events: broadcast::Sender<JobEvent>,
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs {
            tx: Mutex::new(None),
            cancelled: Mutex::new(HashSet::new()),
            events: broadcast::channel(1024).0,
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Jobs {
    /// Starts the worker for `app` and re-queues what a previous run left: queued jobs run,
    /// running ones are marked failed (interrupted).
    pub fn start(app: &Arc<App>) -> Result<(), ServiceError> {
        let (tx, rx) = mpsc::channel::<String>();
        let weak: Weak<App> = Arc::downgrade(app);
        std::thread::Builder::new()
            .name("hearth-jobs".into())
            .spawn(move || {
                while let Ok(id) = rx.recv() {
                    let Some(app) = weak.upgrade() else { break };
                    run_job(&app, &id);
                }
            })
            .map_err(|e| ServiceError::internal(format!("cannot start the job worker: {e}")))?;
        let mut pending = Vec::new();
        for (id, mut job) in app.store.list(&JOBS)? {
            match job.state {
                JobState::Queued => pending.push((job.created, id)),
                JobState::Running => {
                    job.state = JobState::Failed;
                    job.error = Some("interrupted: hearthd stopped while it ran".into());
                    job.finished = Some(now_secs());
                    app.store.put(&JOBS, &id, &job)?;
                }
                _ => {}
            }
        }
        pending.sort();
        for (_, id) in pending {
            let _ = tx.send(id);
        }
        *app.jobs.tx.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
        Ok(())
    }

    fn is_cancelled(&self, id: &str) -> bool {
        self.cancelled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(id)
    }
}

/// Queues a training job for `actor`.
pub fn submit(app: &App, actor: &Actor, spec: JobSpec) -> Result<Job, ServiceError> {
    match spec.model.as_str() {
        "logreg" | "mlp" => {}
        other => {
            return Err(ServiceError::unprocessable(format!(
                "model {other:?}: expected logreg or mlp"
            )));
        }
    }
    if let Some(h) = &spec.hidden
        && (h.is_empty() || h.len() > 8 || h.iter().any(|&w| w == 0 || w > 4096))
    {
        return Err(ServiceError::unprocessable(
            "hidden: 1 to 8 layers of 1 to 4096 units",
        ));
    }
    if spec.epochs.is_some_and(|e| e == 0 || e > 10_000) {
        return Err(ServiceError::unprocessable("epochs: 1 to 10000"));
    }
    // Refused now rather than when the job runs. (A job that a GPU takes refuses bf16 then,
    // and one that finds every GPU busy and runs on the CPU refuses tf32.)
    if spec.precision == Some(hearth_ml::train::Precision::Bf16) && !hearth_ml::bf16::available() {
        return Err(ServiceError::unprocessable(
            "precision bf16: this appliance's CPU has no AVX-512 BF16 (use auto or f32)",
        ));
    }
    if spec.precision == Some(hearth_ml::train::Precision::Tf32) && !app.compute.tensor_cores() {
        return Err(ServiceError::unprocessable(
            "precision tf32: this appliance has no GPU with TF32 tensor cores (use auto or f32)",
        ));
    }
    let version = crate::datasets::resolve_version(app, &spec.dataset, spec.version)?;
    let id = hex::encode(crate::auth::random_bytes::<8>().map_err(ServiceError::internal)?);
    let job = Job {
        id: id.clone(),
        owner: actor.name.clone(),
        epochs: spec.epochs.unwrap_or(20),
        spec,
        version: Some(version),
        state: JobState::Queued,
        created: now_secs(),
        started: None,
        finished: None,
        progress: Vec::new(),
        error: None,
        report: None,
        model_blob: None,
        backend: "cpu".into(),
        energy: "not measured".into(),
        model: None,
    };
    let object = format!("job:{id} dataset:{}@{version}", job.spec.dataset);
    app.audited(actor, "jobs.create", &object, || {
        app.store.put(&JOBS, &id, &job)?;
        let tx = app.jobs.tx.lock().unwrap_or_else(PoisonError::into_inner);
        tx.as_ref()
            .ok_or_else(|| ServiceError::unavailable("the job worker is not running"))?
            .send(id.clone())
            .map_err(|_| ServiceError::unavailable("the job worker stopped"))?;
        Ok(())
    })?;
    let _ = app.jobs.events.send(JobEvent {
        id: job.id.clone(),
        state: job.state,
        point: None,
        epochs: job.epochs,
    });
    Ok(job)
}

pub fn get(app: &App, id: &str) -> Result<Job, ServiceError> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ServiceError::not_found(format!("no job {id:?}")));
    }
    app.store
        .get(&JOBS, id)?
        .ok_or_else(|| ServiceError::not_found(format!("no job {id}")))
}

/// Every job, newest first.
pub fn list(app: &App) -> Result<Vec<Job>, ServiceError> {
    let mut jobs: Vec<Job> = app.store.list(&JOBS)?.into_iter().map(|(_, j)| j).collect();
    jobs.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
    Ok(jobs)
}

/// Cancels a queued or running job (a running one stops at its next epoch).
pub fn cancel(app: &App, actor: &Actor, id: &str) -> Result<Job, ServiceError> {
    let job = get(app, id)?;
    if job.state.finished() {
        return Err(ServiceError::conflict(format!(
            "job {id} has already {}",
            match job.state {
                JobState::Done => "finished",
                JobState::Failed => "failed",
                _ => "been cancelled",
            }
        )));
    }
    app.audited(actor, "jobs.cancel", &format!("job:{id}"), || {
        app.jobs
            .cancelled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned());
        // A queued job is cancelled here; a running one by its worker at the next epoch.
        let job = app.store.write(|w| {
            let Some(mut j) = w.get(&JOBS, id)? else {
                return Ok(None);
            };
            if j.state == JobState::Queued {
                j.state = JobState::Cancelled;
                j.finished = Some(now_secs());
                w.put(&JOBS, id, &j)?;
            }
            Ok(Some(j))
        })?;
        job.ok_or_else(|| ServiceError::not_found(format!("no job {id}")))
    })
}

/// Reads the CPU package energy counters (RAPL powercap), if this machine exposes them.
struct Energy {
    start: Vec<(std::path::PathBuf, u64, u64)>,
}

impl Energy {
    fn start() -> Energy {
        let mut start = Vec::new();
        if let Ok(dir) = std::fs::read_dir("/sys/class/powercap") {
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                // Packages only (intel-rapl:0), not their sub-zones (intel-rapl:0:0).
                if name.starts_with("intel-rapl:") && name.matches(':').count() == 1 {
                    let read = |f: &str| {
                        std::fs::read_to_string(e.path().join(f))
                            .ok()
                            .and_then(|s| s.trim().parse::<u64>().ok())
                    };
                    if let (Some(uj), Some(range)) =
                        (read("energy_uj"), read("max_energy_range_uj"))
                    {
                        start.push((e.path(), uj, range));
                    }
                }
            }
        }
        Energy { start }
    }

    fn stop(&self) -> String {
        if self.start.is_empty() {
            return "not measured (no readable RAPL powercap counters)".into();
        }
        let mut total = 0u64;
        for (path, before, range) in &self.start {
            let Some(after) = std::fs::read_to_string(path.join("energy_uj"))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
            else {
                return "not measured (RAPL counter unreadable)".into();
            };
            total += if after >= *before {
                after - before
            } else {
                range - before + after
            };
        }
        #[allow(clippy::cast_precision_loss)]
        let joules = total as f64 / 1e6;
        format!("{joules:.1} J (CPU packages, RAPL)")
    }
}

fn run_job(app: &App, id: &str) {
    let Ok(Some(mut job)) = app.store.get(&JOBS, id) else {
        return;
    };
    if job.state != JobState::Queued {
        return;
    }
    // The run is recorded in the owner's role as it is now (admin or operator).
    let role = app
        .store
        .get(&crate::model::USERS, &job.owner)
        .ok()
        .flatten()
        .map_or(hearth_audit::Role::Operator, |u| u.role.audit_role());
    let actor = Actor {
        name: job.owner.clone(),
        role,
    };
    let object = format!("job:{id}");
    let Ok(started) = app.begin(&actor, "jobs.run", &object) else {
        job.state = JobState::Failed;
        job.error = Some("the audit log could not record the start".into());
        let _ = app.store.put(&JOBS, id, &job);
        return;
    };
    job.state = JobState::Running;
    job.started = Some(now_secs());
    let _ = app.store.put(&JOBS, id, &job);
    let _ = app.jobs.events.send(JobEvent {
        id: id.to_owned(),
        state: job.state,
        point: None,
        epochs: job.epochs,
    });
    let energy = Energy::start();
    // A GPU lease when one is free, held until this function returns.
    let assigned = app.compute.assign(id);
    job.backend = match &assigned.note {
        Some(note) => format!("{} ({note})", assigned.backend.describe()),
        None => assigned.backend.describe(),
    };
    let _ = app.store.put(&JOBS, id, &job);
    let outcome = crate::datasets::train_job(
        app,
        &mut job,
        &assigned.backend,
        &mut |point: EpochPoint| {
            // Kept as it happens, so a view opened mid-run (or after a crash) sees every epoch.
            let stored = app.store.write(|w| {
                if let Some(mut j) = w.get(&JOBS, id)? {
                    j.progress.push(point.clone());
                    w.put(&JOBS, id, &j)?;
                }
                Ok(())
            });
            if let Err(e) = stored {
                tracing::warn!(component = "jobs", %id, error = %e, "cannot record an epoch");
            }
            let _ = app.jobs.events.send(JobEvent {
                id: id.to_owned(),
                state: JobState::Running,
                point: Some(point),
                epochs: 0,
            });
            if app.jobs.is_cancelled(id) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    job.energy = match app.compute.gpu_energy(&assigned) {
        Some(joules) => format!("{joules:.1} J (GPU, NVML); CPU: {}", energy.stop()),
        None => energy.stop(),
    };
    drop(assigned);
    job.finished = Some(now_secs());
    let result = match outcome {
        // A finished run becomes a model version in the registry (a candidate).
        Ok(()) => match crate::models::register_job(app, &actor, &job) {
            Ok(v) => {
                job.state = JobState::Done;
                job.model = Some(v.label());
                Ok(())
            }
            Err(e) => {
                job.state = JobState::Failed;
                job.error = Some(format!("cannot register the model: {}", e.message));
                Err(e)
            }
        },
        Err(e) if app.jobs.is_cancelled(id) => {
            job.state = JobState::Cancelled;
            Err(ServiceError::conflict(format!("cancelled: {}", e.message)))
        }
        Err(e) => {
            job.state = JobState::Failed;
            job.error = Some(e.message.clone());
            Err(e)
        }
    };
    if let Err(e) = app.store.put(&JOBS, id, &job) {
        tracing::error!(component = "jobs", %id, error = %e, "cannot record the job's end");
    }
    let _ = app.finish(started, result);
    let _ = app.jobs.events.send(JobEvent {
        id: id.to_owned(),
        state: job.state,
        point: None,
        epochs: job.epochs,
    });
}

/// `YYYY-MM-DD HH:MM:SSZ` for Unix seconds.
pub fn format_time(secs: u64) -> String {
    hearth_audit::Timestamp::from_unix_millis(secs.saturating_mul(1000)).map_or_else(
        || format!("{secs} s"),
        hearth_audit::Timestamp::to_seconds_string,
    )
}

/// The loss curve as a small standalone SVG: training loss solid, validation loss dashed,
/// epochs on x, loss on y (from 0 to the largest value seen).
pub fn loss_svg(points: &[EpochPoint], total_epochs: usize) -> String {
    const W: f64 = 640.0;
    const H: f64 = 240.0;
    const PAD: f64 = 36.0;
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    let max_loss = points
        .iter()
        .flat_map(|p| [finite(p.train_loss), finite(p.val_loss)])
        .fold(0.0f64, f64::max)
        .max(1e-9);
    #[allow(clippy::cast_precision_loss)]
    let max_epoch = total_epochs.max(points.len()).max(1) as f64;
    #[allow(clippy::cast_precision_loss)]
    let x = |epoch: usize| PAD + (W - 2.0 * PAD) * (epoch as f64 / max_epoch);
    let y = |loss: f64| H - PAD - (H - 2.0 * PAD) * (finite(loss) / max_loss);
    let line = |f: &dyn Fn(&EpochPoint) -> f64| -> String {
        points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.epoch), y(f(p))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" \
         height=\"{H}\" role=\"img\" aria-label=\"loss curve\">\
         <rect width=\"{W}\" height=\"{H}\" fill=\"#fff\"/>\
         <line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/>\
         <line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{b}\" stroke=\"#999\"/>\
         <text x=\"{PAD}\" y=\"{t}\" font-size=\"11\" fill=\"#555\">loss (max {max_loss:.4})</text>\
         <text x=\"{r}\" y=\"{lb}\" font-size=\"11\" fill=\"#555\" text-anchor=\"end\">epoch {e}</text>",
        b = H - PAD,
        r = W - PAD,
        t = PAD - 10.0,
        lb = H - 12.0,
        e = max_epoch,
    );
    if !points.is_empty() {
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"#b4451f\" stroke-width=\"2\" points=\"{}\"/>\
             <polyline fill=\"none\" stroke=\"#1d5f8a\" stroke-width=\"2\" stroke-dasharray=\"5 4\" points=\"{}\"/>",
            line(&|p| p.train_loss),
            line(&|p| p.val_loss)
        ));
    }
    svg.push_str(
        "<text x=\"440\" y=\"20\" font-size=\"11\" fill=\"#b4451f\">train</text>\
         <text x=\"500\" y=\"20\" font-size=\"11\" fill=\"#1d5f8a\">validation</text></svg>",
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_as_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_time(1_795_833_296), "2026-11-28 02:34:56Z");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00:00Z");
    }

    #[test]
    fn svg_plots_each_epoch() {
        let pts = vec![
            EpochPoint {
                epoch: 1,
                train_loss: 0.5,
                val_loss: 0.6,
            },
            EpochPoint {
                epoch: 2,
                train_loss: 0.25,
                val_loss: f64::NAN,
            },
        ];
        let svg = loss_svg(&pts, 4);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        // Epoch 2 of 4 sits at the middle of the x axis; loss 0.25 of max 0.6.
        assert!(svg.contains("320.0,"), "{svg}");
        assert!(!svg.contains("NaN"), "{svg}");
        assert!(!loss_svg(&[], 10).contains("<polyline"));
    }
}
