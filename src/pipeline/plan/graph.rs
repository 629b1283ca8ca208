//! The step graph: which declared outputs overlap, which step depends on which (through its
//! inputs and `after`), and a topological order, reporting overlaps, missing inputs and cycles.

use std::collections::BTreeSet;

use super::check::Checker;
use super::index::OutputIndex;
use super::{PathDecl, Step};
use crate::pipeline::diag::{Diagnostic, Severity};
use crate::pipeline::raw::RawPipeline;

impl Checker<'_> {
    pub(super) fn check_outputs(
        &mut self,
        raw: &RawPipeline,
        outputs: &[(usize, PathDecl, std::ops::Range<usize>)],
        index: &OutputIndex<'_>,
    ) {
        // every overlapping pair (a, b), a declared before b, in declaration order
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        for (b, (_, ob, _)) in outputs.iter().enumerate() {
            pairs.extend(
                index
                    .overlapping(&ob.path)
                    .into_iter()
                    .filter(|&a| a < b)
                    .map(|a| (a, b)),
            );
        }
        pairs.sort_unstable();
        for (a, b) in pairs {
            let ((sa, oa, _), (sb, ob, span_b)) = (&outputs[a], &outputs[b]);
            let (na, nb) = (&raw.steps[*sa].name.value, &raw.steps[*sb].name.value);
            let msg = if oa.path == ob.path {
                if sa == sb {
                    format!("step `{nb}` declares output `{}` twice", ob.path)
                } else {
                    format!("steps `{na}` and `{nb}` both declare output `{}`", ob.path)
                }
            } else {
                format!(
                    "output `{}` of step `{nb}` overlaps output `{}` of step `{na}`",
                    ob.path, oa.path
                )
            };
            self.err(
                Diagnostic::error(msg, Some(span_b.clone()))
                    .label("declared again here")
                    .hint("each file or directory must be written by exactly one step"),
            );
        }
    }

    pub(super) fn dependencies(
        &mut self,
        raw: &RawPipeline,
        steps: &[Step],
        outputs: &[(usize, PathDecl, std::ops::Range<usize>)],
        index: &OutputIndex<'_>,
        after: &[Vec<usize>],
    ) -> Vec<Vec<usize>> {
        let mut deps = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            let mut d: BTreeSet<usize> = after[i].iter().copied().collect();
            for input in &s.inputs {
                let producers: Vec<usize> = index
                    .overlapping(&input.path)
                    .into_iter()
                    .map(|k| outputs[k].0)
                    .collect();
                if producers.contains(&i) {
                    self.err(Diagnostic::error(
                        format!("`{}` is both an input and an output of step `{}`", input.path, s.name),
                        self.input_span(raw, i, &input.path),
                    ).hint("a step must write its result to a new path; change the file in a separate output"));
                    continue;
                }
                if producers.is_empty()
                    && self.recorded.is_none()
                    && !self.missing_inputs_ok
                    && std::fs::symlink_metadata(self.root.join(&input.path)).is_err()
                {
                    let span = self.input_span(raw, i, &input.path);
                    self.err(Diagnostic::error(
                        format!("input `{}` of step `{}` does not exist, and no step produces it", input.path, s.name),
                        span,
                    )
                    .label("missing file")
                    .hint("create the file, fix the path, or add the step that writes it to its `outputs`"));
                }
                d.extend(producers);
            }
            deps.push(d.into_iter().collect());
        }
        deps
    }

    /// Kahn's algorithm, preferring file order among ready steps. On a cycle, report it.
    pub(super) fn topo_order(&mut self, raw: &RawPipeline, steps: &[Step]) -> Option<Vec<usize>> {
        let n = steps.len();
        let mut indegree: Vec<usize> = steps.iter().map(|s| s.deps.len()).collect();
        let mut dependants = vec![Vec::new(); n];
        for (i, s) in steps.iter().enumerate() {
            for &d in &s.deps {
                dependants[d].push(i);
            }
        }
        let mut ready: BTreeSet<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &j in &dependants[i] {
                indegree[j] -= 1;
                if indegree[j] == 0 {
                    ready.insert(j);
                }
            }
        }
        if order.len() == n {
            return if self.diags.iter().any(|d| d.severity == Severity::Error) {
                None
            } else {
                Some(order)
            };
        }
        // Walk dependencies from a step left over until a step repeats: that is a cycle.
        let left: BTreeSet<usize> = (0..n).filter(|i| !order.contains(i)).collect();
        let start = *left.first().expect("a step is left");
        let mut path = vec![start];
        let mut cur = start;
        loop {
            let next = *steps[cur]
                .deps
                .iter()
                .find(|d| left.contains(d))
                .expect("a cycle member has a dependency in the cycle");
            if let Some(pos) = path.iter().position(|&p| p == next) {
                // `path` follows dependencies; reversed, it follows the data. Start at `next`,
                // the step the caret points at.
                let mut cycle: Vec<&str> = path[pos..]
                    .iter()
                    .rev()
                    .map(|&i| steps[i].name.as_str())
                    .collect();
                cycle.rotate_right(1);
                cycle.push(cycle[0]);
                self.err(Diagnostic::error(
                    format!("steps depend on each other in a cycle: {}", cycle.join(" → ")),
                    Some(raw.steps[next].name.span.clone()),
                )
                .label("part of the cycle")
                .hint("a step's inputs are the outputs of the steps it depends on (plus `after`); break the cycle"));
                return None;
            }
            path.push(next);
            cur = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::plan::within;

    #[test]
    fn the_output_index_finds_exactly_the_overlapping_outputs() {
        let paths = [
            "data",
            "data/a.csv",
            "data2",
            "data/sub/x",
            "data-b",
            "model",
            "data",
            "/abs/x",
        ];
        let outputs: Vec<(usize, PathDecl, std::ops::Range<usize>)> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let d = PathDecl {
                    path: p.to_string(),
                    dir: false,
                    store: true,
                };
                (i, d, 0..0)
            })
            .collect();
        let index = OutputIndex::new(&outputs);
        for probe in [
            "data",
            "data/a.csv",
            "data/sub",
            "data/sub/x/y",
            "dat",
            "data2",
            "model/m",
            "/abs",
            "/abs/x/y",
            "x",
        ] {
            let naive: Vec<usize> = (0..paths.len())
                .filter(|&k| within(probe, paths[k]) || within(paths[k], probe))
                .collect();
            assert_eq!(index.overlapping(probe), naive, "{probe}");
        }
    }
}
