//! Sessions, CSRF, cookies, the one-time setup code, throttling, security headers, the status
//! body, JSON logs and the audit trail of a scripted session.

use hearth_attest::evidence::Evidence;
use hearth_audit::{BreakKind, HeadCheck, verify_export};
use hearth_console::ROUTES;
use reqwest::{StatusCode, header};
use serde_json::json;

use crate::harness::{ADMIN, Daemon, PASSWORD, claim, client, create_user, json, login, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_code_works_once_and_cookies_are_locked_down() {
    let d = Daemon::start();
    let code = d.banner.setup_code.clone().unwrap();
    assert_eq!(code.len(), 14, "{code}");
    assert!(
        d.banner.recovery_key.is_some(),
        "first boot shows the recovery key"
    );
    assert_eq!(d.banner.cert_sha256.len(), 64);

    // A wrong code is refused and claims nothing.
    let resp = client()
        .post(d.url("/api/v1/setup"))
        .json(&json!({ "code": "0000-0000-0000", "name": "mallory", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (_, state) = json(client().get(d.url("/api/v1/setup")).send().await.unwrap()).await;
    assert_eq!(state["claimed"], false);

    // The right code (typed in lower case without dashes) claims, and sets a locked-down cookie.
    let typed = code.replace('-', "").to_lowercase();
    let resp = client()
        .post(d.url("/api/v1/setup"))
        .json(&json!({ "code": typed, "name": ADMIN, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let cookie = resp
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("__Host-hearth_session="), "{cookie}");
    for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            cookie.split("; ").any(|a| a == flag),
            "{flag} missing: {cookie}"
        );
    }
    assert!(!cookie.contains("Domain"), "{cookie}");

    // The same code again: refused, the first admin stays the only one.
    let resp = client()
        .post(d.url("/api/v1/setup"))
        .json(&json!({ "code": code, "name": "second", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let admin = login(&d, ADMIN, PASSWORD).await;
    let resp = client()
        .get(d.url("/api/v1/users"))
        .header(header::COOKIE, admin.cookie_header())
        .send()
        .await
        .unwrap();
    let (_, users) = json(resp).await;
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");

    // The setup page now sends people to the login page; a restart issues no new code.
    let resp = client().get(d.url("/setup")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let mut d = d;
    d.stop();
    // (Restarted with `[log] format = "json"`: checked below.)
    let text_log = d.log().len();
    d.extra_config = "\n[log]\nformat = \"json\"\n".to_owned();
    d.spawn();
    assert_eq!(d.banner.setup_code, None);
    assert_eq!(
        d.banner.recovery_key, None,
        "the recovery key is shown once only"
    );

    // JSON logs: every line hearthd writes is one JSON object with a time, a level, a target
    // and its fields, from start to stop.
    let resp = client().get(d.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    d.stop();
    let log = d.log();
    let lines: Vec<serde_json::Value> = log[text_log..]
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 4, "{log}");
    for line in &lines {
        assert!(
            line["timestamp"].as_str().is_some_and(|t| t.len() >= 20),
            "{line}"
        );
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
                .contains(&line["level"].as_str().unwrap_or("")),
            "{line}"
        );
        assert!(
            line["target"].as_str().is_some_and(|t| !t.is_empty()),
            "{line}"
        );
        assert!(line["fields"]["message"].is_string(), "{line}");
    }
    let has = |message: &str| {
        lines
            .iter()
            .find(|l| l["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line: {log}"))
    };
    assert_eq!(has("hearthd starting")["fields"]["profile"], "dev");
    assert_eq!(has("hearthd stopped")["level"], "INFO");
    assert!(
        lines.iter().any(|l| l["fields"]["component"] == "http"
            && l["fields"]["route"] == "/healthz"
            && l["fields"]["status"] == 200),
        "no request line: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_security_headers_and_body_limits() {
    let d = Daemon::start();
    let admin = claim(&d).await;

    // A form post with the session cookie but no CSRF token: 403, nothing created.
    let resp = client()
        .post(d.url("/users"))
        .header(header::COOKIE, admin.cookie_header())
        .form(&[("name", "eve"), ("password", PASSWORD), ("role", "admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // A wrong token: 403.
    let resp = client()
        .post(d.url("/users"))
        .header(header::COOKIE, admin.cookie_header())
        .form(&[
            ("csrf", "forged"),
            ("name", "eve"),
            ("password", PASSWORD),
            ("role", "admin"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // A cookie-authenticated API call without the header: 403.
    let resp = client()
        .post(d.url("/api/v1/users"))
        .header(header::COOKIE, admin.cookie_header())
        .json(&json!({ "name": "eve", "password": PASSWORD, "role": "admin" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // The login form needs its pre-login token too.
    let resp = client()
        .post(d.url("/login"))
        .form(&[("name", ADMIN), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // With the token, the form works.
    let resp = client()
        .post(d.url("/users"))
        .header(header::COOKIE, admin.cookie_header())
        .form(&[
            ("csrf", admin.csrf.as_str()),
            ("name", "eve"),
            ("password", PASSWORD),
            ("role", "operator"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = client()
        .get(d.url("/api/v1/users"))
        .header(header::COOKIE, admin.cookie_header())
        .send()
        .await
        .unwrap();
    let (_, users) = json(resp).await;
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&"eve") && names.contains(&ADMIN),
        "{names:?}"
    );

    // Security headers on pages and API answers alike.
    for path in ["/login", "/healthz"] {
        let resp = client().get(d.url(path)).send().await.unwrap();
        let h = resp.headers();
        let csp = h
            .get(header::CONTENT_SECURITY_POLICY)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(h.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff");
        assert_eq!(h.get(header::X_FRAME_OPTIONS).unwrap(), "DENY");
        assert!(h.get(header::STRICT_TRANSPORT_SECURITY).is_some());
    }
    // No inline script on any page: every GET page in the route table, as the admin (path
    // parameters name nothing, so those pages are error pages, which count too).
    let mut html_pages = Vec::new();
    for route in ROUTES.iter().filter(|r| r.page && r.method == "GET") {
        let path = route
            .path
            .replace("{name}", "none")
            .replace("{id}", "0123456789abcdef")
            .replace("{version}", "1");
        let resp = client()
            .get(d.url(&path))
            .header(header::COOKIE, admin.cookie_header())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let csp = resp
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(csp.contains("script-src 'self'"), "{path}: CSP {csp:?}");
        let html = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
        let body = resp.text().await.unwrap();
        assert!(
            status.is_success() || status.is_redirection() || status == StatusCode::NOT_FOUND,
            "{path}: {status} {body}"
        );
        if html {
            for tag in body.split("<script").skip(1) {
                let tag = tag.split('>').next().unwrap_or_default();
                assert!(tag.contains(" src="), "{path}: inline script in {body}");
            }
            assert!(!body.contains(" onclick="), "{path}: {body}");
            if status == StatusCode::OK {
                html_pages.push(route.path);
            }
        }
        if route.path == "/" {
            assert!(body.contains("id=\"tpm-kind\""), "{body}");
        }
    }
    for page in [
        "/",
        "/login",
        "/users",
        "/audit",
        "/attestation",
        "/datasets",
        "/jobs",
        "/models",
        "/endpoints",
    ] {
        assert!(
            html_pages.contains(&page),
            "{page} not seen: {html_pages:?}"
        );
    }

    // The status body, as the admin sees it.
    let (status, s) = json(
        client()
            .get(d.url("/api/v1/status"))
            .header(header::COOKIE, admin.cookie_header())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["profile"], "dev", "{s}");
    assert_eq!(s["tpm"]["kind"], "software", "{s}");
    assert_eq!(s["store"]["state"], "open", "{s}");
    // The harness's configuration keeps the defaults: sealed to sha256:7,11, quoting 0-15.
    assert_eq!(s["store"]["sealed_to"], "sha256:7,11", "{s}");
    let pcrs = s["pcrs"]["sha256"].as_object().unwrap();
    let mut indices: Vec<u8> = pcrs.keys().map(|k| k.parse().unwrap()).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..16).collect::<Vec<u8>>(), "{s}");
    for value in pcrs.values() {
        let value = value.as_str().unwrap();
        assert!(value.len() == 64 && hex::decode(value).is_ok(), "{value}");
    }
    assert!(s["pcrs_error"].is_null(), "{s}");
    let compute = s["compute"].as_array().unwrap();
    assert!(!compute.is_empty(), "{s}");
    assert!(compute.iter().all(|b| b["kind"].is_string()), "{s}");
    // The CPU backend says how it trains: mixed precision where the CPU has AVX-512 BF16.
    assert_eq!(compute[0]["kind"], "cpu", "{s}");
    let precision = if hearth_ml::bf16::available() {
        "mixed precision"
    } else {
        "float32"
    };
    assert!(
        compute[0]["detail"].as_str().unwrap().contains(precision),
        "{s}"
    );
    assert!(s["audit"]["records"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(
        s["tls"]["cert_sha256"],
        d.banner.cert_sha256.as_str(),
        "{s}"
    );
    assert_eq!(s["tls"]["ephemeral"], false, "{s}");

    // Bodies over 64 KiB are refused before anyone parses them.
    let resp = client()
        .post(d.url("/api/v1/login"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(format!(
            "{{\"name\":\"{}\",\"password\":\"x\"}}",
            "a".repeat(70_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Unknown fields are refused with a message naming them.
    let resp = client()
        .post(d.url("/api/v1/login"))
        .json(&json!({ "name": ADMIN, "password": PASSWORD, "admin": true }))
        .send()
        .await
        .unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = body["error"].as_str().unwrap_or_default();
    assert!(message.contains("unknown field `admin`"), "{body}");
    // Not JSON at all: a JSON error too, not a bare text.
    let resp = client()
        .post(d.url("/api/v1/login"))
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_throttling_engages() {
    let d = Daemon::start();
    let admin = claim(&d).await;
    create_user(&d, &admin, "bob", "operator").await;
    for i in 0..5 {
        let resp = client()
            .post(d.url("/api/v1/login"))
            .json(&json!({ "name": "bob", "password": format!("wrong password {i}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    // Now even the right password waits.
    let resp = client()
        .post(d.url("/api/v1/login"))
        .json(&json!({ "name": "bob", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp
        .headers()
        .get(header::RETRY_AFTER)
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&wait), "{wait}");
    // Other users are not locked out by bob's attacker.
    login(&d, ADMIN, PASSWORD).await;
    // After the wait, the right password works and resets the count.
    tokio::time::sleep(std::time::Duration::from_secs(wait + 1)).await;
    login(&d, "bob", PASSWORD).await;
    // Failures are counted in the metrics.
    let t = token(&d, &admin).await;
    let text = client()
        .get(d.url("/metrics"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("hearth_login_failures_total 5"), "{text}");
    assert!(
        text.contains("route=\"/api/v1/login\",status=\"429\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_chain_of_a_session_verifies_and_edits_are_named() {
    let mut d = Daemon::start();
    let admin = claim(&d).await;
    create_user(&d, &admin, "ann", "auditor").await;
    create_user(&d, &admin, "oscar", "operator").await;
    let resp = client()
        .post(d.url("/api/v1/users/oscar/role"))
        .header(header::COOKIE, admin.cookie_header())
        .header("x-csrf-token", &admin.csrf)
        .json(&json!({ "role": "auditor" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = client()
        .post(d.url("/api/v1/login"))
        .json(&json!({ "name": "oscar", "password": "not the password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    d.restart();
    let ann = login(&d, "ann", PASSWORD).await;
    let ann_token = token(&d, &ann).await;

    let resp = client()
        .get(d.url("/api/v1/audit/export"))
        .bearer_auth(&ann_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let head = resp
        .headers()
        .get("x-hearth-audit-head")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let export = resp.bytes().await.unwrap().to_vec();
    let report = verify_export(&export, None).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.head.hash.to_hex(), head);
    assert!(report.unfinished.is_empty(), "{:?}", report.unfinished);
    let text = String::from_utf8(export.clone()).unwrap();
    for action in [
        "system.start",
        "setup.issue-code",
        "setup.claim",
        "users.create",
        "users.set-role",
        "session.login",
        "system.stop",
        "tokens.create",
    ] {
        assert!(
            text.contains(&format!("\"action\":\"{action}\"")),
            "{action} missing:\n{text}"
        );
    }
    assert!(
        text.contains("wrong user name or password"),
        "the failed login is recorded"
    );

    // The attested audit head is this export's head: no mutation happened in between.
    let (_, ev) = json(
        client()
            .get(d.url("/api/v1/attestation"))
            .query(&[("nonce", "0a0b0c0d")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let ev = Evidence::from_json(ev.to_string().as_bytes()).unwrap();
    let attested = hearth_audit::Digest(ev.audit_head.unwrap().try_into().unwrap());
    assert_eq!(report.check_head(&attested), HeadCheck::Matches);

    // Edit one record (oscar's new role) in the export: rejected, naming that record.
    let lines: Vec<&str> = text.lines().collect();
    let idx = lines
        .iter()
        .position(|l| l.contains("users.set-role") && l.contains("\"started\""))
        .unwrap();
    let mut edited: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    edited[idx] = edited[idx].replace("role:auditor", "role:admin");
    assert_ne!(edited[idx], lines[idx]);
    let edited = edited.join("\n") + "\n";
    let report = verify_export(edited.as_bytes(), None).unwrap();
    let brk = report.first_break.unwrap();
    assert_eq!(brk.line, u64::try_from(idx).unwrap() + 1);
    assert!(matches!(brk.kind, BreakKind::HashMismatch { .. }), "{brk}");
    // And a deleted record.
    let mut deleted: Vec<&str> = lines.clone();
    deleted.remove(idx);
    let report = verify_export((deleted.join("\n") + "\n").as_bytes(), None).unwrap();
    assert!(report.first_break.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_and_disabled_users_stop_working_at_once() {
    let d = Daemon::start();
    let admin = claim(&d).await;
    create_user(&d, &admin, "tina", "operator").await;
    let tina = login(&d, "tina", PASSWORD).await;
    let status = |t: String| {
        let url = d.url("/api/v1/status");
        async move {
            client()
                .get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let first = token(&d, &tina).await;
    let second = token(&d, &tina).await;
    assert_eq!(status(first.clone()).await, StatusCode::OK);
    assert_eq!(
        status(first.clone()).await,
        StatusCode::OK,
        "validated twice (cached)"
    );
    // A wrong secret with a valid id is refused, cached or not.
    // hth_<16 hex id>_<secret>; the secret is base64url and may itself contain '_'.
    let id = &first["hth_".len().."hth_".len() + 16];
    assert_eq!(
        status(format!("hth_{id}_forged")).await,
        StatusCode::UNAUTHORIZED
    );

    let resp = client()
        .delete(d.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(status(first).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(second.clone()).await, StatusCode::OK);

    // Disabling the user ends their tokens and sessions.
    let resp = client()
        .post(d.url("/api/v1/users/tina/disable"))
        .header(header::COOKIE, admin.cookie_header())
        .header("x-csrf-token", &admin.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(status(second).await, StatusCode::UNAUTHORIZED);
    let resp = client()
        .get(d.url("/api/v1/status"))
        .header(header::COOKIE, tina.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The last admin cannot be disabled or demoted.
    let resp = client()
        .post(d.url(&format!("/api/v1/users/{ADMIN}/role")))
        .header(header::COOKIE, admin.cookie_header())
        .header("x-csrf-token", &admin.csrf)
        .json(&json!({ "role": "operator" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
}
