//! hearth-init: PID 1 inside the Hearth image. Wires the steps of the library in order and
//! reports each on the console; on a fatal error it says why and powers off (PID 1 must not
//! exit: that panics the kernel).

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hearth_init::config::INIT_CONFIG_PATH;
use hearth_init::supervise::Backoff;
use hearth_init::sys::{self, Halt};
use hearth_init::{InitConfig, measure, tpm};

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "hearth-init: {line}");
    let _ = out.flush();
}

fn main() {
    let started = Instant::now();
    let how = match boot(started) {
        Ok(how) => how,
        Err(e) => {
            say(&format!("FATAL: {e:#}"));
            say("powering off");
            Halt::PowerOff
        }
    };
    let e = sys::halt(how);
    say(&format!("the kernel refused to halt: {e}"));
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn boot(started: Instant) -> anyhow::Result<Halt> {
    mount_kernel_filesystems()?;
    sys::block_signals().context("cannot block signals")?;
    if let Err(e) = sys::ctrl_alt_del_signals_init() {
        say(&format!("cannot take over Ctrl-Alt-Del: {e}"));
    }
    let text = std::fs::read_to_string(INIT_CONFIG_PATH)
        .with_context(|| format!("cannot read {INIT_CONFIG_PATH}"))?;
    let config = InitConfig::parse(INIT_CONFIG_PATH, &text)?;
    let _ = sys::set_hostname("hearth");

    load_modules(&config.modules);
    network(&config)?;
    data_partition(&config)?;
    measure_config(&config, text.as_bytes())?;
    say(&format!(
        "userland ready in {:.1} s after init started; starting hearthd",
        started.elapsed().as_secs_f64()
    ));
    Ok(supervise(&config))
}

fn mount_kernel_filesystems() -> anyhow::Result<()> {
    let nodev = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let mounts: [(&str, &str, &str, u64, &str); 6] = [
        ("proc", "/proc", "proc", nodev, ""),
        ("sysfs", "/sys", "sysfs", nodev, ""),
        ("devtmpfs", "/dev", "devtmpfs", libc::MS_NOSUID, "mode=0755"),
        (
            "securityfs",
            "/sys/kernel/security",
            "securityfs",
            nodev,
            "",
        ),
        (
            "tmpfs",
            "/run",
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NODEV,
            "mode=0755",
        ),
        (
            "tmpfs",
            "/tmp",
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NODEV,
            "mode=1777",
        ),
    ];
    for (source, target, fstype, flags, data) in mounts {
        let target = Path::new(target);
        let _ = std::fs::create_dir_all(target);
        sys::mount(source, target, fstype, flags, data)
            .with_context(|| format!("cannot mount {fstype} on {}", target.display()))?;
    }
    Ok(())
}

fn load_modules(modules: &[PathBuf]) {
    let t = Instant::now();
    let mut failed = 0;
    for m in modules {
        if let Err(e) = sys::load_module(m) {
            failed += 1;
            say(&format!("cannot load module {}: {e}", m.display()));
        }
    }
    say(&format!(
        "loaded {} kernel modules ({failed} failed) in {} ms",
        modules.len() - failed,
        t.elapsed().as_millis()
    ));
}

/// Waits up to `timeout` for `path` to exist.
fn wait_for(path: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while !path.exists() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn network(config: &InitConfig) -> anyhow::Result<()> {
    sys::configure_interface(
        "lo",
        std::net::Ipv4Addr::LOCALHOST,
        std::net::Ipv4Addr::new(255, 0, 0, 0),
    )
    .context("cannot bring up lo")?;
    let n = &config.network;
    let sys_path = PathBuf::from("/sys/class/net").join(&n.interface);
    if !wait_for(&sys_path, Duration::from_secs(10)) {
        bail!("network interface {} did not appear", n.interface);
    }
    sys::configure_interface(&n.interface, n.address, n.netmask())
        .with_context(|| format!("cannot configure {}", n.interface))?;
    if let Some(gw) = n.gateway {
        sys::add_default_route(gw).with_context(|| format!("cannot add the route via {gw}"))?;
    }
    say(&format!(
        "network {} {}/{}{}",
        n.interface,
        n.address,
        n.prefix_len,
        n.gateway.map(|g| format!(" via {g}")).unwrap_or_default()
    ));
    Ok(())
}

/// The block device whose GPT partition name is `label`, from the kernel's uevents.
fn find_partition(label: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir("/sys/class/block").ok()?;
    for entry in entries.flatten() {
        let uevent = std::fs::read_to_string(entry.path().join("uevent")).unwrap_or_default();
        let mut name = None;
        let mut partname = None;
        for line in uevent.lines() {
            if let Some(v) = line.strip_prefix("DEVNAME=") {
                name = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("PARTNAME=") {
                partname = Some(v.to_owned());
            }
        }
        if partname.as_deref() == Some(label) {
            return name.map(|n| PathBuf::from("/dev").join(n));
        }
    }
    None
}

/// Whether the device holds an ext2/3/4 superblock (magic 0xEF53 at byte 1080).
fn has_ext4(device: &Path) -> anyhow::Result<bool> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut f =
        std::fs::File::open(device).with_context(|| format!("cannot open {}", device.display()))?;
    let mut magic = [0u8; 2];
    f.seek(SeekFrom::Start(1080))?;
    f.read_exact(&mut magic)?;
    Ok(magic == [0x53, 0xEF])
}

fn data_partition(config: &InitConfig) -> anyhow::Result<()> {
    let d = &config.data;
    let deadline = Instant::now() + Duration::from_secs(10);
    let device = loop {
        if let Some(dev) = find_partition(&d.partlabel)
            && wait_for(&dev, Duration::from_secs(2))
        {
            break dev;
        }
        if Instant::now() >= deadline {
            bail!("no partition named {:?} appeared", d.partlabel);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !has_ext4(&device)? {
        say(&format!(
            "first boot: formatting the data partition {}",
            device.display()
        ));
        let t = Instant::now();
        let status = Command::new(&d.mkfs)
            .args(["-q", "-F", "-t", "ext4", "-L", "hearth-data"])
            .args(["-E", "lazy_itable_init=1,lazy_journal_init=1"])
            .arg(&device)
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", d.mkfs.display()))?;
        if !status.success() {
            bail!("{} {} failed: {status}", d.mkfs.display(), device.display());
        }
        say(&format!("formatted in {} ms", t.elapsed().as_millis()));
    }
    std::fs::create_dir_all(&d.mount)?;
    sys::mount(
        &device.display().to_string(),
        &d.mount,
        "ext4",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "",
    )
    .with_context(|| format!("cannot mount {} on {}", device.display(), d.mount.display()))?;
    say(&format!(
        "data partition {} mounted on {}",
        device.display(),
        d.mount.display()
    ));
    Ok(())
}

fn measure_config(config: &InitConfig, init_toml: &[u8]) -> anyhow::Result<()> {
    let hearthd_toml = std::fs::read(&config.hearthd.config)
        .with_context(|| format!("cannot read {}", config.hearthd.config.display()))?;
    let event = measure::config_event(&[("init.toml", init_toml), ("hearthd.toml", &hearthd_toml)]);
    let digest: [u8; 32] = event
        .digest(hearth_eventlog::pcr::Bank::Sha256)
        .and_then(|d| d.try_into().ok())
        .context("the configuration event has no SHA-256 digest")?;
    let device = &config.tpm.device;
    if !wait_for(device, Duration::from_secs(5)) {
        bail!("no TPM at {}", device.display());
    }
    tpm::extend(device, event.pcr, &digest)?;
    let log = &config.tpm.runtime_log;
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut line = event.to_line();
    line.push('\n');
    std::fs::write(log, line).with_context(|| format!("cannot write {}", log.display()))?;
    say(&format!(
        "PCR {} extended with the configuration digest {} ({})",
        event.pcr,
        hex::encode(digest),
        event.data
    ));
    Ok(())
}

fn spawn_hearthd(config: &InitConfig) -> Option<Child> {
    let h = &config.hearthd;
    let mut cmd = Command::new(&h.path);
    cmd.arg("--config")
        .arg(&h.config)
        .env_clear()
        .env("PATH", "/usr/bin:/usr/sbin")
        .env("HOME", &config.data.mount)
        .stdin(Stdio::null());
    // SAFETY: between fork and exec the child only calls sigprocmask, which is
    // async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(sys::unblock_signals);
    }
    match cmd.spawn() {
        Ok(child) => {
            say(&format!("hearthd started (pid {})", child.id()));
            if let Some(port) = listen_port(&h.config) {
                say(&format!(
                    "the console will be at https://{}:{port}/ once hearthd serves it",
                    config.network.address
                ));
            }
            Some(child)
        }
        Err(e) => {
            say(&format!("cannot start {}: {e}", h.path.display()));
            None
        }
    }
}

/// The port of hearthd's `listen` address, read from its configuration file.
fn listen_port(path: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(path).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    let listen: std::net::SocketAddr = table.get("listen")?.as_str()?.parse().ok()?;
    Some(listen.port())
}

/// Runs hearthd until a signal asks the machine to stop; restarts it with backoff.
fn supervise(config: &InitConfig) -> Halt {
    let h = &config.hearthd;
    let mut backoff = Backoff::new(
        Duration::from_millis(h.min_backoff_ms),
        Duration::from_secs(h.max_backoff_secs),
    );
    let mut child = spawn_hearthd(config);
    let mut started = Instant::now();
    let mut restart_at: Option<Instant> = child
        .is_none()
        .then(|| Instant::now() + backoff.after_exit(Duration::ZERO));
    loop {
        let timeout = restart_at
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(60));
        match sys::wait_signal(timeout) {
            Some(libc::SIGCHLD) => {
                while let Some((pid, status)) = sys::reap() {
                    let ours = child.as_ref().map(|c| c.id() as libc::pid_t) == Some(pid);
                    if ours {
                        child = None;
                        let delay = backoff.after_exit(started.elapsed());
                        say(&format!(
                            "hearthd exited ({}); restarting in {} ms",
                            describe_status(status),
                            delay.as_millis()
                        ));
                        restart_at = Some(Instant::now() + delay);
                    }
                }
            }
            Some(libc::SIGTERM | libc::SIGINT) => return shutdown(config, child, Halt::Reboot),
            Some(libc::SIGUSR1 | libc::SIGUSR2) => {
                return shutdown(config, child, Halt::PowerOff);
            }
            _ => {}
        }
        if restart_at.is_some_and(|t| Instant::now() >= t) {
            restart_at = None;
            child = spawn_hearthd(config);
            started = Instant::now();
            if child.is_none() {
                restart_at = Some(Instant::now() + backoff.after_exit(Duration::ZERO));
            }
        }
    }
}

fn describe_status(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit code {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("status {status}")
    }
}

/// Stops hearthd (SIGTERM, then SIGKILL after the timeout), then everything else, syncs and
/// unmounts the data partition.
fn shutdown(config: &InitConfig, child: Option<Child>, how: Halt) -> Halt {
    say(match how {
        Halt::PowerOff => "power-off requested: stopping hearthd",
        Halt::Reboot => "reboot requested: stopping hearthd",
    });
    if let Some(child) = child {
        let pid = child.id() as libc::pid_t;
        sys::kill(pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(config.hearthd.stop_timeout_secs);
        let mut exited = false;
        while !exited && Instant::now() < deadline {
            let _ = sys::wait_signal(Duration::from_millis(200));
            while let Some((p, status)) = sys::reap() {
                if p == pid {
                    exited = true;
                    say(&format!("hearthd stopped ({})", describe_status(status)));
                }
            }
        }
        if !exited {
            say("hearthd did not stop in time: killing it");
            sys::kill(pid, libc::SIGKILL);
        }
    }
    sys::kill(-1, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    sys::kill(-1, libc::SIGKILL);
    while sys::reap().is_some() {}
    sys::sync();
    if let Err(e) = sys::umount(&config.data.mount) {
        say(&format!(
            "cannot unmount {}: {e}",
            config.data.mount.display()
        ));
    }
    sys::sync();
    say(match how {
        Halt::PowerOff => "powering off",
        Halt::Reboot => "rebooting",
    });
    how
}
