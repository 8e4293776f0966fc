//! `hearthd`: parses arguments and configuration, sets up logging, runs the daemon.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hearthd::config::{Config, LogFormat};

#[derive(Parser, Debug)]
#[command(name = "hearthd", version, about = "The Hearth appliance daemon")]
struct Args {
    /// The configuration file (TOML); without it, the production defaults.
    #[arg(long, short, env = "HEARTH_CONFIG")]
    config: Option<PathBuf>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
    /// Check the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    if std::env::var_os("TSS2_LOG").is_none() {
        // SAFETY: no other thread exists yet (the runtime starts below), so nothing reads the
        // environment concurrently.
        unsafe { std::env::set_var("TSS2_LOG", "all+NONE") };
    }
    let args = Args::parse();
    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("hearthd: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    if args.print_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    let format = config.log.format;
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{},tss_esapi=off", config.log.filter))
    });
    match format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .with_env_filter(filter)
            .init(),
    }
    let checked = match config.check() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hearthd: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("configuration ok");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hearthd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(hearthd::daemon::run(
        checked,
        hearthd::daemon::signals(),
        None,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("hearthd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
