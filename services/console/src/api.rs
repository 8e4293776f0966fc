//! The JSON API under `/api/v1` (docs/api.md). Thin: parse, call the service layer, answer.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::app::{App, ServiceError};
use crate::model::UserRole;
use crate::routes::{Caller, ClientAddr, client_ip, session_cookie};
use crate::service;

/// `{"error": "..."}` with the error's status (and `Retry-After` for 429).
pub fn error_response(e: &ServiceError) -> Response {
    with_retry_after(
        (e.status, Json(json!({ "error": e.message }))).into_response(),
        e,
    )
}

/// Adds `Retry-After` to an error answer when the error has a wait (429).
pub fn with_retry_after(mut resp: Response, e: &ServiceError) -> Response {
    if let Some(secs) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        error_response(&self)
    }
}

type ApiResult = Result<Response, ServiceError>;

/// A JSON body whose rejections (not JSON, too large, a field missing, unknown or invalid)
/// answer like every other API error: `{"error": "..."}` with axum's status and message.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ServiceError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rejection) => Err(ServiceError::new(rejection.status(), rejection.body_text())),
        }
    }
}

/// Query parameters, with rejections as JSON errors.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Params(v)),
            Err(rejection) => Err(ServiceError::new(rejection.status(), rejection.body_text())),
        }
    }
}

pub async fn healthz(State(app): State<Arc<App>>) -> Response {
    let store = service::store_status(&app);
    Json(json!({ "status": "ok", "store": store })).into_response()
}

pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    let open = matches!(app.store.state(), hearth_store::StoreState::Open);
    let records = app.audit_head().map_or(0, |h| h.records());
    // Counts stay far below 2^53, where f64 stops being exact.
    #[allow(clippy::cast_precision_loss)]
    let gauges = [
        (
            "hearth_store_open",
            "1 when the store is unsealed, 0 when locked.",
            f64::from(u8::from(open)),
        ),
        (
            "hearth_audit_records",
            "Records in the audit log.",
            records as f64,
        ),
        (
            "hearth_uptime_seconds",
            "Seconds since hearthd started.",
            app.started.elapsed().as_secs_f64(),
        ),
    ];
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(&gauges) + &app.endpoints.render_metrics(),
    )
        .into_response()
}

pub async fn setup_state(State(app): State<Arc<App>>) -> ApiResult {
    let open = service::setup_open(&app)?;
    Ok(Json(json!({ "claimed": !open })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    pub code: String,
    pub name: String,
    pub password: String,
}

pub async fn setup_claim(
    State(app): State<Arc<App>>,
    addr: Option<Extension<ClientAddr>>,
    Body(body): Body<ClaimBody>,
) -> ApiResult {
    let ip = client_ip(addr.as_ref().map(|e| &e.0));
    let ttl = app.config.session_ttl.as_secs();
    let (cookie, session) = app
        .blocking(move |app| service::claim(app, ip, &body.code, &body.name, &body.password))
        .await?;
    let mut resp = (
        StatusCode::CREATED,
        Json(json!({ "user": session.user, "role": session.role, "csrf": session.csrf })),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(Some(&cookie), ttl));
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub name: String,
    pub password: String,
}

pub async fn login(
    State(app): State<Arc<App>>,
    addr: Option<Extension<ClientAddr>>,
    Body(body): Body<LoginBody>,
) -> ApiResult {
    let ip = client_ip(addr.as_ref().map(|e| &e.0));
    let ttl = app.config.session_ttl.as_secs();
    let (cookie, session) = app
        .blocking(move |app| service::login(app, ip, &body.name, &body.password))
        .await?;
    let mut resp =
        Json(json!({ "user": session.user, "role": session.role, "csrf": session.csrf }))
            .into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(Some(&cookie), ttl));
    Ok(resp)
}

pub async fn logout(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    let cookie = caller.session.as_ref().map(|(c, _)| c.clone());
    app.blocking(move |app| service::logout(app, &caller.actor, cookie.as_deref()))
        .await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(None, 0));
    Ok(resp)
}

pub async fn status(State(app): State<Arc<App>>) -> Response {
    Json(service::status(&app).await).into_response()
}

pub async fn list_users(State(app): State<Arc<App>>) -> ApiResult {
    Ok(Json(service::list_users(&app)?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    pub name: String,
    pub password: String,
    pub role: UserRole,
}

pub async fn create_user(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Body(body): Body<CreateUserBody>,
) -> ApiResult {
    let user = app
        .blocking(move |app| {
            service::create_user(app, &caller.actor, &body.name, &body.password, body.role)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

pub async fn disable_user(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult {
    let user = app
        .blocking(move |app| service::disable_user(app, &caller.actor, &name))
        .await?;
    Ok(Json(user).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    pub role: UserRole,
}

pub async fn set_role(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Body(body): Body<RoleBody>,
) -> ApiResult {
    let user = app
        .blocking(move |app| service::set_role(app, &caller.actor, &name, body.role))
        .await?;
    Ok(Json(user).into_response())
}

pub async fn list_tokens(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    Ok(Json(service::list_tokens(&app, &caller.actor)?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    pub label: String,
}

pub async fn create_token(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Body(body): Body<TokenBody>,
) -> ApiResult {
    let (secret, view) = app
        .blocking(move |app| service::create_token(app, &caller.actor, &body.label))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": secret, "id": view.id, "owner": view.owner, "label": view.label })),
    )
        .into_response())
}

pub async fn revoke_token(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    app.blocking(move |app| service::revoke_token(app, &caller.actor, &id))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only records with a larger seq.
    pub after: Option<u64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// Parsed records of the journal, newest last.
pub fn audit_records_of(
    app: &App,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<hearth_audit::Record>, ServiceError> {
    let (bytes, _) = app.audit_export()?;
    let mut records: Vec<hearth_audit::Record> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| hearth_audit::Record::from_json_line(l).ok())
        .filter(|r| after.is_none_or(|a| r.seq > a))
        .collect();
    if after.is_some() {
        records.truncate(limit);
    } else {
        let skip = records.len().saturating_sub(limit);
        records.drain(..skip);
    }
    Ok(records)
}

pub async fn audit_records(
    State(app): State<Arc<App>>,
    Params(q): Params<AuditQuery>,
) -> ApiResult {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let records = app
        .blocking(move |app| audit_records_of(app, q.after, limit))
        .await?;
    let lines: Vec<serde_json::Value> = records
        .iter()
        .filter_map(|r| serde_json::from_str(&r.to_json_line()).ok())
        .collect();
    Ok(Json(lines).into_response())
}

/// The journal as an export file (JSON lines), which `hearth audit verify` checks.
pub async fn audit_export(State(app): State<Arc<App>>) -> ApiResult {
    let (bytes, head) = app.blocking(App::audit_export).await?;
    let mut resp = (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"hearth-audit.jsonl\"",
            ),
        ],
        bytes,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&head.hash.to_hex()) {
        resp.headers_mut().insert("x-hearth-audit-head", v);
    }
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonceQuery {
    pub nonce: String,
}

pub async fn attestation(State(app): State<Arc<App>>, Params(q): Params<NonceQuery>) -> ApiResult {
    let evidence = service::attestation(&app, &q.nonce).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        evidence.to_json(),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnlockBody {
    pub recovery_key: String,
}

pub async fn unlock(
    State(app): State<Arc<App>>,
    addr: Option<Extension<ClientAddr>>,
    Body(body): Body<UnlockBody>,
) -> ApiResult {
    let ip = client_ip(addr.as_ref().map(|e| &e.0));
    service::unlock(&app, ip, &body.recovery_key).await?;
    Ok(Json(json!({ "store": service::store_status(&app) })).into_response())
}

// --- Training jobs ---------------------------------------------------------------------------

pub async fn list_jobs(State(app): State<Arc<App>>) -> ApiResult {
    Ok(Json(crate::jobs::list(&app)?).into_response())
}

pub async fn get_job(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(crate::jobs::get(&app, &id)?).into_response())
}

pub async fn create_job(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Body(spec): Body<crate::jobs::JobSpec>,
) -> ApiResult {
    let job = app
        .blocking(move |app| crate::jobs::submit(app, &caller.actor, spec))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(job)).into_response())
}

pub async fn cancel_job(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let job = app
        .blocking(move |app| crate::jobs::cancel(app, &caller.actor, &id))
        .await?;
    Ok(Json(job).into_response())
}

/// Server-sent events for one job: a `snapshot` (the job as stored), then `progress` events
/// (`{"id","state","point":{"epoch","train_loss","val_loss"}}`) and a final `state` event when it
/// ends; the stream closes after that.
pub async fn job_events(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let rx = app.jobs.events.subscribe();
    let job = crate::jobs::get(&app, &id)?;
    let snapshot = Event::default()
        .event("snapshot")
        .json_data(&job)
        .map_err(|e| ServiceError::internal(e.to_string()))?;
    let done = job.state.finished();
    struct S {
        first: Option<Event>,
        rx: tokio::sync::broadcast::Receiver<crate::jobs::JobEvent>,
        id: String,
        done: bool,
    }
    let stream = futures_util::stream::unfold(
        S {
            first: Some(snapshot),
            rx,
            id,
            done,
        },
        |mut s| async move {
            if let Some(first) = s.first.take() {
                return Some((Ok::<Event, std::convert::Infallible>(first), s));
            }
            if s.done {
                return None;
            }
            loop {
                match s.rx.recv().await {
                    Ok(ev) if ev.id == s.id => {
                        let kind = if ev.point.is_some() {
                            "progress"
                        } else {
                            "state"
                        };
                        s.done = ev.state.finished();
                        let event = Event::default()
                            .event(kind)
                            .json_data(&ev)
                            .unwrap_or_else(|_| Event::default().event(kind));
                        return Some((Ok(event), s));
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

// --- Datasets --------------------------------------------------------------------------------

pub async fn list_datasets(State(app): State<Arc<App>>) -> ApiResult {
    Ok(Json(crate::datasets::list(&app)?).into_response())
}

pub async fn show_dataset(State(app): State<Arc<App>>, Path(name): Path<String>) -> ApiResult {
    Ok(Json(crate::datasets::show(&app, &name)?).into_response())
}

/// Streams the request body (CSV) into a new version of the dataset: never buffered whole.
pub async fn upload_dataset(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    request: Request,
) -> ApiResult {
    use futures_util::TryStreamExt as _;
    let stream = request
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let version = app
        .blocking(move |app| crate::datasets::upload(app, &caller.actor, &name, reader))
        .await?;
    Ok((StatusCode::CREATED, Json(version)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityQuery {
    pub target: Option<String>,
}

pub async fn dataset_quality(
    State(app): State<Arc<App>>,
    Path((name, version)): Path<(String, u64)>,
    Params(q): Params<QualityQuery>,
) -> ApiResult {
    let report = app
        .blocking(move |app| crate::datasets::quality(app, &name, version, q.target.as_deref()))
        .await?;
    Ok(Json(report).into_response())
}

pub async fn dataset_pii(
    State(app): State<Arc<App>>,
    Path((name, version)): Path<(String, u64)>,
) -> ApiResult {
    let report = app
        .blocking(move |app| crate::datasets::pii(app, &name, version))
        .await?;
    Ok(Json(report).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PseudonymizeBody {
    pub columns: Vec<String>,
}

pub async fn pseudonymize_dataset(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((name, version)): Path<(String, u64)>,
    Body(body): Body<PseudonymizeBody>,
) -> ApiResult {
    let v = app
        .blocking(move |app| {
            crate::datasets::pseudonymize(app, &caller.actor, &name, version, &body.columns)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}
