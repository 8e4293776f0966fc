//! A store sealed to PCRs that then move comes up locked, names them, keeps attestation
//! working, and opens with the recovery key (which re-seals to the new values), over the API
//! and with the HTML form.

use hearth_attest::evidence::Evidence;
use reqwest::{StatusCode, header};
use serde_json::json;

use crate::harness::{ADMIN, Daemon, PASSWORD, claim, client, json, login, set_cookie, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_pcrs_lock_the_store_and_the_recovery_key_opens_it() {
    let mut d = Daemon::start();
    let admin = claim(&d).await;
    let recovery = d.banner.recovery_key.clone().unwrap();
    let first_cert = d.banner.cert_sha256.clone();
    let admin_token = token(&d, &admin).await;

    // Something changes the measurements (sealed to sha256:7,11 by default): PCR 11 moves.
    d.stop();
    {
        let mut tpm = hearth_tpm::Tpm::open(&d.swtpm.config()).unwrap();
        tpm.pcr_extend(11, b"an unexpected kernel").unwrap();
    }
    d.spawn();
    let reason = d
        .banner
        .locked
        .clone()
        .expect("hearthd says the store is locked");
    assert!(reason.contains("PCR 11 changed"), "{reason}");
    assert_ne!(
        d.banner.cert_sha256, first_cert,
        "a temporary TLS key while locked"
    );

    // Health names the PCRs without a login.
    let (status, health) = json(client().get(d.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["store"]["state"], "locked");
    assert_eq!(health["store"]["changed_pcrs"], json!([11]));

    // Public routes ignore credentials: a token, which cannot be checked while locked, does not
    // make them fail.
    let resp = client()
        .get(d.url("/healthz"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = client()
        .get(d.url("/api/v1/attestation"))
        .query(&[("nonce", "beef")])
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // Nothing that needs the store works: not tokens, not logins.
    let resp = client()
        .get(d.url("/api/v1/status"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let resp = client()
        .post(d.url("/api/v1/login"))
        .json(&json!({ "name": ADMIN, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The console sends everyone to the unlock page, which names the PCR.
    let resp = client().get(d.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers().get(header::LOCATION).unwrap(), "/unlock");
    let page = client()
        .get(d.url("/unlock"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("class=\"pcr\">11<"), "{page}");

    // Attestation keeps working, so an auditor can see why; it binds the temporary key and has
    // no audit head (the audit key is sealed too).
    let resp = client()
        .get(d.url("/api/v1/attestation"))
        .query(&[("nonce", "cafe")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ev = Evidence::from_json(&resp.bytes().await.unwrap()).unwrap();
    assert!(ev.tls_spki_sha256.is_some());
    assert_eq!(ev.audit_head, None);

    // A malformed key and a wrong key are refused.
    let resp = client()
        .post(d.url("/api/v1/unlock"))
        .json(&json!({ "recovery_key": "not a key" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let other = hearth_store::RecoveryKey::generate().unwrap();
    let resp = client()
        .post(d.url("/api/v1/unlock"))
        .json(&json!({ "recovery_key": other.to_display_string().as_str() }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // The recovery key opens it; logins work again and the unlock is audited.
    let (status, body) = json(
        client()
            .post(d.url("/api/v1/unlock"))
            .json(&json!({ "recovery_key": recovery }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["store"]["state"], "open");
    let admin = login(&d, ADMIN, PASSWORD).await;
    let export = client()
        .get(d.url("/api/v1/audit/export"))
        .header(header::COOKIE, admin.cookie_header())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(export.contains("\"action\":\"store.unlock\""), "{export}");
    let report = hearth_audit::verify_export(export.as_bytes(), None).unwrap();
    assert!(report.is_intact(), "{report:?}");

    // Re-sealed to the new measurements: the next start is unlocked, with the stored TLS key.
    d.restart();
    assert_eq!(d.banner.locked, None, "{}", d.log());
    assert_eq!(d.banner.cert_sha256, first_cert);
    login(&d, ADMIN, PASSWORD).await;

    // They move again: locked again, and the same recovery key opens it with the HTML form.
    d.stop();
    {
        let mut tpm = hearth_tpm::Tpm::open(&d.swtpm.config()).unwrap();
        tpm.pcr_extend(11, b"the next kernel").unwrap();
    }
    d.spawn();
    assert!(d.banner.locked.is_some(), "{}", d.log());
    let resp = client().get(d.url("/unlock")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = set_cookie(&resp, "__Host-hearth_csrf").expect("a pre-login CSRF cookie");
    let page = resp.text().await.unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form carries the CSRF token");
    assert_eq!(csrf, cookie);
    let resp = client()
        .post(d.url("/unlock"))
        .header(header::COOKIE, format!("__Host-hearth_csrf={cookie}"))
        .form(&[("csrf", csrf), ("recovery_key", recovery.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{}", d.log());
    assert_eq!(resp.headers().get(header::LOCATION).unwrap(), "/login");
    let (_, health) = json(client().get(d.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(health["store"]["state"], "open", "{health}");
    login(&d, ADMIN, PASSWORD).await;
}
