//! Hardware-in-the-loop test helpers: build the Hearth image from this workspace and boot it
//! in QEMU with OVMF and swtpm (hearth-image's launcher), then drive it from outside as an
//! operator and an auditor would.
//!
//! What it is not for: code the appliance runs. Everything here fails loudly when the
//! emulated hardware (QEMU, OVMF, swtpm, the Debian kernel; `just setup` installs them) is
//! missing: these tests never skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use anyhow::{Context as _, bail};

/// The workspace root (this crate's parent).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default()
}

/// Cargo's target directory for this workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The Cargo profile the image's binaries are built with: `HEARTH_HIL_PROFILE`, else `dev`
/// (what `cargo test` has built already, so the tests add little build time).
pub fn profile() -> String {
    std::env::var("HEARTH_HIL_PROFILE").unwrap_or_else(|_| "dev".to_owned())
}

/// Builds hearth-init, hearthd and hearth (once per test process) and returns their directory.
pub fn binaries() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_binaries().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build_binaries() -> anyhow::Result<PathBuf> {
    let profile = profile();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "--locked", "--profile", &profile]);
    if profile == "dev" {
        // The same targets and so the same feature set as `cargo test --workspace`: the binaries
        // it built are reused instead of rebuilt with fewer features.
        cmd.args(["--workspace", "--bins", "--tests"]);
    } else {
        cmd.args(["-p", "hearth-init", "-p", "hearthd", "-p", "hearth-cli"]);
    }
    let status = cmd.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build of the image's binaries failed");
    }
    let dir = if profile == "dev" {
        "debug".to_owned()
    } else {
        profile
    };
    Ok(target_dir().join(dir))
}

/// One VM at a time: boots under TCG are CPU-bound and this machine may have two cores.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// What hearthd printed on the console at one start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Banner {
    pub recovery_key: Option<String>,
    pub setup_code: Option<String>,
    pub cert_sha256: Option<String>,
    pub locked: Option<String>,
}

/// Parses hearthd's stdout lines out of serial console text (the last start's, when the
/// text holds several).
pub fn banner(serial: &str) -> Banner {
    let mut b = Banner::default();
    let mut lines = serial.lines().peekable();
    while let Some(line) = lines.next() {
        let line = line.trim();
        if line.starts_with("RECOVERY KEY") {
            b.recovery_key = lines.peek().map(|l| l.trim().to_owned());
        } else if let Some((_, code)) =
            line.split_once("SETUP CODE (one-time; claims this appliance at /setup): ")
        {
            b.setup_code = Some(code.trim().to_owned());
        } else if let Some(hex) = line.strip_prefix("certificate SHA-256: ") {
            b.cert_sha256 = Some(hex.trim().to_owned());
        } else if let Some(reason) = line.strip_prefix("STORE LOCKED: ") {
            b.locked = Some(reason.trim().to_owned());
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_lines_are_found_in_console_noise() {
        let serial = "[    3.1] ima: x\nhearth-init: hearthd started (pid 9)\n\n\
                      RECOVERY KEY (shown once; write it down and keep it offline):\n  ABCDE-12345\n\
                      SETUP CODE (one-time; claims this appliance at /setup): 3NGC-NQSW-PFJ0\n\
                      certificate SHA-256: 7fd1\nconsole: https://0.0.0.0:8443/\n";
        let b = banner(serial);
        assert_eq!(b.recovery_key.as_deref(), Some("ABCDE-12345"));
        assert_eq!(b.setup_code.as_deref(), Some("3NGC-NQSW-PFJ0"));
        assert_eq!(b.cert_sha256.as_deref(), Some("7fd1"));
        assert_eq!(b.locked, None);
        assert_eq!(
            banner("STORE LOCKED: PCR 11 changed\n").locked.as_deref(),
            Some("PCR 11 changed")
        );
    }
}
