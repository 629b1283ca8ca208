//! The tracer: forks the step's program, traces it and every process it starts, and records the
//! file system calls the seccomp filter hands over. Runs inside the helper process
//! (`mlrun __mlrun-trace`), which is single-threaded and owns every tracee, so it may wait for
//! any child (`waitpid(-1)`) without stealing the children of the rest of mlrun.
//!
//! Start-up, and why in this order:
//! 1. fork by hand (not `Command::spawn`, which blocks until exec while the child waits for us);
//! 2. the child calls `PTRACE_TRACEME` and stops itself with SIGSTOP;
//! 3. the tracer sets the options, among them `PTRACE_O_TRACESECCOMP`, and resumes it: a
//!    `SECCOMP_RET_TRACE` before that option is set would fail the call with ENOSYS;
//! 4. the child installs the filter and execs; `PTRACE_O_TRACEEXEC` turns the exec into an
//!    event stop (no bare post-exec SIGTRAP to mistake for a signal).
//!
//! The loop: a new child's first SIGSTOP may arrive before its parent's fork event, so any stop
//! of an unknown pid makes it known and its first SIGSTOP is swallowed. Other signals are passed
//! on to the tracee unchanged (group-stops are resumed at once: steps are not interactive), so
//! mlrun's SIGTERM/SIGKILL to the process group reach the step as they would untraced.
//!
//! Leftovers: when the step's main process exits, anything still running is sent SIGTERM and
//! traced for up to 2 s (its accesses count), then killed, as `exec::child` does without tracing.
//! `PTRACE_O_EXITKILL` kills every tracee if the tracer itself dies.

#![expect(
    unsafe_code,
    reason = "fork/exec of the tracee and PTRACE_GET_SYSCALL_INFO, which nix does not wrap soundly"
)]

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::ptrace::{self, Event, Options};
use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::access::Report;
use super::paths;
use super::seccomp;

/// How the step's main process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(Signal),
}

const LEFTOVER_GRACE: Duration = Duration::from_secs(2);
const KILL_WAIT: Duration = Duration::from_secs(1);

/// Signals the helper ignores (they are meant for the step: mlrun sends them to the whole
/// group) and that the tracee gets back at their default.
pub const PASSED_ON: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// In the helper: ignore the signals in `PASSED_ON`.
pub fn ignore_passed_on() {
    for sig in PASSED_ON {
        // SAFETY: SIG_IGN installs no handler.
        let _ = unsafe { signal::signal(sig, SigHandler::SigIgn) };
    }
}

/// Where the child failed before running the program.
#[repr(u32)]
#[derive(Clone, Copy)]
enum Stage {
    TraceMe = 1,
    Seccomp = 2,
    Exec = 3,
}

const PTRACE_GET_SYSCALL_INFO: libc::c_uint = 0x420e;
const INFO_ENTRY: u8 = 1;
const INFO_EXIT: u8 = 2;
const INFO_SECCOMP: u8 = 3;

/// `struct ptrace_syscall_info` (linux/ptrace.h) with its union kept as raw words:
/// entry and seccomp: `[nr, args[0..6], ret_data]`; exit: `[rval, is_error]`.
#[repr(C)]
#[derive(Default)]
struct SyscallInfo {
    op: u8,
    reserved: u8,
    flags: u16,
    arch: u32,
    instruction_pointer: u64,
    stack_pointer: u64,
    data: [u64; 8],
}

fn syscall_info(pid: Pid) -> Option<SyscallInfo> {
    let mut info = SyscallInfo::default();
    // SAFETY: PTRACE_GET_SYSCALL_INFO writes at most `addr` bytes (the size we pass) to `data`,
    // which points at a live, writable `SyscallInfo` of exactly that size. (nix 0.30's wrapper
    // passes a size of 0 and then reads the uninitialised buffer.)
    let r = unsafe {
        libc::ptrace(
            PTRACE_GET_SYSCALL_INFO as _,
            pid.as_raw(),
            std::mem::size_of::<SyscallInfo>() as *mut libc::c_void,
            &mut info as *mut SyscallInfo as *mut libc::c_void,
        )
    };
    (r > 0).then_some(info)
}

/// What a stopped system call will do, decided at entry and applied at exit if it succeeds.
#[derive(Debug)]
enum Pending {
    Open {
        flags: u64,
    },
    Create(Option<String>),
    Delete(Option<String>),
    Rename {
        from: Option<String>,
        to: Option<String>,
        exchange: bool,
    },
}

#[derive(Default)]
struct Proc {
    /// its initial SIGSTOP has been seen (or it is the main process)
    started: bool,
    pending: Option<Pending>,
}

struct Tracer {
    main: Pid,
    procs: HashMap<Pid, Proc>,
    report: Report,
    foreign_seen: HashSet<Pid>,
}

/// Run `argv` under the tracer until its main process has exited and leftovers are dealt with.
/// Returns `None` as the exit when the program could not be started.
pub fn run(argv: &[CString]) -> (Option<Exit>, Report) {
    let mut report = Report::default();
    let prog = seccomp::program();
    let (rd, wr) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            report.setup_error = Some(format!("cannot create a pipe: {e}"));
            return (None, report);
        }
    };
    // SAFETY: the helper process is single-threaded (nothing before this point starts a thread),
    // so the child may run ordinary code until it execs.
    let main = match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            drop(rd);
            start_child(argv, &prog, &wr)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            report.setup_error = Some(format!("cannot fork: {e}"));
            return (None, report);
        }
    };
    drop(wr);

    match waitpid(main, Some(WaitPidFlag::__WALL)) {
        Ok(WaitStatus::Stopped(_, Signal::SIGSTOP)) => {}
        Ok(WaitStatus::Exited(..)) => {
            if !record_failure(&mut report, &rd) {
                report.setup_error = Some("the traced process exited before it started".into());
            }
            return (None, report);
        }
        other => {
            let _ = signal::kill(main, Signal::SIGKILL);
            report.setup_error = Some(format!("the traced process did not start: {other:?}"));
            return (None, report);
        }
    }
    let options = Options::PTRACE_O_TRACESYSGOOD
        | Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEEXEC
        | Options::PTRACE_O_TRACESECCOMP
        | Options::PTRACE_O_EXITKILL;
    if let Err(e) = ptrace::setoptions(main, options) {
        let _ = signal::kill(main, Signal::SIGKILL);
        let _ = waitpid(main, Some(WaitPidFlag::__WALL));
        report.setup_error = Some(format!("cannot set ptrace options: {e}"));
        return (None, report);
    }
    let mut t = Tracer {
        main,
        procs: HashMap::new(),
        report,
        foreign_seen: HashSet::new(),
    };
    t.procs.insert(
        main,
        Proc {
            started: true,
            pending: None,
        },
    );
    t.resume(main, None);
    let exit = t.run_loop();
    let mut report = t.report;
    if record_failure(&mut report, &rd) {
        return (None, report);
    }
    (exit, report)
}

/// In the forked child: become traceable, wait for the tracer, install the filter, exec.
/// Never returns; a failure is written to `err` as (stage, errno) for the tracer to report.
fn start_child(argv: &[CString], prog: &[libc::sock_filter], err: &OwnedFd) -> ! {
    // Give the program the signal state it would have had untraced: the helper ignores the
    // signals meant for the step, and Rust ignores SIGPIPE; an ignored signal survives exec.
    for sig in PASSED_ON.into_iter().chain([Signal::SIGPIPE]) {
        // SAFETY: restoring the default disposition installs no handler.
        let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
    }
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    if let Err(e) = ptrace::traceme() {
        fail(err, Stage::TraceMe, e);
    }
    // The tracer sets its options while we are stopped here.
    let _ = signal::raise(Signal::SIGSTOP);
    if let Err(e) = seccomp::install(prog) {
        fail(err, Stage::Seccomp, e);
    }
    let e = match nix::unistd::execvp(&argv[0], argv) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    fail(err, Stage::Exec, e)
}

fn fail(err: &OwnedFd, stage: Stage, e: Errno) -> ! {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(stage as u32).to_ne_bytes());
    msg[4..].copy_from_slice(&(e as i32).to_ne_bytes());
    let _ = nix::unistd::write(err, &msg);
    // SAFETY: `_exit` ends the forked child without running the parent's atexit handlers or
    // flushing buffers that belong to the helper.
    unsafe { libc::_exit(127) }
}

/// Read what the child reported before exec, if anything. True when it failed.
fn record_failure(report: &mut Report, rd: &OwnedFd) -> bool {
    let _ = nix::fcntl::fcntl(rd, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    let mut msg = [0u8; 8];
    match nix::unistd::read(rd, &mut msg) {
        Ok(8) => {}
        _ => return false,
    }
    let stage = u32::from_ne_bytes(msg[..4].try_into().expect("4 bytes"));
    let errno = Errno::from_raw(i32::from_ne_bytes(msg[4..].try_into().expect("4 bytes")));
    let what = if errno == Errno::ENOENT {
        "not found on PATH (install it or use its full path)".to_string()
    } else {
        std::io::Error::from_raw_os_error(errno as i32).to_string()
    };
    if stage == Stage::Exec as u32 {
        report.spawn_error = Some(what);
    } else if stage == Stage::TraceMe as u32 {
        report.setup_error = Some(format!(
            "ptrace is not permitted here ({errno}): is mlrun itself running under a debugger or strace, or in a container without CAP_SYS_PTRACE?"
        ));
    } else {
        report.setup_error = Some(format!("cannot install the seccomp filter ({errno})"));
    }
    true
}

fn is_stop_signal(sig: Signal) -> bool {
    matches!(
        sig,
        Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
    )
}

/// Open flags that may change the file (or create it).
fn writes(flags: i32) -> bool {
    flags & libc::O_ACCMODE != libc::O_RDONLY || flags & (libc::O_CREAT | libc::O_TRUNC) != 0
}

fn dirfd(arg: u64) -> i64 {
    // an `int` argument: only the low 32 bits count
    i64::from(arg as u32 as i32)
}

impl Tracer {
    fn known(&mut self, pid: Pid) -> &mut Proc {
        self.procs.entry(pid).or_default()
    }

    /// Resume a stopped tracee; with a system call half-done, stop again at its exit.
    fn resume(&mut self, pid: Pid, sig: Option<Signal>) {
        let at_exit = self.procs.get(&pid).is_some_and(|p| p.pending.is_some());
        // ESRCH: it was killed meanwhile; its exit is reported by waitpid.
        let _ = if at_exit {
            ptrace::syscall(pid, sig)
        } else {
            ptrace::cont(pid, sig)
        };
    }

    fn run_loop(&mut self) -> Option<Exit> {
        let mut exit = None;
        // after the main process exited: when SIGTERM went to leftovers, and when SIGKILL did
        let mut drain: Option<(Instant, Option<Instant>)> = None;
        loop {
            let mut flags = WaitPidFlag::__WALL;
            if drain.is_some() {
                flags |= WaitPidFlag::WNOHANG;
            }
            let status = match waitpid(None::<Pid>, Some(flags)) {
                Ok(s) => s,
                Err(Errno::EINTR) => continue,
                // ECHILD: no tracee left
                Err(_) => break,
            };
            match status {
                WaitStatus::StillAlive => {
                    let Some((termed, killed)) = drain else {
                        continue;
                    };
                    match killed {
                        None if termed.elapsed() >= LEFTOVER_GRACE => {
                            self.signal_all(Signal::SIGKILL);
                            drain = Some((termed, Some(Instant::now())));
                        }
                        // stuck in the kernel: EXITKILL finishes them when we exit
                        Some(k) if k.elapsed() >= KILL_WAIT => break,
                        _ => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
                WaitStatus::Exited(pid, code) => {
                    self.procs.remove(&pid);
                    if pid == self.main {
                        exit = Some(Exit::Code(code));
                        drain = Some(self.begin_drain());
                    }
                }
                WaitStatus::Signaled(pid, sig, _) => {
                    self.procs.remove(&pid);
                    if pid == self.main {
                        exit = Some(Exit::Signal(sig));
                        drain = Some(self.begin_drain());
                    }
                }
                WaitStatus::Stopped(pid, sig) => self.on_signal(pid, sig),
                WaitStatus::PtraceEvent(pid, _, ev) => self.on_event(pid, ev),
                WaitStatus::PtraceSyscall(pid) => self.on_syscall_stop(pid),
                WaitStatus::Continued(_) => {}
            }
        }
        exit
    }

    /// The main process is gone: ask whatever it left running to stop.
    fn begin_drain(&mut self) -> (Instant, Option<Instant>) {
        self.signal_all(Signal::SIGTERM);
        (Instant::now(), None)
    }

    fn signal_all(&self, sig: Signal) {
        for pid in self.procs.keys() {
            let _ = signal::kill(*pid, sig);
        }
    }

    fn on_signal(&mut self, pid: Pid, sig: Signal) {
        let p = self.known(pid);
        if !p.started {
            p.started = true;
            if sig == Signal::SIGSTOP {
                // the automatic stop of a newly traced process
                self.resume(pid, None);
                return;
            }
        }
        if is_stop_signal(sig) && ptrace::getsiginfo(pid) == Err(Errno::EINVAL) {
            // a group-stop, not a signal to deliver: keep the step running
            self.resume(pid, None);
            return;
        }
        self.resume(pid, Some(sig));
    }

    fn on_event(&mut self, pid: Pid, ev: i32) {
        self.known(pid);
        if ev == Event::PTRACE_EVENT_FORK as i32
            || ev == Event::PTRACE_EVENT_VFORK as i32
            || ev == Event::PTRACE_EVENT_CLONE as i32
        {
            if let Ok(new) = ptrace::getevent(pid) {
                self.known(Pid::from_raw(new as i32));
            }
        } else if ev == Event::PTRACE_EVENT_EXEC as i32 {
            // a non-leader thread that execs takes over the leader's pid
            if let Ok(former) = ptrace::getevent(pid) {
                let former = Pid::from_raw(former as i32);
                if former != pid {
                    self.procs.remove(&former);
                }
            }
            self.known(pid).pending = None;
            if let Some(exe) = paths::exe_path(pid) {
                self.report.executed(&exe);
            }
        } else if ev == Event::PTRACE_EVENT_SECCOMP as i32 {
            self.on_seccomp(pid);
            return;
        }
        self.resume(pid, None);
    }

    fn on_seccomp(&mut self, pid: Pid) {
        let pending = match syscall_info(pid) {
            Some(info) if info.op == INFO_SECCOMP => {
                let foreign = info.data[7] as u32 == seccomp::DATA_FOREIGN
                    || info.arch != seccomp::NATIVE_ARCH;
                if foreign {
                    self.note_foreign(pid, info.arch, info.data[0]);
                    None
                } else {
                    let args: [u64; 6] = info.data[1..7].try_into().expect("six arguments");
                    self.decode(pid, info.data[0] as i64, &args)
                }
            }
            _ => None,
        };
        self.known(pid).pending = pending;
        self.resume(pid, None);
    }

    fn on_syscall_stop(&mut self, pid: Pid) {
        let Some(info) = syscall_info(pid) else {
            self.known(pid).pending = None;
            self.resume(pid, None);
            return;
        };
        if info.op == INFO_ENTRY {
            // not the exit yet: keep going to it
            self.resume(pid, None);
            return;
        }
        let pending = self.known(pid).pending.take();
        if info.op == INFO_EXIT
            && (info.data[1] & 0xff) == 0
            && let Some(p) = pending
        {
            self.apply(pid, p, info.data[0] as i64);
        }
        self.resume(pid, None);
    }

    fn name(&self, pid: Pid, dirfd: i64, addr: u64) -> Option<String> {
        let path = paths::read_cstr(pid, addr)?;
        paths::resolve_name(pid, dirfd, &path)
    }

    /// An `open*` at entry: a read is recorded now (resolved by the kernel through `O_PATH`, so
    /// the call needs no second stop); a write waits for the descriptor the call returns.
    fn open(&mut self, pid: Pid, dirfd: i64, addr: u64, flags: u64) -> Option<Pending> {
        let f = flags as i32;
        if f & libc::O_PATH != 0 || f & libc::O_TMPFILE == libc::O_TMPFILE {
            // no content is read or written through such a descriptor
            return None;
        }
        if writes(f) {
            return Some(Pending::Open { flags });
        }
        // unreadable: the call fails with EFAULT
        let path = paths::read_cstr(pid, addr)?;
        if paths::names_caller(&path) {
            return Some(Pending::Open { flags });
        }
        if let Some(real) = paths::resolve_open(pid, dirfd, &path, f) {
            self.report.read(&real);
        }
        None
    }

    /// Decide at entry what to record if the call succeeds.
    fn decode(&mut self, pid: Pid, nr: i64, a: &[u64; 6]) -> Option<Pending> {
        let cwd = i64::from(libc::AT_FDCWD);
        #[cfg(target_arch = "x86_64")]
        match nr {
            libc::SYS_open => return self.open(pid, cwd, a[0], a[1]),
            libc::SYS_creat => {
                let flags = (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64;
                return self.open(pid, cwd, a[0], flags);
            }
            libc::SYS_rename => {
                return Some(Pending::Rename {
                    from: self.name(pid, cwd, a[0]),
                    to: self.name(pid, cwd, a[1]),
                    exchange: false,
                });
            }
            libc::SYS_link | libc::SYS_symlink => {
                return Some(Pending::Create(self.name(pid, cwd, a[1])));
            }
            libc::SYS_mkdir => return Some(Pending::Create(self.name(pid, cwd, a[0]))),
            libc::SYS_unlink | libc::SYS_rmdir => {
                return Some(Pending::Delete(self.name(pid, cwd, a[0])));
            }
            _ => {}
        }
        match nr {
            libc::SYS_openat => self.open(pid, dirfd(a[0]), a[1], a[2]),
            // struct open_how starts with the u64 flags; unreadable: the call fails with EFAULT
            libc::SYS_openat2 => {
                let flags = paths::read_u64(pid, a[2])?;
                self.open(pid, dirfd(a[0]), a[1], flags)
            }
            libc::SYS_renameat | libc::SYS_renameat2 => {
                let flags = if nr == libc::SYS_renameat2 { a[4] } else { 0 };
                Some(Pending::Rename {
                    from: self.name(pid, dirfd(a[0]), a[1]),
                    to: self.name(pid, dirfd(a[2]), a[3]),
                    exchange: flags & u64::from(libc::RENAME_EXCHANGE) != 0,
                })
            }
            libc::SYS_linkat => Some(Pending::Create(self.name(pid, dirfd(a[2]), a[3]))),
            libc::SYS_symlinkat => Some(Pending::Create(self.name(pid, dirfd(a[1]), a[2]))),
            libc::SYS_mkdirat => Some(Pending::Create(self.name(pid, dirfd(a[0]), a[1]))),
            libc::SYS_unlinkat => Some(Pending::Delete(self.name(pid, dirfd(a[0]), a[1]))),
            // truncate follows a final symlink: resolve the whole path
            libc::SYS_truncate => Some(Pending::Create(
                paths::read_cstr(pid, a[0]).and_then(|p| paths::resolve_full(pid, cwd, &p)),
            )),
            libc::SYS_ptrace => {
                // not a file access: it fails (EPERM) because the process is already traced
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| format!("pid {pid}"));
                if !self.report.ptrace_users.contains(&comm) {
                    self.report.ptrace_users.push(comm);
                }
                None
            }
            _ => None,
        }
    }

    /// The call succeeded with `ret`: record it.
    fn apply(&mut self, pid: Pid, p: Pending, ret: i64) {
        match p {
            Pending::Open { flags } => {
                let Some(path) = paths::fd_path(pid, ret) else {
                    // a pipe, socket, anonymous inode or an already deleted file
                    return;
                };
                if writes(flags as i32) {
                    self.report.written(&path);
                } else {
                    self.report.read(&path);
                }
            }
            Pending::Create(Some(path)) => self.report.written(&path),
            Pending::Delete(Some(path)) => self.report.deleted(&path),
            Pending::Rename {
                from: Some(from),
                to: Some(to),
                exchange,
            } => self.report.renamed(&from, &to, exchange),
            Pending::Create(None) | Pending::Delete(None) | Pending::Rename { .. } => {
                self.report.unresolved += 1;
            }
        }
    }

    fn note_foreign(&mut self, pid: Pid, arch: u32, nr: u64) {
        if !self.foreign_seen.insert(pid) {
            return;
        }
        let abi = match arch {
            0x4000_0003 => "i386 (32-bit)",
            0x4000_0028 => "arm (32-bit)",
            _ if cfg!(target_arch = "x86_64") && nr & 0x4000_0000 != 0 => "x32",
            _ => "another architecture",
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        self.report
            .foreign_arch
            .push(format!("`{comm}` (pid {pid}) made {abi} system calls"));
    }
}

/// End the helper the way the step's main process ended, so mlrun sees the same status.
pub fn exit_like(exit: Exit) -> i32 {
    match exit {
        Exit::Code(c) => c,
        Exit::Signal(sig) => {
            // no core file of the helper for a step that dumped core
            let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
            // SAFETY: restoring the default disposition installs no handler.
            let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
            let mut set = SigSet::empty();
            set.add(sig);
            let _ = signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
            let _ = signal::raise(sig);
            128 + sig as i32
        }
    }
}
