//! `hearth-dev-swtpm`: keeps a software TPM running for `just run` on a developer's machine.
//!
//! Usage: `hearth-dev-swtpm [--state DIR] [--port PORT] [--stop]`
//!
//! Manufactures a TPM in DIR (default `.hearth/tpm`) on first use, starts swtpm as a daemon on
//! 127.0.0.1:PORT (default 2321; control channel PORT+1) unless it already runs, and prints the
//! TCTI to use. `--stop` stops it. The state persists, like a real TPM's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use hearth_tpm_testkit::{manufacture, swtpm_command};

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let mut state = PathBuf::from(".hearth/tpm");
    let mut port: u16 = 2321;
    let mut stop = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--state" => state = args.next().context("--state needs a directory")?.into(),
            "--port" => {
                port = args
                    .next()
                    .context("--port needs a number")?
                    .parse()
                    .context("--port is not a port number")?;
            }
            "--stop" => stop = true,
            "-h" | "--help" => {
                println!("usage: hearth-dev-swtpm [--state DIR] [--port PORT] [--stop]");
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let pid_file = state.join("swtpm.pid");
    let running = running_pid(&pid_file);
    if stop {
        match running {
            Some(pid) => {
                let ok = std::process::Command::new("kill")
                    .arg(pid.to_string())
                    .status()
                    .context("running kill")?
                    .success();
                if !ok {
                    bail!("could not stop swtpm (pid {pid})");
                }
                let _ = std::fs::remove_file(&pid_file);
                println!("stopped swtpm (pid {pid})");
            }
            None => println!("no swtpm running for {}", state.display()),
        }
        return Ok(());
    }
    let tcti = format!("swtpm:host=127.0.0.1,port={port}");
    if let Some(pid) = running {
        println!("swtpm already running (pid {pid}), TCTI {tcti}");
        return Ok(());
    }
    let fresh = !state.join("tpm2-00.permall").exists();
    if fresh {
        println!("manufacturing a software TPM in {} ...", state.display());
    }
    manufacture(&state)?;
    let state = std::fs::canonicalize(&state)?;
    let out = swtpm_command(&state, port)
        .arg("--daemon")
        .arg("--pid")
        .arg(format!("file={}", state.join("swtpm.pid").display()))
        .arg("--log")
        .arg(format!(
            "file={},level=1",
            state.join("swtpm.log").display()
        ))
        .output()
        .context("starting swtpm (run `just setup` first)")?;
    if !out.status.success() {
        bail!(
            "swtpm did not start on port {port} (is the port taken?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port + 1)).is_err() {
        if Instant::now() > deadline {
            bail!("swtpm did not listen on 127.0.0.1:{port} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("WARNING: software TPM (swtpm): no hardware root of trust, for development only");
    println!("swtpm running, state {}, TCTI {tcti}", state.display());
    Ok(())
}

/// The pid in `pid_file` if that process is alive and is swtpm.
fn running_pid(pid_file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "swtpm").then_some(pid)
}
