//! A blake3 Merkle tree with domain-separated leaves and nodes, and inclusion paths.
//!
//! Shape: leaves are paired left to right level by level; a lone node at the end of a
//! level is carried up unchanged (never duplicated, so no two leaf lists share a root
//! through padding). The root also commits to the number of leaves, so a path is checked
//! against `(index, count)` and cannot be replayed at another position.

use serde::{Deserialize, Serialize};

use crate::crypto::Hash;

const LEAF_TAG: &[u8] = b"peerhours/merkle/leaf/v1";
const NODE_TAG: &[u8] = b"peerhours/merkle/node/v1";
const ROOT_TAG: &[u8] = b"peerhours/merkle/root/v1";

/// Most levels a path may have: 2^64 leaves are more than any state holds.
pub const PATH_LEN_MAX: usize = 64;

/// The hash of a leaf holding `data`.
pub fn leaf(data: &[u8]) -> Hash {
    Hash::of_parts(&[LEAF_TAG, data])
}

fn node(left: &Hash, right: &Hash) -> Hash {
    Hash::of_parts(&[NODE_TAG, &left.0, &right.0])
}

fn finish(count: u64, top: &Hash) -> Hash {
    Hash::of_parts(&[ROOT_TAG, &count.to_be_bytes(), &top.0])
}

/// The root over `leaves` (leaf hashes, in order). The empty tree has a root too.
pub fn root(leaves: &[Hash]) -> Hash {
    let count = leaves.len() as u64;
    if leaves.is_empty() {
        return finish(0, &Hash::ZERO);
    }
    let mut level: Vec<Hash> = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => node(l, r),
                [lone] => *lone,
                _ => unreachable!("chunks(2) yields one or two items"),
            })
            .collect();
    }
    finish(count, &level[0])
}

/// The sibling hashes from leaf `index` up to the top (levels where the node is carried
/// up alone have no sibling and contribute nothing). `None` if `index` is out of range.
pub fn path(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut siblings = Vec::new();
    let mut level: Vec<Hash> = leaves.to_vec();
    let mut i = index;
    while level.len() > 1 {
        let sib = i ^ 1;
        if sib < level.len() {
            siblings.push(level[sib]);
        }
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => node(l, r),
                [lone] => *lone,
                _ => unreachable!("chunks(2) yields one or two items"),
            })
            .collect();
        i /= 2;
    }
    Some(siblings)
}

/// Checks that `leaf_hash` sits at `index` of a tree of `count` leaves with root `root`.
pub fn verify(leaf_hash: &Hash, index: u64, count: u64, siblings: &[Hash], root: &Hash) -> bool {
    if index >= count || siblings.len() > PATH_LEN_MAX {
        return false;
    }
    let mut acc = *leaf_hash;
    let mut i = index;
    let mut width = count;
    let mut used = 0usize;
    while width > 1 {
        let sib = i ^ 1;
        if sib < width {
            let Some(s) = siblings.get(used) else {
                return false;
            };
            used += 1;
            acc = if i & 1 == 0 {
                node(&acc, s)
            } else {
                node(s, &acc)
            };
        }
        i /= 2;
        width = width.div_ceil(2);
    }
    used == siblings.len() && finish(count, &acc) == *root
}

/// An inclusion proof of raw leaf data (callers wrap it with meaning, as `BalanceProof`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Path {
    pub index: u64,
    pub count: u64,
    pub siblings: Vec<Hash>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_verifies_and_no_other_position_does() {
        for n in 0..20usize {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf(&(i as u64).to_be_bytes())).collect();
            let r = root(&leaves);
            for i in 0..n {
                let p = path(&leaves, i).expect("in range");
                assert!(
                    verify(&leaves[i], i as u64, n as u64, &p, &r),
                    "n={n} i={i}"
                );
                if n > 1 {
                    let j = (i + 1) % n;
                    assert!(
                        !verify(&leaves[i], j as u64, n as u64, &p, &r),
                        "n={n} i={i} at {j}"
                    );
                }
                assert!(!verify(&leaves[i], i as u64, n as u64 + 1, &p, &r));
            }
            assert!(path(&leaves, n).is_none());
        }
    }

    #[test]
    fn leaf_count_is_committed() {
        let a = leaf(b"a");
        let b = leaf(b"b");
        assert_ne!(root(&[a]), root(&[a, b]));
        assert_ne!(root(&[node(&a, &b)]), root(&[a, b]));
    }
}
