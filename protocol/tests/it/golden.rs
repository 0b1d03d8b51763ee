//! Golden vectors: the bytes and hash of one record of each kind, a block, a vote, a
//! certificate and a certified block, from deterministic keys. They are checked in under
//! `protocol/golden/vectors.txt`; a difference is a protocol change. To regenerate after
//! an intended change: `PEERHOURS_BLESS=1 cargo test -p peerhours-protocol --test it golden`
//! and say so in the commit.

use protocol::codec;
use protocol::crypto::domain;
use protocol::record::{Approval, DelegateInfo, QuorumProposal, RecordBody};
use protocol::testkit::Fixture;
use protocol::{Block, Hash, SignedRecord, SignedVote, Vote};

fn vectors() -> String {
    let fx = Fixture::new("golden", 4, 2);
    let chain = fx.chain_id;
    let (d, c, m, m2) = (
        &fx.delegates[0],
        &fx.coordinator,
        &fx.members[0],
        &fx.members[1],
    );
    let contribution = Hash([7; 32]);
    let change = QuorumProposal::ChangeDelegates {
        delegates: vec![DelegateInfo {
            key: fx.delegates[1].public(),
            association: "local".into(),
            addr: "/ip4/127.0.0.1/tcp/7002".into(),
        }],
        nonce: 1,
    };
    let rebind = QuorumProposal::RebindKey {
        account: m.public(),
        new_key: m2.public(),
        nonce: 2,
    };
    let approve = |p: &QuorumProposal| -> Vec<Approval> {
        fx.delegates[..3]
            .iter()
            .map(|k| Approval {
                delegate: k.public(),
                signature: k.sign(domain::QUORUM, &chain, &codec::encode(p)),
            })
            .collect()
    };
    let v1 = SignedVote::sign(
        d,
        &chain,
        Vote::Finalize {
            view: 4,
            height: 2,
            block: Hash([1; 32]),
        },
    );
    let v2 = SignedVote::sign(d, &chain, Vote::Nullify { view: 4 });
    let bodies: Vec<(&str, &protocol::Keypair, RecordBody)> = vec![
        (
            "AdmitMember",
            d,
            RecordBody::AdmitMember {
                member: m2.public(),
                association: "local".into(),
                exempt: true,
            },
        ),
        (
            "SetExempt",
            d,
            RecordBody::SetExempt {
                account: m.public(),
                exempt: false,
            },
        ),
        (
            "RegisterProject",
            d,
            RecordBody::RegisterProject {
                name: "bakery".into(),
                association: "local".into(),
                coordinators: vec![c.public()],
                flat_rate: true,
            },
        ),
        ("OpenPeriod", d, RecordBody::OpenPeriod { period: 1 }),
        ("CloseBidding", d, RecordBody::CloseBidding { period: 1 }),
        ("ClosePeriod", d, RecordBody::ClosePeriod { period: 1 }),
        (
            "PostTask",
            c,
            RecordBody::PostTask {
                period: 1,
                task: "clean".into(),
                project: "commons".into(),
                hours_mh: 2_000,
                slots: 2,
                min_weight_bp: 5_000,
                max_weight_bp: 50_000,
            },
        ),
        (
            "OfferProduct",
            c,
            RecordBody::OfferProduct {
                period: 1,
                product: "lake-flat".into(),
                project: "commons".into(),
                units: 1,
                cost_mh: 10_000,
            },
        ),
        (
            "BidTask",
            m,
            RecordBody::BidTask {
                period: 1,
                task: "clean".into(),
                weight_bp: 15_000,
            },
        ),
        (
            "BidProduct",
            m,
            RecordBody::BidProduct {
                period: 1,
                product: "lake-flat".into(),
                max_mh: 18_000,
            },
        ),
        (
            "Contribute",
            m,
            RecordBody::Contribute {
                period: 1,
                task: "clean".into(),
                hours_mh: 2_000,
                note: "mopped".into(),
            },
        ),
        ("Retract", m, RecordBody::Retract { contribution }),
        (
            "Attest",
            c,
            RecordBody::Attest {
                contribution,
                hours_mh: Some(1_500),
            },
        ),
        (
            "Amend",
            c,
            RecordBody::Amend {
                contribution,
                hours_mh: 1_000,
            },
        ),
        (
            "RotateKey",
            m,
            RecordBody::RotateKey {
                new_key: m2.public(),
            },
        ),
        (
            "ChangeDelegates",
            d,
            RecordBody::Quorum {
                proposal: change.clone(),
                approvals: approve(&change),
            },
        ),
        (
            "RebindKey",
            d,
            RecordBody::Quorum {
                proposal: rebind.clone(),
                approvals: approve(&rebind),
            },
        ),
        (
            "Evidence",
            m2,
            RecordBody::Evidence {
                first: v1,
                second: v2,
            },
        ),
    ];
    let mut out = String::new();
    out.push_str(&format!("chain_id {}\n", chain));
    let mut records = Vec::new();
    for (i, (name, key, body)) in bodies.into_iter().enumerate() {
        assert_eq!(body.kind(), name);
        let r = SignedRecord::sign(key, &chain, 100 + i as u64, body);
        let bytes = r.to_bytes();
        out.push_str(&format!(
            "record.{name} {} {}\n",
            Hash::of(&bytes),
            hex::encode(&bytes)
        ));
        records.push(r);
    }
    let block = Block {
        height: 1,
        view: 0,
        parent: chain,
        proposer: d.public(),
        timestamp_ms: 1_700_000_000_000,
        records: records[..4].to_vec(),
        state_root: Hash([9; 32]),
    };
    let b = block.to_bytes();
    out.push_str(&format!("block {} {}\n", block.hash(), hex::encode(&b)));
    let vb = v1.to_bytes();
    out.push_str(&format!("vote {} {}\n", Hash::of(&vb), hex::encode(&vb)));
    let certified = fx.certify(block);
    let cb = codec::encode(&certified.certificate);
    out.push_str(&format!(
        "certificate {} {}\n",
        Hash::of(&cb),
        hex::encode(&cb)
    ));
    let all = certified.to_bytes();
    out.push_str(&format!(
        "certified_block {} {}\n",
        Hash::of(&all),
        hex::encode(&all)
    ));
    out
}

#[test]
fn golden_vectors_are_unchanged() {
    let path = format!("{}/golden/vectors.txt", env!("CARGO_MANIFEST_DIR"));
    let now = vectors();
    if std::env::var_os("PEERHOURS_BLESS").is_some() {
        std::fs::create_dir_all(format!("{}/golden", env!("CARGO_MANIFEST_DIR")))
            .expect("golden dir");
        std::fs::write(&path, &now).expect("write golden vectors");
    }
    let stored = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (bless with PEERHOURS_BLESS=1)"));
    for (a, b) in stored.lines().zip(now.lines()) {
        let name = a.split(' ').next().unwrap_or("");
        assert_eq!(
            a, b,
            "golden vector {name} changed: this is a protocol change"
        );
    }
    assert_eq!(
        stored.lines().count(),
        now.lines().count(),
        "the set of golden vectors changed"
    );
}

#[test]
fn golden_records_verify_and_decode_canonically() {
    let path = format!("{}/golden/vectors.txt", env!("CARGO_MANIFEST_DIR"));
    let stored = std::fs::read_to_string(&path).expect("golden vectors");
    let chain = Hash::from_hex(
        stored
            .lines()
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .expect("chain id"),
    )
    .expect("hex");
    let mut n = 0;
    for line in stored.lines().filter(|l| l.starts_with("record.")) {
        let parts: Vec<&str> = line.split(' ').collect();
        let bytes = hex::decode(parts[2]).expect("hex");
        let r = SignedRecord::verify_bytes(&bytes, &chain).expect("golden record verifies");
        assert_eq!(r.id().to_hex(), parts[1]);
        assert_eq!(format!("record.{}", r.record().body.kind()), parts[0]);
        n += 1;
    }
    assert_eq!(n, 18, "one record of each kind");
}
