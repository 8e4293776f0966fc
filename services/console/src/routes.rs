//! The route table (who may call what), the router, and the layers every request passes:
//! authentication, authorization, CSRF, security headers, metrics.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use hearth_store::StoreState;

use crate::app::{Actor, App, ServiceError};
use crate::auth::{Session, same};
use crate::model::UserRole;
use crate::{api, endpoints, models, pages, service};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, logged in or not (health, setup, login, attestation, recovery unlock).
    Public,
    /// Logged-in users (session or API token) in one of these roles.
    Roles(&'static [UserRole]),
    /// Applications with an endpoint API key scoped to the endpoint in the path (model
    /// serving); users' sessions and tokens are refused.
    EndpointKey,
}

/// One route: method, path pattern (as axum matches it), who may call it, and whether it is an
/// HTML page (pages redirect to the login page instead of answering 401).
#[derive(Clone, Copy, Debug)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub page: bool,
}

const ALL: &[UserRole] = &[UserRole::Admin, UserRole::Operator, UserRole::Auditor];
const ADMIN: &[UserRole] = &[UserRole::Admin];
const OVERSIGHT: &[UserRole] = &[UserRole::Admin, UserRole::Auditor];
/// Those who load data and train: auditors read, but change nothing.
const WORK: &[UserRole] = &[UserRole::Admin, UserRole::Operator];

const fn api(method: &'static str, path: &'static str, access: Access) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        page: false,
    }
}

const fn page(method: &'static str, path: &'static str, access: Access) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        page: true,
    }
}

/// Every route the console serves, and the only place access is decided. A request whose
/// route is missing here is refused (fail closed); the tests walk this table with every role.
pub const ROUTES: &[RouteSpec] = &[
    api("GET", "/healthz", Access::Public),
    api("GET", "/metrics", Access::Roles(OVERSIGHT)),
    api("GET", "/api/v1/setup", Access::Public),
    api("POST", "/api/v1/setup", Access::Public),
    api("POST", "/api/v1/login", Access::Public),
    api("POST", "/api/v1/logout", Access::Roles(ALL)),
    api("GET", "/api/v1/status", Access::Roles(ALL)),
    api("GET", "/api/v1/users", Access::Roles(ADMIN)),
    api("POST", "/api/v1/users", Access::Roles(ADMIN)),
    api("POST", "/api/v1/users/{name}/disable", Access::Roles(ADMIN)),
    api("POST", "/api/v1/users/{name}/role", Access::Roles(ADMIN)),
    api("GET", "/api/v1/tokens", Access::Roles(ALL)),
    api("POST", "/api/v1/tokens", Access::Roles(ALL)),
    api("DELETE", "/api/v1/tokens/{id}", Access::Roles(ALL)),
    api("GET", "/api/v1/audit", Access::Roles(OVERSIGHT)),
    api("GET", "/api/v1/audit/export", Access::Roles(OVERSIGHT)),
    api("GET", "/api/v1/attestation", Access::Public),
    api("POST", "/api/v1/unlock", Access::Public),
    api("GET", "/api/v1/datasets", Access::Roles(ALL)),
    api("GET", "/api/v1/datasets/{name}", Access::Roles(ALL)),
    api("POST", "/api/v1/datasets/{name}", Access::Roles(WORK)),
    api(
        "GET",
        "/api/v1/datasets/{name}/{version}/quality",
        Access::Roles(ALL),
    ),
    api(
        "GET",
        "/api/v1/datasets/{name}/{version}/pii",
        Access::Roles(ALL),
    ),
    api(
        "POST",
        "/api/v1/datasets/{name}/{version}/pseudonymize",
        Access::Roles(WORK),
    ),
    api("GET", "/api/v1/jobs", Access::Roles(ALL)),
    api("POST", "/api/v1/jobs", Access::Roles(WORK)),
    api("GET", "/api/v1/jobs/{id}", Access::Roles(ALL)),
    api("POST", "/api/v1/jobs/{id}/cancel", Access::Roles(WORK)),
    api("GET", "/api/v1/jobs/{id}/events", Access::Roles(ALL)),
    api(
        "POST",
        "/api/v1/datasets/{name}/{version}/export",
        Access::Roles(ADMIN),
    ),
    api("GET", "/api/v1/models", Access::Roles(ALL)),
    api("GET", "/api/v1/models/signing-key", Access::Roles(ALL)),
    api("GET", "/api/v1/models/{name}/{version}", Access::Roles(ALL)),
    api(
        "POST",
        "/api/v1/models/{name}/{version}/approve",
        Access::Roles(ADMIN),
    ),
    api(
        "POST",
        "/api/v1/models/{name}/{version}/retire",
        Access::Roles(ADMIN),
    ),
    api(
        "POST",
        "/api/v1/models/{name}/{version}/export",
        Access::Roles(ADMIN),
    ),
    api("GET", "/api/v1/endpoints", Access::Roles(ALL)),
    api("POST", "/api/v1/endpoints/{name}", Access::Roles(WORK)),
    api("DELETE", "/api/v1/endpoints/{name}", Access::Roles(WORK)),
    api(
        "POST",
        "/api/v1/endpoints/{name}/rollback",
        Access::Roles(WORK),
    ),
    api("GET", "/api/v1/endpoint-keys", Access::Roles(WORK)),
    api("POST", "/api/v1/endpoint-keys", Access::Roles(WORK)),
    api("DELETE", "/api/v1/endpoint-keys/{id}", Access::Roles(WORK)),
    api("POST", "/v1/endpoints/{name}/predict", Access::EndpointKey),
    page("GET", "/", Access::Roles(ALL)),
    page("GET", "/setup", Access::Public),
    page("POST", "/setup", Access::Public),
    page("GET", "/login", Access::Public),
    page("POST", "/login", Access::Public),
    page("POST", "/logout", Access::Roles(ALL)),
    page("GET", "/users", Access::Roles(ADMIN)),
    page("POST", "/users", Access::Roles(ADMIN)),
    page("POST", "/users/{name}/disable", Access::Roles(ADMIN)),
    page("POST", "/users/{name}/role", Access::Roles(ADMIN)),
    page("GET", "/audit", Access::Roles(OVERSIGHT)),
    page("GET", "/attestation", Access::Roles(ALL)),
    page("GET", "/unlock", Access::Public),
    page("POST", "/unlock", Access::Public),
    page("GET", "/static/console.css", Access::Public),
    page("GET", "/static/jobs.js", Access::Public),
    page("GET", "/datasets", Access::Roles(ALL)),
    page("GET", "/datasets/{name}", Access::Roles(ALL)),
    page("GET", "/jobs", Access::Roles(ALL)),
    page("POST", "/jobs", Access::Roles(WORK)),
    page("GET", "/jobs/{id}", Access::Roles(ALL)),
    page("GET", "/jobs/{id}/loss.svg", Access::Roles(ALL)),
    page("POST", "/jobs/{id}/cancel", Access::Roles(WORK)),
    page("GET", "/models", Access::Roles(ALL)),
    page("GET", "/models/{name}/{version}", Access::Roles(ALL)),
    page(
        "POST",
        "/models/{name}/{version}/approve",
        Access::Roles(ADMIN),
    ),
    page(
        "POST",
        "/models/{name}/{version}/retire",
        Access::Roles(ADMIN),
    ),
    page(
        "POST",
        "/models/{name}/{version}/export",
        Access::Roles(ADMIN),
    ),
    page("GET", "/endpoints", Access::Roles(ALL)),
    page("POST", "/endpoints", Access::Roles(WORK)),
    page("POST", "/endpoints/{name}/rollback", Access::Roles(WORK)),
    page("POST", "/endpoints/{name}/delete", Access::Roles(WORK)),
    page("POST", "/endpoint-keys", Access::Roles(WORK)),
    page("POST", "/endpoint-keys/{id}/revoke", Access::Roles(WORK)),
];

pub fn find_route(method: &Method, path: &str) -> Option<&'static RouteSpec> {
    ROUTES
        .iter()
        .find(|r| r.method == method.as_str() && r.path == path)
}

/// Cookie names: `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
pub const SESSION_COOKIE: &str = "__Host-hearth_session";
pub const CSRF_COOKIE: &str = "__Host-hearth_csrf";
/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// The peer address, which hearthd's connection loop attaches to every request.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

/// The authenticated caller, attached by the guard for handlers.
#[derive(Clone, Debug)]
pub struct Caller {
    pub actor: Actor,
    pub role: UserRole,
    /// Present when the caller came with a session cookie.
    pub session: Option<(String, Session)>,
}

/// The CSRF token pages render into forms: the session's, or the pre-login cookie's.
#[derive(Clone, Debug, Default)]
pub struct CsrfToken(pub String);

/// Builds the console's router over `app`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics))
        .route(
            "/api/v1/setup",
            get(api::setup_state).post(api::setup_claim),
        )
        .route("/api/v1/login", post(api::login))
        .route("/api/v1/logout", post(api::logout))
        .route("/api/v1/status", get(api::status))
        .route("/api/v1/users", get(api::list_users).post(api::create_user))
        .route("/api/v1/users/{name}/disable", post(api::disable_user))
        .route("/api/v1/users/{name}/role", post(api::set_role))
        .route(
            "/api/v1/tokens",
            get(api::list_tokens).post(api::create_token),
        )
        .route("/api/v1/tokens/{id}", delete(api::revoke_token))
        .route("/api/v1/audit", get(api::audit_records))
        .route("/api/v1/audit/export", get(api::audit_export))
        .route("/api/v1/attestation", get(api::attestation))
        .route("/api/v1/unlock", post(api::unlock))
        .route("/api/v1/datasets", get(api::list_datasets))
        .route(
            "/api/v1/datasets/{name}",
            get(api::show_dataset)
                .post(api::upload_dataset)
                // Uploads stream to disk: no size limit beyond the disk.
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/datasets/{name}/{version}/quality",
            get(api::dataset_quality),
        )
        .route(
            "/api/v1/datasets/{name}/{version}/pii",
            get(api::dataset_pii),
        )
        .route(
            "/api/v1/datasets/{name}/{version}/pseudonymize",
            post(api::pseudonymize_dataset),
        )
        .route("/api/v1/jobs", get(api::list_jobs).post(api::create_job))
        .route("/api/v1/jobs/{id}", get(api::get_job))
        .route("/api/v1/jobs/{id}/cancel", post(api::cancel_job))
        .route("/api/v1/jobs/{id}/events", get(api::job_events))
        .route(
            "/api/v1/datasets/{name}/{version}/export",
            post(models::api_export_dataset),
        )
        .route("/api/v1/models", get(models::api_list))
        .route("/api/v1/models/signing-key", get(models::api_signing_key))
        .route("/api/v1/models/{name}/{version}", get(models::api_show))
        .route(
            "/api/v1/models/{name}/{version}/approve",
            post(models::api_approve),
        )
        .route(
            "/api/v1/models/{name}/{version}/retire",
            post(models::api_retire),
        )
        .route(
            "/api/v1/models/{name}/{version}/export",
            post(models::api_export),
        )
        .route("/api/v1/endpoints", get(endpoints::api_list))
        .route(
            "/api/v1/endpoints/{name}",
            post(endpoints::api_deploy).delete(endpoints::api_delete),
        )
        .route(
            "/api/v1/endpoints/{name}/rollback",
            post(endpoints::api_rollback),
        )
        .route(
            "/api/v1/endpoint-keys",
            get(endpoints::api_list_keys).post(endpoints::api_create_key),
        )
        .route(
            "/api/v1/endpoint-keys/{id}",
            delete(endpoints::api_revoke_key),
        )
        .route(
            "/v1/endpoints/{name}/predict",
            post(endpoints::api_predict).layer(DefaultBodyLimit::max(endpoints::MAX_PREDICT_BODY)),
        )
        .route("/", get(pages::overview))
        .route("/setup", get(pages::setup_form).post(pages::setup_submit))
        .route("/login", get(pages::login_form).post(pages::login_submit))
        .route("/logout", post(pages::logout))
        .route("/users", get(pages::users).post(pages::create_user))
        .route("/users/{name}/disable", post(pages::disable_user))
        .route("/users/{name}/role", post(pages::set_role))
        .route("/audit", get(pages::audit))
        .route("/attestation", get(pages::attestation))
        .route(
            "/unlock",
            get(pages::unlock_form).post(pages::unlock_submit),
        )
        .route("/static/console.css", get(pages::stylesheet))
        .route("/static/jobs.js", get(pages::jobs_script))
        .route("/datasets", get(pages::datasets))
        .route("/datasets/{name}", get(pages::dataset))
        .route("/jobs", get(pages::jobs).post(pages::create_job))
        .route("/jobs/{id}", get(pages::job))
        .route("/jobs/{id}/loss.svg", get(pages::job_loss_svg))
        .route("/jobs/{id}/cancel", post(pages::cancel_job))
        .route("/models", get(models::page_list))
        .route("/models/{name}/{version}", get(models::page_show))
        .route(
            "/models/{name}/{version}/approve",
            post(models::page_approve),
        )
        .route("/models/{name}/{version}/retire", post(models::page_retire))
        .route("/models/{name}/{version}/export", post(models::page_export))
        .route(
            "/endpoints",
            get(endpoints::page_list).post(endpoints::page_deploy),
        )
        .route("/endpoints/{name}/rollback", post(endpoints::page_rollback))
        .route("/endpoints/{name}/delete", post(endpoints::page_delete))
        .route("/endpoint-keys", post(endpoints::page_create_key))
        .route(
            "/endpoint-keys/{id}/revoke",
            post(endpoints::page_revoke_key),
        )
        .route_layer(middleware::from_fn_with_state(Arc::clone(&app), guard))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), observe))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn client_ip(req_ext: Option<&ClientAddr>) -> IpAddr {
    req_ext.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.0.ip())
}

fn deny(spec: Option<&RouteSpec>, e: ServiceError) -> Response {
    if spec.is_some_and(|s| s.page) {
        pages::error_page(&e)
    } else {
        api::error_response(&e)
    }
}

/// Authentication, authorization and CSRF for every matched route.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let Some(spec) = find_route(req.method(), &path) else {
        tracing::error!(component = "console", %path, "route missing from the access table");
        return deny(
            None,
            ServiceError::forbidden("route not in the access table"),
        );
    };
    let locked = !matches!(app.store.state(), StoreState::Open);
    if locked && spec.access != Access::Public {
        return if spec.page {
            Redirect::to("/unlock").into_response()
        } else {
            api::error_response(&ServiceError::unavailable(
                "the store is locked: only health, attestation and the recovery unlock work",
            ))
        };
    }

    // Who is calling: an API token, else a session cookie, else nobody. Public routes do not
    // look at tokens: they serve anyone alike, so a token (even a stale one, or one that cannot
    // be checked while the store is locked) must not make them fail.
    let headers = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|_| spec.access != Access::Public);
    if spec.access == Access::EndpointKey {
        // Applications with an endpoint key, scoped to the endpoint named in the path.
        let endpoint = req
            .uri()
            .path()
            .strip_prefix("/v1/endpoints/")
            .and_then(|p| p.strip_suffix("/predict"))
            .unwrap_or_default();
        let key = match bearer.map(str::trim) {
            None => {
                return deny(
                    Some(spec),
                    ServiceError::unauthorized("an endpoint API key is needed"),
                );
            }
            Some(k) if !k.starts_with(endpoints::KEY_PREFIX) => {
                return deny(
                    Some(spec),
                    ServiceError::forbidden(
                        "user credentials cannot call predict: use an endpoint API key",
                    ),
                );
            }
            Some(k) => match app.endpoints.authorize(k, endpoint) {
                Ok(caller) => caller,
                Err(e) => return deny(Some(spec), e),
            },
        };
        let mut req = req;
        req.extensions_mut().insert(key);
        return next.run(req).await;
    }
    let mut caller = None;
    if let Some(token) = bearer {
        match service::authenticate_token(&app, token.trim()) {
            Ok(Some((name, role))) => {
                caller = Some(Caller {
                    actor: Actor {
                        name,
                        role: role.audit_role(),
                    },
                    role,
                    session: None,
                });
            }
            Ok(None) => return deny(Some(spec), ServiceError::unauthorized("invalid API token")),
            Err(e) => return deny(Some(spec), e),
        }
    } else if let Some(value) = cookie(headers, SESSION_COOKIE)
        && let Some(session) = app.sessions.get(value)
    {
        caller = Some(Caller {
            actor: Actor {
                name: session.user.clone(),
                role: session.role.audit_role(),
            },
            role: session.role,
            session: Some((value.to_owned(), session)),
        });
    }

    if let Access::Roles(roles) = spec.access {
        match &caller {
            None if spec.page => return Redirect::to("/login").into_response(),
            None => return deny(Some(spec), ServiceError::unauthorized("log in first")),
            Some(c) if !roles.contains(&c.role) => {
                return deny(
                    Some(spec),
                    ServiceError::forbidden(format!(
                        "the {} role may not {} {}",
                        c.role, spec.method, spec.path
                    )),
                );
            }
            Some(_) => {}
        }
    }

    // CSRF: form posts, and anything a session cookie authenticates, must carry the token
    // (API tokens are not ambient credentials, so bearer calls need none).
    let expected = match &caller {
        Some(Caller {
            session: Some((_, s)),
            ..
        }) => Some(s.csrf.clone()),
        Some(_) => None,
        None => cookie(headers, CSRF_COOKIE).map(str::to_owned),
    };
    let csrf_needed = req.method() != Method::GET
        && (spec.page || caller.as_ref().is_some_and(|c| c.session.is_some()));
    let mut req = req;
    if csrf_needed {
        // From the header when there is one (the body, maybe a large upload, stays a stream),
        // else from the form body, which is buffered (at most MAX_BODY) and put back.
        let header_token = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let given = match header_token {
            Some(t) => Some(t),
            None => {
                let (parts, body) = req.into_parts();
                let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
                    return deny(
                        Some(spec),
                        ServiceError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
                    );
                };
                let field = form_urlencoded_field(&bytes, "csrf");
                req = Request::from_parts(parts, Body::from(bytes));
                field
            }
        };
        if !matches!((&expected, &given), (Some(e), Some(g)) if same(e, g)) {
            return deny(
                Some(spec),
                ServiceError::forbidden("missing or wrong CSRF token: reload the page and retry"),
            );
        }
    }
    // What pages render into their forms: the token this caller's posts must carry.
    let token = CsrfToken(expected.unwrap_or_default());
    req.extensions_mut().insert(token);
    if let Some(c) = caller {
        req.extensions_mut().insert(c);
    }
    next.run(req).await
}

/// The first value of `name` in an `application/x-www-form-urlencoded` body.
pub fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Security headers on every response, and request metrics.
async fn observe(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let elapsed = start.elapsed();
    app.metrics
        .observe(&method, &route, resp.status().as_u16(), elapsed);
    tracing::debug!(
        component = "http",
        %method,
        %route,
        status = resp.status().as_u16(),
        micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    resp
}

/// `Set-Cookie` for a session (or its removal with `None`).
pub fn session_cookie(value: Option<&str>, ttl_secs: u64) -> HeaderValue {
    let text = match value {
        Some(v) => format!(
            "{SESSION_COOKIE}={v}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={ttl_secs}"
        ),
        None => format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` for the pre-login CSRF token.
pub fn csrf_cookie(value: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{CSRF_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Strict"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_no_duplicates_and_every_mutation_is_guarded() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
        // Public mutations are exactly those that take their own secret.
        let public_posts: Vec<&str> = ROUTES
            .iter()
            .filter(|r| r.method != "GET" && r.access == Access::Public)
            .map(|r| r.path)
            .collect();
        assert_eq!(
            public_posts,
            [
                "/api/v1/setup",
                "/api/v1/login",
                "/api/v1/unlock",
                "/setup",
                "/login",
                "/unlock"
            ]
        );
    }

    #[test]
    fn form_field() {
        assert_eq!(
            form_urlencoded_field(b"a=1&csrf=x%2By&b=2", "csrf").as_deref(),
            Some("x+y")
        );
        assert_eq!(form_urlencoded_field(b"a=1", "csrf"), None);
    }
}
