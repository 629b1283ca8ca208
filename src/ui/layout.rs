//! A small layered layout for lineage graphs, drawn left to right: longest-path layering, then
//! a few sweeps of barycentric ordering inside each layer to keep edges short and uncrossed.
//! No dummy nodes: an edge spanning several layers is drawn as one curve.

/// Where each node goes: its layer (column) and its rank inside the layer (row).
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub layer: Vec<usize>,
    pub rank: Vec<usize>,
    /// the nodes of each layer, top to bottom
    pub layers: Vec<Vec<usize>>,
}

/// Lay out `n` nodes joined by `edges` (from, to). A cycle (lineage has none, but a store is
/// data) is broken by ignoring the edges that close it.
pub fn layered(n: usize, edges: &[(usize, usize)]) -> Layout {
    let mut succ = vec![Vec::new(); n];
    let mut pred = vec![Vec::new(); n];
    for &(a, b) in edges {
        if a < n && b < n && a != b {
            succ[a].push(b);
            pred[b].push(a);
        }
    }
    // topological order (Kahn); nodes left in a cycle are appended in index order
    let mut indeg: Vec<usize> = pred.iter().map(Vec::len).collect();
    let mut order: Vec<usize> = (0..n).filter(|&v| indeg[v] == 0).collect();
    let mut placed = vec![false; n];
    for &v in &order {
        placed[v] = true;
    }
    let mut i = 0;
    loop {
        while i < order.len() {
            let v = order[i];
            i += 1;
            for &w in &succ[v] {
                indeg[w] -= 1;
                if indeg[w] == 0 && !placed[w] {
                    placed[w] = true;
                    order.push(w);
                }
            }
        }
        // a cycle: start again from its smallest unplaced node
        match (0..n).find(|&v| !placed[v]) {
            Some(v) => {
                placed[v] = true;
                order.push(v);
            }
            None => break,
        }
    }
    let pos_in_order: Vec<usize> = {
        let mut p = vec![0; n];
        for (i, &v) in order.iter().enumerate() {
            p[v] = i;
        }
        p
    };
    // longest path from the sources, over forward edges only
    let mut layer = vec![0usize; n];
    for &v in &order {
        for &u in &pred[v] {
            if pos_in_order[u] < pos_in_order[v] {
                layer[v] = layer[v].max(layer[u] + 1);
            }
        }
    }
    let nlayers = layer.iter().copied().max().map_or(0, |m| m + 1);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); nlayers];
    for &v in &order {
        layer_push(&mut layers, layer[v], v);
    }
    let mut rank = vec![0usize; n];
    let set_ranks = |layers: &Vec<Vec<usize>>, rank: &mut Vec<usize>| {
        for l in layers {
            for (i, &v) in l.iter().enumerate() {
                rank[v] = i;
            }
        }
    };
    set_ranks(&layers, &mut rank);
    // barycentric sweeps: down using predecessors, up using successors
    for sweep in 0..8 {
        let down = sweep % 2 == 0;
        let range: Vec<usize> = if down {
            (1..nlayers).collect()
        } else {
            (0..nlayers.saturating_sub(1)).rev().collect()
        };
        for l in range {
            let neighbours = if down { &pred } else { &succ };
            let mut keyed: Vec<(f64, usize, usize)> = layers[l]
                .iter()
                .map(|&v| {
                    let ns: Vec<usize> = neighbours[v]
                        .iter()
                        .copied()
                        .filter(|&u| layer[u] != layer[v])
                        .collect();
                    let key = if ns.is_empty() {
                        rank[v] as f64
                    } else {
                        ns.iter().map(|&u| rank[u] as f64).sum::<f64>() / ns.len() as f64
                    };
                    (key, rank[v], v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            layers[l] = keyed.into_iter().map(|(_, _, v)| v).collect();
            for (i, &v) in layers[l].iter().enumerate() {
                rank[v] = i;
            }
        }
    }
    Layout {
        layer,
        rank,
        layers,
    }
}

fn layer_push(layers: &mut [Vec<usize>], l: usize, v: usize) {
    layers[l].push(v);
}

/// Edge crossings between adjacent layers (for tests and for judging a layout).
pub fn crossings(l: &Layout, edges: &[(usize, usize)]) -> usize {
    let adjacent: Vec<(usize, usize)> = edges
        .iter()
        .copied()
        .filter(|&(a, b)| l.layer[b] == l.layer[a] + 1)
        .collect();
    let mut n = 0;
    for (i, &(a, b)) in adjacent.iter().enumerate() {
        for &(c, d) in &adjacent[i + 1..] {
            if l.layer[a] == l.layer[c]
                && ((l.rank[a] < l.rank[c] && l.rank[b] > l.rank[d])
                    || (l.rank[a] > l.rank[c] && l.rank[b] < l.rank[d]))
            {
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_follow_the_longest_path() {
        // 0 → 1 → 2, and 0 → 2 directly: 2 goes after 1, not beside it
        let l = layered(3, &[(0, 1), (1, 2), (0, 2)]);
        assert_eq!(l.layer, vec![0, 1, 2]);
        assert_eq!(l.layers, vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn every_node_is_placed_once() {
        let edges = [(0, 3), (1, 3), (2, 4), (3, 5), (4, 5)];
        let l = layered(7, &edges);
        let mut all: Vec<usize> = l.layers.concat();
        all.sort();
        assert_eq!(all, (0..7).collect::<Vec<_>>());
        for &(a, b) in &edges {
            assert!(l.layer[a] < l.layer[b], "edge {a}->{b} goes left to right");
        }
        // the isolated node 6 is a source
        assert_eq!(l.layer[6], 0);
    }

    #[test]
    fn barycentric_ordering_removes_avoidable_crossings() {
        // sources 0,1 and targets 2,3 wired crosswise: 0→3, 1→2
        let edges = [(0, 3), (1, 2)];
        let l = layered(4, &edges);
        assert_eq!(crossings(&l, &edges), 0);
        // a wider case: two chains listed interleaved
        let edges = [(0, 5), (1, 4), (2, 3), (5, 6), (4, 7), (3, 8)];
        let l = layered(9, &edges);
        assert_eq!(crossings(&l, &edges), 0);
    }

    #[test]
    fn a_cycle_does_not_hang_or_lose_nodes() {
        let l = layered(3, &[(0, 1), (1, 2), (2, 0)]);
        let mut all = l.layers.concat();
        all.sort();
        assert_eq!(all, vec![0, 1, 2]);
    }

    #[test]
    fn two_hundred_nodes_lay_out() {
        // a fan of 100 inputs into 100 steps, chained: every node placed, edges rightwards
        let mut edges = Vec::new();
        for i in 0..100 {
            edges.push((i, 100 + i));
            if i > 0 {
                edges.push((100 + i - 1, 100 + i));
            }
        }
        let l = layered(200, &edges);
        assert_eq!(l.layers.concat().len(), 200);
        for &(a, b) in &edges {
            assert!(l.layer[a] < l.layer[b]);
        }
    }
}
