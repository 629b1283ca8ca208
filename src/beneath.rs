//! Paths resolved beneath a root directory, never escaping it through `..` or a symbolic link.
//!
//! mlrun writes into the project (restoring outputs) and into replay's scratch tree at paths it
//! did not choose: declared in pipeline.toml, read back from the store (which anyone can edit),
//! listed in a directory manifest, or met on disk (a directory a step replaced by a symlink).
//! Every such write goes through here.
//!
//! A path is walked one component at a time from an open descriptor of the root. Each directory
//! is opened relative to the previous one with `O_NOFOLLOW`; a symbolic link met on the way is
//! followed only when its target stays beneath the root (the rule of Linux's
//! `openat2(RESOLVE_BENEATH)`, applied in user space so that it holds on every kernel: a relative
//! target is resolved by the same walk, an absolute one only if it names a place under the
//! root's real path), and `..` never climbs above the root. The write itself is made relative to
//! the descriptor of its parent directory (`openat`, `mkdirat`, `renameat`, `symlinkat`), so a
//! directory swapped for a symlink after the walk cannot redirect it: there is no gap between
//! the check and the use.
//!
//! Used by restore (`store::objects`), replay (recorded paths, the scratch tree) and validation
//! (`pipeline::plan`); `checkout` writes through restore the same way.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat, mkdirat};

use crate::error::{Error, Result};

/// How many symbolic links one walk may follow (as the kernel's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// An open directory, and the path it was reached by (for messages only: every operation goes
/// through the descriptor).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Open `path` itself, following symbolic links: the root is trusted, what lies below it
    /// is not.
    pub fn open(path: &Path) -> std::io::Result<Dir> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The path this directory was reached by, joined with `name` (for messages).
    pub fn shown(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn try_clone(&self) -> std::io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
        })
    }

    /// The directory `name` inside this one; a symbolic link is not followed (`ELOOP`/`ENOTDIR`).
    pub fn open_dir(&self, name: &OsStr) -> std::io::Result<Dir> {
        let fd = openat(
            self.fd.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd,
            path: self.path.join(name),
        })
    }

    /// Create the directory `name` (mode 0777 less the umask).
    pub fn mkdir(&self, name: &OsStr) -> std::io::Result<()> {
        Ok(mkdirat(
            self.fd.as_fd(),
            name,
            Mode::from_bits_truncate(0o777),
        )?)
    }

    /// Create the new file `name` for writing: never an existing file, never through a link.
    pub fn create_file(&self, name: &OsStr) -> std::io::Result<File> {
        let fd = openat(
            self.fd.as_fd(),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )?;
        Ok(File::from(fd))
    }

    /// Create the symbolic link `name` whose target text is `target`.
    pub fn symlink(&self, target: &OsStr, name: &OsStr) -> std::io::Result<()> {
        Ok(nix::unistd::symlinkat(target, self.fd.as_fd(), name)?)
    }

    /// Rename `from` to `to`, both in this directory (atomic; replaces a file or an empty
    /// directory at `to`).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> std::io::Result<()> {
        Ok(renameat(self.fd.as_fd(), from, self.fd.as_fd(), to)?)
    }

    /// Move `from` in this directory to `to` in `dest` (atomic, same file system).
    pub fn rename_to(&self, from: &OsStr, dest: &Dir, to: &OsStr) -> std::io::Result<()> {
        Ok(renameat(self.fd.as_fd(), from, dest.fd.as_fd(), to)?)
    }

    /// The status of `name` itself (a link is not followed); `None` when there is nothing.
    pub fn lstat(&self, name: &OsStr) -> std::io::Result<Option<FileStat>> {
        match fstatat(self.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Remove `name` and, if it is a directory, everything in it; links are removed, never
    /// followed. Best effort.
    pub fn remove_all(&self, name: &OsStr) {
        let Ok(Some(st)) = self.lstat(name) else {
            return;
        };
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            // The standard library's removal opens each directory without following links
            // and removes relative to it; reach this directory through its descriptor.
            let _ = std::fs::remove_dir_all(self.via_fd(name));
        } else {
            let _ = nix::unistd::unlinkat(
                self.fd.as_fd(),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
    }

    /// Remove the file (or link) `name`. Best effort.
    pub fn remove_file(&self, name: &OsStr) {
        let _ = nix::unistd::unlinkat(
            self.fd.as_fd(),
            name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }

    /// A path naming `name` in this very directory, whatever happens to the path it was
    /// reached by: `/proc/self/fd/N/name` where /proc is mounted.
    fn via_fd(&self, name: &OsStr) -> PathBuf {
        let proc = PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()));
        if proc.is_dir() {
            proc.join(name)
        } else {
            self.path.join(name)
        }
    }
}

/// Why a path cannot be used beneath its root.
#[derive(Debug)]
pub enum Problem {
    /// a symbolic link leads out: the link (as walked) and its target
    Link {
        link: PathBuf,
        target: PathBuf,
    },
    /// `..` climbs above the root
    Climbs,
    /// the path is absolute, empty, or names the root itself
    NotRelative(&'static str),
    /// a component that must be a directory is something else
    NotDir(PathBuf),
    /// too many links followed
    Loop(PathBuf),
    Io(PathBuf, std::io::Error),
}

impl Problem {
    /// In words, for `what` (e.g. "output `linkdir/out.txt`").
    pub fn describe(&self) -> String {
        match self {
            Problem::Link { link, target } => format!(
                "`{}` is a symbolic link to `{}`, outside the project",
                link.display(),
                target.display()
            ),
            Problem::Climbs => "the path climbs out of the project with `..`".into(),
            Problem::NotRelative(why) => format!("the path {why}"),
            Problem::NotDir(p) => format!("`{}` is not a directory", p.display()),
            Problem::Loop(p) => format!("`{}`: too many levels of symbolic links", p.display()),
            Problem::Io(p, e) => format!("`{}`: {e}", p.display()),
        }
    }

    /// The link named relative to `root` (how the user declared it).
    fn relative_to(self, root: &Path) -> Problem {
        match self {
            Problem::Link { link, target } => Problem::Link {
                link: link
                    .strip_prefix(root)
                    .map(Path::to_path_buf)
                    .unwrap_or(link),
                target,
            },
            p => p,
        }
    }

    /// True when the path leads outside the root (rather than being unusable for another
    /// reason).
    pub fn is_escape(&self) -> bool {
        matches!(
            self,
            Problem::Link { .. } | Problem::Climbs | Problem::NotRelative(_)
        )
    }

    /// An error saying why a path cannot be written (the caller says which path, and what for).
    pub fn error(&self) -> Error {
        let e = Error::other(self.describe());
        if self.is_escape() {
            e.hint("mlrun writes only beneath the project directory; replace the link by a directory, or declare the real path")
        } else {
            e
        }
    }
}

/// A path read from a record (the store, a manifest, a recorded plan) that is meant to be
/// relative: it must be non-empty, relative, and made of plain names (no `..`). `Err` says why.
pub fn check_relative(rel: &Path) -> std::result::Result<(), &'static str> {
    if rel.as_os_str().is_empty() {
        return Err("is empty");
    }
    if rel.as_os_str().as_bytes().contains(&0) {
        return Err("contains a NUL byte");
    }
    let mut names = 0;
    for c in rel.components() {
        match c {
            Component::Normal(_) => names += 1,
            Component::CurDir => {}
            Component::ParentDir => return Err("climbs out with `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("is absolute"),
        }
    }
    if names == 0 {
        return Err("names no file");
    }
    Ok(())
}

/// The parent directory of `rel` beneath `root`, opened, and the last name of `rel`.
/// `create`: make the missing directories on the way. `rel` may contain `..` (never above the
/// root) and symbolic links (followed while they stay beneath the root); its last component is
/// not followed: the caller creates, replaces or renames it relative to the returned directory.
/// An absolute `rel` is resolved beneath `/`: the caller allowed it (`allow-outside`).
pub fn parent_of(
    root: &Path,
    rel: &Path,
    create: bool,
) -> std::result::Result<(Dir, OsString), Problem> {
    let (root, rel) = split_absolute(root, rel);
    let base = Dir::open(root).map_err(|e| Problem::Io(root.to_path_buf(), e))?;
    let real = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    parent_in(base, &real, rel, create).map_err(|p| p.relative_to(root))
}

/// As [`parent_of`], from an already open directory: the walk never leaves `base`.
pub fn parent_in_dir(
    base: &Dir,
    rel: &Path,
    create: bool,
) -> std::result::Result<(Dir, OsString), Problem> {
    let base = base
        .try_clone()
        .map_err(|e| Problem::Io(base.path.clone(), e))?;
    // an absolute link inside a scratch directory never leads back into it: no real path needed
    parent_in(base, Path::new("\0"), rel, create)
}

fn split_absolute<'a>(root: &'a Path, rel: &'a Path) -> (&'a Path, &'a Path) {
    match rel.strip_prefix("/") {
        Ok(stripped) => (Path::new("/"), stripped),
        Err(_) => (root, rel),
    }
}

fn parent_in(
    base: Dir,
    real: &Path,
    rel: &Path,
    create: bool,
) -> std::result::Result<(Dir, OsString), Problem> {
    let mut todo = components(rel)?;
    let mut stack = vec![base];
    let mut links = 0;
    let mut last_link = None;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            if stack.len() == 1 {
                return Err(climbs(last_link));
            }
            stack.pop();
            continue;
        }
        if todo.is_empty() {
            let parent = stack.pop().expect("the base is never popped");
            return Ok((parent, name));
        }
        let top = stack.last().expect("the base is never popped");
        match step(top, &name, create)? {
            Step::Dir(d) => stack.push(d),
            Step::Missing => {
                return Err(Problem::Io(
                    top.shown(&name),
                    std::io::ErrorKind::NotFound.into(),
                ));
            }
            Step::Link(target) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Problem::Loop(top.shown(&name)));
                }
                let link = top.shown(&name);
                last_link = Some((link.clone(), target.clone()));
                follow(&mut stack, &mut todo, real, link, target)?;
            }
        }
    }
    Err(Problem::NotRelative("names the project directory itself"))
}

/// Does `rel` (every component, the last one too, links followed) stay beneath `root`?
/// Missing components are fine (an output not made yet). For validation: `Ok(())` or why not.
pub fn stays_beneath(root: &Path, rel: &Path) -> std::result::Result<(), Problem> {
    walk_all(root, rel).map_err(|p| p.relative_to(root))
}

fn walk_all(root: &Path, rel: &Path) -> std::result::Result<(), Problem> {
    let base = Dir::open(root).map_err(|e| Problem::Io(root.to_path_buf(), e))?;
    let real = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let mut todo = components(rel)?;
    let mut stack = vec![base];
    let mut links = 0;
    let mut last_link = None;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            if stack.len() == 1 {
                return Err(climbs(last_link));
            }
            stack.pop();
            continue;
        }
        let top = stack.last().expect("the base is never popped");
        match step(top, &name, false) {
            Ok(Step::Dir(d)) => stack.push(d),
            Ok(Step::Missing) => return Ok(()),
            Ok(Step::Link(target)) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Problem::Loop(top.shown(&name)));
                }
                let link = top.shown(&name);
                last_link = Some((link.clone(), target.clone()));
                follow(&mut stack, &mut todo, &real, link, target)?;
            }
            // a file where the path ends (or a file in the middle: writing there fails, but
            // it does not leave the project)
            Err(Problem::NotDir(_)) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `..` above the root: through the last link followed, if any.
fn climbs(last_link: Option<(PathBuf, PathBuf)>) -> Problem {
    match last_link {
        Some((link, target)) => Problem::Link { link, target },
        None => Problem::Climbs,
    }
}

enum Step {
    Dir(Dir),
    Link(PathBuf),
    Missing,
}

/// Open `name` in `top` as a directory without following it; a link gives its target.
fn step(top: &Dir, name: &OsStr, create: bool) -> std::result::Result<Step, Problem> {
    let mut made = false;
    loop {
        match top.open_dir(name) {
            Ok(d) => return Ok(Step::Dir(d)),
            Err(e) if e.raw_os_error() == Some(Errno::ENOENT as i32) => {
                if !create {
                    return Ok(Step::Missing);
                }
                if made {
                    return Err(Problem::Io(top.shown(name), e));
                }
                match top.mkdir(name) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(Errno::EEXIST as i32) => {}
                    Err(e) => return Err(Problem::Io(top.shown(name), e)),
                }
                made = true;
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(c) if c == Errno::ELOOP as i32 || c == Errno::ENOTDIR as i32
                ) =>
            {
                let st = top
                    .lstat(name)
                    .map_err(|e| Problem::Io(top.shown(name), e))?;
                let is_link = st.is_some_and(|st| {
                    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK
                });
                if !is_link {
                    return Err(Problem::NotDir(top.shown(name)));
                }
                let target = readlinkat(top.fd.as_fd(), name)
                    .map_err(|e| Problem::Io(top.shown(name), e.into()))?;
                return Ok(Step::Link(PathBuf::from(target)));
            }
            Err(e) => return Err(Problem::Io(top.shown(name), e)),
        }
    }
}

/// Continue the walk at a link's target: a relative one from the link's directory, an absolute
/// one from the root if it names a place under the root's real path `real`, else it leads out.
fn follow(
    stack: &mut Vec<Dir>,
    todo: &mut VecDeque<OsString>,
    real: &Path,
    link: PathBuf,
    target: PathBuf,
) -> std::result::Result<(), Problem> {
    let rest = if target.is_absolute() {
        match target.strip_prefix(real) {
            Ok(inside) => {
                stack.truncate(1);
                inside.to_path_buf()
            }
            Err(_) => return Err(Problem::Link { link, target }),
        }
    } else {
        target.clone()
    };
    let mut more = components(&rest).or_else(|e| match e {
        // `link -> .` or a link to the root itself: nothing more to walk
        Problem::NotRelative(_) => Ok(VecDeque::new()),
        e => Err(e),
    })?;
    // the rest of the path continues after the link's target
    more.extend(todo.drain(..));
    *todo = more;
    Ok(())
}

fn components(rel: &Path) -> std::result::Result<VecDeque<OsString>, Problem> {
    let mut out = VecDeque::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push_back(n.to_os_string()),
            Component::ParentDir => out.push_back(OsString::from("..")),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(Problem::NotRelative("is absolute"));
            }
        }
    }
    if out.is_empty() {
        return Err(Problem::NotRelative("names the project directory itself"));
    }
    Ok(out)
}

/// Write `bytes` to the file `rel` beneath `root` (created, or replaced atomically: a link
/// there is replaced, not followed).
pub fn write_file(root: &Path, rel: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let (dir, name) = parent_or_error(root, rel, true)?;
    let dest = dir.shown(&name);
    let tmp = OsString::from(format!(
        ".{}.mlrun-write-{}",
        name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    let written = dir
        .create_file(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| dir.rename(&tmp, &name));
    written.map_err(|e| {
        dir.remove_file(&tmp);
        Error::other(format!("cannot write `{}`", dest.display())).cause(e)
    })
}

/// As [`parent_of`], with the problem turned into an error.
pub fn parent_or_error(root: &Path, rel: &Path, create: bool) -> Result<(Dir, OsString)> {
    parent_of(root, rel, create).map_err(|p| p.error())
}

/// `a/./b/../c` → `a/c`, without touching the file system (a path as typed, before any check:
/// `..` at the top stays there only as far as `PathBuf::pop` lets it).
pub fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        (d, root, outside)
    }

    #[test]
    fn plain_paths_resolve_and_missing_directories_are_created() {
        let (_d, root, _) = tree();
        let (dir, name) = parent_of(&root, Path::new("a/b/c/d/f.txt"), true).unwrap();
        assert_eq!(name, "f.txt");
        dir.create_file(&name).unwrap();
        assert!(root.join("a/b/c/d/f.txt").is_file());
        assert!(matches!(
            parent_of(&root, Path::new("x/y"), false),
            Err(Problem::Io(..))
        ));
    }

    #[test]
    fn links_inside_are_followed_and_links_outside_refused() {
        let (_d, root, outside) = tree();
        symlink("a/b", root.join("inside")).unwrap();
        symlink(&outside, root.join("out_abs")).unwrap();
        symlink("../outside", root.join("out_rel")).unwrap();
        symlink(root.join("a"), root.join("in_abs")).unwrap();
        symlink("../../..", root.join("a/b/up")).unwrap();
        let (dir, _) = parent_of(&root, Path::new("inside/f"), true).unwrap();
        dir.create_file(OsStr::new("f")).unwrap();
        assert!(root.join("a/b/f").is_file());
        let (dir, _) = parent_of(&root, Path::new("in_abs/g"), true).unwrap();
        dir.create_file(OsStr::new("g")).unwrap();
        assert!(root.join("a/g").is_file());
        for bad in ["out_abs/f", "out_rel/f", "a/b/up/f", "a/../../f", "../f"] {
            let err = parent_of(&root, Path::new(bad), true).unwrap_err();
            assert!(err.is_escape(), "{bad}: {err:?}");
        }
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        // the last component is not followed: the caller replaces the link itself
        let (_, name) = parent_of(&root, Path::new("out_abs"), true).unwrap();
        assert_eq!(name, "out_abs");
    }

    #[test]
    fn validation_follows_the_last_component_too() {
        let (_d, root, outside) = tree();
        symlink(&outside, root.join("linkdir")).unwrap();
        symlink(outside.join("f"), root.join("file_link")).unwrap();
        symlink("a", root.join("fine")).unwrap();
        assert!(stays_beneath(&root, Path::new("linkdir/out.txt")).is_err());
        assert!(stays_beneath(&root, Path::new("linkdir")).is_err());
        assert!(stays_beneath(&root, Path::new("file_link")).is_err());
        assert!(stays_beneath(&root, Path::new("fine/b/x")).is_ok());
        assert!(stays_beneath(&root, Path::new("not/yet/made")).is_ok());
        symlink("loop", root.join("loop")).unwrap();
        assert!(matches!(
            stays_beneath(&root, Path::new("loop/x")),
            Err(Problem::Loop(_))
        ));
    }

    #[test]
    fn recorded_paths_must_be_plain_relative_names() {
        assert!(check_relative(Path::new("a/b.txt")).is_ok());
        assert!(check_relative(Path::new("./a")).is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../../x", ".", "a/.."] {
            assert!(check_relative(Path::new(bad)).is_err(), "{bad}");
        }
    }
}
