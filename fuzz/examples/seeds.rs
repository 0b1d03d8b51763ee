//! Writes starting corpora for the fuzz targets under `fuzz/corpus/<target>/`: valid
//! encodings of every record kind, blocks, certified blocks, votes and geneses, and the
//! scenarios of `examples/`. Run from `fuzz/`: `cargo run --release --example seeds`.

use std::fs;
use std::path::Path;

use peerhours_fuzz::fixture;
use protocol::codec;
use protocol::crypto::domain;
use protocol::record::{Approval, DelegateInfo, QuorumProposal, RecordBody};
use protocol::{Block, Hash, SignedRecord, SignedVote, Vote};

fn write(target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dir = Path::new("corpus").join(target);
    fs::create_dir_all(&dir)?;
    fs::write(dir.join(name), bytes)
}

fn main() -> std::io::Result<()> {
    let fx = fixture();
    let chain = fx.chain_id;
    let d = &fx.delegates[0];
    let m = &fx.members[0];
    let c = &fx.coordinator;
    let proposal = QuorumProposal::RebindKey {
        account: m.public(),
        new_key: fx.members[1].public(),
        nonce: 1,
    };
    let approvals = fx
        .delegates
        .iter()
        .take(3)
        .map(|k| Approval {
            delegate: k.public(),
            signature: k.sign(domain::QUORUM, &chain, &codec::encode(&proposal)),
        })
        .collect();
    let notarize = |block: u8| Vote::Notarize {
        view: 7,
        height: 3,
        block: Hash([block; 32]),
    };
    let bodies = vec![
        (
            d,
            RecordBody::AdmitMember {
                member: fx.members[2].public(),
                association: "local".into(),
                exempt: false,
            },
        ),
        (
            d,
            RecordBody::SetExempt {
                account: m.public(),
                exempt: true,
            },
        ),
        (
            d,
            RecordBody::RegisterProject {
                name: "garden".into(),
                association: "local".into(),
                coordinators: vec![c.public()],
                flat_rate: true,
            },
        ),
        (d, RecordBody::OpenPeriod { period: 1 }),
        (d, RecordBody::CloseBidding { period: 1 }),
        (d, RecordBody::ClosePeriod { period: 1 }),
        (
            c,
            RecordBody::PostTask {
                period: 1,
                task: "t".into(),
                project: "commons".into(),
                hours_mh: 2_000,
                slots: 2,
                min_weight_bp: 5_000,
                max_weight_bp: 20_000,
            },
        ),
        (
            c,
            RecordBody::OfferProduct {
                period: 1,
                product: "p".into(),
                project: "commons".into(),
                units: 1,
                cost_mh: 1_500,
            },
        ),
        (
            m,
            RecordBody::BidTask {
                period: 1,
                task: "t".into(),
                weight_bp: 12_000,
            },
        ),
        (
            m,
            RecordBody::BidProduct {
                period: 1,
                product: "p".into(),
                max_mh: 3_000,
            },
        ),
        (
            m,
            RecordBody::Contribute {
                period: 1,
                task: "t".into(),
                hours_mh: 2_500,
                note: "done".into(),
            },
        ),
        (
            m,
            RecordBody::Retract {
                contribution: Hash([1; 32]),
            },
        ),
        (
            c,
            RecordBody::Attest {
                contribution: Hash([1; 32]),
                hours_mh: Some(2_000),
            },
        ),
        (
            c,
            RecordBody::Amend {
                contribution: Hash([1; 32]),
                hours_mh: 1_000,
            },
        ),
        (
            m,
            RecordBody::RotateKey {
                new_key: fx.members[1].public(),
            },
        ),
        (
            d,
            RecordBody::Quorum {
                proposal,
                approvals,
            },
        ),
        (
            d,
            RecordBody::Quorum {
                proposal: QuorumProposal::ChangeDelegates {
                    delegates: vec![DelegateInfo {
                        key: d.public(),
                        association: "local".into(),
                        addr: "/ip4/127.0.0.1/tcp/7000".into(),
                    }],
                    nonce: 2,
                },
                approvals: Vec::new(),
            },
        ),
        (
            m,
            RecordBody::Evidence {
                first: SignedVote::sign(&fx.delegates[1], &chain, notarize(1)),
                second: SignedVote::sign(&fx.delegates[1], &chain, notarize(2)),
            },
        ),
    ];
    let mut records = Vec::new();
    for (i, (key, body)) in bodies.into_iter().enumerate() {
        let rec = SignedRecord::sign(key, &chain, i as u64, body);
        write(
            "decode_record",
            &format!("{i:02}-{}", rec.record.body.kind()),
            &rec.to_bytes(),
        )?;
        records.push(rec);
    }
    for (name, records) in [
        ("empty", Vec::new()),
        ("one", records[..1].to_vec()),
        ("all", records.clone()),
    ] {
        let block = Block {
            height: 1,
            view: 0,
            parent: chain,
            proposer: d.public(),
            timestamp_ms: 1_700_000_000_000,
            records,
            state_root: Hash::ZERO,
        };
        write("decode_block", &format!("block-{name}"), &block.to_bytes())?;
        write(
            "decode_block",
            &format!("certified-{name}"),
            &fx.certify(block).to_bytes(),
        )?;
    }
    for (i, vote) in [
        notarize(1),
        Vote::Nullify { view: 7 },
        Vote::Finalize {
            view: 7,
            height: 3,
            block: Hash([1; 32]),
        },
    ]
    .into_iter()
    .enumerate()
    {
        let v = SignedVote::sign(d, &chain, vote).to_bytes();
        write("decode_vote", &format!("vote-{i}"), &v)?;
        let mut pair = vec![u8::try_from(v.len()).unwrap_or(0)];
        pair.extend_from_slice(&v);
        pair.extend_from_slice(&SignedVote::sign(d, &chain, notarize(9)).to_bytes());
        write("decode_vote", &format!("pair-{i}"), &pair)?;
    }
    let mut genesis = fx.genesis.clone();
    write("genesis_toml", "fixture.toml", genesis.to_toml().as_bytes())?;
    write("genesis_toml", "fixture.bin", &genesis.to_bytes())?;
    for (i, g) in genesis.members.iter_mut().enumerate() {
        g.opening_mh = if i % 2 == 0 { 12_500 } else { -12_500 };
    }
    write(
        "genesis_toml",
        "openings.toml",
        genesis.to_toml().as_bytes(),
    )?;
    for entry in fs::read_dir("../examples")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            write("simulate", &name, &fs::read(&path)?)?;
        }
    }
    println!("seeds written under corpus/");
    Ok(())
}
