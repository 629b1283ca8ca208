//! Bytes this process verified in memory and keeps for the restore that follows: the shared
//! cache (`remote::cache`) fetches a hit's objects, hashes each as it arrives, stores it, and
//! hands the same bytes over here; restoring that object then writes those bytes to the work
//! tree without reading the stored copy back and hashing it a second time. The bytes written
//! are the bytes that were hashed: nothing unverified reaches the tree (a restore from the
//! store file still re-hashes it, see `objects::copy_out`).
//!
//! Bounded (`MAX_BYTES` in all; past it, restores read the store as usual), and each object is
//! handed out once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Verified bytes, shared with whatever holds them (a slice of a downloaded span).
pub type Bytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// At most this many bytes are kept at once.
const MAX_BYTES: usize = 64 << 20;

static HELD: Mutex<(BTreeMap<String, Bytes>, usize)> = Mutex::new((BTreeMap::new(), 0));

/// Keep `bytes`, which hash to `hash` (the caller checked), for its restore. False when the
/// bound is reached (nothing kept).
pub fn hand_over(hash: &str, bytes: Bytes) -> bool {
    let len = (*bytes).as_ref().len();
    let mut held = HELD.lock().expect("verified bytes");
    if held.1 + len > MAX_BYTES || held.0.contains_key(hash) {
        return false;
    }
    held.1 += len;
    held.0.insert(hash.to_string(), bytes);
    true
}

/// The verified bytes of object `hash`, if this process kept them; handed out once.
pub fn take(hash: &str) -> Option<Bytes> {
    let mut held = HELD.lock().expect("verified bytes");
    let b = held.0.remove(hash)?;
    held.1 -= (*b).as_ref().len();
    Some(b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn handed_out_once_and_bounded() {
        let h = "verified-test-hash";
        assert!(super::hand_over(h, std::sync::Arc::new(b"abc".to_vec())));
        assert!(!super::hand_over(h, std::sync::Arc::new(b"abc".to_vec())));
        assert_eq!((*super::take(h).unwrap()).as_ref(), b"abc");
        assert!(super::take(h).is_none());
        let big = std::sync::Arc::new(vec![0u8; super::MAX_BYTES + 1]);
        assert!(!super::hand_over("verified-test-big", big));
    }
}
