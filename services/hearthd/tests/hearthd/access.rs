//! The route x role matrix: every route in the console's access table, called anonymously and
//! in every role; exactly the allowed pairs get past authorization.

use hearth_console::routes::Access;
use hearth_console::{ROUTES, UserRole};
use reqwest::{Method, StatusCode, header};
use serde_json::json;

use crate::harness::{
    ADMIN, PASSWORD, Session, claim, client, create_user, login, set_cookie, token,
};

#[derive(Clone)]
struct Caller {
    role: Option<UserRole>,
    name: &'static str,
    session: Option<Session>,
    token: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_role_route_pairs_succeed() {
    let d = crate::harness::Daemon::start();
    let admin = claim(&d).await;
    create_user(&d, &admin, "olga", "operator").await;
    create_user(&d, &admin, "aldo", "auditor").await;
    create_user(&d, &admin, "victim", "operator").await;
    let mut callers = vec![Caller {
        role: None,
        name: "anonymous",
        session: None,
        token: None,
    }];
    for (name, role) in [
        (ADMIN, UserRole::Admin),
        ("olga", UserRole::Operator),
        ("aldo", UserRole::Auditor),
    ] {
        let s = login(&d, name, PASSWORD).await;
        let t = token(&d, &s).await;
        callers.push(Caller {
            role: Some(role),
            name,
            session: Some(s),
            token: Some(t),
        });
    }
    // The anonymous caller's pre-login CSRF cookie, as a browser gets it from the login page.
    let resp = client().get(d.url("/login")).send().await.unwrap();
    let anon_csrf = set_cookie(&resp, "__Host-hearth_csrf").unwrap();

    let mut checked = 0;
    let mut fresh_user = 0;
    for route in ROUTES {
        for caller in &callers {
            let allowed = match route.access {
                Access::Public => true,
                Access::Roles(roles) => caller.role.is_some_and(|r| roles.contains(&r)),
                // Only endpoint API keys: every user is refused (models.rs tests the keys).
                Access::EndpointKey => false,
            };
            let path = route
                .path
                .replace("{name}", "victim")
                .replace("{id}", "0123456789abcdef")
                .replace("{version}", "1");
            let method = Method::from_bytes(route.method.as_bytes()).unwrap();
            let mut req = client().request(method.clone(), d.url(&path));
            // Logging out ends the session: give those routes a session of their own.
            let session = if route.path.ends_with("/logout") && caller.role.is_some() {
                Some(login(&d, caller.name, PASSWORD).await)
            } else {
                caller.session.clone()
            };
            fresh_user += 1;
            let new_user = format!("u{fresh_user}");
            if route.page {
                let csrf = match &session {
                    Some(s) => {
                        req = req.header(header::COOKIE, s.cookie_header());
                        s.csrf.clone()
                    }
                    None => {
                        req = req.header(header::COOKIE, format!("__Host-hearth_csrf={anon_csrf}"));
                        anon_csrf.clone()
                    }
                };
                if method == Method::POST {
                    let mut form = vec![("csrf", csrf)];
                    match route.path {
                        "/setup" => form.extend([
                            ("code", "AAAA-BBBB-CCCC".to_owned()),
                            ("name", "x".to_owned()),
                            ("password", PASSWORD.to_owned()),
                        ]),
                        "/login" => form.extend([
                            ("name", "olga".to_owned()),
                            ("password", PASSWORD.to_owned()),
                        ]),
                        "/users" => form.extend([
                            ("name", new_user.clone()),
                            ("password", PASSWORD.to_owned()),
                            ("role", "operator".to_owned()),
                        ]),
                        "/users/{name}/role" => form.push(("role", "operator".to_owned())),
                        "/unlock" => form.push(("recovery_key", "x".to_owned())),
                        _ => {}
                    }
                    req = req.form(&form);
                }
            } else {
                if let Some(t) = &caller.token {
                    req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
                }
                let body = match (route.method, route.path) {
                    ("POST", "/api/v1/setup") => {
                        Some(json!({"code": "AAAA-BBBB-CCCC", "name": "x", "password": PASSWORD}))
                    }
                    ("POST", "/api/v1/login") => {
                        Some(json!({"name": "olga", "password": PASSWORD}))
                    }
                    ("POST", "/api/v1/users") => {
                        Some(json!({"name": new_user, "password": PASSWORD, "role": "operator"}))
                    }
                    ("POST", "/api/v1/users/{name}/role") => Some(json!({"role": "operator"})),
                    ("POST", "/api/v1/tokens") => Some(json!({"label": "matrix"})),
                    ("POST", "/api/v1/unlock") => Some(json!({"recovery_key": "x"})),
                    ("GET", "/api/v1/attestation") => {
                        req = req.query(&[("nonce", "00112233")]);
                        None
                    }
                    ("POST", _) => Some(json!({})),
                    _ => None,
                };
                if let Some(b) = body {
                    req = req.json(&b);
                }
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let location = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = resp.text().await.unwrap();
            let what = format!(
                "{} {} as {}: {status} {location} {}",
                route.method,
                route.path,
                caller.name,
                body.chars().take(200).collect::<String>()
            );
            // Public pages may send people to the login page as part of their flow (setup once
            // claimed), and logging out ends there: neither is a refusal.
            let refused_login = route.page
                && status == StatusCode::SEE_OTHER
                && location == "/login"
                && route.access != Access::Public
                && route.path != "/logout";
            if allowed {
                assert!(
                    status != StatusCode::UNAUTHORIZED
                        && status != StatusCode::FORBIDDEN
                        && !refused_login,
                    "allowed but refused: {what}"
                );
                assert!(status.as_u16() < 500, "allowed but failed: {what}");
            } else if caller.role.is_none() {
                if route.page {
                    assert!(
                        status == StatusCode::SEE_OTHER && location == "/login",
                        "anonymous must be sent to the login page: {what}"
                    );
                } else {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
                }
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, ROUTES.len() * 4);
}
