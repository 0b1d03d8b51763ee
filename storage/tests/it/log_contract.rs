//! One contract, two logs: the sled adapter and its in-memory twin must behave alike.

use std::path::{Path, PathBuf};

use protocol::{CertifiedBlock, Hash};
use storage::log::{encode_frame, READ_BLOCKS_MAX};
use storage::{Db, DbOptions, Log, LogError, MemLog};

use crate::common::{chain, fixture, next_block};

/// What the contract needs from a log beyond the trait: reopening and damaging it.
trait Harness {
    type L: Log;
    fn log(&mut self) -> &mut Self::L;
    /// Closes cleanly and opens again; returns the block the cut started at, if any.
    fn reopen(&mut self) -> Option<u64>;
    /// Stops without a clean close (the disk as a crash would leave it) and opens again.
    fn crash_reopen(&mut self) -> Option<u64>;
    /// Flips one byte of the stored block at `height`.
    fn damage(&mut self, height: u64);
    /// Overwrites the stored block at `height` with another (well-formed) block.
    fn replace(&mut self, height: u64, block: &CertifiedBlock);
}

struct MemHarness {
    log: MemLog,
}

impl Harness for MemHarness {
    type L = MemLog;
    fn log(&mut self) -> &mut MemLog {
        &mut self.log
    }
    fn reopen(&mut self) -> Option<u64> {
        let id = self.log.chain_id();
        let frames = std::mem::replace(&mut self.log, MemLog::new(id)).into_frames();
        let (log, cut) = MemLog::from_frames(id, frames);
        self.log = log;
        cut.map(|c| c.from_height)
    }
    fn crash_reopen(&mut self) -> Option<u64> {
        // Memory has no unflushed state: a crash looks like a clean stop.
        self.reopen()
    }
    fn damage(&mut self, height: u64) {
        let f = &mut self.log.frames_mut()[(height - 1) as usize];
        let i = f.len() / 2;
        f[i] ^= 0x40;
    }
    fn replace(&mut self, height: u64, block: &CertifiedBlock) {
        self.log.frames_mut()[(height - 1) as usize] = encode_frame(block);
    }
}

struct SledHarness {
    dir: tempfile::TempDir,
    /// Which directory the database currently lives in (crash copies move it).
    path: PathBuf,
    db: Option<Db>,
    chain_id: Hash,
    generation: u32,
}

fn opts() -> DbOptions {
    DbOptions {
        cache_bytes: 8 << 20,
        repair: true,
    }
}

impl SledHarness {
    fn new(chain_id: Hash) -> SledHarness {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data");
        let (db, cut) = Db::open(&path, chain_id, opts()).expect("open");
        assert!(cut.is_none());
        SledHarness {
            dir,
            path,
            db: Some(db),
            chain_id,
            generation: 0,
        }
    }

    fn open_at(&mut self, path: PathBuf) -> Option<u64> {
        let (db, cut) = Db::open(&path, self.chain_id, opts()).expect("reopen");
        self.path = path;
        self.db = Some(db);
        cut.map(|c| c.from_height)
    }

    fn tree(&self) -> sled::Tree {
        self.db.as_ref().expect("open").log().tree().clone()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

impl Harness for SledHarness {
    type L = storage::SledLog;
    fn log(&mut self) -> &mut storage::SledLog {
        self.db.as_mut().expect("open").log_mut()
    }
    fn reopen(&mut self) -> Option<u64> {
        drop(self.db.take());
        let p = self.path.clone();
        self.open_at(p)
    }
    fn crash_reopen(&mut self) -> Option<u64> {
        // Copy the files while the database is still open, exactly as they are on disk
        // now, and open the copy: what a power cut at this moment would leave.
        self.generation += 1;
        let copy = self.dir.path().join(format!("crash{}", self.generation));
        copy_dir(&self.path, &copy);
        drop(self.db.take());
        self.open_at(copy)
    }
    fn damage(&mut self, height: u64) {
        let tree = self.tree();
        let mut v = tree
            .get(height.to_be_bytes())
            .expect("get")
            .expect("present")
            .to_vec();
        let i = v.len() / 2;
        v[i] ^= 0x40;
        tree.insert(height.to_be_bytes(), v).expect("insert");
        tree.flush().expect("flush");
    }
    fn replace(&mut self, height: u64, block: &CertifiedBlock) {
        let tree = self.tree();
        tree.insert(height.to_be_bytes(), encode_frame(block))
            .expect("insert");
        tree.flush().expect("flush");
    }
}

fn read_all<L: Log>(log: &L) -> Vec<CertifiedBlock> {
    let tip = log.height();
    let mut out = Vec::new();
    let mut from = 1;
    while from <= tip {
        let to = tip.min(from + READ_BLOCKS_MAX - 1);
        out.extend(log.read(from..=to).expect("read"));
        from = to + 1;
    }
    out
}

fn empty<H: Harness>(mut h: H) {
    assert_eq!(h.log().tip(), None);
    assert_eq!(h.log().height(), 0);
    assert!(matches!(
        h.log().read(1..=1),
        Err(LogError::OutOfRange { .. })
    ));
    let (from, to) = (1, 0);
    assert_eq!(h.log().read(from..=to).expect("empty range"), vec![]);
    assert_eq!(h.reopen(), None);
    assert_eq!(h.log().tip(), None);
}

fn one_block<H: Harness>(mut h: H) {
    let fx = fixture();
    let b = chain(&fx, 1).remove(0);
    h.log().append(&b).expect("append");
    let tip = h.log().tip().expect("tip");
    assert_eq!((tip.height, tip.hash), (1, b.block.hash()));
    assert_eq!(h.log().read(1..=1).expect("read"), vec![b.clone()]);
    assert_eq!(h.reopen(), None);
    assert_eq!(h.log().read(1..=1).expect("read"), vec![b]);
}

fn many_blocks<H: Harness>(mut h: H) {
    let fx = fixture();
    let blocks = chain(&fx, 300);
    for b in &blocks {
        h.log().append(b).expect("append");
    }
    assert_eq!(h.log().height(), 300);
    assert!(matches!(
        h.log().read(1..=300),
        Err(LogError::RangeTooLarge { requested: 300, .. })
    ));
    assert!(matches!(
        h.log().read(299..=301),
        Err(LogError::OutOfRange { .. })
    ));
    assert_eq!(
        h.log().read(100..=102).expect("read"),
        blocks[99..102].to_vec()
    );
    assert_eq!(read_all(h.log()), blocks);
    assert_eq!(h.reopen(), None);
    assert_eq!(read_all(h.log()), blocks);
    assert_eq!(h.log().tip().expect("tip").hash, blocks[299].block.hash());
}

fn gap_refused<H: Harness>(mut h: H) {
    let fx = fixture();
    let blocks = chain(&fx, 3);
    assert_eq!(
        h.log().append(&blocks[1]),
        Err(LogError::Gap {
            expected: 1,
            found: 2
        })
    );
    h.log().append(&blocks[0]).expect("append 1");
    assert_eq!(
        h.log().append(&blocks[2]),
        Err(LogError::Gap {
            expected: 2,
            found: 3
        })
    );
    assert_eq!(
        h.log().append(&blocks[0]),
        Err(LogError::Gap {
            expected: 2,
            found: 1
        })
    );
    assert_eq!(h.log().height(), 1);
}

fn wrong_parent_refused<H: Harness>(mut h: H) {
    let fx = fixture();
    let blocks = chain(&fx, 2);
    // Block 1 must name the chain id as parent.
    let mut orphan = blocks[0].block.clone();
    orphan.parent = Hash::of(b"elsewhere");
    let orphan = fx.certify(orphan);
    assert!(matches!(
        h.log().append(&orphan),
        Err(LogError::WrongParent { height: 1, .. })
    ));
    h.log().append(&blocks[0]).expect("append 1");
    // A block 2 built on another block 1.
    let other_one = next_block(&fx, None, vec![]);
    let stray = next_block(&fx, Some(&other_one), vec![]);
    assert_eq!(
        h.log().append(&stray),
        Err(LogError::WrongParent {
            height: 2,
            expected: blocks[0].block.hash(),
            found: other_one.block.hash()
        })
    );
    // A certificate for another block is refused too.
    let mut mismatched = blocks[1].clone();
    mismatched.certificate = other_one.certificate.clone();
    assert!(matches!(
        h.log().append(&mismatched),
        Err(LogError::CertificateMismatch { height: 2, .. })
    ));
    h.log().append(&blocks[1]).expect("append 2");
}

fn reopen_after_clean_and_unclean_stop<H: Harness>(mut h: H) {
    let fx = fixture();
    let blocks = chain(&fx, 20);
    for b in &blocks[..10] {
        h.log().append(b).expect("append");
    }
    assert_eq!(h.reopen(), None);
    assert_eq!(h.log().height(), 10);
    for b in &blocks[10..] {
        h.log().append(b).expect("append");
    }
    assert_eq!(h.crash_reopen(), None);
    assert_eq!(read_all(h.log()), blocks);
    // Appending goes on from the recovered tip.
    let next = next_block(&fx, blocks.last(), vec![]);
    h.log().append(&next).expect("append after crash");
    assert_eq!(h.crash_reopen(), None);
    assert_eq!(h.log().height(), 21);
}

fn damaged_tail_cut<H: Harness>(mut h: H) {
    let fx = fixture();
    let blocks = chain(&fx, 12);
    for b in &blocks {
        h.log().append(b).expect("append");
    }
    // Bit rot in the last block.
    h.damage(12);
    assert_eq!(h.reopen(), Some(12));
    assert_eq!(h.log().height(), 11);
    assert_eq!(read_all(h.log()), blocks[..11].to_vec());
    // A well-formed but foreign block in the middle: everything from it on is cut.
    let foreign = next_block(&fx, None, vec![]);
    let mut foreign_eight = foreign.block.clone();
    foreign_eight.height = 8;
    foreign_eight.view = 8;
    h.replace(8, &fx.certify(foreign_eight));
    assert_eq!(h.reopen(), Some(8));
    assert_eq!(h.log().height(), 7);
    assert_eq!(h.reopen(), None, "a cut log reopens cleanly");
    // And the cut tail can be appended again.
    for b in &blocks[7..] {
        h.log().append(b).expect("append again");
    }
    assert_eq!(read_all(h.log()), blocks);
}

macro_rules! contract {
    ($($name:ident),*) => {
        mod mem {
            $(#[test] fn $name() { super::$name(super::MemHarness { log: storage::MemLog::new(crate::common::fixture().chain_id) }); })*
        }
        mod sled_log {
            $(#[test] fn $name() { super::$name(super::SledHarness::new(crate::common::fixture().chain_id)); })*
        }
    };
}

contract!(
    empty,
    one_block,
    many_blocks,
    gap_refused,
    wrong_parent_refused,
    reopen_after_clean_and_unclean_stop,
    damaged_tail_cut
);
