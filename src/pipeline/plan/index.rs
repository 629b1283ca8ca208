//! Declared outputs indexed by path, shared by the checks of one step (`check`) and of the whole
//! graph (`graph`).

use std::collections::BTreeMap;

use super::PathDecl;

/// Declared outputs by path, to find the ones overlapping a path (the path itself, a directory
/// holding it, or anything inside it) without comparing every pair of paths: validating a
/// pipeline of n steps stays O(n log n) rather than O(n²).
pub(super) struct OutputIndex<'o> {
    /// path → indices into the outputs list
    by_path: BTreeMap<&'o str, Vec<usize>>,
}

impl<'o> OutputIndex<'o> {
    pub(super) fn new(outputs: &'o [(usize, PathDecl, std::ops::Range<usize>)]) -> Self {
        let mut by_path: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (k, (_, o, _)) in outputs.iter().enumerate() {
            by_path.entry(o.path.as_str()).or_default().push(k);
        }
        OutputIndex { by_path }
    }

    /// Indices of the outputs `o` with `within(path, o)` or `within(o, path)`, ascending.
    pub(super) fn overlapping(&self, path: &str) -> Vec<usize> {
        let mut out = Vec::new();
        // `path` itself and the directories holding it: one lookup per `/`
        for (i, b) in path.bytes().enumerate() {
            if b == b'/'
                && let Some(v) = self.by_path.get(&path[..i])
            {
                out.extend(v);
            }
        }
        if let Some(v) = self.by_path.get(path) {
            out.extend(v);
        }
        // inside it: the keys from "path/" up to "path0" (`0` follows `/` in byte order)
        let (lo, hi) = (format!("{path}/"), format!("{path}0"));
        for (_, v) in self.by_path.range::<str, _>((
            std::ops::Bound::Included(lo.as_str()),
            std::ops::Bound::Excluded(hi.as_str()),
        )) {
            out.extend(v);
        }
        out.sort_unstable();
        out
    }
}
