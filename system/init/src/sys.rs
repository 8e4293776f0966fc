//! The system calls PID 1 needs, each behind a safe function: mounts, module loading, network
//! interface set-up, signals, reaping and the final reboot.

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "string contains NUL"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// mount(2). `EBUSY` (already mounted) counts as success.
pub fn mount(source: &str, target: &Path, fstype: &str, flags: u64, data: &str) -> io::Result<()> {
    let (source, target, fstype, data) =
        (cstr(source)?, cstring(target)?, cstr(fstype)?, cstr(data)?);
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    match check(rc) {
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(()),
        other => other,
    }
}

/// umount(2).
pub fn umount(target: &Path) -> io::Result<()> {
    let target = cstring(target)?;
    // SAFETY: `target` is a valid NUL-terminated string that outlives the call.
    check(unsafe { libc::umount(target.as_ptr()) })
}

/// Loads the kernel module in `path` (finit_module(2)); an already loaded module is success.
pub fn load_module(path: &Path) -> io::Result<()> {
    let file = std::fs::File::open(path)?;
    let params = c"";
    // SAFETY: the fd is open for the duration of the call and `params` is a static C string.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            file.as_raw_fd(),
            params.as_ptr(),
            0 as libc::c_int,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EEXIST) {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}

/// The kernel sends SIGINT to PID 1 on Ctrl-Alt-Del instead of rebooting at once.
pub fn ctrl_alt_del_signals_init() -> io::Result<()> {
    // SAFETY: reboot(2) with LINUX_REBOOT_CMD_CAD_OFF only changes the Ctrl-Alt-Del behaviour.
    check(unsafe { libc::reboot(libc::LINUX_REBOOT_CMD_CAD_OFF) })
}

/// How the machine ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Halt {
    PowerOff,
    Reboot,
}

/// Syncs and powers off or reboots. Returns only if the kernel refused.
pub fn halt(how: Halt) -> io::Error {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    let cmd = match how {
        Halt::PowerOff => libc::LINUX_REBOOT_CMD_POWER_OFF,
        Halt::Reboot => libc::LINUX_REBOOT_CMD_RESTART,
    };
    // SAFETY: reboot(2) with a valid command; as PID 1 this ends the system.
    unsafe { libc::reboot(cmd) };
    io::Error::last_os_error()
}

/// Flushes file-system buffers.
pub fn sync() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// An `ifreq` naming `name`, other fields zero.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    // SAFETY: ifreq is plain data for which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

fn sockaddr_in(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        // AF_INET is 2.
        sin_family: libc::sa_family_t::try_from(libc::AF_INET).unwrap_or_default(),
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16 bytes; the kernel reads it back as
    // sockaddr_in because of sin_family.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

struct Socket(libc::c_int);

impl Socket {
    fn inet() -> io::Result<Socket> {
        // SAFETY: socket(2) with constant arguments.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Socket(fd))
    }

    /// ioctl(2) on the socket with a pointer to `arg`.
    fn ioctl<T>(&self, request: libc::Ioctl, arg: &mut T) -> io::Result<()> {
        // SAFETY: `arg` is a valid, exclusively borrowed value of the type `request` expects
        // (the callers pair them as netdevice(7) documents).
        check(unsafe { libc::ioctl(self.0, request, std::ptr::from_mut(arg)) })
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: the fd is owned by this value and closed once.
        unsafe { libc::close(self.0) };
    }
}

/// Sets `interface`'s IPv4 address and netmask and brings it up.
pub fn configure_interface(
    interface: &str,
    address: Ipv4Addr,
    netmask: Ipv4Addr,
) -> io::Result<()> {
    let sock = Socket::inet()?;
    let mut req = ifreq(interface)?;
    req.ifr_ifru.ifru_addr = sockaddr_in(address);
    sock.ioctl(libc::SIOCSIFADDR, &mut req)?;
    let mut req = ifreq(interface)?;
    req.ifr_ifru.ifru_netmask = sockaddr_in(netmask);
    sock.ioctl(libc::SIOCSIFNETMASK, &mut req)?;
    interface_up(interface)
}

/// Brings `interface` up (IFF_UP).
pub fn interface_up(interface: &str) -> io::Result<()> {
    let sock = Socket::inet()?;
    let mut req = ifreq(interface)?;
    sock.ioctl(libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    // IFF_UP | IFF_RUNNING is 0x41.
    let up = libc::c_short::try_from(libc::IFF_UP | libc::IFF_RUNNING).unwrap_or_default();
    req.ifr_ifru.ifru_flags = flags | up;
    sock.ioctl(libc::SIOCSIFFLAGS, &mut req)
}

/// Adds the IPv4 default route through `gateway`.
pub fn add_default_route(gateway: Ipv4Addr) -> io::Result<()> {
    let sock = Socket::inet()?;
    // SAFETY: rtentry is plain data for which all-zero bytes are a valid value.
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr_in(gateway);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    match sock.ioctl(libc::SIOCADDRT, &mut rt) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        other => other,
    }
}

/// Sets the host name.
pub fn set_hostname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
}

/// The signals PID 1 handles synchronously (blocked, then waited for).
const SIGNALS: [libc::c_int; 5] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t and the signals are valid numbers.
    unsafe {
        libc::sigemptyset(&mut set);
        for s in SIGNALS {
            libc::sigaddset(&mut set, s);
        }
    }
    set
}

/// Blocks the signals PID 1 waits for, so [`wait_signal`] receives them.
pub fn block_signals() -> io::Result<()> {
    let set = signal_set();
    // SAFETY: `set` is initialised; the old mask is not wanted.
    let rc = unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    check(rc)
}

/// Restores an empty signal mask (in a child before exec).
pub fn unblock_signals() -> io::Result<()> {
    let set = signal_set();
    // SAFETY: `set` is initialised; the old mask is not wanted.
    let rc = unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    check(rc)
}

/// Waits up to `timeout` for one of the blocked signals; `None` on timeout.
pub fn wait_signal(timeout: Duration) -> Option<libc::c_int> {
    let set = signal_set();
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
    };
    // SAFETY: `set` and `ts` are initialised; the siginfo is not wanted.
    let rc = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    (rc > 0).then_some(rc)
}

/// Reaps one exited child without blocking: its pid and exit status (`None` when none).
pub fn reap() -> Option<(libc::pid_t, libc::c_int)> {
    let mut status = 0;
    // SAFETY: waitpid(2) with a valid pointer to `status`.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    (pid > 0).then_some((pid, status))
}

/// Sends `signal` to `pid` (a negative pid or -1 as kill(2) allows).
pub fn kill(pid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory arguments; a stale pid fails harmlessly.
    unsafe { libc::kill(pid, signal) };
}
