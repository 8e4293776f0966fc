//! The console in a real browser: headless Chromium driven over WebDriver (chromedriver)
//! claims the appliance, creates an operator, logs out and in again, and checks what each
//! role sees; then an admin approves, deploys, switches, rolls back and retires model versions,
//! issues and revokes an endpoint key and deletes the endpoint from the models and endpoints
//! pages. The console has no script; WebDriver only types and clicks.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::{StatusCode, header};
use serde_json::json;

use crate::harness::{ADMIN, Daemon, PASSWORD, client, json, login, token};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long to wait for a page or an element; the test machines are slow.
const WAIT: Duration = Duration::from_secs(20);
/// Where the overview's screenshot goes, for people to look at.
const SCREENSHOT: &str = "/tmp/hearth-console-overview.png";
const OPERATOR: &str = "opal";

/// A chromedriver on a free local port, killed on drop.
struct Chromedriver {
    child: Child,
    url: String,
    log: tempfile::NamedTempFile,
}

impl Chromedriver {
    async fn start() -> Chromedriver {
        for tool in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: the browser test needs Debian's chromium and chromium-driver; \
                 run `just setup`"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {CHROMEDRIVER}: {e}; run `just setup`"));
        let mut driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(exit) = driver.child.try_wait().unwrap() {
                panic!("chromedriver exited {exit:?} at start:\n{}", driver.log());
            }
            if let Ok(resp) = http.get(format!("{}/status", driver.url)).send().await
                && resp.status().is_success()
            {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer /status in 30 s:\n{}",
                driver.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new headless Chromium session that trusts the appliance's self-signed certificate.
async fn browser(driver: &Chromedriver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--ignore-certificate-errors",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    caps.insert("acceptInsecureCerts".to_owned(), json!(true));
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("no WebDriver session: {e}\n{}", driver.log()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_headless_chromium() {
    let driver = Chromedriver::start().await;
    let d = Daemon::start();
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    // Run the steps, then close the session whatever happened, then report.
    let outcome = tokio::time::timeout(Duration::from_secs(300), flow(&c, &d)).await;
    let page = match (&outcome, c.current_url().await) {
        (Ok(Ok(())), _) => String::new(),
        (_, Ok(url)) => format!(
            "browser at {url}:\n{}",
            c.source().await.unwrap_or_default()
        ),
        (_, Err(e)) => format!("browser gone: {e}"),
    };
    let closed = c.close().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!(
            "{e:#}\n\n{page}\n\nhearthd log:\n{}\n\nchromedriver log:\n{}",
            d.log(),
            driver.log()
        ),
        Err(_) => panic!(
            "the browser flow took over 300 s\n\n{page}\n\nhearthd log:\n{}",
            d.log()
        ),
    }
    closed.expect("closing the WebDriver session");
}

async fn flow(c: &Client, d: &Daemon) -> Result<()> {
    c.set_window_size(1280, 1000).await?;

    // An unclaimed appliance sends the first visitor to the setup page.
    c.goto(&d.url("/")).await?;
    wait_path(c, "/setup").await?;
    let code = d
        .banner
        .setup_code
        .clone()
        .context("an unclaimed appliance prints a setup code")?;
    element(c, "#code").await?.send_keys(&code).await?;
    element(c, "#name").await?.send_keys(ADMIN).await?;
    element(c, "#password").await?.send_keys(PASSWORD).await?;
    element(c, "#claim").await?.click().await?;

    // Claimed and logged in: the overview.
    wait_path(c, "/").await?;
    ensure_text(c, "#tpm-kind", "software").await?;
    ensure_text(c, "#store-state", "open").await?;
    ensure_text(c, "#cert-fingerprint", &d.banner.cert_sha256).await?;
    // The stylesheet loaded and applied under the CSP (#222 on the header bar).
    let bar = element(c, "header.top")
        .await?
        .css_value("background-color")
        .await?;
    ensure!(
        bar == "rgb(34, 34, 34)" || bar == "rgba(34, 34, 34, 1)",
        "header.top background-color {bar:?}: console.css not applied"
    );
    let css = client().get(d.url("/static/console.css")).send().await?;
    ensure!(
        css.status() == StatusCode::OK,
        "console.css: {}",
        css.status()
    );
    let ctype = css
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    ensure!(
        ctype.starts_with("text/css"),
        "console.css served as {ctype:?}"
    );
    let png = c.screenshot().await?;
    std::fs::write(SCREENSHOT, png).with_context(|| format!("writing {SCREENSHOT}"))?;

    // The admin's nav has Users; create an operator there.
    let links = nav_links(c).await?;
    ensure!(
        links.iter().any(|l| l == "Users"),
        "admin nav lacks Users: {links:?}"
    );
    c.find(Locator::LinkText("Users")).await?.click().await?;
    wait_path(c, "/users").await?;
    element(c, "#new-name").await?.send_keys(OPERATOR).await?;
    element(c, "#new-password")
        .await?
        .send_keys(PASSWORD)
        .await?;
    element(c, "#new-role")
        .await?
        .select_by_value("operator")
        .await?;
    element(c, "#create-user").await?.click().await?;
    wait_path(c, "/users").await?;
    let row = format!(
        "//table[contains(@class, 'users')]//tr[td[contains(@class, 'name') and normalize-space(.) = '{OPERATOR}']]"
    );
    let row = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(&row))
        .await
        .with_context(|| format!("{OPERATOR} not listed in table.users"))?;
    let role = row
        .find(Locator::Css("select"))
        .await?
        .prop("value")
        .await?;
    ensure!(
        role.as_deref() == Some("operator"),
        "{OPERATOR} has role {role:?}"
    );
    let mut names = Vec::new();
    for td in c.find_all(Locator::Css("table.users td.name")).await? {
        names.push(td.text().await?);
    }
    ensure!(
        names.iter().any(|n| n == ADMIN) && names.iter().any(|n| n == OPERATOR),
        "users listed: {names:?}"
    );

    // Log out: back to the login page.
    element(c, "form.logout button").await?.click().await?;
    wait_path(c, "/login").await?;

    // Log in as the operator: the overview, without the admin-only parts.
    element(c, "#name").await?.send_keys(OPERATOR).await?;
    element(c, "#password").await?.send_keys(PASSWORD).await?;
    element(c, "#login").await?.click().await?;
    wait_path(c, "/").await?;
    ensure_text(c, "#tpm-kind", "software").await?;
    let who = element(c, "header.top .who").await?.text().await?;
    ensure!(who.contains(OPERATOR), "logged in as {who:?}");
    let links = nav_links(c).await?;
    ensure!(
        links.iter().any(|l| l == "Attestation") && !links.iter().any(|l| l == "Users"),
        "operator nav: {links:?}"
    );
    ensure!(
        !links.iter().any(|l| l == "Audit"),
        "operator nav has Audit: {links:?}"
    );

    // Typing the admin page's address anyway: refused with an error page.
    c.goto(&d.url("/users")).await?;
    wait_path(c, "/users").await?;
    let error = element(c, "p.error").await?.text().await?;
    ensure!(error.contains("may not"), "/users as operator: {error:?}");
    ensure!(
        c.find_all(Locator::Css("table.users")).await?.is_empty(),
        "the operator was shown the users table"
    );
    ensure_text(c, "h1", "Forbidden").await?;
    models_flow(c, d).await
}

/// The registry and serving forms. Two trained versions come through the API; everything after
/// that is clicks.
async fn models_flow(c: &Client, d: &Daemon) -> Result<()> {
    let admin = login(d, ADMIN, PASSWORD).await;
    let t = token(d, &admin).await;
    upload(d, &t, "churn", 400).await?;
    for seed in [1, 2] {
        let resp = client()
            .post(d.url("/api/v1/jobs"))
            .bearer_auth(&t)
            .json(&json!({"dataset": "churn", "target": "y", "model": "logreg", "epochs": 5, "seed": seed}))
            .send()
            .await?;
        let (status, job) = json(resp).await;
        ensure!(status == StatusCode::ACCEPTED, "train: {status} {job}");
        crate::models::wait_done(d, &t, job["id"].as_str().context("job id")?).await;
    }

    // The operator (still logged in) trains through the form: an MLP in float32 on a second
    // dataset (its own model, so the versions below stay two).
    upload(d, &t, "churn2", 300).await?;
    c.goto(&d.url("/jobs")).await?;
    wait_path(c, "/jobs").await?;
    element(c, "#job-dataset")
        .await?
        .send_keys("churn2")
        .await?;
    element(c, "#job-target").await?.send_keys("y").await?;
    element(c, "#job-model")
        .await?
        .select_by_value("mlp")
        .await?;
    element(c, "#job-hidden").await?.send_keys("16").await?;
    let epochs = element(c, "#job-epochs").await?;
    epochs.clear().await?;
    epochs.send_keys("3").await?;
    element(c, "#job-precision")
        .await?
        .select_by_value("f32")
        .await?;
    element(c, "#start-job").await?.click().await?;
    let deadline = Instant::now() + WAIT;
    let id = loop {
        let url = c.current_url().await?;
        if let Some(id) = url.path().strip_prefix("/jobs/").filter(|i| !i.is_empty()) {
            break id.to_owned();
        }
        ensure!(Instant::now() < deadline, "the job form led to {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    crate::models::wait_done(d, &t, &id).await;
    c.goto(&d.url(&format!("/jobs/{id}"))).await?;
    ensure_text(c, "#job-state", "done").await?;
    let line = element(c, "#job p").await?.text().await?;
    ensure!(line.contains("backend cpu · "), "job page: {line:?}");
    let (_, job) = json(
        client()
            .get(d.url(&format!("/api/v1/jobs/{id}")))
            .bearer_auth(&t)
            .send()
            .await?,
    )
    .await;
    ensure!(
        job["spec"]["precision"] == "f32" && job["spec"]["hidden"] == json!([16]),
        "the form's job: {job}"
    );

    // The operator sees the candidate but no approve or retire button.
    c.goto(&d.url("/models/churn-y/1")).await?;
    wait_path(c, "/models/churn-y/1").await?;
    ensure_text(c, "strong.stage-candidate", "candidate").await?;
    for button in ["#approve-model", "#retire-model", "#export-model"] {
        ensure!(
            c.find_all(Locator::Css(button)).await?.is_empty(),
            "the operator was offered {button}"
        );
    }

    // The admin approves version 1 and deploys it from its page.
    element(c, "form.logout button").await?.click().await?;
    wait_path(c, "/login").await?;
    element(c, "#name").await?.send_keys(ADMIN).await?;
    element(c, "#password").await?.send_keys(PASSWORD).await?;
    element(c, "#login").await?.click().await?;
    wait_path(c, "/").await?;
    for v in [1, 2] {
        c.goto(&d.url(&format!("/models/churn-y/{v}"))).await?;
        element(c, "#approve-model").await?.click().await?;
        wait_path(c, &format!("/models/churn-y/{v}")).await?;
        ensure_text(c, "strong.stage-approved", "approved").await?;
    }
    c.goto(&d.url("/models/churn-y/1")).await?;
    element(c, "#deploy-endpoint")
        .await?
        .send_keys("churn")
        .await?;
    element(c, "#deploy-model").await?.click().await?;
    wait_path(c, "/endpoints").await?;
    ensure_cell(c, "churn", 2, "churn-y@1").await?;
    ensure_cell(c, "churn", 3, "serving").await?;

    // Switch to version 2 from the endpoints page, then roll back.
    element(c, "#deploy-endpoint")
        .await?
        .send_keys("churn")
        .await?;
    element(c, "select#deploy-model")
        .await?
        .select_by_value("churn-y@2")
        .await?;
    element(c, "#deploy").await?.click().await?;
    wait_path(c, "/endpoints").await?;
    ensure_cell(c, "churn", 2, "churn-y@2").await?;

    // A key for an application, its secret shown once; it predicts.
    element(c, "#key-app").await?.send_keys("crm").await?;
    element(c, "#key-endpoints")
        .await?
        .send_keys("churn")
        .await?;
    element(c, "#create-key").await?.click().await?;
    wait_path(c, "/endpoint-keys").await?;
    let secret = element(c, "#key-secret").await?.text().await?;
    let secret = secret.trim().to_owned();
    ensure!(secret.starts_with("hep_"), "key secret {secret:?}");
    let predict = || {
        client()
            .post(d.url("/v1/endpoints/churn/predict"))
            .bearer_auth(&secret)
            .json(&json!({"rows": [crate::models::row(1)]}))
            .send()
    };
    let (status, out) = json(predict().await?).await;
    ensure!(
        status == StatusCode::OK && out["version"] == 2,
        "predict: {status} {out}"
    );

    c.goto(&d.url("/endpoints")).await?;
    element(c, "button.rollback").await?.click().await?;
    wait_path(c, "/endpoints").await?;
    ensure_cell(c, "churn", 2, "churn-y@1").await?;
    let (status, out) = json(predict().await?).await;
    ensure!(
        status == StatusCode::OK && out["version"] == 1,
        "after rollback: {status} {out}"
    );
    let listed = c.source().await?;
    ensure!(
        !listed.contains(&secret[20..]),
        "the endpoints page shows the key's secret"
    );

    // Retire version 1 (the box must be ticked): the endpoint stops.
    c.goto(&d.url("/models/churn-y/1")).await?;
    element(c, "#retire-confirm").await?.click().await?;
    element(c, "#retire-model").await?.click().await?;
    wait_path(c, "/models/churn-y/1").await?;
    ensure_text(c, "strong.stage-retired", "retired").await?;
    let (status, out) = json(predict().await?).await;
    ensure!(
        status == StatusCode::GONE,
        "predict on a retired version: {status} {out}"
    );
    c.goto(&d.url("/endpoints")).await?;
    ensure_cell(c, "churn", 3, "stopped (retired)").await?;

    // Revoke the key: the application is refused.
    let revoke = "//table[contains(@class, 'keys')]//tr[td[normalize-space(.) = 'crm']]//button";
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(revoke))
        .await?
        .click()
        .await?;
    wait_path(c, "/endpoints").await?;
    wait_xpath_text(
        c,
        "//table[contains(@class, 'keys')]//tr[td[normalize-space(.) = 'crm']]/td[5]",
        "revoked",
    )
    .await?;
    let (status, _) = json(predict().await?).await;
    ensure!(status == StatusCode::UNAUTHORIZED, "revoked key: {status}");

    // Delete the endpoint: it leaves the list. (The form posts from /endpoints and lands on
    // /endpoints again, so wait for the button to go rather than for the path.)
    element(c, "button.delete-endpoint").await?.click().await?;
    let deadline = Instant::now() + WAIT;
    while !c
        .find_all(Locator::Css("button.delete-endpoint"))
        .await?
        .is_empty()
    {
        ensure!(
            Instant::now() < deadline,
            "the deleted endpoint is still listed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_path(c, "/endpoints").await?;
    let (status, eps) = json(
        client()
            .get(d.url("/api/v1/endpoints"))
            .bearer_auth(&t)
            .send()
            .await?,
    )
    .await;
    ensure!(
        status == StatusCode::OK && eps == json!([]),
        "after delete: {status} {eps}"
    );

    // Every click left its record in the audit log.
    let resp = client()
        .get(d.url("/api/v1/audit/export"))
        .bearer_auth(&t)
        .send()
        .await?;
    let audit = resp.text().await?;
    for action in [
        "models.approve",
        "endpoints.deploy",
        "endpoints.rollback",
        "keys.create",
        "keys.revoke",
        "models.retire",
        "endpoints.delete",
    ] {
        ensure!(audit.contains(action), "no {action} in the audit log");
    }
    Ok(())
}

/// Waits for cell `col` (1-based) of endpoint `name`'s row to read `want`.
/// Uploads `rows` rows of the models tests' table as dataset `name`, through the API.
async fn upload(d: &Daemon, t: &str, name: &str, rows: usize) -> Result<()> {
    let resp = client()
        .post(d.url(&format!("/api/v1/datasets/{name}")))
        .bearer_auth(t)
        .body(crate::models::csv(rows))
        .send()
        .await?;
    ensure!(
        resp.status() == StatusCode::CREATED,
        "upload {name}: {}",
        resp.status()
    );
    Ok(())
}

async fn ensure_cell(c: &Client, name: &str, col: usize, want: &str) -> Result<()> {
    let xpath = format!(
        "//table[contains(@class, 'endpoints')]//tr[td[1][normalize-space(.) = '{name}']]/td[{col}]"
    );
    wait_xpath_text(c, &xpath, want)
        .await
        .with_context(|| format!("endpoint {name} column {col}"))
}

/// Waits until the element at `xpath` reads `want`. A form posted from the page it returns to
/// leaves the old page up until the new one loads, so the path alone does not say it is done.
async fn wait_xpath_text(c: &Client, xpath: &str, want: &str) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    let mut last = String::new();
    loop {
        // The element may go stale while the page reloads: read again.
        if let Ok(e) = c.find(Locator::XPath(xpath)).await
            && let Ok(text) = e.text().await
        {
            if text.trim() == want {
                return Ok(());
            }
            last = text;
        }
        if Instant::now() >= deadline {
            bail!("{xpath}: {last:?}, expected {want:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The element `css` once it is there.
async fn element(c: &Client, css: &str) -> Result<fantoccini::elements::Element> {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .with_context(|| format!("no {css} within {} s", WAIT.as_secs()))
}

/// Waits for `css` to be there with the text `want`.
async fn ensure_text(c: &Client, css: &str, want: &str) -> Result<()> {
    let got = element(c, css).await?.text().await?;
    ensure!(got.trim() == want, "{css}: {got:?}, expected {want:?}");
    Ok(())
}

/// Waits until the browser is at `path` on the appliance, with the page loaded.
async fn wait_path(c: &Client, path: &str) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let url = c.current_url().await?;
        if url.path() == path {
            let ready = c.execute("return document.readyState", Vec::new()).await?;
            if ready == "complete" {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            bail!("browser at {url}, expected {path}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The texts of the header's nav links.
async fn nav_links(c: &Client) -> Result<Vec<String>> {
    element(c, "header.top nav").await?;
    let mut links = Vec::new();
    for a in c.find_all(Locator::Css("header.top nav a")).await? {
        links.push(a.text().await?);
    }
    Ok(links)
}
