//! hearth-tpm-testkit: software TPMs for tests, benchmarks and `just run`.
//!
//! What it is for: starting real swtpm processes (a TPM 2.0 built on libtpms) with their own
//! state directory and free TCP ports, manufactured by `swtpm_setup` with EK certificates, and
//! killing them on drop. Tests get a fresh TPM each; [`Swtpm::restart`] keeps the state, as a
//! reboot would.
//!
//! What it is not for: production. It is a dev-dependency of the crates that test against a TPM,
//! and the `hearth-dev-swtpm` binary used by `just run`; nothing in the appliance links it.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use hearth_tpm::{TpmConfig, Transport};

/// PCR banks every test TPM has allocated.
pub const PCR_BANKS: &str = "sha1,sha256";

/// A running swtpm, killed (not its state) on drop.
#[derive(Debug)]
pub struct Swtpm {
    state: PathBuf,
    port: u16,
    child: Option<Child>,
    _tempdir: Option<tempfile::TempDir>,
}

impl Swtpm {
    /// A fresh, manufactured TPM with its own temporary state directory.
    pub fn start() -> Result<Swtpm> {
        let dir = tempfile::Builder::new()
            .prefix("hearth-swtpm-")
            .tempdir()
            .context("creating swtpm state directory")?;
        let template = template_state()?;
        fs::copy(template.join(STATE_FILE), dir.path().join(STATE_FILE))
            .context("copying manufactured swtpm state")?;
        let mut tpm = Swtpm {
            state: dir.path().to_owned(),
            port: 0,
            child: None,
            _tempdir: Some(dir),
        };
        tpm.spawn()?;
        Ok(tpm)
    }

    /// A TPM whose state lives in `state` (manufactured there first if it is empty).
    pub fn start_in(state: &Path) -> Result<Swtpm> {
        manufacture(state)?;
        let mut tpm = Swtpm {
            state: state.to_owned(),
            port: 0,
            child: None,
            _tempdir: None,
        };
        tpm.spawn()?;
        Ok(tpm)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    pub fn transport(&self) -> Transport {
        Transport::Swtpm {
            host: "127.0.0.1".into(),
            port: self.port,
        }
    }

    /// The TCTI string, as tpm2-tools and `hearth --tcti` take it.
    pub fn tcti(&self) -> String {
        self.transport().to_string()
    }

    /// A config for this TPM with a short timeout fit for tests.
    pub fn config(&self) -> TpmConfig {
        TpmConfig::new(self.transport()).with_timeout(Duration::from_secs(10))
    }

    /// Freezes the TPM process (SIGSTOP): it keeps its sockets open and answers nothing, like a
    /// TPM that hangs mid-session.
    pub fn pause(&self) -> Result<()> {
        self.signal("STOP")
    }

    /// Thaws a paused TPM (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.signal("CONT")
    }

    fn signal(&self, sig: &str) -> Result<()> {
        let child = self.child.as_ref().context("swtpm is not running")?;
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(child.id().to_string())
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -{sig} {} failed", child.id());
        }
        Ok(())
    }

    /// Stops the TPM process; the state stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts the TPM on the same state, like a reboot: PCRs reset, NV and persistent
    /// objects stay. The port may change.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn()
    }

    fn spawn(&mut self) -> Result<()> {
        let mut last_err = None;
        // Another process can grab a port between our check and swtpm's bind; try a few pairs.
        for _ in 0..8 {
            let port = free_port_pair()?;
            let log = self.state.join("swtpm.log");
            let mut child = swtpm_command(&self.state, port)
                .arg("--log")
                .arg(format!("file={},level=1", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("starting swtpm (is the swtpm package installed? `just setup`)")?;
            match wait_ready(&mut child, port) {
                Ok(()) => {
                    self.port = port;
                    self.child = Some(child);
                    return Ok(());
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("swtpm did not start")))
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}

const STATE_FILE: &str = "tpm2-00.permall";

/// The `swtpm socket` command line for `state` on `port` (control channel on `port + 1`).
pub fn swtpm_command(state: &Path, port: u16) -> Command {
    let mut cmd = Command::new("swtpm");
    cmd.arg("socket")
        .arg("--tpm2")
        .arg("--tpmstate")
        .arg(format!("dir={}", state.display()))
        .arg("--server")
        .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
        .arg("--ctrl")
        .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
        .arg("--flags")
        .arg("not-need-init,startup-clear");
    cmd
}

/// Runs `swtpm_setup` in `state` unless it already holds a TPM: EK (RSA and ECC) with
/// certificates from swtpm's local CA, platform certificate, banks [`PCR_BANKS`].
pub fn manufacture(state: &Path) -> Result<()> {
    if state.join(STATE_FILE).exists() {
        return Ok(());
    }
    fs::create_dir_all(state).with_context(|| format!("creating {}", state.display()))?;
    let out = Command::new("swtpm_setup")
        .arg("--tpm2")
        .arg("--tpmstate")
        .arg(state)
        .args(["--create-ek-cert", "--create-platform-cert", "--overwrite"])
        .args(["--pcr-banks", PCR_BANKS])
        .stdin(Stdio::null())
        .output()
        .context("running swtpm_setup (is the swtpm-tools package installed? `just setup`)")?;
    if !out.status.success() {
        bail!(
            "swtpm_setup failed in {}: {}{}",
            state.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A manufactured state shared by every test of this machine (manufacturing costs ~1 s; each
/// test copies it). Keyed by the swtpm version so an upgrade does not reuse old state.
fn template_state() -> Result<PathBuf> {
    let version = Command::new("swtpm")
        .arg("--version")
        .output()
        .context("running swtpm --version (is swtpm installed? `just setup`)")?;
    let tag: u64 = version.stdout.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    let dir = std::env::temp_dir().join(format!("hearth-swtpm-template-{tag:016x}"));
    if dir.join(STATE_FILE).exists() {
        return Ok(dir);
    }
    // Manufacture beside it and rename into place: concurrent tests never see half a state.
    let staging = tempfile::Builder::new()
        .prefix("hearth-swtpm-staging-")
        .tempdir()
        .context("creating staging directory")?;
    manufacture(staging.path())?;
    let staged = staging.keep();
    if fs::rename(&staged, &dir).is_err() {
        // Someone else won the race; theirs is as good as ours.
        let _ = fs::remove_dir_all(&staged);
    }
    if !dir.join(STATE_FILE).exists() {
        bail!("manufactured swtpm state missing from {}", dir.display());
    }
    Ok(dir)
}

fn free_port_pair() -> Result<u16> {
    for _ in 0..64 {
        let l = TcpListener::bind("127.0.0.1:0").context("binding a probe port")?;
        let port = l.local_addr()?.port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free pair of TCP ports on 127.0.0.1")
}

fn wait_ready(child: &mut Child, port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            bail!("swtpm exited with {status}: {}", err.trim());
        }
        // Connect to the control channel: it answers as soon as swtpm listens.
        if TcpStream::connect(("127.0.0.1", port + 1)).is_ok()
            && TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("swtpm did not listen on 127.0.0.1:{port} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Extends `tpm` with every measured event of `log`, in the banks both carry: afterwards the TPM
/// holds the PCR values that boot produced (the fixture logs start PCR 0 at zero, as swtpm does).
pub fn replay_log_into(tpm: &mut hearth_tpm::Tpm, log: &hearth_eventlog::EventLog) -> Result<()> {
    let banks = tpm.info().banks.clone();
    for event in log.events.iter().filter(|e| e.is_extended()) {
        let digests: Vec<_> = event
            .digests
            .iter()
            .filter(|(b, _)| banks.contains(b))
            .cloned()
            .collect();
        tpm.pcr_extend_digests(event.pcr, &digests)
            .with_context(|| format!("extending event #{} into PCR {}", event.index, event.pcr))?;
    }
    Ok(())
}
