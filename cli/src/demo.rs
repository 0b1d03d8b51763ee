//! `peerhours demo`: a whole period on a local 4-delegate network, narrated.
//!
//! The nodes are real: each has its own sled directory, libp2p identity and TCP port on
//! loopback, and they agree over gossip exactly as separate processes would (they only
//! share this process). Every action is a record signed with a key file of the testnet
//! layout and submitted through a node's HTTP API, as the CLI does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use node::api_types::{Status, Submitted};
use protocol::amount::{format_mh, parse_hours, parse_weight};
use protocol::{Hash, Keypair, PublicKey, RecordBody};

use crate::client::{chain_id, send_record, Api, NodeArgs};
use crate::testnet::{self, InitArgs};

#[derive(Args)]
pub struct DemoArgs {
    /// Keep the network in DIR (testnet layout) instead of a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// First port: node i uses P+2i for peers and P+2i+1 for its API (0 picks free ports).
    #[arg(long, default_value_t = 0)]
    pub base_port: u16,
    #[command(flatten)]
    pub json: crate::JsonFlag,
}

const DELEGATES: u16 = 4;
const MEMBER_NAMES: [&str; 4] = ["alice", "bob", "carol", "dave"];
const WAIT: Duration = Duration::from_secs(60);

struct Demo {
    apis: Vec<Api>,
    chain: Hash,
    delegates: Vec<Keypair>,
    coordinator: Keypair,
    members: Vec<Keypair>,
    quiet: bool,
    /// The highest block that holds a record accepted so far: a node checks a submission
    /// against what it has committed, so it must have caught up to here first.
    last_height: std::cell::Cell<u64>,
}

impl Demo {
    fn say(&self, text: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", text.as_ref());
        }
    }

    /// Signs, submits to node `at`, waits for a certified block, and insists it counted.
    fn act(
        &self,
        at: usize,
        key: &Keypair,
        body: RecordBody,
        what: &str,
    ) -> anyhow::Result<Submitted> {
        self.catch_up(at)?;
        let s = send_record(&self.apis[at], &self.chain, key, body, Some(WAIT))
            .with_context(|| what.to_string())?;
        if let Some(h) = s.height {
            self.last_height.set(self.last_height.get().max(h));
        }
        match s.status.as_str() {
            "accepted" => {
                self.say(format!(
                    "   ✓ {what} (block {}, via node{at})",
                    s.height.unwrap_or(0)
                ));
                Ok(s)
            }
            "rejected" => bail!("{what}: rejected: {}", s.reason.unwrap_or_default()),
            _ => bail!("{what}: not in a certified block after {}s", WAIT.as_secs()),
        }
    }

    /// Submits without waiting (the bids of a phase go in together).
    fn submit(&self, at: usize, key: &Keypair, body: RecordBody) -> anyhow::Result<Submitted> {
        self.catch_up(at)?;
        send_record(&self.apis[at], &self.chain, key, body, None)
    }

    /// Waits until node `at` has committed every record accepted so far.
    fn catch_up(&self, at: usize) -> anyhow::Result<()> {
        let target = self.last_height.get();
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let h = self.apis[at].status()?.height;
            if h >= target {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "node{at} did not reach block {target} within {}s (it is at {h})",
                    WAIT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_all(&self, ids: &[Submitted]) -> anyhow::Result<()> {
        for (i, s) in ids.iter().enumerate() {
            // Wait at the node it was submitted to (round-robin below).
            let out = self.apis[i % self.apis.len()].wait(&s.id, WAIT)?;
            if let Some(h) = out.height {
                self.last_height.set(self.last_height.get().max(h));
            }
            if out.status != "accepted" {
                bail!(
                    "record {} was {}: {}",
                    s.id,
                    out.status,
                    out.reason.unwrap_or_default()
                );
            }
        }
        Ok(())
    }

    fn status(&self, i: usize) -> anyhow::Result<Status> {
        self.apis[i].status()
    }

    fn period(&self) -> anyhow::Result<u64> {
        Ok(self.status(0)?.period)
    }
}

pub fn run(a: DemoArgs) -> anyhow::Result<()> {
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().context("creating a temporary directory")?;
            tmp.path().join("net")
        }
    };
    let base_port = if a.base_port == 0 {
        testnet::free_base_port(2 * DELEGATES)?
    } else {
        a.base_port
    };
    let quiet = a.json.json;
    let say = |t: &str| {
        if !quiet {
            eprintln!("{t}");
        }
    };
    say("peerhours demo: one period of a peer economy on a local 4-delegate network\n");
    say(&format!(
        "1. Laying out the network in {} (4 delegates, 4 members, one coordinator)",
        dir.display()
    ));
    let layout = testnet::init(&InitArgs {
        dir: dir.clone(),
        delegates: DELEGATES,
        observers: 0,
        members: MEMBER_NAMES.len() as u16,
        base_port,
        hosts: Vec::new(),
        json: crate::JsonFlag::default(),
    })?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    say("2. Starting the nodes (each with its own sled store, libp2p identity and port)");
    let mut running = Vec::new();
    for nd in &layout.nodes {
        let cfg = node::config::NodeConfig::load(&nd.join("config.toml"))?;
        running.push(
            rt.block_on(node::runtime::start(cfg))
                .with_context(|| format!("starting {}", nd.display()))?,
        );
    }
    let outcome = drive(&layout, &dir, quiet);
    say("\nStopping the nodes.");
    for n in running {
        if let Err(e) = rt.block_on(n.stop()) {
            eprintln!("warning: a node did not stop cleanly: {e}");
        }
    }
    let (report, roots_equal) = outcome?;
    if a.json.json {
        println!(
            "{}",
            serde_json::json!({ "ok": report.ok && roots_equal, "audit": report, "same_state_root": roots_equal })
        );
    }
    if !(report.ok && roots_equal) {
        bail!("the demo's audit did not pass");
    }
    if a.dir.is_some() {
        say(&format!(
            "The network stays in {} (`peerhours node run --dir {}/node0` restarts a node).",
            dir.display(),
            dir.display()
        ));
    }
    Ok(())
}

fn drive(
    layout: &testnet::Layout,
    dir: &Path,
    quiet: bool,
) -> anyhow::Result<(storage::audit::ReplayReport, bool)> {
    let apis = layout
        .api_urls
        .iter()
        .map(|u| Api::new(&NodeArgs { node: u.clone() }))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let read_key = |p: PathBuf| node::keyfile::read(&p).map_err(anyhow::Error::from);
    let delegates = layout
        .nodes
        .iter()
        .map(|n| read_key(n.join("delegate.key")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let members = (0..MEMBER_NAMES.len())
        .map(|j| read_key(dir.join("members").join(format!("member{j}.key"))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let coordinator = read_key(dir.join("coordinator.key"))?;
    let d = Demo {
        apis,
        chain: layout.genesis.chain_id(),
        delegates,
        coordinator,
        members,
        quiet,
        last_height: std::cell::Cell::new(0),
    };
    // Wait until every node sees the others.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let peers: Vec<usize> = (0..d.apis.len())
            .map(|i| d.status(i).map(|s| s.peers).unwrap_or(0))
            .collect();
        if peers.iter().all(|&p| p + 1 >= d.apis.len()) {
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "the nodes did not connect to each other within {}s (peers seen: {peers:?})",
                WAIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = d.status(0)?;
    if chain_id(&status)? != d.chain {
        bail!("node0 serves another chain");
    }
    d.say(format!(
        "   all 4 nodes connected; chain id {}",
        &status.chain_id[..16]
    ));
    let name = |pk: &PublicKey| -> String {
        d.members
            .iter()
            .position(|m| m.public() == *pk)
            .map(|i| MEMBER_NAMES[i].to_string())
            .unwrap_or_else(|| pk.to_hex()[..12].to_string())
    };
    let [alice, bob, carol, dave] = [&d.members[0], &d.members[1], &d.members[2], &d.members[3]];
    let erin = node::keyfile::random_keypair();

    d.say("\n3. Admissions and projects (signed by delegates)");
    d.act(
        1,
        &d.delegates[1],
        RecordBody::AdmitMember {
            member: erin.public(),
            association: "local".into(),
            exempt: true,
        },
        "delegate 1 admits erin, a child: exempt, carried by the association",
    )?;
    d.act(
        2,
        &d.delegates[2],
        RecordBody::RegisterProject {
            name: "kitchen".into(),
            association: "local".into(),
            coordinators: vec![d.coordinator.public()],
            flat_rate: true,
        },
        "delegate 2 registers the flat-rate project 'kitchen' (free meals; its work is levied on everyone)",
    )?;

    d.say("\n4. Period 1 opens: the bidding phase");
    d.act(
        0,
        &d.delegates[0],
        RecordBody::OpenPeriod { period: 1 },
        "delegate 0 opens period 1",
    )?;
    let p = d.period()?;
    let post = |task: &str, project: &str, hours: &str, slots: u32| RecordBody::PostTask {
        period: p,
        task: task.into(),
        project: project.into(),
        hours_mh: parse_hours(hours).expect("demo hours"),
        slots,
        min_weight_bp: 5_000,
        max_weight_bp: 50_000,
    };
    let mut pending = vec![
        d.submit(0, &d.coordinator, post("clean-toilets", "commons", "2", 2))?,
        d.submit(1, &d.coordinator, post("cook-dinner", "kitchen", "3", 1))?,
        d.submit(
            2,
            &d.coordinator,
            RecordBody::OfferProduct {
                period: p,
                product: "lake-flat".into(),
                project: "commons".into(),
                units: 1,
                cost_mh: 10_000,
            },
        )?,
    ];
    // Round-robin `wait_all` expects record i at node i % 4: submissions above went to 0, 1, 2.
    d.wait_all(&pending)?;
    d.say("   ✓ coordinator posts 'clean-toilets' (2 people, weight 0.5 to 5) and 'cook-dinner' (1 person, flat-rate)");
    d.say("   ✓ coordinator offers 1 unit of 'lake-flat' at a cost of 10 h");

    d.say("\n5. Members bid: reserve weights for tasks, maximum hours for the flat");
    let bid = |task: &str, w: &str| RecordBody::BidTask {
        period: p,
        task: task.into(),
        weight_bp: parse_weight(w).expect("demo weight"),
    };
    let pbid = |max: &str| RecordBody::BidProduct {
        period: p,
        product: "lake-flat".into(),
        max_mh: parse_hours(max).expect("demo hours"),
    };
    pending.clear();
    let bids: Vec<(&Keypair, RecordBody, String)> = vec![
        (
            alice,
            bid("clean-toilets", "1.5"),
            "alice will clean toilets at weight ≥ 1.5".into(),
        ),
        (bob, bid("clean-toilets", "2.0"), "bob at ≥ 2.0".into()),
        (carol, bid("clean-toilets", "1.2"), "carol at ≥ 1.2".into()),
        (
            dave,
            bid("cook-dinner", "0.8"),
            "dave will cook at weight ≥ 0.8".into(),
        ),
        (
            alice,
            pbid("25"),
            "alice bids up to 25 h for the flat".into(),
        ),
        (bob, pbid("18"), "bob up to 18 h".into()),
        (carol, pbid("12"), "carol up to 12 h".into()),
    ];
    for (i, (key, body, what)) in bids.into_iter().enumerate() {
        pending.push(d.submit(i % 4, key, body)?);
        d.say(format!("   · {what}"));
    }
    d.wait_all(&pending)?;

    d.say("\n6. Bidding closes: the auctions clear");
    let cb = d.act(
        3,
        &d.delegates[3],
        RecordBody::CloseBidding { period: p },
        "delegate 3 closes bidding",
    )?;
    let _ = cb;
    d.say("   clean-toilets: 2 slots, reserves carol 1.2, alice 1.5, bob 2.0 → the weight rises to 1.5 (alice's reserve); carol and alice win");
    d.say("   cook-dinner: 1 slot, dave alone at 0.8 → no second volunteer pulls it below 1.0: weight 1.0; dave wins");
    d.say("   lake-flat: 1 unit, bids 25, 18, 12 → price = highest losing bid, 18 h; alice wins, 8 h surplus");

    d.say("\n7. Work: contributions (signed by members) and attestations (by the coordinator), at different nodes");
    let contribute = |task: &str, hours: &str, note: &str| RecordBody::Contribute {
        period: p,
        task: task.into(),
        hours_mh: parse_hours(hours).expect("demo hours"),
        note: note.into(),
    };
    let c1 = d.act(
        0,
        carol,
        contribute("clean-toilets", "2", "both floors"),
        "carol contributes 2 h to clean-toilets",
    )?;
    let c2 = d.act(
        1,
        alice,
        contribute("clean-toilets", "2.5", "and the showers"),
        "alice contributes 2.5 h",
    )?;
    let c3 = d.act(
        2,
        dave,
        contribute("cook-dinner", "3", "soup for 40"),
        "dave contributes 3 h to cook-dinner",
    )?;
    let id = |s: &Submitted| Hash::from_hex(&s.id).map_err(|e| anyhow!("{e}"));
    d.act(
        3,
        &d.coordinator,
        RecordBody::Attest {
            contribution: id(&c1)?,
            hours_mh: None,
        },
        "coordinator attests carol's 2 h (× 1.5 = 3 h credited)",
    )?;
    d.act(
        0,
        &d.coordinator,
        RecordBody::Attest {
            contribution: id(&c2)?,
            hours_mh: Some(2_000),
        },
        "coordinator attests alice's contribution at 2 h",
    )?;
    d.act(
        1,
        &d.coordinator,
        RecordBody::Attest {
            contribution: id(&c3)?,
            hours_mh: None,
        },
        "coordinator attests dave's 3 h",
    )?;
    d.act(
        2,
        &d.coordinator,
        RecordBody::Amend {
            contribution: id(&c2)?,
            hours_mh: 2_500,
        },
        "coordinator amends alice's to 2.5 h after all (a new layer; the old one stays in the log)",
    )?;

    d.say("\n8. Period 1 closes: flat-rate levy, social allotment, surplus");
    d.act(
        1,
        &d.delegates[1],
        RecordBody::ClosePeriod { period: p },
        "delegate 1 closes period 1",
    )?;
    d.say("   flat-rate levy: dave's 3 h of cooking are shared by the 4 contributing members");
    d.say("   social allotment (average rule): erin, exempt, is credited the average effort of the contributors, paid by them");
    d.say("   surplus: the flat's 8 h surplus is split over all 5 members");

    // Every node must hold the same block, with the same state root, at the height the
    // close was committed in (blocks may keep coming, so compare at one height).
    d.say("\n9. Every node on the same state root?");
    let target = d.status(1)?.height;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let heights: Vec<u64> = (0..d.apis.len())
            .map(|i| d.status(i).map(|s| s.height))
            .collect::<anyhow::Result<_>>()?;
        if heights.iter().all(|&h| h >= target) {
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "the nodes did not all reach height {target} within {}s: {heights:?}",
                WAIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let blocks: Vec<node::api_types::BlockInfo> = (0..d.apis.len())
        .map(|i| d.apis[i].get_json(&format!("/v1/block/{target}"), Duration::from_secs(10)))
        .collect::<anyhow::Result<_>>()?;
    let roots_equal = blocks
        .iter()
        .all(|b| b.state_root == blocks[0].state_root && b.hash == blocks[0].hash);
    for (i, b) in blocks.iter().enumerate() {
        d.say(format!(
            "   node{i}: block {:>3}  state root {}",
            b.height, b.state_root
        ));
    }
    d.say(if roots_equal {
        "   ✓ all equal"
    } else {
        "   ✗ the nodes differ"
    });

    d.say("\n10. The auditor: export the log from node0 and replay it from the genesis");
    let log = d.apis[0].get_bytes("/v1/log", Duration::from_secs(60))?;
    let path = dir.join("demo.log");
    std::fs::write(&path, &log).with_context(|| format!("writing {}", path.display()))?;
    let report = storage::audit::replay_file(&path, &mut |_| {})
        .map_err(|e| anyhow!("audit failed: {e}"))?;
    d.say(format!(
        "   checked {} blocks and {} records: every signature, hash link and certificate; state root {}",
        report.blocks, report.records, &report.state_root
    ));
    // The export may hold a few more blocks than `target`: compare at its own tip.
    let exported: node::api_types::BlockInfo = d.apis[0].get_json(
        &format!("/v1/block/{}", report.blocks),
        Duration::from_secs(10),
    )?;
    if report.state_root != exported.state_root {
        bail!(
            "the replayed state root differs from the nodes' at block {}",
            report.blocks
        );
    }
    d.say("\nFinal balances (hours; positive = contributed more than received):");
    for (acc, mh) in &report.balances_mh {
        let label = match PublicKey::from_hex(acc) {
            Ok(pk) if pk == erin.public() => "erin (exempt)".to_string(),
            Ok(pk) => name(&pk),
            Err(_) => acc.clone(),
        };
        d.say(format!("   {label:<16} {:>9}", format_mh(*mh)));
    }
    d.say(format!("   {:<16} {:>9}", "sum", format_mh(report.sum_mh)));
    d.say(if report.ok && roots_equal {
        "\nAudit passed: the log verifies from the genesis, the sum of all accounts is 0, and every node agrees."
    } else {
        "\nAudit FAILED."
    });
    Ok((report, roots_equal))
}
