//! `fsck --remote --repair`: objects the remote has damaged (or lost) are made to be sent
//! again. The remote stops counting them as there (their `objects` rows deleted, listed in
//! `objects_damaged`, with the directories holding them); a damaged object stored on its own is
//! deleted (a create-if-absent upload would leave it); this store forgets it knew them to be
//! there, and the runs pushed from here that need them are pushed again by the next `push`,
//! which uploads what the remote lacks (each damaged object on its own: a pack of the same
//! objects would have the damaged pack's name).

use std::collections::BTreeSet;

use super::Connected;
use crate::error::Result;
use crate::store::Store;

/// What the repair did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Repaired {
    /// objects (and directories holding them) the remote no longer counts as there
    pub marked: Vec<String>,
    /// damaged objects stored on their own, deleted from the bucket
    pub deleted: usize,
    /// runs pushed from this store that the next `push` sends again
    pub runs_to_push: usize,
}

/// Repair `missing` and `corrupt` objects (as `fsck --remote` found them); `store`: this
/// project's store, when there is one.
pub fn repair(
    conn: &mut Connected,
    store: Option<&Store>,
    missing: &[String],
    corrupt: &[String],
) -> Result<Repaired> {
    let names: BTreeSet<String> = missing.iter().chain(corrupt).cloned().collect();
    if names.is_empty() {
        return Ok(Repaired::default());
    }
    let mut marked: Vec<String> = names.iter().cloned().collect();
    marked.extend(conn.record.dirs_holding(&names)?);
    let packed = conn.record.pack_locations(corrupt)?;
    let loose: Vec<String> = corrupt
        .iter()
        .filter(|n| !packed.contains_key(*n))
        .cloned()
        .collect();
    // the bucket first: a record saying "gone" over a damaged object still there would let
    // the next push's create-if-absent upload keep the damaged bytes
    conn.bucket.remove(&loose)?;
    conn.record.mark_damaged(&marked)?;
    let runs = conn.record.runs_needing(&marked)?;
    let mut runs_to_push = 0;
    if let Some(store) = store {
        let key = conn.remote.key();
        store.forget_remote_objects(&key, &marked)?;
        runs_to_push = store.push_again(&key, &runs)?;
    }
    Ok(Repaired {
        marked,
        deleted: loose.len(),
        runs_to_push,
    })
}
