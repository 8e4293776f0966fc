//! The `hearth` binary against real swtpm processes, as IT and auditors use it.

#![allow(clippy::unwrap_used)]

mod attest;
mod audit;
mod ml;
mod tpm;
mod verify_daemon;
mod verify_remote;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use hearth_tpm_testkit::Swtpm;

pub const HEARTH: &str = env!("CARGO_BIN_EXE_hearth");

/// Runs `hearth --tcti <sw> args…` with `stdin`, logging off so stderr holds only errors.
pub fn hearth(sw: &Swtpm, args: &[&str], stdin: &[u8]) -> Output {
    run(Some(&sw.tcti()), args, stdin, "off")
}

pub fn run(tcti: Option<&str>, args: &[&str], stdin: &[u8], log: &str) -> Output {
    let mut cmd = Command::new(HEARTH);
    if let Some(tcti) = tcti {
        cmd.arg("--tcti").arg(tcti);
    }
    let mut child = cmd
        .args(args)
        .env("HEARTH_LOG", log)
        .env_remove("HEARTH_TCTI")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

pub fn ok(out: Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
