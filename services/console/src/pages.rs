//! The HTML console: server-rendered, one stylesheet, no inline script (the only script,
//! `/static/jobs.js`, redraws a running job's loss curve; every page works without it). Every
//! form posts to a page route that calls the same service layer as the API.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Extension, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use hearth_ml::train::Precision;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::app::{App, ServiceError};
use crate::auth::random_token;
use crate::model::UserRole;
use crate::routes::{Caller, ClientAddr, CsrfToken, client_ip, csrf_cookie, session_cookie};
use crate::service;

const STYLESHEET: &str = include_str!("console.css");

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

pub(crate) fn layout(title: &str, caller: Option<&Caller>, csrf: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Hearth" }
                link rel="stylesheet" href="/static/console.css";
            }
            body {
                header.top {
                    a.brand href="/" { "Hearth" }
                    @if let Some(c) = caller {
                        nav {
                            a href="/" { "Overview" }
                            @if c.role == UserRole::Admin { a href="/users" { "Users" } }
                            a href="/datasets" { "Datasets" }
                            a href="/jobs" { "Jobs" }
                            a href="/models" { "Models" }
                            a href="/endpoints" { "Endpoints" }
                            @if matches!(c.role, UserRole::Admin | UserRole::Auditor) { a href="/audit" { "Audit" } }
                            a href="/attestation" { "Attestation" }
                        }
                        form.logout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            span.who { (c.actor.name) " · " (c.role) }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

pub(crate) fn page_response(markup: Markup) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

pub fn error_page(e: &ServiceError) -> Response {
    let body = html! {
        p.error { (e.message) }
        p { a href="/" { "Back to the console" } }
    };
    let resp = (
        e.status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        layout(
            e.status.canonical_reason().unwrap_or("Error"),
            None,
            "",
            body,
        )
        .into_string(),
    )
        .into_response();
    crate::api::with_retry_after(resp, e)
}

/// A page for someone not logged in, with a pre-login CSRF cookie when they have none.
fn anonymous_page(csrf: &CsrfToken, render: impl FnOnce(&str) -> Markup) -> Response {
    if csrf.0.is_empty() {
        let Ok(token) = random_token() else {
            return error_page(&ServiceError::internal("no randomness"));
        };
        let mut resp = page_response(render(&token));
        resp.headers_mut()
            .insert(header::SET_COOKIE, csrf_cookie(&token));
        resp
    } else {
        page_response(render(&csrf.0))
    }
}

/// A form body whose rejections render as an error page.
pub struct FormBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for FormBody<T> {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Form::<T>::from_request(req, state).await {
            Ok(Form(v)) => Ok(FormBody(v)),
            Err(rejection) => Err(error_page(&ServiceError::new(
                rejection.status(),
                rejection.body_text(),
            ))),
        }
    }
}

fn login_redirect(cookie: &str, ttl: u64) -> Response {
    let mut resp = Redirect::to("/").into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(Some(cookie), ttl));
    resp
}

// --- Overview --------------------------------------------------------------------------------

pub async fn overview(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(csrf): Extension<CsrfToken>,
) -> Response {
    let s = service::status(&app).await;
    let body = html! {
        section.cards {
            div.card {
                h2 { "TPM" }
                p.big #tpm-kind { (s.tpm.kind) }
                p { (s.tpm.manufacturer) " · " (s.tpm.vendor) " · firmware " (s.tpm.firmware_version) }
                @if s.tpm.kind == "software" {
                    p.warn { "Software TPM: no hardware root of trust (dev profile)." }
                }
            }
            div.card {
                h2 { "Store" }
                p.big #store-state { (s.store.state) }
                p { "Root secret sealed to " code { (s.store.sealed_to) } }
            }
            div.card {
                h2 { "Audit log" }
                @if let Some(a) = &s.audit {
                    p.big { (a.records) " records" }
                    p { "Head " code.hash { (a.head) } }
                }
            }
            div.card {
                h2 { "Compute" }
                @for b in &s.compute { p.big { (b.kind) } p { (b.detail) } }
            }
        }
        section {
            h2 { "Console certificate" }
            p { "SHA-256 " code.hash #cert-fingerprint { (s.tls.cert_sha256) } }
            @if s.tls.ephemeral { p.warn { "Temporary certificate (the store was locked at start)." } }
        }
        section {
            h2 { "PCRs" }
            @if let Some(e) = &s.pcrs_error { p.error { (e) } }
            @if let Some(pcrs) = &s.pcrs {
                table.pcrs {
                    thead { tr { th { "Bank" } th { "PCR" } th { "Value" } } }
                    tbody {
                        @for bank in pcrs.banks() {
                            @for (pcr, value) in pcrs.bank(bank) {
                                tr { td { (bank) } td { (pcr) } td { code.hash { (hex::encode(value)) } } }
                            }
                        }
                    }
                }
            }
        }
        p.meta { "Hearth " (s.version) " · profile " (s.profile) " · up " (s.uptime_s) " s" }
    };
    page_response(layout("Overview", Some(&caller), &csrf.0, body))
}

// --- Setup and login -------------------------------------------------------------------------

pub async fn setup_form(
    State(app): State<Arc<App>>,
    Extension(csrf): Extension<CsrfToken>,
) -> Response {
    match service::setup_open(&app) {
        Ok(true) => {}
        Ok(false) => return Redirect::to("/login").into_response(),
        Err(e) => return error_page(&e),
    }
    anonymous_page(&csrf, |token| {
        layout(
            "Claim this appliance",
            None,
            token,
            html! {
                p { "Enter the one-time setup code that hearthd printed at start, and choose the first administrator's name and password." }
                form.stack method="post" action="/setup" {
                    input type="hidden" name="csrf" value=(token);
                    label { "Setup code" input #code name="code" required autocomplete="off" placeholder="XXXX-XXXX-XXXX"; }
                    label { "Administrator name" input #name name="name" required autocomplete="username"; }
                    label { "Password (at least 12 characters)" input #password name="password" type="password" required autocomplete="new-password"; }
                    button #claim type="submit" { "Claim" }
                }
            },
        )
    })
}

#[derive(Deserialize)]
pub struct ClaimForm {
    code: String,
    name: String,
    password: String,
}

pub async fn setup_submit(
    State(app): State<Arc<App>>,
    addr: Option<Extension<ClientAddr>>,
    FormBody(form): FormBody<ClaimForm>,
) -> Response {
    let ip = client_ip(addr.as_ref().map(|e| &e.0));
    let ttl = app.config.session_ttl.as_secs();
    match app
        .blocking(move |app| service::claim(app, ip, &form.code, &form.name, &form.password))
        .await
    {
        Ok((cookie, _)) => login_redirect(&cookie, ttl),
        Err(e) => error_page(&e),
    }
}

pub async fn login_form(
    State(app): State<Arc<App>>,
    Extension(csrf): Extension<CsrfToken>,
) -> Response {
    if matches!(service::setup_open(&app), Ok(true)) {
        return Redirect::to("/setup").into_response();
    }
    anonymous_page(&csrf, |token| {
        layout(
            "Log in",
            None,
            token,
            html! {
                form.stack method="post" action="/login" {
                    input type="hidden" name="csrf" value=(token);
                    label { "Name" input #name name="name" required autocomplete="username"; }
                    label { "Password" input #password name="password" type="password" required autocomplete="current-password"; }
                    button #login type="submit" { "Log in" }
                }
            },
        )
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
}

pub async fn login_submit(
    State(app): State<Arc<App>>,
    addr: Option<Extension<ClientAddr>>,
    FormBody(form): FormBody<LoginForm>,
) -> Response {
    let ip = client_ip(addr.as_ref().map(|e| &e.0));
    let ttl = app.config.session_ttl.as_secs();
    match app
        .blocking(move |app| service::login(app, ip, &form.name, &form.password))
        .await
    {
        Ok((cookie, _)) => login_redirect(&cookie, ttl),
        Err(e) => error_page(&e),
    }
}

pub async fn logout(State(app): State<Arc<App>>, Extension(caller): Extension<Caller>) -> Response {
    let cookie = caller.session.as_ref().map(|(c, _)| c.clone());
    match app
        .blocking(move |app| service::logout(app, &caller.actor, cookie.as_deref()))
        .await
    {
        Ok(()) => {
            let mut resp = Redirect::to("/login").into_response();
            resp.headers_mut()
                .insert(header::SET_COOKIE, session_cookie(None, 0));
            resp
        }
        Err(e) => error_page(&e),
    }
}

// --- Users -----------------------------------------------------------------------------------

pub async fn users(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(csrf): Extension<CsrfToken>,
) -> Response {
    let users = match service::list_users(&app) {
        Ok(u) => u,
        Err(e) => return error_page(&e),
    };
    let token = csrf.0.as_str();
    let body = html! {
        table.users {
            thead { tr { th { "Name" } th { "Role" } th { "State" } th { "Created by" } th { "" } } }
            tbody {
                @for u in &users {
                    tr {
                        td.name { (u.name) }
                        td {
                            form.inline method="post" action={ "/users/" (u.name) "/role" } {
                                input type="hidden" name="csrf" value=(token);
                                select name="role" aria-label="role" {
                                    @for r in UserRole::ALL {
                                        option value=(r.as_str()) selected[r == u.role] { (r) }
                                    }
                                }
                                button type="submit" { "Set" }
                            }
                        }
                        td { @if u.disabled { span.warn { "disabled" } } @else { "active" } }
                        td { (u.created_by) }
                        td {
                            @if !u.disabled {
                                form.inline method="post" action={ "/users/" (u.name) "/disable" } {
                                    input type="hidden" name="csrf" value=(token);
                                    button.danger type="submit" { "Disable" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "New user" }
        form.stack method="post" action="/users" {
            input type="hidden" name="csrf" value=(token);
            label { "Name" input #new-name name="name" required autocomplete="off"; }
            label { "Password (at least 12 characters)" input #new-password name="password" type="password" required autocomplete="new-password"; }
            label { "Role"
                select #new-role name="role" {
                    @for r in UserRole::ALL { option value=(r.as_str()) selected[r == UserRole::Operator] { (r) } }
                }
            }
            button #create-user type="submit" { "Create user" }
        }
    };
    page_response(layout("Users", Some(&caller), token, body))
}

#[derive(Deserialize)]
pub struct UserForm {
    name: String,
    password: String,
    role: UserRole,
}

pub async fn create_user(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    FormBody(form): FormBody<UserForm>,
) -> Response {
    match app
        .blocking(move |app| {
            service::create_user(app, &caller.actor, &form.name, &form.password, form.role)
        })
        .await
    {
        Ok(_) => Redirect::to("/users").into_response(),
        Err(e) => error_page(&e),
    }
}

pub async fn disable_user(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    match app
        .blocking(move |app| service::disable_user(app, &caller.actor, &name))
        .await
    {
        Ok(_) => Redirect::to("/users").into_response(),
        Err(e) => error_page(&e),
    }
}

#[derive(Deserialize)]
pub struct RoleForm {
    role: UserRole,
}

pub async fn set_role(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    FormBody(form): FormBody<RoleForm>,
) -> Response {
    match app
        .blocking(move |app| service::set_role(app, &caller.actor, &name, form.role))
        .await
    {
        Ok(_) => Redirect::to("/users").into_response(),
        Err(e) => error_page(&e),
    }
}

// --- Audit and attestation -------------------------------------------------------------------

pub async fn audit(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(csrf): Extension<CsrfToken>,
) -> Response {
    let records = match app
        .blocking(|app| crate::api::audit_records_of(app, None, 200))
        .await
    {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let head = app.audit_head();
    let body = html! {
        p {
            "Hash-chained and MAC'd; newest last. "
            a href="/api/v1/audit/export" download { "Export the whole log" }
            " and check it offline with " code { "hearth audit verify FILE" } "."
        }
        @if let Some(h) = head { p { "Head " code.hash { (h.hash.to_hex()) } " (" (h.records()) " records)" } }
        table.audit {
            thead { tr { th { "#" } th { "Time (UTC)" } th { "Actor" } th { "Role" } th { "Action" } th { "Object" } th { "Outcome" } } }
            tbody {
                @for r in &records {
                    tr {
                        td { (r.seq) }
                        td { (r.time) }
                        td { (r.actor) }
                        td { (r.role) }
                        td { code { (r.action) } }
                        td { (r.object) }
                        td class=(r.outcome.tag()) { (r.outcome) }
                    }
                }
            }
        }
    };
    page_response(layout("Audit log", Some(&caller), &csrf.0, body))
}

pub async fn attestation(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(csrf): Extension<CsrfToken>,
) -> Response {
    let s = service::status(&app).await;
    let body = html! {
        p { "Auditors verify this appliance from their own machine, offline from it, with a fresh nonce:" }
        pre { "hearth verify https://HOST:PORT --reference reference.json --fingerprint " (s.tls.cert_sha256) }
        p { "The quote binds the console's TLS key and the audit log's head, so the evidence proves which endpoint answered and which audit history it had." }
        dl {
            dt { "TLS certificate SHA-256" } dd { code.hash { (s.tls.cert_sha256) } }
            dt { "TLS SubjectPublicKeyInfo SHA-256 (bound)" } dd { code.hash { (s.tls.spki_sha256) } }
            @if let Some(a) = &s.audit { dt { "Audit head (bound)" } dd { code.hash { (a.head) } } }
            dt { "TPM" } dd { (s.tpm.kind) " · " (s.tpm.manufacturer) " · " (s.tpm.transport) }
            dt { "PCRs quoted" } dd { code { (app.config.attest_pcrs) } }
        }
        p { "Evidence as JSON: " code { "GET /api/v1/attestation?nonce=HEX" } }
    };
    page_response(layout("Attestation", Some(&caller), &csrf.0, body))
}

// --- Recovery --------------------------------------------------------------------------------

pub async fn unlock_form(
    State(app): State<Arc<App>>,
    Extension(csrf): Extension<CsrfToken>,
) -> Response {
    let store = service::store_status(&app);
    if store.state == "open" {
        return Redirect::to("/").into_response();
    }
    anonymous_page(&csrf, |token| {
        layout(
            "Store locked",
            None,
            token,
            html! {
                p.error #lock-reason { (store.reason.clone().unwrap_or_default()) }
                @if !store.changed_pcrs.is_empty() {
                    p { "Changed PCRs: " @for p in &store.changed_pcrs { code.pcr { (p) } " " } }
                }
                p { "If the change was intended (an update, a firmware change), an administrator enters the recovery key: the store opens and the root secret is re-sealed to the current measurements. Otherwise, find out what changed first: attestation keeps working." }
                form.stack method="post" action="/unlock" {
                    input type="hidden" name="csrf" value=(token);
                    label { "Recovery key" input #recovery-key name="recovery_key" required autocomplete="off"; }
                    button #unlock type="submit" { "Unlock" }
                }
            },
        )
    })
}

#[derive(Deserialize)]
pub struct UnlockForm {
    recovery_key: String,
}

pub async fn unlock_submit(
    State(app): State<Arc<App>>,
    addr: Option<Extension<ClientAddr>>,
    FormBody(form): FormBody<UnlockForm>,
) -> Response {
    let ip = client_ip(addr.as_ref().map(|e| &e.0));
    match service::unlock(&app, ip, &form.recovery_key).await {
        Ok(()) => Redirect::to("/login").into_response(),
        Err(e) => error_page(&e),
    }
}

// --- Datasets and jobs -----------------------------------------------------------------------

fn can_work(caller: &Caller) -> bool {
    matches!(caller.role, UserRole::Admin | UserRole::Operator)
}

fn unix_ms(ms: u64) -> String {
    crate::jobs::format_time(ms / 1000)
}

pub async fn datasets(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(csrf): Extension<CsrfToken>,
) -> Response {
    let list = match crate::datasets::list(&app) {
        Ok(l) => l,
        Err(e) => return error_page(&e),
    };
    let body = html! {
        p { "Datasets are stored encrypted, version by version; each version keeps its SHA-256 for lineage. Upload with "
            code { "hearth datasets upload FILE.csv" } " or " code { "POST /api/v1/datasets/NAME" } "." }
        @if list.is_empty() { p.meta { "No datasets yet." } }
        @else {
            table.datasets {
                thead { tr { th { "Name" } th { "Versions" } th { "Latest" } th { "Created" } } }
                tbody {
                    @for d in &list {
                        tr {
                            td { a href={ "/datasets/" (d.name) } { (d.name) } }
                            td { (d.versions.len()) }
                            td { @if let Some(v) = d.latest() { "v" (v) } }
                            td { (unix_ms(d.created_unix_ms)) }
                        }
                    }
                }
            }
        }
    };
    page_response(layout("Datasets", Some(&caller), &csrf.0, body))
}

pub async fn dataset(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(csrf): Extension<CsrfToken>,
    Path(name): Path<String>,
) -> Response {
    let result = app
        .blocking(move |app| {
            let view = crate::datasets::show(app, &name)?;
            let latest = view.versions.last().map(|v| u64::from(v.version));
            let reports = match latest {
                Some(v) => Some((
                    crate::datasets::quality(app, &name, v, None)?,
                    crate::datasets::pii(app, &name, v)?,
                )),
                None => None,
            };
            Ok((view, reports))
        })
        .await;
    let (view, reports) = match result {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let body = html! {
        h2 { "Versions" }
        table.versions {
            thead { tr { th { "Version" } th { "Rows" } th { "Bytes" } th { "SHA-256" } th { "Lineage" } th { "Created" } } }
            tbody {
                @for v in &view.versions {
                    tr {
                        td { "v" (v.version) }
                        td { (v.rows) }
                        td { (v.bytes) }
                        td { code.hash { (v.sha256) } }
                        td {
                            @if let Some(p) = &v.lineage.parent { (p.dataset) "@v" (p.version) " " }
                            @if let Some(t) = &v.lineage.transform { (t) }
                            @if v.lineage.parent.is_none() { "upload" }
                        }
                        td { (unix_ms(v.created_unix_ms)) }
                    }
                }
            }
        }
        @if let Some(latest) = view.versions.last() {
            h2 { "Schema of v" (latest.version) }
            table.schema {
                thead { tr { th { "Column" } th { "Kind" } th { "Missing" } } }
                tbody { @for c in &latest.schema { tr { td { (c.name) } td { (format!("{:?}", c.kind).to_lowercase()) } td { (c.missing) } } } }
            }
        }
        @if let Some((quality, pii)) = &reports {
            h2 { "Quality" }
            pre.report { (serde_json::to_string_pretty(quality).unwrap_or_default()) }
            h2 { "Personal data" }
            @let flagged = pii.flagged();
            @if flagged.is_empty() { p { "No column looks like personal data." } }
            @else {
                p.warn { "Looks like personal data: " (flagged.join(", ")) ". Pseudonymize before training or export: "
                    code { "POST /api/v1/datasets/" (view.name) "/VERSION/pseudonymize" } }
            }
        }
    };
    page_response(layout(
        &format!("Dataset {}", view.name),
        Some(&caller),
        &csrf.0,
        body,
    ))
}

pub async fn jobs(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(csrf): Extension<CsrfToken>,
) -> Response {
    let list = match crate::jobs::list(&app) {
        Ok(l) => l,
        Err(e) => return error_page(&e),
    };
    let token = csrf.0.as_str();
    let body = html! {
        @if list.is_empty() { p.meta { "No training jobs yet." } }
        @else {
            table.jobs {
                thead { tr { th { "Job" } th { "Dataset" } th { "Model" } th { "Target" } th { "State" } th { "Owner" } th { "Created" } } }
                tbody {
                    @for j in &list {
                        tr {
                            td { a href={ "/jobs/" (j.id) } { code { (j.id) } } }
                            td { (j.spec.dataset) @if let Some(v) = j.version { "@v" (v) } }
                            td { (j.spec.model) }
                            td { (j.spec.target) }
                            td class={ "state-" (format!("{:?}", j.state).to_lowercase()) } { (format!("{:?}", j.state).to_lowercase()) }
                            td { (j.owner) }
                            td { (crate::jobs::format_time(j.created)) }
                        }
                    }
                }
            }
        }
        @if can_work(&caller) {
            h2 { "Train a model" }
            form.stack method="post" action="/jobs" {
                input type="hidden" name="csrf" value=(token);
                label { "Dataset" input #job-dataset name="dataset" required; }
                label { "Target column" input #job-target name="target" required; }
                label { "Model"
                    select #job-model name="model" { option value="logreg" { "logistic regression" } option value="mlp" { "MLP" } }
                }
                label { "Hidden layers (MLP), e.g. 64,64" input #job-hidden name="hidden" placeholder="64,64"; }
                label { "Epochs" input #job-epochs name="epochs" type="number" min="1" max="10000" value="20"; }
                label { "Fairness group column (optional)" input #job-group name="group"; }
                label { "Arithmetic"
                    select #job-precision name="precision" {
                        option value="auto" selected { "automatic (mixed precision where the CPU or GPU has it)" }
                        option value="f32" { "float32" }
                        @if hearth_ml::bf16::available() {
                            option value="bf16" { "mixed precision on the CPU (bfloat16 products)" }
                        }
                        @if app.compute.tensor_cores() {
                            option value="tf32" { "mixed precision on the GPU (TF32 tensor-core products)" }
                        }
                    }
                }
                button #start-job type="submit" { "Start training" }
            }
        }
    };
    page_response(layout("Training jobs", Some(&caller), token, body))
}

#[derive(Deserialize)]
pub struct JobForm {
    dataset: String,
    target: String,
    model: String,
    #[serde(default)]
    hidden: String,
    #[serde(default)]
    epochs: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    precision: String,
}

pub async fn create_job(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    FormBody(form): FormBody<JobForm>,
) -> Response {
    let hidden = if form.hidden.trim().is_empty() {
        None
    } else {
        match form
            .hidden
            .split(',')
            .map(|w| w.trim().parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(h) => Some(h),
            Err(_) => {
                return error_page(&ServiceError::unprocessable(
                    "hidden: comma-separated layer widths, e.g. 64,64",
                ));
            }
        }
    };
    let epochs = match form.epochs.trim() {
        "" => None,
        t => match t.parse() {
            Ok(e) => Some(e),
            Err(_) => return error_page(&ServiceError::unprocessable("epochs: a number")),
        },
    };
    let precision = match form.precision.trim() {
        "" | "auto" => None,
        "f32" => Some(Precision::F32),
        "bf16" => Some(Precision::Bf16),
        "tf32" => Some(Precision::Tf32),
        _ => {
            return error_page(&ServiceError::unprocessable(
                "precision: auto, f32, bf16 or tf32",
            ));
        }
    };
    let spec = crate::jobs::JobSpec {
        dataset: form.dataset.trim().to_owned(),
        version: None,
        target: form.target.trim().to_owned(),
        model: form.model,
        hidden,
        epochs,
        group: Some(form.group.trim().to_owned()).filter(|g| !g.is_empty()),
        seed: None,
        precision,
    };
    match app
        .blocking(move |app| crate::jobs::submit(app, &caller.actor, spec))
        .await
    {
        Ok(job) => Redirect::to(&format!("/jobs/{}", job.id)).into_response(),
        Err(e) => error_page(&e),
    }
}

pub async fn job(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
) -> Response {
    let j = match crate::jobs::get(&app, &id) {
        Ok(j) => j,
        Err(e) => return error_page(&e),
    };
    let state = format!("{:?}", j.state).to_lowercase();
    let body = html! {
        div #job data-id=(j.id) data-finished=(j.state.finished()) {
            p { "State: " strong #job-state { (state) } " · backend " (j.backend) " · energy " (j.energy) }
            p { (j.spec.model) @if let Some(h) = &j.spec.hidden { " " (format!("{h:?}")) } " on " (j.spec.dataset)
                @if let Some(v) = j.version { "@v" (v) } ", target " code { (j.spec.target) } ", " (j.epochs) " epochs max" }
            @if let Some(e) = &j.error { p.error { (e) } }
            img #loss-curve src={ "/jobs/" (j.id) "/loss.svg" } alt="loss curve" width="640" height="240";
            p.meta #job-progress { (j.progress.len()) " epochs run" }
            @if can_work(&caller) && !j.state.finished() {
                form.inline method="post" action={ "/jobs/" (j.id) "/cancel" } {
                    input type="hidden" name="csrf" value=(csrf.0);
                    button.danger #cancel-job type="submit" { "Cancel" }
                }
            }
            @if let Some(report) = &j.report {
                h2 { "Report" }
                pre.report { (serde_json::to_string_pretty(report).unwrap_or_default()) }
            }
        }
        script src="/static/jobs.js" {}
    };
    page_response(layout(
        &format!("Job {}", j.id),
        Some(&caller),
        &csrf.0,
        body,
    ))
}

pub async fn job_loss_svg(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match crate::jobs::get(&app, &id) {
        Ok(j) => (
            [(header::CONTENT_TYPE, "image/svg+xml")],
            crate::jobs::loss_svg(&j.progress, j.epochs),
        )
            .into_response(),
        Err(e) => error_page(&e),
    }
}

pub async fn cancel_job(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let target = format!("/jobs/{id}");
    match app
        .blocking(move |app| crate::jobs::cancel(app, &caller.actor, &id))
        .await
    {
        Ok(_) => Redirect::to(&target).into_response(),
        Err(e) => error_page(&e),
    }
}

const JOBS_SCRIPT: &str = include_str!("jobs.js");

pub async fn jobs_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        JOBS_SCRIPT,
    )
        .into_response()
}
