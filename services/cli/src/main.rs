//! `hearth`: the command line for IT, operators and auditors. Parses arguments, calls the
//! libraries or a running appliance's API, reports.
//!
//! Exit codes: 0 success, 1 error, 2 usage, 3 policy mismatch (the PCRs a secret was sealed to
//! have changed), 4 TPM or appliance unreachable (or the TPM busy). `hearth verify` and `hearth
//! audit verify`: 0 trusted (intact), 1 not trusted (broken), 2 unusable input. `hearth train`:
//! 0 the job is done, 1 it failed or was cancelled, 130 stopped following with Ctrl-C. `hearth
//! models verify`: 0 trusted, 1 not trusted.

mod api;
mod attest;
mod audit;
mod datasets;
mod eventlog;
mod fetch;
mod jobs;
mod models;
mod render;
mod tpm;

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hearth_tpm::{TpmConfig, TpmError, Transport};

#[derive(Parser, Debug)]
#[command(
    name = "hearth",
    version,
    about = "Hearth appliance tools for IT, operators and auditors"
)]
struct Cli {
    /// Which TPM: `device:/dev/tpmrm0` or `swtpm:host=H,port=P`.
    #[arg(
        long,
        global = true,
        env = "HEARTH_TCTI",
        default_value = "device:/dev/tpmrm0"
    )]
    tcti: String,

    /// Give up on a TPM that does not answer within this many milliseconds.
    #[arg(long, global = true, default_value_t = 10_000, value_name = "MS")]
    timeout_ms: u64,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Talk to the TPM: PCRs, sealing, quotes, counters.
    #[command(subcommand)]
    Tpm(tpm::TpmCommand),
    /// Read measured-boot event logs: events, descriptions, replayed PCRs.
    #[command(subcommand)]
    Eventlog(eventlog::EventlogCommand),
    /// Produce evidence (on the appliance) and capture references (known-good values).
    #[command(subcommand)]
    Attest(attest::AttestCommand),
    /// Verify evidence against references, every check listed: evidence from a file (offline) or
    /// fetched live from a running appliance (`hearth verify https://HOST:PORT`).
    Verify(attest::VerifyArgs),
    /// Check an exported audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Datasets on an appliance: upload CSV files, list, show schema, quality and personal data,
    /// pseudonymize columns (needs --url and --token).
    Datasets(datasets::DatasetsArgs),
    /// Train a model on a dataset on an appliance and follow it epoch by epoch (needs --url and
    /// --token).
    Train(jobs::TrainArgs),
    /// Training jobs on an appliance: list, show, cancel (needs --url and --token).
    Jobs(jobs::JobsArgs),
    /// The model registry: list, show, approve, retire, export a signed bundle (needs --url and
    /// --token); verify a bundle offline.
    Models(models::ModelsArgs),
    /// Deploy an approved model version to an endpoint (created, or switched without dropping
    /// requests).
    Deploy(models::DeployArgs),
    /// Endpoints: list them with their traffic, roll one back, and issue, list and revoke
    /// endpoint API keys (needs --url and --token).
    Endpoints(models::EndpointsArgs),
    /// Predict through an endpoint: JSON rows on stdin (`[...]` or `{"rows": [...]}`), with an
    /// endpoint API key (--key or HEARTH_ENDPOINT_KEY).
    Predict(models::PredictArgs),
}

/// Exit codes other tools can act on.
const EXIT_ERROR: u8 = 1;
const EXIT_NOT_TRUSTED: u8 = 1;
const EXIT_UNUSABLE: u8 = 2;
const EXIT_POLICY_MISMATCH: u8 = 3;
const EXIT_UNREACHABLE: u8 = 4;

fn main() -> ExitCode {
    if std::env::var_os("TSS2_LOG").is_none() {
        // SAFETY: no other thread exists yet (the runtime and the TPM owner thread start
        // below), so nothing can read the environment concurrently.
        unsafe { std::env::set_var("TSS2_LOG", "all+NONE") };
    }
    let cli = Cli::parse();
    // Warnings (a software TPM, for one) go to stderr; tss-esapi's own error logs are dropped
    // because every failure reaches the user once, as our typed error. HEARTH_LOG overrides.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,tss_esapi=off")),
        )
        .init();

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// Runs the command; the exit code on success (`hearth verify` exits 1 for "not trusted").
async fn run(cli: Cli) -> anyhow::Result<u8> {
    let config = || -> anyhow::Result<TpmConfig> {
        let transport: Transport = cli.tcti.parse()?;
        Ok(TpmConfig::new(transport).with_timeout(Duration::from_millis(cli.timeout_ms)))
    };
    match cli.command {
        Command::Tpm(cmd) => tpm::run(config()?, cmd).await.map(|()| 0),
        Command::Attest(cmd) => attest::run(config()?, cmd).await.map(|()| 0),
        Command::Eventlog(cmd) => eventlog::run(cmd).map(|()| 0),
        Command::Audit(cmd) => Ok(if audit::run(cmd)? {
            0
        } else {
            EXIT_NOT_TRUSTED
        }),
        Command::Verify(args) => {
            let trusted = attest::verify_command(args).await?;
            Ok(if trusted { 0 } else { EXIT_NOT_TRUSTED })
        }
        Command::Datasets(args) => datasets::run(args).await.map(|()| 0),
        Command::Train(args) => jobs::train(args).await,
        Command::Jobs(args) => jobs::jobs(args).await,
        Command::Models(args) => models::models(args).await,
        Command::Deploy(args) => models::deploy(args).await,
        Command::Endpoints(args) => models::endpoints(args).await,
        Command::Predict(args) => models::predict(args).await,
    }
}

fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<attest::UnusableInput>().is_some()
        || err.downcast_ref::<api::UsageError>().is_some()
    {
        return EXIT_UNUSABLE;
    }
    // An appliance that could not be reached; one that answered "no" is an error.
    if let Some(api_error) = err.downcast_ref::<api::ApiError>() {
        return if api_error.is_unreachable() {
            EXIT_UNREACHABLE
        } else {
            EXIT_ERROR
        };
    }
    // `hearth verify https://…` met a certificate other than the one pinned.
    if let Some(fetch::FetchError::FingerprintMismatch { .. }) = err.downcast_ref() {
        return EXIT_NOT_TRUSTED;
    }
    match err.downcast_ref::<TpmError>() {
        Some(TpmError::PolicyMismatch { .. }) => EXIT_POLICY_MISMATCH,
        Some(TpmError::Unreachable { .. } | TpmError::Busy { .. } | TpmError::Unavailable) => {
            EXIT_UNREACHABLE
        }
        _ => EXIT_ERROR,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn connection_options_go_anywhere_after_the_verb() {
        let cli = Cli::try_parse_from([
            "hearth",
            "datasets",
            "--url",
            "https://box:8443",
            "show",
            "churn",
            "--token",
            "hth_a_b",
            "--quality",
            "--target",
            "y",
        ])
        .unwrap();
        let Command::Datasets(args) = cli.command else {
            panic!("not datasets");
        };
        assert_eq!(args.connection.url.as_deref(), Some("https://box:8443"));
        assert_eq!(args.connection.token.as_deref(), Some("hth_a_b"));
        assert!(matches!(
            args.command,
            datasets::DatasetsCommand::Show { quality: true, ref target, .. }
                if target.as_deref() == Some("y")
        ));
        // --target needs --quality; pseudonymize needs --version and --columns.
        Cli::try_parse_from(["hearth", "datasets", "show", "d", "--target", "y"]).unwrap_err();
        Cli::try_parse_from(["hearth", "datasets", "pseudonymize", "d", "--columns", "a"])
            .unwrap_err();
        let cli = Cli::try_parse_from([
            "hearth",
            "datasets",
            "pseudonymize",
            "d",
            "--version",
            "2",
            "--columns",
            "email,phone",
        ])
        .unwrap();
        let Command::Datasets(args) = cli.command else {
            panic!("not datasets");
        };
        assert!(matches!(
            args.command,
            datasets::DatasetsCommand::Pseudonymize { version: 2, ref columns, .. }
                if columns == &["email", "phone"]
        ));
        let cli = Cli::try_parse_from(["hearth", "jobs", "cancel", "0011223344556677"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Jobs(jobs::JobsArgs {
                command: jobs::JobsCommand::Cancel { .. },
                ..
            })
        ));
    }

    #[test]
    fn exit_codes_tell_unreachable_from_refused_from_usage() {
        let unreachable = anyhow::Error::new(api::ApiError::Connect(api::ConnectError::Connect {
            target: "https://box".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        }));
        assert_eq!(exit_code(&unreachable), EXIT_UNREACHABLE);
        let refused = anyhow::Error::new(api::ApiError::Status {
            status: hyper::StatusCode::UNAUTHORIZED,
            message: "invalid API token".into(),
        });
        assert_eq!(exit_code(&refused), EXIT_ERROR);
        let usage = anyhow::Error::new(api::UsageError("no --url".into()));
        assert_eq!(exit_code(&usage), EXIT_UNUSABLE);
    }
}
