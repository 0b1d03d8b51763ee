//! The on-disk layout of a node's sled database, in one place: every tree name and every
//! key and value encoding that is not a record's or a block's own canonical bytes.
//! Changing anything here is a change of the on-disk format (docs/log-format.md).
//!
//! Heights, views, periods and positions are big-endian in keys, so sled's byte order is
//! their numeric order and ranges over them are ranges over keys.

use protocol::{Hash, RecordId};

/// The log: `height_key(h)` -> frame (`log::encode_frame`).
pub const LOG_TREE: &str = "log";
/// Own votes: `vote_key(view, bytes)` -> vote bytes.
pub const VOTES_TREE: &str = "votes";
/// Pending submissions: record id -> record bytes.
pub const PENDING_TREE: &str = "pending";
/// Bodies of blocks we notarized that are not final yet: `notarized_key(height, hash)`
/// -> the body bytes the node hands in.
pub const NOTARIZED_TREE: &str = "notarized-bodies";

/// Index meta: `INDEX_META_KEY` -> `IndexMeta` (canonical encoding).
pub const INDEX_META_TREE: &str = "idx/meta";
/// Balances: account name (`Account` Display) -> `balance_value`.
pub const INDEX_BALANCES_TREE: &str = "idx/balances";
/// Records: record id -> `RecordEntry` (canonical encoding).
pub const INDEX_RECORDS_TREE: &str = "idx/records";
/// Layers: `layer_key(target, height, index)` -> layer record id.
pub const INDEX_LAYERS_TREE: &str = "idx/layers";
/// Rejected records: `position_key(height, index)` -> record id.
pub const INDEX_REJECTED_TREE: &str = "idx/rejected";
/// Open auctions: `auction_key(kind, period, name)` -> PostTask/OfferProduct record id.
pub const INDEX_AUCTIONS_TREE: &str = "idx/auctions";
/// The one key of the index meta tree.
pub const INDEX_META_KEY: &[u8] = b"tip";

/// Auction kind byte of a task (PostTask).
pub const AUCTION_TASK: u8 = b't';
/// Auction kind byte of a product (OfferProduct).
pub const AUCTION_PRODUCT: u8 = b'p';

/// The key of a height (log) or a view (votes prefix): 8 bytes big-endian.
pub fn height_key(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

/// The height a log key names; `None` for a key that is not 8 bytes.
pub fn height_of_key(key: &[u8]) -> Option<u64> {
    key.try_into().ok().map(u64::from_be_bytes)
}

/// An own vote's key: view (BE) || blake3(vote bytes), so votes sort by view and one
/// vote stored twice is one entry.
pub fn vote_key(view: u64, vote_bytes: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(40);
    key.extend_from_slice(&height_key(view));
    key.extend_from_slice(&Hash::of(vote_bytes).0);
    key
}

/// The record id a 32-byte key (pending submission, index record) names.
pub fn id_of_key(key: &[u8]) -> Option<RecordId> {
    key.try_into().ok().map(Hash)
}

/// A notarized body's key: height (BE) || block hash.
pub fn notarized_key(height: u64, hash: &Hash) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..8].copy_from_slice(&height_key(height));
    k[8..].copy_from_slice(&hash.0);
    k
}

/// The height and block hash a notarized body's key names; `None` unless 40 bytes.
pub fn notarized_of_key(key: &[u8]) -> Option<(u64, Hash)> {
    if key.len() != 40 {
        return None;
    }
    let height = height_of_key(&key[..8])?;
    Some((height, id_of_key(&key[8..])?))
}

/// A record's position in the log: height (BE) || index in its block (BE).
pub fn position_key(height: u64, index: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&height_key(height));
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}

/// A layer's key: target id || position of the layer, so a record's layers are one
/// prefix scan in log order.
pub fn layer_key(target: &RecordId, height: u64, index: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(44);
    k.extend_from_slice(&target.0);
    k.extend_from_slice(&position_key(height, index));
    k
}

/// An open auction's key: kind byte || period (BE) || name. With an empty name, the
/// prefix of every auction of that kind and period.
pub fn auction_key(kind: u8, period: u64, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + name.len());
    k.push(kind);
    k.extend_from_slice(&height_key(period));
    k.extend_from_slice(name.as_bytes());
    k
}

/// The kind byte, period and name bytes of an auction key; `None` if shorter than 9.
pub fn auction_of_key(key: &[u8]) -> Option<(u8, u64, &[u8])> {
    if key.len() < 9 {
        return None;
    }
    Some((key[0], height_of_key(&key[1..9])?, &key[9..]))
}

/// A balance as stored: i64 big-endian.
pub fn balance_value(balance: i64) -> [u8; 8] {
    balance.to_be_bytes()
}

/// A stored balance; `None` unless 8 bytes.
pub fn balance_of_value(value: &[u8]) -> Option<i64> {
    value.try_into().ok().map(i64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys as they are on disk today: changing one is a format change.
    #[test]
    fn keys_are_as_on_disk() {
        let h = Hash([7u8; 32]);
        assert_eq!(height_key(0x0102), [0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(height_of_key(&[0, 0, 0, 0, 0, 0, 1, 2]), Some(0x0102));
        assert_eq!(height_of_key(&[1, 2]), None);
        let n = notarized_key(5, &h);
        assert_eq!(n[..8], 5u64.to_be_bytes());
        assert_eq!(n[8..], h.0);
        assert_eq!(notarized_of_key(&n), Some((5, h)));
        assert_eq!(notarized_of_key(&n[..39]), None);
        let v = vote_key(9, b"vote");
        assert_eq!(v[..8], 9u64.to_be_bytes());
        assert_eq!(v[8..], Hash::of(b"vote").0);
        assert_eq!(position_key(1, 2), [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2]);
        let l = layer_key(&h, 1, 2);
        assert_eq!(l[..32], h.0);
        assert_eq!(l[32..], position_key(1, 2));
        let k = auction_key(AUCTION_TASK, 3, "dig");
        assert_eq!(k, b"t\0\0\0\0\0\0\0\x03dig");
        assert_eq!(auction_of_key(&k), Some((b't', 3, &b"dig"[..])));
        assert_eq!(auction_of_key(&k[..8]), None);
        assert_eq!(balance_of_value(&balance_value(-5)), Some(-5));
        assert_eq!(balance_value(-5), (-5i64).to_be_bytes());
        assert_eq!(id_of_key(&h.0), Some(h));
    }
}
