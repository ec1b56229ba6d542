//! Replica placement by rendezvous (highest-random-weight) hashing.
//!
//! Every node scores each (chunk, node) pair with a hash; a chunk's replicas go to the
//! highest-scoring live nodes. Any node computes the same answer from the member list
//! alone, and when a node leaves only the chunks it held move.

use meshml_protocol::{ChunkId, NodeId};

fn score(chunk: &ChunkId, node: &NodeId) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(chunk.as_bytes());
    h.update(node.as_str().as_bytes());
    let out = h.finalize();
    u64::from_le_bytes(out.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// All `nodes` ordered by preference for `chunk` (best first; ties by node id).
pub fn rank<'a>(chunk: &ChunkId, nodes: &'a [NodeId]) -> Vec<&'a NodeId> {
    let mut scored: Vec<(u64, &NodeId)> = nodes.iter().map(|n| (score(chunk, n), n)).collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().map(|(_, n)| n).collect()
}

/// The nodes that hold `chunk`'s `replicas` copies (fewer if there are fewer nodes).
pub fn place(chunk: &ChunkId, nodes: &[NodeId], replicas: usize) -> Vec<NodeId> {
    rank(chunk, nodes)
        .into_iter()
        .take(replicas)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::chunk_id;

    fn nodes(n: usize) -> Vec<NodeId> {
        (0..n).map(|i| NodeId::new(format!("node-{i}"))).collect()
    }

    fn chunks(n: usize) -> Vec<ChunkId> {
        (0..n)
            .map(|i| chunk_id(&(i as u64).to_le_bytes()))
            .collect()
    }

    #[test]
    fn placement_is_deterministic_distinct_and_capped() {
        let ns = nodes(5);
        let c = chunk_id(b"c");
        let p = place(&c, &ns, 2);
        assert_eq!(p, place(&c, &ns, 2));
        assert_eq!(p.len(), 2);
        assert_ne!(p[0], p[1]);
        // Order of the member list does not matter.
        let mut rev = ns.clone();
        rev.reverse();
        assert_eq!(place(&c, &rev, 2), p);
        assert_eq!(place(&c, &ns[..1], 3).len(), 1);
    }

    #[test]
    fn load_is_balanced() {
        let ns = nodes(4);
        let mut count = vec![0usize; 4];
        for c in chunks(4000) {
            for n in place(&c, &ns, 2) {
                count[ns.iter().position(|m| *m == n).unwrap()] += 1;
            }
        }
        // 8000 replicas over 4 nodes: 2000 each, within 10%.
        assert!(
            count.iter().all(|&c| (1800..2200).contains(&c)),
            "{count:?}"
        );
    }

    #[test]
    fn only_the_leaving_nodes_chunks_move() {
        let ns = nodes(5);
        let gone = ns[2].clone();
        let rest: Vec<NodeId> = ns.iter().filter(|n| **n != gone).cloned().collect();
        for c in chunks(500) {
            let before = place(&c, &ns, 2);
            let after = place(&c, &rest, 2);
            for n in &before {
                if *n != gone {
                    assert!(after.contains(n), "a surviving replica moved");
                }
            }
        }
    }
}
