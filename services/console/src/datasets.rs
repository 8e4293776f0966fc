//! Datasets and training behind the console: uploads streamed into the encrypted store,
//! schema, quality and PII reports, pseudonymized versions, and what a training job runs.

use std::io::Read;
use std::ops::ControlFlow;

use hearth_ml::dataset::{self, DatasetError, DatasetSummary, DatasetVersion, VersionSel};
use hearth_ml::pii::{PiiReport, pseudonymize_version};
use hearth_ml::quality::QualityReport;
use serde::Serialize;

use crate::app::{Actor, App, ServiceError};
use crate::jobs::{EpochPoint, Job};

impl From<DatasetError> for ServiceError {
    fn from(e: DatasetError) -> Self {
        let message = error_chain(&e);
        match e {
            DatasetError::NotFound { .. }
            | DatasetError::VersionNotFound { .. }
            | DatasetError::NoVersions { .. }
            | DatasetError::NoColumn { .. } => ServiceError::not_found(message),
            DatasetError::InvalidName { .. }
            | DatasetError::Csv(_)
            | DatasetError::Parquet(_)
            | DatasetError::HeaderMismatch { .. }
            | DatasetError::SchemaMismatch { .. }
            | DatasetError::NoColumnsNamed => ServiceError::unprocessable(message),
            DatasetError::Read(_) => ServiceError::bad_request(message),
            DatasetError::Store(hearth_store::StoreError::Locked { .. }) => {
                ServiceError::unavailable(message)
            }
            _ => {
                tracing::error!(component = "datasets", error = %message, "dataset operation failed");
                ServiceError::internal(message)
            }
        }
    }
}

/// An error with its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

fn sel(version: Option<u64>) -> Result<VersionSel, ServiceError> {
    match version {
        None => Ok(VersionSel::Latest),
        Some(v) => u32::try_from(v)
            .map(VersionSel::Number)
            .map_err(|_| ServiceError::not_found(format!("no version {v}"))),
    }
}

/// The version number `version` names (latest when `None`).
pub fn resolve_version(app: &App, name: &str, version: Option<u64>) -> Result<u64, ServiceError> {
    Ok(u64::from(
        dataset::get_version(&app.store, name, sel(version)?)?.version,
    ))
}

/// Streams an upload, CSV or Parquet (told apart by its first bytes), into a new version of
/// `name` (created on first upload).
pub fn upload(
    app: &App,
    actor: &Actor,
    name: &str,
    reader: impl Read,
) -> Result<DatasetVersion, ServiceError> {
    dataset::validate_name(name).map_err(ServiceError::from)?;
    app.audited(actor, "datasets.upload", &format!("dataset:{name}"), || {
        let mut last = 0u64;
        let v = dataset::ingest(&app.store, name, reader, &mut |bytes| {
            if bytes >= last + (256 << 20) {
                last = bytes;
                tracing::info!(component = "datasets", dataset = name, bytes, "uploading");
            }
        })?;
        Ok(v)
    })
}

/// A dataset with every live version.
#[derive(Debug, Serialize)]
pub struct DatasetView {
    pub name: String,
    pub created_unix_ms: u64,
    pub versions: Vec<DatasetVersion>,
}

pub fn list(app: &App) -> Result<Vec<DatasetSummary>, ServiceError> {
    Ok(dataset::list_datasets(&app.store)?)
}

pub fn show(app: &App, name: &str) -> Result<DatasetView, ServiceError> {
    let summary = dataset::list_datasets(&app.store)?
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| ServiceError::not_found(format!("no dataset {name:?}")))?;
    Ok(DatasetView {
        name: summary.name,
        created_unix_ms: summary.created_unix_ms,
        versions: dataset::list_versions(&app.store, name)?,
    })
}

pub fn quality(
    app: &App,
    name: &str,
    version: u64,
    target: Option<&str>,
) -> Result<QualityReport, ServiceError> {
    let frame = dataset::load_frame(&app.store, name, sel(Some(version))?)?;
    if let Some(t) = target {
        frame
            .column(t)
            .map_err(|e| ServiceError::unprocessable(format!("target: {e}")))?;
    }
    Ok(QualityReport::compute(&frame, target))
}

pub fn pii(app: &App, name: &str, version: u64) -> Result<PiiReport, ServiceError> {
    let frame = dataset::load_frame(&app.store, name, sel(Some(version))?)?;
    Ok(PiiReport::detect(&frame))
}

pub fn pseudonymize(
    app: &App,
    actor: &Actor,
    name: &str,
    version: u64,
    columns: &[String],
) -> Result<DatasetVersion, ServiceError> {
    let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
    let object = crate::app::list_object(&format!("dataset:{name}@{version} columns:"), &cols);
    app.audited(actor, "datasets.pseudonymize", &object, || {
        Ok(pseudonymize_version(
            &app.store,
            name,
            sel(Some(version))?,
            &cols,
        )?)
    })
}

/// Runs `job` to its end on this thread: loads its dataset version, trains, stores the model
/// as an encrypted blob and the report in the job. `on_epoch` sees each epoch and may stop it.
pub fn train_job(
    app: &App,
    job: &mut Job,
    compute: &hearth_ml::train::Compute,
    on_epoch: &mut dyn FnMut(EpochPoint) -> ControlFlow<()>,
) -> Result<(), ServiceError> {
    use hearth_ml::train::{ModelKind, TrainSpec, train_on};
    let frame = dataset::load_frame(&app.store, &job.spec.dataset, sel(job.version)?)?;
    let defaults = TrainSpec::default();
    let spec = TrainSpec {
        target: job.spec.target.clone(),
        model: match job.spec.model.as_str() {
            "logreg" => ModelKind::LogReg,
            _ => ModelKind::Mlp {
                hidden: job.spec.hidden.clone().unwrap_or_else(|| vec![64, 64]),
            },
        },
        group_column: job.spec.group.clone(),
        epochs: job.epochs,
        seed: job.spec.seed.unwrap_or(defaults.seed),
        precision: job.spec.precision.unwrap_or_default(),
        ..defaults
    };
    let mut points = Vec::new();
    let trained = train_on(&frame, &spec, compute, &mut |p| {
        let point = EpochPoint {
            epoch: p.epoch,
            train_loss: p.train_loss,
            val_loss: p.val_loss,
        };
        points.push(point.clone());
        on_epoch(point)
    });
    job.progress = points;
    let trained = trained.map_err(|e| ServiceError::unprocessable(error_chain(&e)))?;
    let bytes = serde_json::to_vec(&trained.model)
        .map_err(|e| ServiceError::internal(format!("cannot encode the model: {e}")))?;
    let blob = app
        .store
        .put_blob(&bytes)
        .map_err(|e| ServiceError::internal(format!("cannot store the model: {e}")))?;
    job.model_blob = Some(blob.id.to_string());
    job.report = serde_json::to_value(&trained.report).ok();
    // The report says how the steps really ran (the CPU's mixed precision, say).
    let planned = compute.describe();
    if trained.report.backend != planned {
        job.backend = job.backend.replacen(&planned, &trained.report.backend, 1);
    }
    Ok(())
}
