//! Turning a traced system call's arguments into the real path the kernel used.
//!
//! - An open for reading is resolved at entry by the kernel itself: the tracer opens the same
//!   path with `O_PATH` through `/proc/PID/cwd` or `/proc/PID/fd/DIRFD` and reads back the
//!   result. This saves a second stop (at the call's exit) on the most frequent traced call; a
//!   path that does not resolve is a failed open and is not recorded.
//! - An open for writing may create the file, so it is resolved after it succeeds:
//!   `/proc/PID/fd/RET` names the file that was opened.
//! - For calls that do not return a descriptor (rename, unlink, mkdir, link, symlink), the path
//!   is resolved at entry, before the call changes anything: the *parent directory* is resolved
//!   through `/proc/PID/cwd` or `/proc/PID/fd/DIRFD` (following symlinks as the kernel will), and
//!   the last component is kept as written, since these calls act on the name itself. Textual
//!   `..` normalisation would be wrong across symlinked directories.
//!
//! Everything here reads the tracee (its memory, its /proc entries) and never writes to it.

use std::ffi::OsStr;
use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::sys::uio::{RemoteIoVec, process_vm_readv};
use nix::unistd::Pid;

/// Longest path the kernel accepts (PATH_MAX, including the NUL).
const PATH_MAX: usize = 4096;
/// Reads never cross this boundary, so a string ending just before an unmapped page is read.
const CHUNK: usize = 4096;

/// A NUL-terminated string at `addr` in the tracee's memory.
pub fn read_cstr(pid: Pid, addr: u64) -> Option<Vec<u8>> {
    if addr == 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut addr = usize::try_from(addr).ok()?;
    let mut buf = [0u8; CHUNK];
    while out.len() < PATH_MAX {
        let len = CHUNK - addr % CHUNK;
        let mut local = [IoSliceMut::new(&mut buf[..len])];
        let remote = [RemoteIoVec { base: addr, len }];
        let got = process_vm_readv(pid, &mut local, &remote).ok()?;
        if got == 0 {
            return None;
        }
        if let Some(nul) = buf[..got].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..nul]);
            return Some(out);
        }
        out.extend_from_slice(&buf[..got]);
        addr += got;
    }
    None
}

/// A `u64` at `addr` in the tracee's memory (the first field of `struct open_how`).
pub fn read_u64(pid: Pid, addr: u64) -> Option<u64> {
    let mut buf = [0u8; 8];
    let mut local = [IoSliceMut::new(&mut buf)];
    let remote = [RemoteIoVec {
        base: usize::try_from(addr).ok()?,
        len: 8,
    }];
    match process_vm_readv(pid, &mut local, &remote) {
        Ok(8) => Some(u64::from_ne_bytes(buf)),
        _ => None,
    }
}

/// What `/proc/PID/fd/FD` points at, if it is a path (not a pipe, socket or anonymous inode,
/// and not an already deleted file).
pub fn fd_path(pid: Pid, fd: i64) -> Option<String> {
    link_target(&format!("/proc/{pid}/fd/{fd}"))
}

/// The program a process runs now (after an exec).
pub fn exe_path(pid: Pid) -> Option<String> {
    link_target(&format!("/proc/{pid}/exe"))
}

fn link_target(link: &str) -> Option<String> {
    let target = std::fs::read_link(link).ok()?;
    let bytes = target.as_os_str().as_bytes();
    if bytes.first() != Some(&b'/') || bytes.ends_with(b" (deleted)") {
        return None;
    }
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// The directory a relative path is resolved against: the cwd, or a directory descriptor.
pub fn base_dir(pid: Pid, dirfd: i64) -> PathBuf {
    if dirfd == i64::from(libc::AT_FDCWD) {
        PathBuf::from(format!("/proc/{pid}/cwd"))
    } else {
        PathBuf::from(format!("/proc/{pid}/fd/{dirfd}"))
    }
}

/// Resolve `path` as the kernel will for a call acting on the name itself: the parent directory
/// through symlinks, the last component as written. `None` when the parent does not exist (the
/// call will fail) or the path is empty (`AT_EMPTY_PATH`: the call acts on the descriptor).
pub fn resolve_name(pid: Pid, dirfd: i64, path: &[u8]) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    let mut trimmed = path;
    while trimmed.len() > 1 && trimmed.ends_with(b"/") {
        trimmed = &trimmed[..trimmed.len() - 1];
    }
    let (parent, name): (&[u8], &[u8]) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(0) => (b"/", &trimmed[1..]),
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (b"", trimmed),
    };
    let parent = Path::new(OsStr::from_bytes(parent));
    let dir = if parent.is_absolute() {
        parent.to_path_buf()
    } else {
        base_dir(pid, dirfd).join(parent)
    };
    let dir = std::fs::canonicalize(dir).ok()?;
    let full = match name {
        b"" | b"." | b".." => std::fs::canonicalize(dir.join(OsStr::from_bytes(name))).ok()?,
        _ => dir.join(OsStr::from_bytes(name)),
    };
    Some(String::from_utf8_lossy(full.as_os_str().as_bytes()).into_owned())
}

/// Resolve `path` as an open with `flags` by the tracee would, by opening it with `O_PATH` in
/// the tracer through the tracee's `/proc/PID/cwd` or `/proc/PID/fd/DIRFD`: the kernel walks it
/// exactly as for the tracee (symlinks, `..`, mount points) without opening the file itself (no
/// read permission needed, a FIFO does not block). `None` when it does not resolve (the open
/// fails). Paths naming "the calling process" (`/proc/self/…`, `/dev/fd/…`, `/dev/std…`) would
/// resolve to the tracer's own files: `names_caller` tells the caller to wait for the open's
/// descriptor instead.
pub fn resolve_open(pid: Pid, dirfd: i64, path: &[u8], flags: i32) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    let p = Path::new(OsStr::from_bytes(path));
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir(pid, dirfd).join(p)
    };
    let mut how = OFlag::O_PATH | OFlag::O_CLOEXEC;
    if flags & libc::O_NOFOLLOW != 0 {
        how |= OFlag::O_NOFOLLOW;
    }
    let fd = nix::fcntl::open(&full, how, Mode::empty()).ok()?;
    link_target(&format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// An absolute path that means "the calling process" (see `resolve_open`).
pub fn names_caller(path: &[u8]) -> bool {
    [
        &b"/proc/self"[..],
        b"/proc/thread-self",
        b"/dev/fd",
        b"/dev/stdin",
        b"/dev/stdout",
        b"/dev/stderr",
    ]
    .iter()
    .any(|p| path.starts_with(p))
}

/// Resolve a path completely, following a final symlink too (for `truncate`).
pub fn resolve_full(pid: Pid, dirfd: i64, path: &[u8]) -> Option<String> {
    let p = Path::new(OsStr::from_bytes(path));
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir(pid, dirfd).join(p)
    };
    let full = std::fs::canonicalize(joined).ok()?;
    Some(String::from_utf8_lossy(full.as_os_str().as_bytes()).into_owned())
}

/// `path` equals `dir` or lies inside it (both absolute, no trailing slash except `/`).
pub fn is_within(path: &str, dir: &str) -> bool {
    dir == "/"
        || path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_through_the_parent_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        std::os::unix::fs::symlink("target", root.join("real/alink")).unwrap();
        let me = Pid::this();
        let abs = |p: &str| format!("{}/{p}", root.display());
        // through a symlinked directory; the final symlink itself is not followed
        assert_eq!(
            resolve_name(me, -100, abs("link/alink").as_bytes()),
            Some(abs("real/alink"))
        );
        // `..` after a symlinked directory goes to the real parent, not back to `link`'s parent
        std::fs::create_dir(root.join("real/sub")).unwrap();
        std::os::unix::fs::symlink(root.join("real/sub"), root.join("s")).unwrap();
        assert_eq!(
            resolve_name(me, -100, abs("s/../x").as_bytes()),
            Some(abs("real/x"))
        );
        assert_eq!(
            resolve_name(me, -100, abs("real/sub/").as_bytes()),
            Some(abs("real/sub"))
        );
        assert_eq!(resolve_name(me, -100, abs("nope/x").as_bytes()), None);
        assert_eq!(resolve_name(me, -100, b""), None);
    }

    #[test]
    fn opens_resolve_through_the_cwd_and_symlinks_like_the_kernel() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::fs::write(root.join("real/f"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        let me = Pid::this();
        let abs = format!("{}/link/../real/f", root.display());
        let want = Some(format!("{}/real/f", root.display()));
        assert_eq!(resolve_open(me, -100, abs.as_bytes(), 0), want);
        // a directory descriptor as the base
        let dir = std::fs::File::open(root.join("link")).unwrap();
        let fd = i64::from(dir.as_raw_fd());
        assert_eq!(resolve_open(me, fd, b"f", 0), want);
        assert_eq!(resolve_open(me, fd, b"missing", 0), None);
        assert!(names_caller(b"/proc/self/fd/3") && names_caller(b"/dev/stdin"));
        assert!(!names_caller(b"/proc/1/cmdline") && !names_caller(b"/devx"));
    }

    #[test]
    fn within_respects_component_boundaries() {
        assert!(is_within("/p/a/b", "/p/a"));
        assert!(is_within("/p/a", "/p/a"));
        assert!(!is_within("/p/ab", "/p/a"));
        assert!(is_within("/x", "/"));
    }

    #[test]
    fn strings_are_read_from_another_process_memory() {
        // our own process is a valid target for process_vm_readv
        let s = std::ffi::CString::new("hello/world").unwrap();
        let got = read_cstr(Pid::this(), s.as_ptr() as u64).unwrap();
        assert_eq!(got, b"hello/world");
        assert_eq!(read_cstr(Pid::this(), 0), None);
    }
}
