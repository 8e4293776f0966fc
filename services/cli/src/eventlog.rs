//! `hearth eventlog …`: read a measured-boot event log, offline.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Subcommand;
use hearth_eventlog::{EventLog, Replay, RuntimeLog};

use crate::attest::read_bounded;

#[derive(Subcommand, Debug)]
pub enum EventlogCommand {
    /// Every event with its description, then the PCRs the log replays to.
    Show {
        /// A TCG event log (binary_bios_measurements).
        file: PathBuf,
        /// Hearth's runtime log, replayed after the firmware log.
        #[arg(long)]
        runtime_log: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// The PCR values the log replays to, for every PCR it touches in every bank it carries.
    Replay {
        file: PathBuf,
        #[arg(long)]
        runtime_log: Option<PathBuf>,
        /// `{"<bank>": {"<pcr>": "<hex>"}}`.
        #[arg(long)]
        json: bool,
    },
}

fn load(file: &Path, runtime: Option<&PathBuf>) -> Result<(EventLog, Option<RuntimeLog>, Replay)> {
    let log = EventLog::parse(&read_bounded(file)?)
        .with_context(|| format!("{} is not a TCG event log", file.display()))?;
    let runtime = runtime
        .map(|p| {
            RuntimeLog::parse(&read_bounded(p)?)
                .with_context(|| format!("{} is not a Hearth runtime log", p.display()))
        })
        .transpose()?;
    let mut replay = log.replay();
    if let Some(rt) = &runtime {
        replay = replay.with_runtime(rt)?;
    }
    Ok((log, runtime, replay))
}

pub fn run(cmd: EventlogCommand) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        EventlogCommand::Show {
            file,
            runtime_log,
            json,
        } => {
            let (log, runtime, replay) = load(&file, runtime_log.as_ref())?;
            if json {
                let doc = serde_json::json!({
                    "log": log,
                    "runtime": runtime.as_ref().map(|r| &r.events),
                    "replay": replay,
                });
                writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
                return Ok(());
            }
            let banks: Vec<&str> = log.banks.iter().map(|b| b.name()).collect();
            writeln!(
                out,
                "{}: {:?} log, {} events, banks {}",
                file.display(),
                log.format,
                log.events.len(),
                banks.join(", ")
            )?;
            for event in &log.events {
                writeln!(out, "{event}")?;
                for (bank, digest) in &event.digests {
                    writeln!(out, "    {bank}: {}", hex::encode(digest))?;
                }
            }
            if let Some(rt) = &runtime {
                for (i, event) in rt.events.iter().enumerate() {
                    writeln!(
                        out,
                        "runtime #{i} PCR {} {}: {}",
                        event.pcr, event.kind, event.data
                    )?;
                }
            }
            writeln!(out, "\nreplayed PCRs:")?;
            write!(out, "{replay}")?;
        }
        EventlogCommand::Replay {
            file,
            runtime_log,
            json,
        } => {
            let (_, _, replay) = load(&file, runtime_log.as_ref())?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&replay.pcrs)?)?;
            } else {
                write!(out, "{replay}")?;
            }
        }
    }
    Ok(())
}
