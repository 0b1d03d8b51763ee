//! Error cases: each a one-sentence error on stderr, a non-zero exit, and nothing changed
//! (no pending submission, the same period and phase, key files untouched); and the
//! `--json` documents of cli.md.

use serde_json::Value;

use crate::common::{assert_hex64, path_str, peerhours, Net};

/// What a rejected input must leave unchanged at a node.
#[derive(Debug, PartialEq)]
struct Unchanged {
    period: Value,
    phase: Value,
    pending: Value,
    chain_id: Value,
}

fn snapshot(net: &Net, i: usize) -> Unchanged {
    // Once every record accepted so far is committed here: a record just posted at
    // another node may still be pending at this one, and would change between snapshots.
    let s = net.settled_status(i);
    Unchanged {
        period: s["period"].clone(),
        phase: s["phase"].clone(),
        pending: s["pending"].clone(),
        chain_id: s["chain_id"].clone(),
    }
}

/// Runs `args` (signed with `key` and sent to node `at`), expects the failure and checks
/// that nothing changed at any node.
#[track_caller]
fn refused(net: &Net, at: usize, key: &str, args: &[&str], needle: &str) -> String {
    let before: Vec<Unchanged> = (0..net.len()).map(|i| snapshot(net, i)).collect();
    let mut all = args.to_vec();
    all.extend(["--key", key, "--node", &net.api[at]]);
    let err = peerhours(&all).fails_with(needle);
    let after: Vec<Unchanged> = (0..net.len()).map(|i| snapshot(net, i)).collect();
    assert_eq!(before, after, "`{}` changed a node", all.join(" "));
    for (i, s) in after.iter().enumerate() {
        assert_eq!(s.pending, 0, "node {i} holds a pending submission");
    }
    err
}

#[test]
fn rejected_inputs_are_one_sentence_errors_and_change_nothing() {
    let net = Net::start(4, 0, 2);
    let tmp = tempfile::tempdir().expect("tempdir");
    let m0 = net.member_key(0);
    let m1 = net.member_key(1);
    let d0 = net.delegate_key(0);
    let coord = net.coordinator_key();

    // --- status --json: exactly one document with cli.md's fields.
    let s = net.status(0);
    assert_hex64(&s["chain_id"], "chain_id");
    assert_hex64(&s["state_root"], "state_root");
    assert!(s["height"].is_u64(), "{s}");
    assert_eq!(s["period"], 0, "{s}");
    assert_eq!(s["phase"], "closed", "{s}");
    assert_eq!(s["peers"], 3, "{s}");
    assert_eq!(s["delegates"], 4, "{s}");
    let listen = s["listen"].as_array().expect("listen is a list");
    assert!(
        listen.iter().any(|l| l
            .as_str()
            .is_some_and(|l| l.starts_with("/ip4/127.0.0.1/tcp/") && l.contains("/p2p/"))),
        "{s}"
    );

    // --- Unreachable node: a closed port.
    let closed = format!("http://127.0.0.1:{}", crate::common::free_base_port(0));
    peerhours(&["status", "--node", &closed, "--json"]).fails_with("cannot reach the node");
    peerhours(&["balance", &m0, "--node", &closed]).fails_with("cannot reach the node");
    peerhours(&[
        "bid", "task", "--task", "t", "--weight", "1", "--key", &m0, "--node", &closed,
    ])
    .fails_with("cannot reach the node");
    peerhours(&["status", "--node", "127.0.0.1:7001"]).fails_with("not an http://");

    // --- Key files that do not exist or are not keys.
    let missing = path_str(&tmp.path().join("nope.key"));
    refused(
        &net,
        0,
        &missing,
        &["period", "open"],
        "cannot read key file",
    );
    let garbage = tmp.path().join("garbage.key");
    std::fs::write(&garbage, "hello, I am not a key\n").expect("write");
    refused(
        &net,
        0,
        &path_str(&garbage),
        &["period", "open"],
        "is not a peerhours key file",
    );
    let err = peerhours(&["key", "show", &missing]).fails_with("cannot read key file");
    assert_eq!(
        err.matches("os error 2").count(),
        1,
        "the cause is told once: {err}"
    );
    peerhours(&["key", "show", &path_str(&garbage)]).fails_with("not a peerhours key file");

    // --- Outside the period's phase: nothing open yet.
    refused(
        &net,
        1,
        &m0,
        &["bid", "task", "--task", "clean", "--weight", "1.5"],
        "no period is open",
    );

    // Open a period and post a task, so that bids have something to bid on.
    net.act(0, &d0, &["period", "open"]);
    net.act(
        1,
        &coord,
        &[
            "task",
            "post",
            "--id",
            "clean",
            "--project",
            "commons",
            "--hours",
            "2",
            "--slots",
            "1",
        ],
    );

    // --- A period that is already open; a contribution id that is not one.
    refused(&net, 0, &d0, &["period", "open"], "still open");
    refused(
        &net,
        1,
        &coord,
        &["attest", "--contribution", "abc"],
        "is not a record id",
    );

    // --- An unknown task.
    refused(
        &net,
        2,
        &m0,
        &["bid", "task", "--task", "never-posted", "--weight", "1.5"],
        "never-posted",
    );

    // --- Weights that are not positive decimals with at most 4 places.
    for w in ["0", "-1", "abc", "1.23456", ""] {
        refused(
            &net,
            2,
            &m0,
            &["bid", "task", "--task", "clean", "--weight", w],
            "--weight",
        );
    }
    // --- Hours with 4 decimals, or negative.
    for h in ["1.2345", "-2", "two"] {
        refused(
            &net,
            3,
            &m0,
            &["contribute", "--task", "clean", "--hours", h],
            "--hours",
        );
        refused(
            &net,
            3,
            &coord,
            &[
                "task",
                "post",
                "--id",
                "other",
                "--project",
                "commons",
                "--hours",
                h,
                "--slots",
                "1",
            ],
            "--hours",
        );
    }

    // --- A contribution during bidding: outside its period's phase.
    refused(
        &net,
        0,
        &m1,
        &["contribute", "--task", "clean", "--hours", "2"],
        "phase",
    );

    // --- Forged submissions: a member signing what only delegates or coordinators may.
    refused(
        &net,
        1,
        &m0,
        &["period", "close-bidding"],
        "only a delegate",
    );
    refused(
        &net,
        1,
        &m0,
        &["member", "admit", "--member", &m1],
        "not a delegate",
    );
    // With the association given, the forged admission reaches the node, which refuses it.
    refused(
        &net,
        1,
        &m0,
        &["member", "admit", "--member", &m1, "--association", "local"],
        "not a delegate",
    );
    refused(
        &net,
        2,
        &m1,
        &[
            "task",
            "post",
            "--id",
            "forged",
            "--project",
            "commons",
            "--hours",
            "1",
            "--slots",
            "1",
        ],
        "coordinator",
    );

    // --- A valid bid still goes through afterwards, as --json of cli.md.
    let out = peerhours(&[
        "bid",
        "task",
        "--task",
        "clean",
        "--weight",
        "1.5",
        "--key",
        &m0,
        "--node",
        &net.api[3],
        "--json",
    ])
    .ok();
    let v = out.json();
    assert_hex64(&v["id"], "id");
    assert!(
        v["status"] == "pending" || v["status"] == "accepted",
        "without --wait: {v}"
    );
    assert!(
        v.get("height").is_some() && v.get("reason").is_some(),
        "{v}"
    );
    let waited = peerhours(&[
        "bid",
        "task",
        "--task",
        "clean",
        "--weight",
        "2",
        "--key",
        &m1,
        "--node",
        &net.api[0],
        "--wait",
        "--json",
    ])
    .ok()
    .json();
    assert_eq!(waited["status"], "accepted", "{waited}");
    assert!(
        waited["height"].as_u64().is_some_and(|h| h >= 1),
        "{waited}"
    );
    assert!(waited["reason"].is_null(), "{waited}");

    // --- balance --json.
    let b = peerhours(&["balance", &m0, "--node", &net.api[1], "--json"])
        .ok()
        .json();
    let pk = peerhours(&["key", "show", &m0, "--json"]).ok().json();
    assert_eq!(b["member"], pk["public_key"], "{b}");
    assert_hex64(&b["member"], "member");
    assert_eq!(b["balance_mh"], 0, "{b}");
    assert!(b["height"].is_u64(), "{b}");
    assert_hex64(&b["state_root"], "state_root");
    assert!(b.get("proof").is_some(), "{b}");
    peerhours(&["balance", "not-a-key", "--node", &net.api[1]]).fails_with("not-a-key");
}

#[test]
fn key_generate_refuses_to_overwrite_and_makes_private_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = tmp.path().join("me.key");
    let out = peerhours(&["key", "generate", "--out", &path_str(&key), "--json"])
        .ok()
        .json();
    assert_hex64(&out["public_key"], "public_key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    }
    let shown = peerhours(&["key", "show", &path_str(&key), "--json"])
        .ok()
        .json();
    assert_eq!(shown["public_key"], out["public_key"]);
    let plain = peerhours(&["key", "show", &path_str(&key)]).ok();
    assert_eq!(
        plain.stdout.trim(),
        out["public_key"].as_str().expect("hex")
    );

    let before = std::fs::read(&key).expect("read");
    peerhours(&["key", "generate", "--out", &path_str(&key)]).fails_with("already exists");
    peerhours(&["key", "generate", "--out", &path_str(&key), "--json"])
        .fails_with("refusing to overwrite");
    assert_eq!(
        std::fs::read(&key).expect("read"),
        before,
        "key file changed"
    );

    // Over any existing file, not just a key.
    let notes = tmp.path().join("notes.txt");
    std::fs::write(&notes, "mine").expect("write");
    peerhours(&["key", "generate", "--out", &path_str(&notes)]).fails_with("already exists");
    assert_eq!(std::fs::read_to_string(&notes).expect("read"), "mine");

    // Into a directory that does not exist.
    peerhours(&[
        "key",
        "generate",
        "--out",
        &path_str(&tmp.path().join("no/such/dir/k.key")),
    ])
    .fails_with("cannot write key file");
}

#[test]
fn testnet_init_refuses_a_non_empty_directory_and_touches_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("net");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("keep.txt"), "precious").expect("write");
    peerhours(&[
        "testnet",
        "init",
        "--dir",
        &path_str(&dir),
        "--delegates",
        "4",
    ])
    .fails_with("not empty");
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("keep.txt")]);

    // --json of a fresh init: one document naming every node and API.
    let fresh = tmp.path().join("fresh");
    let v = peerhours(&[
        "testnet",
        "init",
        "--dir",
        &path_str(&fresh),
        "--delegates",
        "1",
        "--observers",
        "1",
        "--members",
        "2",
        "--base-port",
        "9000",
        "--json",
    ])
    .ok()
    .json();
    assert_hex64(&v["chain_id"], "chain_id");
    assert_eq!(
        v["api"],
        serde_json::json!(["http://127.0.0.1:9001", "http://127.0.0.1:9003"])
    );
    for f in [
        "genesis.toml",
        "coordinator.key",
        "members/member0.key",
        "members/member1.key",
        "node0/config.toml",
        "node0/delegate.key",
        "node1/config.toml",
    ] {
        assert!(fresh.join(f).exists(), "testnet init made no {f}");
    }
    assert!(
        !fresh.join("node1/delegate.key").exists(),
        "an observer has no delegate key"
    );
}
