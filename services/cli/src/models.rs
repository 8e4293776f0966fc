//! `hearth models …`, `hearth deploy`, `hearth endpoints …` and `hearth predict`: the model
//! registry on a running appliance (list, show, approve, retire, export a signed bundle), offline
//! verification of a bundle, deploying a version to an endpoint, rolling it back, endpoint API
//! keys, and predicting through an endpoint.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::api::{Connection, UsageError, encode};
use crate::render::{self, print_value, table, text};

/// Largest bundle downloaded or read.
const MAX_BUNDLE: usize = hearth_ml::card::MAX_BUNDLE_BYTES;
/// Largest predict body read from stdin.
const MAX_ROWS_INPUT: u64 = 1 << 20;

#[derive(Args, Debug)]
pub struct ModelsArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: ModelsCommand,
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// List model versions: stage, task, data, test metrics.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a version: lineage, metrics, inputs, its signed card.
    Show {
        /// `NAME@VERSION`.
        model: String,
        #[arg(long)]
        json: bool,
    },
    /// Approve a candidate for serving (admins).
    Approve { model: String },
    /// Retire a version: endpoints serving it stop and its weights are crypto-erased (admins).
    Retire { model: String },
    /// Download a signed bundle (weights, card, lineage, signatures) (admins; egress policy).
    Export {
        model: String,
        /// Where to write the bundle.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a bundle offline: signatures, digests, lineage. Exit 0 trusted, 1 not.
    Verify {
        bundle: PathBuf,
        /// The SHA-256 (hex) the appliance's attestation evidence binds as its model-signing
        /// key (`model_signing_key_sha256`): the bundle must be signed by that key.
        #[arg(long, value_name = "SHA256")]
        key_sha256: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// `NAME@VERSION` (an approved version).
    pub model: String,
    /// The endpoint to create or switch.
    #[arg(long)]
    pub endpoint: String,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// The appliance's console, `https://HOST[:PORT]`.
    #[arg(long, env = "HEARTH_URL", value_name = "https://HOST:PORT")]
    pub url: Option<String>,
    /// An endpoint API key (`hep_…`).
    #[arg(long, env = "HEARTH_ENDPOINT_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// SHA-256 of the console's TLS certificate (see `--fingerprint` elsewhere).
    #[arg(long, env = "HEARTH_FINGERPRINT", value_name = "SHA256")]
    pub fingerprint: Option<String>,
    /// The endpoint.
    pub endpoint: String,
}

#[derive(Args, Debug)]
pub struct EndpointsArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: EndpointsCommand,
}

#[derive(Subcommand, Debug)]
pub enum EndpointsCommand {
    /// List endpoints: the version each serves, traffic and latency.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Put an endpoint back on the version it served before (without dropping requests).
    Rollback { endpoint: String },
    /// Delete an endpoint: it stops serving at once (its keys stay; revoke them separately).
    Delete { endpoint: String },
    /// Endpoint API keys for applications.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// List keys (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Issue a key for an application: the secret goes to stdout, once.
    Create {
        /// The application it is for.
        #[arg(long)]
        app: String,
        /// An endpoint it may call (repeat for more).
        #[arg(long = "endpoint", required = true, value_name = "NAME")]
        endpoints: Vec<String>,
        /// Most requests per second the application may make (a second's worth may come at
        /// once; beyond it, 429 with Retry-After) [default: no limit].
        #[arg(long, value_name = "N")]
        rate: Option<u32>,
    },
    /// Revoke a key by its id (effective on the next request).
    Revoke { id: String },
}

fn endpoints_table(list: &Value) -> String {
    let items = list.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return "no endpoints yet: `hearth deploy MODEL@VERSION --endpoint NAME`\n".into();
    }
    let ms = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_f64)
            .map_or_else(|| "-".to_owned(), |s| format!("<= {:.2} ms", s * 1000.0))
    };
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|e| {
            vec![
                text(e, "name"),
                format!("{}@{}", text(e, "model"), text(e, "version")),
                if e["serving"] == true {
                    "serving".to_owned()
                } else {
                    "stopped (retired)".to_owned()
                },
                text(e, "requests"),
                ms(e, "p50_seconds"),
                ms(e, "p99_seconds"),
                e["history"]
                    .as_array()
                    .and_then(|h| h.last())
                    .map_or_else(|| "-".to_owned(), |v| format!("@{v}")),
            ]
        })
        .collect();
    table(
        &[
            "ENDPOINT", "MODEL", "STATUS", "REQUESTS", "P50", "P99", "ROLLBACK",
        ],
        &rows,
    )
}

fn keys_table(list: &Value) -> String {
    let items = list.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return "no endpoint keys yet: `hearth endpoints keys create --app APP --endpoint NAME`\n"
            .into();
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|k| {
            vec![
                text(k, "id"),
                text(k, "app"),
                k["endpoints"]
                    .as_array()
                    .map(|e| e.iter().map(render::scalar).collect::<Vec<_>>().join(","))
                    .unwrap_or_default(),
                text(k, "created_by"),
                if k["revoked"] == true {
                    "revoked".to_owned()
                } else {
                    "active".to_owned()
                },
                k["requests_per_second"]
                    .as_u64()
                    .map_or_else(|| "none".to_owned(), |r| format!("{r}/s")),
            ]
        })
        .collect();
    table(
        &["ID", "APP", "ENDPOINTS", "CREATED BY", "STATE", "LIMIT"],
        &rows,
    )
}

pub async fn endpoints(args: EndpointsArgs) -> Result<u8> {
    let client = args.connection.client()?;
    match args.command {
        EndpointsCommand::List { json } => {
            let list: Value = client.get("/api/v1/endpoints").await?;
            print_value(&list, json, endpoints_table)?;
        }
        EndpointsCommand::Rollback { endpoint } => {
            let e: Value = client
                .post(
                    &format!("/api/v1/endpoints/{}/rollback", encode(&endpoint)),
                    &json!({}),
                )
                .await?;
            println!(
                "endpoint {} serves {}@{}",
                text(&e, "name"),
                text(&e, "model"),
                text(&e, "version")
            );
        }
        EndpointsCommand::Delete { endpoint } => {
            let e = client
                .delete(&format!("/api/v1/endpoints/{}", encode(&endpoint)))
                .await?;
            println!(
                "endpoint {} deleted (it served {}@{})",
                text(&e, "name"),
                text(&e, "model"),
                text(&e, "version")
            );
        }
        EndpointsCommand::Keys(KeysCommand::List { json }) => {
            let list: Value = client.get("/api/v1/endpoint-keys").await?;
            print_value(&list, json, keys_table)?;
        }
        EndpointsCommand::Keys(KeysCommand::Create {
            app,
            endpoints,
            rate,
        }) => {
            let k: Value = client
                .post(
                    "/api/v1/endpoint-keys",
                    &json!({ "app": app, "endpoints": endpoints, "requests_per_second": rate }),
                )
                .await?;
            eprintln!(
                "key {} for application {}, endpoints {}: the secret below is shown only now \
                 (Hearth keeps its SHA-256); applications send it as `Authorization: Bearer KEY`",
                text(&k["key"], "id"),
                text(&k["key"], "app"),
                endpoints.join(",")
            );
            let secret = k["secret"]
                .as_str()
                .filter(|s| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
                .context("the appliance answered without a well-formed key secret")?;
            println!("{secret}");
        }
        EndpointsCommand::Keys(KeysCommand::Revoke { id }) => {
            let k = client
                .delete(&format!("/api/v1/endpoint-keys/{}", encode(&id)))
                .await?;
            println!(
                "key {} of application {} is revoked",
                text(&k, "id"),
                text(&k, "app")
            );
        }
    }
    Ok(0)
}

fn model_ref(s: &str) -> Result<(String, u32), UsageError> {
    hearth_ml::registry::parse_ref(s)
        .map(|(n, v)| (n.to_owned(), v))
        .ok_or_else(|| UsageError(format!("{s:?}: expected NAME@VERSION, e.g. churn-y@1")))
}

fn metrics_text(v: &Value) -> String {
    v.get("metrics")
        .and_then(Value::as_object)
        .map(|m| {
            ["accuracy", "roc_auc", "r2", "rmse"]
                .iter()
                .filter_map(|k| {
                    m.get(*k)
                        .and_then(Value::as_f64)
                        .map(|x| format!("{k} {x:.3}"))
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn list_table(list: &Value) -> String {
    let items = list.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return "no models yet: every finished training job registers one\n".into();
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|m| {
            vec![
                format!("{}@{}", text(m, "name"), text(m, "version")),
                text(m, "stage"),
                format!("{} of {}", text(m, "task"), text(m, "target")),
                m.get("datasets")
                    .and_then(Value::as_array)
                    .map(|d| d.iter().map(render::scalar).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default(),
                metrics_text(m),
            ]
        })
        .collect();
    table(&["MODEL", "STAGE", "TASK", "DATA", "TEST METRICS"], &rows)
}

fn detail(m: &Value) -> String {
    let l = &m["lineage"];
    let mut out = format!(
        "model     {}@{}\nstage     {}\ntask      {} of {}\n",
        text(m, "name"),
        text(m, "version"),
        text(m, "stage"),
        text(m, "task"),
        text(m, "target")
    );
    for d in l["datasets"].as_array().cloned().unwrap_or_default() {
        out.push_str(&format!(
            "data      {}@{} ({} rows, sha256 {})\n",
            text(&d, "name"),
            text(&d, "version"),
            text(&d, "rows"),
            text(&d, "sha256")
        ));
    }
    out.push_str(&format!(
        "job       {} by {} on {}\npcr 11    {}\nhearth    {}\nweights   sha256 {}\nmetrics   {}\nsigned by {}\n",
        text(l, "job"),
        text(l, "trained_by"),
        text(l, "backend"),
        text(l, "pcr11"),
        text(l, "hearth_version"),
        text(m, "weights_sha256"),
        metrics_text(&m["report"]),
        text(m, "signing_key"),
    ));
    out
}

pub async fn models(args: ModelsArgs) -> Result<u8> {
    if let ModelsCommand::Verify {
        bundle,
        key_sha256,
        json,
    } = &args.command
    {
        return verify(bundle, key_sha256.as_deref(), *json);
    }
    let client = args.connection.client()?;
    match args.command {
        ModelsCommand::List { json } => {
            let list: Value = client.get("/api/v1/models").await?;
            print_value(&list, json, list_table)?;
        }
        ModelsCommand::Show { model, json } => {
            let (name, version) = model_ref(&model)?;
            let m: Value = client
                .get(&format!("/api/v1/models/{}/{version}", encode(&name)))
                .await?;
            print_value(&m, json, detail)?;
        }
        ModelsCommand::Approve { model } => stage(&client, &model, "approve").await?,
        ModelsCommand::Retire { model } => stage(&client, &model, "retire").await?,
        ModelsCommand::Export { model, out } => {
            let (name, version) = model_ref(&model)?;
            let bytes = client
                .post_bytes(
                    &format!("/api/v1/models/{}/{version}/export", encode(&name)),
                    MAX_BUNDLE,
                )
                .await?;
            std::fs::write(&out, &bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "wrote {} ({}): verify it with `hearth models verify {}`",
                out.display(),
                render::bytes(bytes.len() as u64),
                out.display()
            );
        }
        ModelsCommand::Verify { .. } => {}
    }
    Ok(0)
}

async fn stage(client: &crate::api::Client, model: &str, verb: &str) -> Result<()> {
    let (name, version) = model_ref(model)?;
    let m: Value = client
        .post(
            &format!("/api/v1/models/{}/{version}/{verb}", encode(&name)),
            &json!({}),
        )
        .await?;
    println!("{name}@{version} is {}", text(&m, "stage"));
    Ok(())
}

fn verify(bundle: &PathBuf, key_sha256: Option<&str>, json: bool) -> Result<u8> {
    let expected = key_sha256
        .map(|k| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(k.trim(), &mut out)
                .map_err(|_| UsageError("--key-sha256: 64 hex digits".into()))?;
            Ok::<_, UsageError>(out)
        })
        .transpose()?;
    let file =
        std::fs::File::open(bundle).with_context(|| format!("cannot read {}", bundle.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_BUNDLE as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", bundle.display()))?;
    let verdict = match hearth_ml::card::verify_bundle(&bytes, expected.as_ref()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("not trusted: {e}");
            return Ok(crate::EXIT_NOT_TRUSTED);
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&verdict)?);
    } else {
        println!(
            "bundle {} signed by key sha256 {}",
            verdict.model.as_deref().unwrap_or("(unnamed)"),
            verdict.public_key_sha256
        );
        for c in &verdict.checks {
            println!(
                "  {} {:<17} {}",
                if c.passed { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        println!(
            "{}",
            if verdict.trusted() {
                "trusted"
            } else {
                "NOT TRUSTED"
            }
        );
        if expected.is_none() {
            eprintln!(
                "note: the signing key was not pinned: pass --key-sha256 with the \
                 model_signing_key_sha256 of the appliance's verified attestation evidence"
            );
        }
    }
    Ok(if verdict.trusted() {
        0
    } else {
        crate::EXIT_NOT_TRUSTED
    })
}

pub async fn deploy(args: DeployArgs) -> Result<u8> {
    let (name, version) = model_ref(&args.model)?;
    let client = args.connection.client()?;
    let e: Value = client
        .post(
            &format!("/api/v1/endpoints/{}", encode(&args.endpoint)),
            &json!({ "model": format!("{name}@{version}") }),
        )
        .await?;
    println!(
        "endpoint {} serves {}@{}",
        text(&e, "name"),
        text(&e, "model"),
        text(&e, "version")
    );
    Ok(0)
}

/// The predict body from stdin: `{"rows": [...]}` as is, or a bare array of rows wrapped.
fn rows_body(input: &[u8]) -> Result<Value, UsageError> {
    let v: Value = serde_json::from_slice(input)
        .map_err(|e| UsageError(format!("stdin is not JSON rows: {e}")))?;
    Ok(match v {
        Value::Array(_) => json!({ "rows": v }),
        other => other,
    })
}

pub async fn predict(args: PredictArgs) -> Result<u8> {
    let connection = Connection {
        url: args.url,
        token: args.key,
        fingerprint: args.fingerprint,
    };
    let client = connection.client()?;
    let mut input = Vec::new();
    std::io::stdin()
        .take(MAX_ROWS_INPUT + 1)
        .read_to_end(&mut input)
        .context("cannot read rows from stdin")?;
    if input.len() as u64 > MAX_ROWS_INPUT {
        return Err(UsageError("more than 1 MiB of rows on stdin".into()).into());
    }
    let body = rows_body(&input)?;
    let out: Value = client
        .post(
            &format!("/v1/endpoints/{}/predict", encode(&args.endpoint)),
            &body,
        )
        .await?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rows_come_bare_or_wrapped() {
        assert_eq!(rows_body(b"[[1,2]]").unwrap(), json!({"rows": [[1, 2]]}));
        assert_eq!(
            rows_body(br#"{"rows":[{"a":1}]}"#).unwrap(),
            json!({"rows": [{"a": 1}]})
        );
        rows_body(b"nope").unwrap_err();
        model_ref("churn").unwrap_err();
        assert_eq!(model_ref("a-b@3").unwrap(), ("a-b".into(), 3));
    }
}
