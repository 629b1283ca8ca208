//! The key behind redaction markers. A redacted value is recorded as `<redacted:HMAC>`, an
//! HMAC-SHA256 of the value keyed with a secret kept outside the store: a store copied elsewhere
//! (or read by someone without the key) cannot be checked against a list of guesses, however
//! weak the secret.
//!
//! Where the key lives: `$MLRUN_SECRET_KEY_FILE` when set (a path shared by a team or set by CI),
//! else `$XDG_CONFIG_HOME/mlrun/key`, else `~/.config/mlrun/key`. The file is created on first
//! use (32 random bytes as hex, mode 0600, published with a hard link so two mlruns starting at
//! once agree on one key). Any file of at least 16 bytes works as a key (trailing whitespace is
//! ignored), e.g. `openssl rand -hex 32 > key`.
//!
//! When the default file cannot be created (no HOME, a read-only home), the run goes on with a
//! one-off key and a warning: no secret is written, but markers differ from run to run, so steps
//! holding a secret are not reused from the cache. A key file that exists but cannot be read, is
//! too short, or a `MLRUN_SECRET_KEY_FILE` that cannot be created, is an error: silently using
//! another key would make every secret-holding step rerun without saying why.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

/// The variable that points at the key file.
pub const KEY_FILE_VAR: &str = "MLRUN_SECRET_KEY_FILE";

/// Fewer bytes than this in a key file is refused.
const MIN_KEY_BYTES: usize = 16;

#[derive(Clone)]
pub struct SecretKey {
    bytes: Vec<u8>,
    /// why a one-off key is used, to warn about (None: from a key file)
    one_off: Option<String>,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A key from its bytes (tests, and callers that have one already).
    pub fn from_bytes(bytes: &[u8]) -> SecretKey {
        SecretKey {
            bytes: bytes.to_vec(),
            one_off: None,
        }
    }

    /// The user's key, from `MLRUN_SECRET_KEY_FILE` or the default file (created if missing).
    pub fn load() -> Result<SecretKey> {
        if let Some(p) = std::env::var_os(KEY_FILE_VAR).filter(|p| !p.is_empty()) {
            let path = PathBuf::from(p);
            return read_or_create(&path).map_err(|e| {
                e.hint(format!(
                    "{KEY_FILE_VAR} names the file holding the key that makes secret markers; point it at a readable file of at least {MIN_KEY_BYTES} random bytes (e.g. `openssl rand -hex 32 > FILE`), or unset it to use ~/.config/mlrun/key"
                ))
            });
        }
        let Some(path) = default_path() else {
            return Ok(Self::one_off(
                "neither XDG_CONFIG_HOME nor HOME is set, so there is no place for the secret key file"
                    .into(),
            ));
        };
        match std::fs::symlink_metadata(&path) {
            // it exists: it must be usable
            Ok(_) => read_key(&path),
            Err(_) => match create(&path) {
                Ok(key) => Ok(key),
                Err(e) => Ok(Self::one_off(format!(
                    "cannot create the secret key file `{}` ({})",
                    path.display(),
                    e.message
                ))),
            },
        }
    }

    fn one_off(why: String) -> SecretKey {
        let mut bytes = vec![0u8; 32];
        if getrandom::fill(&mut bytes).is_err() {
            // no system randomness: still unguessable enough for a key that lives one run
            bytes = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            )
            .into_bytes();
        }
        SecretKey {
            bytes,
            one_off: Some(why),
        }
    }

    /// What to tell the user when this is a one-off key.
    pub fn warning(&self) -> Option<String> {
        self.one_off.as_ref().map(|why| {
            format!(
                "{why}: secrets are recorded with markers made from a one-off key, so steps whose command, params or env hold a secret will not be reused by later runs; set {KEY_FILE_VAR} to a writable path to keep a key"
            )
        })
    }

    /// HMAC-SHA256 of the parts (each followed by a NUL byte), as hex.
    pub fn mac(&self, parts: &[&str]) -> String {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes)
            .expect("HMAC takes a key of any length");
        for p in parts {
            m.update(p.as_bytes());
            m.update(b"\0");
        }
        hex::encode(m.finalize().into_bytes())
    }
}

fn default_path() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| {
        let p = PathBuf::from(v);
        p.is_absolute().then_some(p)
    };
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").and_then(absolute) {
        return Some(dir.join("mlrun").join("key"));
    }
    std::env::var_os("HOME")
        .and_then(absolute)
        .map(|h| h.join(".config").join("mlrun").join("key"))
}

fn read_or_create(path: &Path) -> Result<SecretKey> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => read_key(path),
        Err(_) => create(path),
    }
}

fn read_key(path: &Path) -> Result<SecretKey> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::other(format!("cannot read the secret key file `{}`", path.display()))
            .cause(e)
            .hint("make it readable by you (it should be mode 0600), or move it aside to have a new key made (secret-holding steps will rerun once)")
    })?;
    let trimmed = bytes.trim_ascii_end();
    if trimmed.len() < MIN_KEY_BYTES {
        return Err(Error::other(format!(
            "the secret key file `{}` holds {} bytes; a key needs at least {MIN_KEY_BYTES}",
            path.display(),
            trimmed.len()
        ))
        .hint("fill it with random bytes, e.g. `openssl rand -hex 32 > FILE`, or remove it to have one made"));
    }
    Ok(SecretKey::from_bytes(trimmed))
}

/// Make a new key file atomically: write a private temporary file beside it, then hard-link it
/// into place, which fails if another process made the key first (then that key is used).
fn create(path: &Path) -> Result<SecretKey> {
    let fail = |what: &str, e: std::io::Error| {
        Error::other(format!("cannot {what} `{}`", path.display())).cause(e)
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail("create the directory of the secret key file", e))?;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| {
        Error::other("cannot read random bytes from the system for a new secret key").cause(e)
    })?;
    let text = format!("{}\n", hex::encode(raw));
    let tmp = dir.join(format!(
        ".key.{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("write the secret key file", e));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(SecretKey::from_bytes(text.trim_end().as_bytes())),
        // another mlrun made it first: use theirs
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(path),
        Err(e) => Err(fail("create the secret key file", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_key_file_is_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf/mlrun/key");
        let a = read_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = read_or_create(&path).unwrap();
        assert_eq!(a.mac(&["x"]), b.mac(&["x"]));
        // no temporary file is left beside it
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["key"]);
    }

    #[test]
    fn a_short_key_file_is_refused_with_a_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "short\n").unwrap();
        let e = read_or_create(&path).unwrap_err();
        assert!(e.message.contains("at least 16"), "{}", e.message);
        assert!(e.hints[0].contains("openssl rand"), "{:?}", e.hints);
    }

    #[test]
    fn markers_depend_on_the_key() {
        let a = SecretKey::from_bytes(b"0123456789abcdef0123");
        let b = SecretKey::from_bytes(b"0123456789abcdef0124");
        assert_ne!(a.mac(&["v"]), b.mac(&["v"]));
        assert_ne!(a.mac(&["a", "b"]), a.mac(&["ab"]));
    }
}
