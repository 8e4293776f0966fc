//! The model registry behind the console: registering finished training jobs, approving and
//! retiring versions (admins), the egress policy (signed model bundles out, raw data kept in),
//! and the JSON API and pages for models.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_ml::card::{self, SigningKey};
use hearth_ml::dataset::{self, VersionSel};
use hearth_ml::registry::{self, DatasetRef, Draft, Lineage, ModelVersion, RegistryError, Stage};
use maud::html;
use serde::{Deserialize, Serialize};

use crate::app::{Actor, App, ServiceError};
use crate::jobs::Job;
use crate::routes::{Caller, CsrfToken};

/// What may leave the appliance (hearthd's `[egress]`). Hearth makes no outbound connections
/// itself; this governs what an authorized caller may download.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressPolicy {
    /// Admins may export signed model bundles (weights, card, signature, lineage).
    pub model_export: bool,
    /// Admins may export a dataset version's raw rows, and only a pseudonymized one.
    pub dataset_export: bool,
}

impl Default for EgressPolicy {
    fn default() -> Self {
        EgressPolicy {
            model_export: true,
            dataset_export: false,
        }
    }
}

/// Refusals by the egress policy answer 451 (Unavailable For Legal Reasons: data residency),
/// so that clients tell them from role refusals (403).
fn policy_refusal(message: &str) -> ServiceError {
    ServiceError::new(StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, message)
}

impl From<RegistryError> for ServiceError {
    fn from(e: RegistryError) -> Self {
        let message = e.to_string();
        match e {
            RegistryError::NotFound { .. } | RegistryError::NoModel { .. } => {
                ServiceError::not_found(message)
            }
            RegistryError::InvalidName { .. } => ServiceError::unprocessable(message),
            RegistryError::Stage { .. } => ServiceError::conflict(message),
            RegistryError::Store(s) => s.into(),
            other => {
                let mut text = other.to_string();
                if let Some(src) = std::error::Error::source(&other) {
                    text = format!("{text}: {src}");
                }
                tracing::error!(component = "models", error = %text, "registry failure");
                ServiceError::internal(text)
            }
        }
    }
}

/// The appliance's model-signing key (derived from the store's root secret).
pub fn signing_key(app: &App) -> Result<SigningKey, ServiceError> {
    Ok(SigningKey::from_store(&app.store)?)
}

/// SHA-256 of the model-signing public key, for attestation evidence (`None` while locked).
pub fn signing_key_binding(app: &App) -> Option<[u8; 32]> {
    SigningKey::from_store(&app.store)
        .ok()
        .map(|k| k.public_key_sha256())
}

/// The name a job's model is registered under: `<dataset>-<target>`.
pub fn model_name_for(job: &Job) -> String {
    registry::model_name(&format!("{}-{}", job.spec.dataset, job.spec.target))
}

/// PCR 11 (SHA-256 bank), read from the TPM from a worker thread.
fn read_pcr11(app: &App) -> Option<String> {
    use hearth_tpm::{Bank, PcrSelection};
    let selection = PcrSelection::new(Bank::Sha256, [11]).ok()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let values = rt.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            app.tpm.pcr_read(selection),
        )
        .await
    });
    match values {
        Ok(Ok(v)) => v.get(Bank::Sha256, 11).map(hex::encode),
        Ok(Err(e)) => {
            tracing::warn!(component = "models", error = %e, "cannot read PCR 11 for lineage");
            None
        }
        Err(_) => None,
    }
}

/// Registers a finished job's model as a candidate version (called by the job worker, on its
/// thread). Audited as `models.register`.
pub fn register_job(app: &App, actor: &Actor, job: &Job) -> Result<ModelVersion, ServiceError> {
    let blob = job
        .model_blob
        .as_deref()
        .ok_or_else(|| ServiceError::internal("the job stored no model"))?
        .parse()
        .map_err(|_| ServiceError::internal("the job's model blob id is invalid"))?;
    let name = model_name_for(job);
    let version = u32::try_from(job.version.unwrap_or(0))
        .map_err(|_| ServiceError::internal("dataset version out of range"))?;
    let d = dataset::get_version(&app.store, &job.spec.dataset, VersionSel::Number(version))?;
    let model = hearth_ml::model::Model::from_json(
        &app.store
            .read_blob(blob)
            .map_err(|e| ServiceError::internal(format!("cannot read the trained model: {e}")))?,
    )
    .map_err(|e| ServiceError::internal(format!("the trained model does not decode: {e}")))?;
    let lineage = Lineage {
        datasets: vec![DatasetRef {
            name: d.dataset.clone(),
            version: d.version,
            sha256: d.sha256.clone(),
            rows: d.rows,
            transform: d.lineage.transform.clone(),
        }],
        job: job.id.clone(),
        trained_by: job.owner.clone(),
        hyperparameters: serde_json::json!({
            "model": job.spec.model,
            "hidden": job.spec.hidden,
            "epochs": job.epochs,
            "seed": job.spec.seed,
            "group": job.spec.group,
            "target": job.spec.target,
        }),
        backend: job.backend.clone(),
        pcr11: read_pcr11(app),
        hearth_version: env!("CARGO_PKG_VERSION").to_owned(),
        trained_unix_ms: job.finished.unwrap_or(0).saturating_mul(1000),
    };
    let key = signing_key(app)?;
    let object = format!("model:{name} job:{}", job.id);
    app.audited(actor, "models.register", &object, || {
        Ok(registry::register(
            &app.store,
            &key,
            Draft {
                name: &name,
                blob,
                model: &model,
                report: job.report.clone().unwrap_or_default(),
                lineage,
            },
        )?)
    })
}

pub fn list(app: &App) -> Result<Vec<ModelVersion>, ServiceError> {
    Ok(registry::list(&app.store)?)
}

pub fn show(app: &App, name: &str, version: u32) -> Result<ModelVersion, ServiceError> {
    Ok(registry::get(&app.store, name, version)?)
}

pub fn approve(
    app: &App,
    actor: &Actor,
    name: &str,
    version: u32,
) -> Result<ModelVersion, ServiceError> {
    registry::get(&app.store, name, version)?;
    app.audited(
        actor,
        "models.approve",
        &format!("model:{name}@{version}"),
        || Ok(registry::approve(&app.store, name, version, &actor.name)?),
    )
}

/// Retires a version: endpoints serving it stop, then its weights are crypto-erased.
pub fn retire(
    app: &App,
    actor: &Actor,
    name: &str,
    version: u32,
) -> Result<ModelVersion, ServiceError> {
    registry::get(&app.store, name, version)?;
    app.audited(
        actor,
        "models.retire",
        &format!("model:{name}@{version}"),
        || {
            app.endpoints.model_retired(name, version);
            Ok(registry::retire(&app.store, name, version, &actor.name)?)
        },
    )
}

/// A signed bundle of a live version, if the egress policy allows model export.
pub fn export(app: &App, actor: &Actor, name: &str, version: u32) -> Result<Vec<u8>, ServiceError> {
    let v = registry::get(&app.store, name, version)?;
    app.audited(
        actor,
        "models.export",
        &format!("model:{name}@{version}"),
        || {
            if !app.config.egress.model_export {
                return Err(policy_refusal(
                    "the egress policy forbids model export ([egress] model_export = false)",
                ));
            }
            let weights = registry::weights(&app.store, &v)?;
            Ok(card::encode_bundle(&v, &weights, &signing_key(app)?))
        },
    )
}

/// A dataset version's raw bytes: refused unless the policy allows dataset export and the
/// version is pseudonymized. Audited either way.
pub fn export_dataset(
    app: &App,
    actor: &Actor,
    name: &str,
    version: u64,
) -> Result<Vec<u8>, ServiceError> {
    let v = u32::try_from(version)
        .map_err(|_| ServiceError::not_found(format!("no version {version}")))?;
    let d = dataset::get_version(&app.store, name, VersionSel::Number(v))?;
    app.audited(actor, "datasets.export", &format!("dataset:{name}@{v}"), || {
        if !app.config.egress.dataset_export {
            return Err(policy_refusal(
                "the egress policy keeps raw data in the appliance ([egress] dataset_export = false)",
            ));
        }
        let pseudonymized = d
            .lineage
            .transform
            .as_deref()
            .is_some_and(|t| t.starts_with("pseudonymized"));
        if !pseudonymized {
            return Err(policy_refusal(
                "only a pseudonymized dataset version may leave the appliance",
            ));
        }
        app.store
            .read_blob(d.blob)
            .map_err(|e| ServiceError::internal(format!("cannot read the dataset: {e}")))
    })
}

// ---------------------------------------------------------------------------------------------
// JSON API.

type ApiResult = Result<Response, ServiceError>;

fn version_of(v: &str) -> Result<u32, ServiceError> {
    v.parse()
        .map_err(|_| ServiceError::not_found(format!("no version {v:?}")))
}

/// A version without its (long) card text, for lists.
#[derive(Serialize)]
struct Summary<'a> {
    name: &'a str,
    version: u32,
    stage: Stage,
    task: &'a str,
    target: &'a str,
    created_unix_ms: u64,
    datasets: Vec<String>,
    metrics: &'a serde_json::Value,
}

fn summary(v: &ModelVersion) -> Summary<'_> {
    Summary {
        name: &v.name,
        version: v.version,
        stage: v.stage,
        task: &v.task,
        target: &v.target,
        created_unix_ms: v.created_unix_ms,
        datasets: v
            .lineage
            .datasets
            .iter()
            .map(|d| format!("{}@{}", d.name, d.version))
            .collect(),
        metrics: v.report.get("metrics").unwrap_or(&serde_json::Value::Null),
    }
}

pub async fn api_list(State(app): State<Arc<App>>) -> ApiResult {
    let all = list(&app)?;
    Ok(Json(all.iter().map(summary).collect::<Vec<_>>()).into_response())
}

pub async fn api_show(
    State(app): State<Arc<App>>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult {
    Ok(Json(show(&app, &name, version_of(&version)?)?).into_response())
}

pub async fn api_approve(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult {
    let version = version_of(&version)?;
    let v = app
        .blocking(move |app| approve(app, &caller.actor, &name, version))
        .await?;
    Ok(Json(v).into_response())
}

pub async fn api_retire(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult {
    let version = version_of(&version)?;
    let v = app
        .blocking(move |app| retire(app, &caller.actor, &name, version))
        .await?;
    Ok(Json(v).into_response())
}

pub async fn api_export(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult {
    let version = version_of(&version)?;
    let file = format!("attachment; filename=\"{name}-{version}.hearth-model\"");
    let bytes = app
        .blocking(move |app| export(app, &caller.actor, &name, version))
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_DISPOSITION, file),
        ],
        bytes,
    )
        .into_response())
}

pub async fn api_export_dataset(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult {
    let version: u64 = version
        .parse()
        .map_err(|_| ServiceError::not_found(format!("no version {version:?}")))?;
    let bytes = app
        .blocking(move |app| export_dataset(app, &caller.actor, &name, version))
        .await?;
    Ok(([(header::CONTENT_TYPE, "text/csv")], bytes).into_response())
}

/// The model-signing key: what bundles are checked against, and its SHA-256 as bound into
/// attestation evidence.
pub async fn api_signing_key(State(app): State<Arc<App>>) -> ApiResult {
    let key = signing_key(&app)?;
    Ok(Json(serde_json::json!({
        "algorithm": "Ed25519",
        "public_key": hex::encode(key.public_key()),
        "sha256": hex::encode(key.public_key_sha256()),
    }))
    .into_response())
}

// ---------------------------------------------------------------------------------------------
// Pages.

fn metric_text(report: &serde_json::Value) -> String {
    report
        .get("metrics")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_f64().map(|x| format!("{k} {x:.3}")))
                .collect::<Vec<_>>()
                .join(" · ")
        })
        .unwrap_or_default()
}

pub async fn page_list(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(csrf): Extension<CsrfToken>,
) -> Response {
    let all = match list(&app) {
        Ok(l) => l,
        Err(e) => return crate::pages::error_page(&e),
    };
    let body = html! {
        @if all.is_empty() { p.meta { "No models yet: every finished training job registers one." } }
        @else {
            table.models {
                thead { tr { th { "Model" } th { "Stage" } th { "Task" } th { "Data" } th { "Test metrics" } th { "Registered" } } }
                tbody {
                    @for v in &all {
                        tr {
                            td { a href={ "/models/" (v.name) "/" (v.version) } { (v.label()) } }
                            td class={ "stage-" (v.stage) } { (v.stage) }
                            td { (v.task) " of " (v.target) }
                            td { @for d in &v.lineage.datasets { (d.name) "@" (d.version) " " } }
                            td { (metric_text(&v.report)) }
                            td { (crate::jobs::format_time(v.created_unix_ms / 1000)) }
                        }
                    }
                }
            }
        }
    };
    crate::pages::page_response(crate::pages::layout("Models", Some(&caller), &csrf.0, body))
}

pub async fn page_show(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(csrf): Extension<CsrfToken>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    let v = match version_of(&version).and_then(|version| show(&app, &name, version)) {
        Ok(v) => v,
        Err(e) => return crate::pages::error_page(&e),
    };
    let admin = caller.role == crate::UserRole::Admin;
    let work = matches!(
        caller.role,
        crate::UserRole::Admin | crate::UserRole::Operator
    );
    let token = csrf.0.as_str();
    let base = format!("/models/{}/{}", v.name, v.version);
    let card_pretty = serde_json::from_str::<serde_json::Value>(&v.card)
        .ok()
        .and_then(|c| serde_json::to_string_pretty(&c).ok())
        .unwrap_or_else(|| v.card.clone());
    let l = &v.lineage;
    let body = html! {
        p { "Stage " strong class={ "stage-" (v.stage) } { (v.stage) }
            @if let Some(by) = &v.approved_by { " · approved by " (by) }
            @if let Some(by) = &v.retired_by { " · retired by " (by) " (weights crypto-erased)" } }
        @if v.stage != Stage::Retired && (admin || (work && v.stage == Stage::Approved)) {
            div.actions {
                @if admin && v.stage == Stage::Candidate {
                    form.inline method="post" action={ (base) "/approve" } {
                        input type="hidden" name="csrf" value=(token);
                        button #approve-model type="submit" { "Approve for serving" }
                    }
                }
                @if work && v.stage == Stage::Approved {
                    form.inline method="post" action="/endpoints" {
                        input type="hidden" name="csrf" value=(token);
                        input type="hidden" name="model" value=(v.label());
                        label { "Endpoint " input #deploy-endpoint name="endpoint" required pattern="[a-z0-9_-]{1,64}" placeholder="name"; }
                        button #deploy-model type="submit" { "Deploy" }
                    }
                }
                @if admin {
                    form.inline method="post" action={ (base) "/export" } {
                        input type="hidden" name="csrf" value=(token);
                        button #export-model type="submit" { "Download signed bundle" }
                    }
                    form.inline method="post" action={ (base) "/retire" } {
                        input type="hidden" name="csrf" value=(token);
                        label { input #retire-confirm type="checkbox" name="confirm" value="erase" required; " erase its weights" }
                        button.danger #retire-model type="submit" { "Retire" }
                    }
                }
            }
        }
        h2 { "Lineage" }
        ol.lineage {
            @for d in &l.datasets {
                li { "Dataset " strong { (d.name) "@" (d.version) } " · " (d.rows) " rows · sha256 " code { (d.sha256) }
                    @if let Some(t) = &d.transform { " · " (t) } }
            }
            li { "Training job " a href={ "/jobs/" (l.job) } { code { (l.job) } } " by " (l.trained_by)
                 " on " (l.backend) " · hearth " (l.hearth_version) }
            li { "PCR 11 " code { (l.pcr11.as_deref().unwrap_or("unreadable")) } }
            li { "Model " strong { (v.label()) } " · weights sha256 " code { (v.weights_sha256) } }
        }
        h2 { "Metrics (test split)" }
        p { (metric_text(&v.report)) }
        h2 { "Inputs" }
        p { @for i in &v.inputs { code { (i.name) } " (" (format!("{:?}", i.kind).to_lowercase()) ") " } }
        h2 { "Model card" }
        p.meta { "Ed25519 signature " code { (v.card_signature) } " by key " code { (v.signing_key) } }
        pre.card { (card_pretty) }
    };
    crate::pages::page_response(crate::pages::layout(
        &format!("Model {}", v.label()),
        Some(&caller),
        &csrf.0,
        body,
    ))
}

/// The retire form: the box that says the weights will be erased must be ticked.
#[derive(Deserialize)]
pub struct RetireForm {
    #[serde(default)]
    confirm: String,
}

pub async fn page_approve(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    let target = format!("/models/{name}/{version}");
    let result = match version_of(&version) {
        Ok(version) => {
            app.blocking(move |app| approve(app, &caller.actor, &name, version))
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => axum::response::Redirect::to(&target).into_response(),
        Err(e) => crate::pages::error_page(&e),
    }
}

pub async fn page_retire(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((name, version)): Path<(String, String)>,
    crate::pages::FormBody(form): crate::pages::FormBody<RetireForm>,
) -> Response {
    if form.confirm != "erase" {
        return crate::pages::error_page(&ServiceError::unprocessable(
            "retiring erases the model's weights: tick the box to confirm",
        ));
    }
    let target = format!("/models/{name}/{version}");
    let result = match version_of(&version) {
        Ok(version) => {
            app.blocking(move |app| retire(app, &caller.actor, &name, version))
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => axum::response::Redirect::to(&target).into_response(),
        Err(e) => crate::pages::error_page(&e),
    }
}

/// The signed bundle as a download, from the model page (admins; the egress policy applies).
pub async fn page_export(
    state: State<Arc<App>>,
    caller: Extension<Caller>,
    path: Path<(String, String)>,
) -> Response {
    match api_export(state, caller, path).await {
        Ok(r) => r,
        Err(e) => crate::pages::error_page(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_defaults_keep_raw_data_in() {
        let p: EgressPolicy = toml_like_default();
        assert!(p.model_export);
        assert!(!p.dataset_export);
    }

    fn toml_like_default() -> EgressPolicy {
        serde_json::from_str("{}").unwrap_or_default()
    }
}
