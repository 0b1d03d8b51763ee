//! Export and import: our own file format round-trips, and damage to the file is named.

use std::path::Path;

use protocol::CertifiedBlock;
use storage::export::{self, ExportError, ExportReader, ExportWriter};
use storage::{Db, DbOptions, Log};

use crate::common::{chain, fixture, period_chain};

fn node_dir(dir: &Path, blocks: &[CertifiedBlock]) {
    let fx = fixture();
    std::fs::write(dir.join("genesis.toml"), fx.genesis.to_toml()).expect("genesis");
    let (mut db, _) = Db::open(
        &dir.join("data"),
        fx.chain_id,
        DbOptions {
            cache_bytes: 4 << 20,
            repair: true,
        },
    )
    .expect("open");
    for b in blocks {
        db.append(b).expect("append");
    }
}

fn read_file(bytes: &[u8]) -> Result<Vec<CertifiedBlock>, ExportError> {
    let mut r = ExportReader::new(bytes)?;
    let mut out = Vec::new();
    while let Some(b) = r.next_block()? {
        out.push(b);
    }
    Ok(out)
}

#[test]
fn export_then_import_round_trips() {
    let fx = fixture();
    let blocks = period_chain(40).chain.blocks;
    let src = tempfile::tempdir().expect("tempdir");
    node_dir(src.path(), &blocks);
    let file = src.path().join("log.phl");
    let s = export::export(src.path(), &file, 4 << 20).expect("export");
    assert_eq!(s.blocks, 40);
    assert_eq!(
        read_file(&std::fs::read(&file).expect("read")).expect("parse"),
        blocks
    );

    let dst = tempfile::tempdir().expect("tempdir");
    let node = dst.path().join("node9");
    let s2 = export::import(&file, &node, 4 << 20).expect("import");
    assert_eq!(s2, s);
    let g = export::read_genesis(&node).expect("genesis written");
    assert_eq!(g.chain_id(), fx.chain_id);
    let (db, _) = Db::open(
        &node.join("data"),
        fx.chain_id,
        DbOptions {
            cache_bytes: 4 << 20,
            repair: false,
        },
    )
    .expect("open imported");
    assert_eq!(db.log().read(1..=40).expect("read"), blocks);
    drop(db);
    // A second import into the same directory is refused and changes nothing.
    let e = export::import(&file, &node, 4 << 20).expect_err("not fresh");
    assert!(e.to_string().contains("fresh"), "{e}");
}

#[test]
fn empty_log_exports() {
    let fx = fixture();
    let mut buf = Vec::new();
    ExportWriter::new(&mut buf, &fx.genesis)
        .expect("w")
        .finish()
        .expect("finish");
    let r = ExportReader::new(buf.as_slice()).expect("read");
    assert_eq!(r.genesis(), &fx.genesis);
    assert_eq!(read_file(&buf).expect("parse"), vec![]);
}

fn exported(n: u64) -> (Vec<u8>, Vec<CertifiedBlock>) {
    let fx = fixture();
    let blocks = chain(&fx, n);
    let mut w = ExportWriter::new(Vec::new(), &fx.genesis).expect("w");
    for b in &blocks {
        w.block(b).expect("block");
    }
    (w.finish().expect("finish"), blocks)
}

#[test]
fn flipped_byte_in_file_is_named() {
    let (bytes, _) = exported(10);
    // Flip one byte at many places: every one is caught, none panics.
    for i in (0..bytes.len()).step_by(97) {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        assert!(read_file(&b).is_err(), "flip at {i} went unnoticed");
    }
}

#[test]
fn truncation_is_caught() {
    let (bytes, _) = exported(5);
    for cut in [bytes.len() - 1, bytes.len() - 40, bytes.len() / 2, 20, 3] {
        let e = read_file(&bytes[..cut]).expect_err("truncated");
        assert!(
            matches!(
                e,
                ExportError::Truncated { .. } | ExportError::Frame { .. } | ExportError::Magic
            ),
            "{e}"
        );
    }
    // Cutting exactly at a frame boundary before the end frame: still truncated.
    let mut r = ExportReader::new(bytes.as_slice()).expect("open");
    while r.next_block().expect("ok").is_some() {}
    // kind, length, payload (varint count 5 + 32-byte tip), link.
    let end_frame_len = 1 + 4 + 33 + 32;
    let e = read_file(&bytes[..bytes.len() - end_frame_len]).expect_err("no end frame");
    assert!(matches!(e, ExportError::Truncated { frames: 6 }), "{e}");
}

#[test]
fn trailing_bytes_refused() {
    let (mut bytes, _) = exported(2);
    bytes.push(0);
    let e = read_file(&bytes).expect_err("trailing");
    assert!(e.to_string().contains("after the end frame"), "{e}");
}

#[test]
fn import_of_a_damaged_file_leaves_nothing() {
    let (mut bytes, _) = exported(6);
    let n = bytes.len();
    bytes[n / 2] ^= 0x10;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.phl");
    std::fs::write(&file, &bytes).expect("write");
    let node = dir.path().join("node");
    assert!(export::import(&file, &node, 4 << 20).is_err());
    assert!(!node.join("data").exists(), "no database left behind");
    assert!(
        !node.join("genesis.toml").exists(),
        "no genesis left behind"
    );
}

#[test]
fn import_refuses_a_log_that_does_not_verify() {
    let fx = fixture();
    let mut blocks = period_chain(10).chain.blocks;
    blocks[6].certificate.signatures[0].1 .0[3] ^= 0x20;
    let mut w = ExportWriter::new(Vec::new(), &fx.genesis).expect("w");
    for b in &blocks {
        w.block(b).expect("block");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("forged.phl");
    std::fs::write(&file, w.finish().expect("finish")).expect("write");
    let node = dir.path().join("node");
    let e = export::import(&file, &node, 4 << 20).expect_err("forged certificate");
    assert!(e.to_string().contains("block 7: certificate"), "{e}");
    assert!(!node.join("data").exists(), "no database left behind");
}
