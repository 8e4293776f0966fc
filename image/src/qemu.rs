//! Booting a Hearth image in QEMU the way a box boots: OVMF (UEFI) with its own variable store,
//! swtpm as the TPM behind tpm-tis, virtio disk and network, the console on the serial port
//! and the appliance's port 8443 forwarded to the host. `just vm` and the hil-tests use it.
//!
//! The machine state (TPM, UEFI variables) lives in a directory the caller keeps between boots,
//! so a second boot is the same machine.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed: {message}")]
    Tool { what: String, message: String },
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout { what: String, secs: u64 },
    #[error("QEMU exited ({status}) while waiting for {what}")]
    Exited { what: String, status: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> VmError {
    let what = what.into();
    move |source| VmError::Io { what, source }
}

/// How to run one boot.
#[derive(Clone, Debug)]
pub struct VmConfig {
    pub image: PathBuf,
    /// TPM state, UEFI variables, sockets: kept between boots of the same machine.
    pub state_dir: PathBuf,
    /// Host port forwarded to the appliance's 8443 (on 127.0.0.1).
    pub console_port: u16,
    pub memory_mib: u32,
    pub cpus: u32,
    /// Serial console on this process's stdin/stdout (for a person) instead of captured.
    pub interactive: bool,
}

impl VmConfig {
    pub fn new(image: &Path, state_dir: &Path, console_port: u16) -> VmConfig {
        VmConfig {
            image: image.to_owned(),
            state_dir: state_dir.to_owned(),
            console_port,
            memory_mib: 1024,
            cpus: 2,
            interactive: false,
        }
    }
}

/// Manufactures the TPM (sha256 bank only, EK) in `dir` unless it exists.
fn manufacture_tpm(dir: &Path) -> Result<(), VmError> {
    if dir.join("tpm2-00.permall").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
    let out = Command::new("swtpm_setup")
        .arg("--tpm2")
        .arg("--tpmstate")
        .arg(dir)
        .args(["--createek", "--pcr-banks", "sha256", "--overwrite"])
        .stdin(Stdio::null())
        .output()
        .map_err(io(
            "cannot run swtpm_setup (`just setup` installs swtpm-tools)",
        ))?;
    if !out.status.success() {
        return Err(VmError::Tool {
            what: "swtpm_setup".to_owned(),
            message: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(())
}

/// A booted (or booting) VM: swtpm and QEMU, both killed on drop.
pub struct Vm {
    swtpm: Child,
    qemu: Child,
    serial: Arc<Mutex<String>>,
    monitor: PathBuf,
    pub started: Instant,
    pub config: VmConfig,
}

impl Vm {
    pub fn start(config: VmConfig) -> Result<Vm, VmError> {
        let state = &config.state_dir;
        let tpm_dir = state.join("tpm");
        manufacture_tpm(&tpm_dir)?;
        let vars = state.join("OVMF_VARS_4M.fd");
        if !vars.exists() {
            std::fs::copy(OVMF_VARS, &vars).map_err(io(format!(
                "cannot copy {OVMF_VARS} (`just setup` installs ovmf)"
            )))?;
        }
        let tpm_sock = state.join("swtpm.sock");
        let monitor = state.join("monitor.sock");
        let _ = std::fs::remove_file(&tpm_sock);
        let _ = std::fs::remove_file(&monitor);
        let swtpm = Command::new("swtpm")
            .arg("socket")
            .arg("--tpm2")
            .arg("--tpmstate")
            .arg(format!("dir={}", tpm_dir.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", tpm_sock.display()))
            .arg("--log")
            .arg(format!(
                "file={},level=1",
                state.join("swtpm.log").display()
            ))
            .arg("--terminate")
            .stdin(Stdio::null())
            .spawn()
            .map_err(io("cannot start swtpm (`just setup` installs it)"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !tpm_sock.exists() {
            if Instant::now() > deadline {
                return Err(VmError::Timeout {
                    what: "swtpm's socket".to_owned(),
                    secs: 10,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-nodefaults", "-machine", "q35,accel=tcg", "-cpu", "max"])
            .args(["-m", &config.memory_mib.to_string()])
            .args(["-smp", &config.cpus.to_string()])
            .args(["-display", "none", "-no-reboot"])
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
            ))
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=1,file={}",
                vars.display()
            ))
            .arg("-drive")
            .arg(format!(
                "if=none,id=disk0,format=raw,file={}",
                config.image.display()
            ))
            .args(["-device", "virtio-blk-pci,drive=disk0,bootindex=0"])
            .arg("-netdev")
            .arg(format!(
                "user,id=net0,hostfwd=tcp:127.0.0.1:{}-:8443",
                config.console_port
            ))
            .args(["-device", "virtio-net-pci,netdev=net0,romfile="])
            .args(["-device", "virtio-rng-pci"])
            .arg("-chardev")
            .arg(format!("socket,id=chrtpm,path={}", tpm_sock.display()))
            .args(["-tpmdev", "emulator,id=tpm0,chardev=chrtpm"])
            .args(["-device", "tpm-tis,tpmdev=tpm0"])
            .arg("-monitor")
            .arg(format!("unix:{},server,nowait", monitor.display()));
        let serial = Arc::new(Mutex::new(String::new()));
        let mut qemu = if config.interactive {
            cmd.args(["-serial", "mon:stdio"]).spawn().map_err(io(
                "cannot start qemu-system-x86_64 (`just setup` installs qemu-system-x86)",
            ))?
        } else {
            let mut child = cmd
                .args(["-serial", "stdio"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(io(
                    "cannot start qemu-system-x86_64 (`just setup` installs qemu-system-x86)",
                ))?;
            let log_path = state.join("serial.log");
            for pipe in [
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            ]
            .into_iter()
            .flatten()
            {
                let serial = Arc::clone(&serial);
                let mut log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log_path)
                    .ok();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(pipe);
                    let mut buf = Vec::new();
                    while reader
                        .read_until(b'\n', &mut buf)
                        .map(|n| n > 0)
                        .unwrap_or(false)
                    {
                        let line = String::from_utf8_lossy(&buf).replace('\r', "");
                        if let Some(log) = log.as_mut() {
                            let _ = log.write_all(line.as_bytes());
                        }
                        if let Ok(mut s) = serial.lock() {
                            s.push_str(&line);
                        }
                        buf.clear();
                    }
                });
            }
            child
        };
        let started = Instant::now();
        if let Ok(Some(status)) = qemu.try_wait() {
            return Err(VmError::Exited {
                what: "the start".to_owned(),
                status: status.to_string(),
            });
        }
        Ok(Vm {
            swtpm,
            qemu,
            serial,
            monitor,
            started,
            config,
        })
    }

    /// Everything the serial console printed so far.
    pub fn serial(&self) -> String {
        self.serial.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits until the serial output contains `needle`; returns the whole line it is on.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<String, VmError> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.serial();
            if let Some(pos) = text.find(needle) {
                let start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
                let end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
                return Ok(text[start..end].to_owned());
            }
            if let Ok(Some(status)) = self.qemu.try_wait() {
                return Err(VmError::Exited {
                    what: needle.to_owned(),
                    status: status.to_string(),
                });
            }
            if Instant::now() > deadline {
                return Err(VmError::Timeout {
                    what: needle.to_owned(),
                    secs: timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends a QEMU monitor command.
    pub fn monitor(&self, command: &str) -> Result<(), VmError> {
        let mut s =
            UnixStream::connect(&self.monitor).map_err(io("cannot reach QEMU's monitor"))?;
        s.write_all(format!("{command}\n").as_bytes())
            .map_err(io("cannot write to QEMU's monitor"))?;
        // Give QEMU a moment to read it before the connection closes.
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    }

    /// Clean shutdown: Ctrl-Alt-Del makes hearth-init stop hearthd, unmount and reboot, which
    /// ends QEMU (-no-reboot). Waits up to `timeout` for QEMU to exit.
    pub fn shutdown(mut self, timeout: Duration) -> Result<(), VmError> {
        self.monitor("sendkey ctrl-alt-delete")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(_)) = self.qemu.try_wait() {
                let _ = self.swtpm.wait();
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(VmError::Timeout {
                    what: "the appliance to shut down".to_owned(),
                    secs: timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for QEMU to exit on its own (for `just vm`).
    pub fn wait(mut self) -> Result<(), VmError> {
        self.qemu.wait().map_err(io("waiting for QEMU"))?;
        Ok(())
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        for child in [&mut self.qemu, &mut self.swtpm] {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}
