//! `peerhours bench`: what this machine can carry, and how far peerhours is from the
//! physical limit of the same machine.
//!
//! Everything is measured in one run:
//! 1. the ceiling: `verify_strict` checks of record signatures per second on one core and
//!    on all cores (`ceiling_per_s`);
//! 2. a 4-delegate network on loopback, in this process (real libp2p, real sled, real
//!    fsyncs; the nodes share the process and its cores, as 4 nodes on one machine do):
//!    empty blocks per second when idle, finality latency of single contributions at a
//!    light load, records finalized per second at saturation, and the seconds until blocks
//!    finalize at 75% of the idle rate again after one delegate is stopped;
//! 3. the auditor's replay of the log node0 holds (records per second);
//! 4. the peak resident memory of the process and node0's data directory per record.
//!
//! Load is offered through `RunningNode::submit`, the same path as the HTTP API's submit
//! (decode, verify, check against the ledger, durable store, gossip) minus HTTP: a bench of
//! the node, not of an HTTP client. Records are signed before the clock starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use node::runtime::{CommandError, Progress, RunningNode};
use protocol::crypto::domain;
use protocol::{Hash, Keypair, RecordBody, SignedRecord};
use serde::Serialize;

use crate::testnet::{self, InitArgs};

#[derive(Args)]
pub struct BenchArgs {
    /// Contributions offered at saturation.
    #[arg(long, default_value_t = 20_000)]
    pub records: u64,
    /// Seconds of each timed phase (idle blocks, light load); recovery is given 6 times this.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Members in the genesis, each signing contributions.
    #[arg(long, default_value_t = 1_000)]
    pub members: u16,
    /// Contributions per second offered at light load.
    #[arg(long, default_value_t = 20)]
    pub light_rate: u64,
    /// Keep the network directory here instead of a temporary one.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub json: crate::JsonFlag,
}

/// The JSON document of `peerhours bench --json` (keys as in the issue).
#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub verify_per_s_core: u64,
    pub cores: usize,
    pub ceiling_per_s: u64,
    pub finalized_per_s: u64,
    pub finalized_ratio: String,
    pub finality_ms_p50: String,
    pub finality_ms_p99: String,
    pub replay_per_s: u64,
    pub replay_ratio: String,
    pub rss_mb_max: u64,
    pub disk_bytes_per_record: u64,
    pub empty_blocks_per_s: String,
    /// Seconds from stopping one delegate until blocks finalize at 75% of the idle rate
    /// again; null if that did not happen within `recovery_window_s`.
    pub recovery_s: Option<String>,
    // Context for reading the figures.
    pub recovery_window_s: u64,
    pub records_offered: u64,
    pub records_finalized: u64,
    pub light_load_records: usize,
    pub replay_records: u64,
    pub replay_blocks: u64,
    pub members: u16,
    pub delegates: usize,
    pub rss_scope: &'static str,
}

const DELEGATES: usize = 4;
/// Longest wait for any single expected event (a record final, nodes connected).
const WAIT: Duration = Duration::from_secs(60);
/// Submissions in flight at each node at saturation.
const LANES_PER_NODE: usize = 64;
/// Signatures checked per ceiling measurement pass.
const CEILING_SET: usize = 2_048;
/// How long each ceiling measurement runs.
const CEILING_TIME: Duration = Duration::from_millis(1_500);

/// A ratio of two rates as a decimal string with 3 places (integers only: no floats).
fn ratio(num: u64, den: u64) -> String {
    if den == 0 {
        return "0.000".into();
    }
    let milli = u128::from(num) * 1000 / u128::from(den);
    format!("{}.{:03}", milli / 1000, milli % 1000)
}

/// `count` events over `d`, per second.
fn per_s(count: u64, d: Duration) -> u64 {
    let us = d.as_micros().max(1);
    u64::try_from(u128::from(count) * 1_000_000 / us).unwrap_or(u64::MAX)
}

/// `count` events over `d`, per second, with 1 decimal.
fn per_s_1(count: u64, d: Duration) -> String {
    let us = d.as_micros().max(1);
    let tenths = u128::from(count) * 10_000_000 / us;
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// Microseconds as milliseconds with 2 decimals.
fn ms_2(us: u128) -> String {
    format!("{}.{:02}", us / 1000, (us % 1000) / 10)
}

/// The `p`-th percentile (0..=100) of sorted samples, nearest rank.
fn percentile(sorted: &[u128], p: usize) -> u128 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn say(quiet: bool, text: impl AsRef<str>) {
    if !quiet {
        eprintln!("{}", text.as_ref());
    }
}

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    if a.records == 0 || a.seconds == 0 || a.members == 0 || a.light_rate == 0 {
        bail!("--records, --seconds, --members and --light-rate must be above 0");
    }
    let quiet = a.json.json;
    let report = bench(&a, quiet)?;
    if quiet {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &BenchReport) {
    println!(
        "ceiling (verify_strict)   {:>10} /s on one core, {} /s on {} cores",
        r.verify_per_s_core, r.ceiling_per_s, r.cores
    );
    println!(
        "finalized at saturation   {:>10} records/s   ratio {} of ceiling/4",
        r.finalized_per_s, r.finalized_ratio
    );
    println!(
        "finality at light load    p50 {} ms, p99 {} ms ({} records)",
        r.finality_ms_p50, r.finality_ms_p99, r.light_load_records
    );
    println!(
        "audit replay              {:>10} records/s   ratio {} of ceiling",
        r.replay_per_s, r.replay_ratio
    );
    println!("empty blocks              {:>10} /s", r.empty_blocks_per_s);
    match &r.recovery_s {
        Some(s) => println!("recovery after a delegate stops: {s} s"),
        None => println!(
            "recovery after a delegate stops: not within {} s",
            r.recovery_window_s
        ),
    }
    println!(
        "peak memory               {:>10} MB ({})",
        r.rss_mb_max, r.rss_scope
    );
    println!(
        "disk                      {:>10} bytes per record",
        r.disk_bytes_per_record
    );
}

fn bench(a: &BenchArgs, quiet: bool) -> anyhow::Result<BenchReport> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);

    // 1. The ceiling.
    say(
        quiet,
        format!("1/6 ceiling: verify_strict on 1 core and on {cores} cores"),
    );
    let (core, all) = ceiling(cores)?;
    say(quiet, format!("    {core}/s on one core, {all}/s on all"));

    // 2. The network.
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().context("creating a temporary directory")?;
            tmp.path().join("net")
        }
    };
    say(
        quiet,
        format!(
            "2/6 laying out 4 delegates and {} members in {}",
            a.members,
            dir.display()
        ),
    );
    let base_port = testnet::free_base_port(2 * DELEGATES as u16)?;
    let layout = testnet::init(&InitArgs {
        dir: dir.clone(),
        delegates: DELEGATES as u16,
        observers: 0,
        members: a.members,
        base_port,
        hosts: Vec::new(),
        json: crate::JsonFlag::default(),
    })?;
    let read_key = |p: PathBuf| node::keyfile::read(&p).map_err(anyhow::Error::from);
    let members = (0..a.members as usize)
        .map(|j| read_key(dir.join("members").join(format!("member{j}.key"))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let delegate0 = read_key(layout.nodes[0].join("delegate.key"))?;
    let coordinator = read_key(dir.join("coordinator.key"))?;
    let chain = layout.genesis.chain_id();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut nodes = Vec::new();
    for nd in &layout.nodes {
        let mut cfg = node::config::NodeConfig::load(&nd.join("config.toml"))?;
        // Measure what agreement can do: leaders propose at once, empty or not (a deployed
        // node only proposes an empty block as a heartbeat, see docs/operating.md).
        cfg.idle_block_ms = 0;
        nodes.push(
            rt.block_on(node::runtime::start(cfg))
                .with_context(|| format!("starting {}", nd.display()))?,
        );
    }
    let net = Net { nodes, chain };
    let outcome = rt.block_on(drive(a, &net, &members, &delegate0, &coordinator, quiet));
    for n in net.nodes {
        if let Err(e) = rt.block_on(n.stop()) {
            eprintln!("warning: a node did not stop cleanly: {e}");
        }
    }
    drop(rt);
    let run = outcome?;

    // 5. The auditor's replay of node0's log (the node is stopped: sled is unlocked).
    say(quiet, "6/6 audit replay of node0's log");
    let start = Instant::now();
    let replayed = storage::audit::replay_dir(&layout.nodes[0], 64 * 1024 * 1024, &mut |_| {})
        .map_err(|e| anyhow!("the audit replay failed: {e}"))?;
    let replay_time = start.elapsed();
    if !replayed.ok {
        bail!("the audit replay did not pass");
    }
    let replay_per_s = per_s(replayed.records, replay_time);
    say(
        quiet,
        format!(
            "    {} records in {} blocks: {replay_per_s} records/s",
            replayed.records, replayed.blocks
        ),
    );
    let disk = dir_bytes(&layout.nodes[0].join("data"))?;

    let mut lat = run.latencies_us;
    lat.sort_unstable();
    Ok(BenchReport {
        verify_per_s_core: core,
        cores,
        ceiling_per_s: all,
        finalized_per_s: run.finalized_per_s,
        finalized_ratio: ratio(run.finalized_per_s.saturating_mul(DELEGATES as u64), all),
        finality_ms_p50: ms_2(percentile(&lat, 50)),
        finality_ms_p99: ms_2(percentile(&lat, 99)),
        replay_per_s,
        replay_ratio: ratio(replay_per_s, all),
        rss_mb_max: peak_rss_kb()? / 1024,
        disk_bytes_per_record: disk / replayed.records.max(1),
        empty_blocks_per_s: run.empty_blocks_per_s,
        recovery_s: run.recovery_s,
        recovery_window_s: recovery_window(a).as_secs(),
        records_offered: a.records,
        records_finalized: run.finalized,
        light_load_records: lat.len(),
        replay_records: replayed.records,
        replay_blocks: replayed.blocks,
        members: a.members,
        delegates: DELEGATES,
        rss_scope: "the whole bench process: 4 nodes and the load generator",
    })
}

fn recovery_window(a: &BenchArgs) -> Duration {
    Duration::from_secs(a.seconds.saturating_mul(6))
}

/// `verify_strict` checks per second on one core and on `cores` threads, over a set of
/// signed contributions (the message is the signed prefix of the record's bytes).
fn ceiling(cores: usize) -> anyhow::Result<(u64, u64)> {
    let chain = Hash::of(b"peerhours bench ceiling");
    let keys: Vec<Keypair> = (0..64)
        .map(|i| Keypair::from_label(&format!("bench/ceiling/{i}")))
        .collect();
    let set: Vec<(protocol::PublicKey, Vec<u8>, protocol::Signature)> = (0..CEILING_SET)
        .map(|i| {
            let k = &keys[i % keys.len()];
            let body = RecordBody::Contribute {
                period: 1,
                task: "bench".into(),
                hours_mh: 1_000,
                note: String::new(),
            };
            let rec = SignedRecord::sign(k, &chain, i as u64, body);
            let bytes = rec.to_bytes();
            let msg = bytes[..bytes.len() - 64].to_vec();
            (rec.record.signer, msg, rec.signature)
        })
        .collect();
    let set = Arc::new(set);
    let run = |set: &[(protocol::PublicKey, Vec<u8>, protocol::Signature)],
               offset: usize|
     -> anyhow::Result<(u64, Duration)> {
        let start = Instant::now();
        let mut n = 0u64;
        let mut i = offset;
        while start.elapsed() < CEILING_TIME {
            for _ in 0..64 {
                let (pk, msg, sig) = &set[i % set.len()];
                pk.verify(domain::RECORD, &chain, msg, sig)
                    .map_err(|e| anyhow!("a bench signature failed: {e}"))?;
                i += 1;
                n += 1;
            }
        }
        Ok((n, start.elapsed()))
    };
    let (n, d) = run(&set, 0)?;
    let one = per_s(n, d);
    let results: Vec<anyhow::Result<(u64, Duration)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cores)
            .map(|t| {
                let set = Arc::clone(&set);
                s.spawn(move || run(&set, t * 97))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a ceiling thread panicked"))?)
            .collect()
    });
    let mut all = 0u64;
    for r in results {
        let (n, d) = r?;
        all = all.saturating_add(per_s(n, d));
    }
    Ok((one, all))
}

struct Net {
    nodes: Vec<RunningNode>,
    chain: Hash,
}

/// What the network phases measured.
struct Run {
    empty_blocks_per_s: String,
    latencies_us: Vec<u128>,
    finalized_per_s: u64,
    finalized: u64,
    recovery_s: Option<String>,
}

impl Net {
    /// Submits, retrying while the node is busy (its mempool is full) until `deadline`.
    async fn submit(&self, at: usize, bytes: Vec<u8>) -> anyhow::Result<Hash> {
        let deadline = Instant::now() + WAIT;
        let node = &self.nodes[at];
        let mut progress = node.progress();
        loop {
            match node.submit(bytes.clone()).await {
                Ok(s) => return Hash::from_hex(&s.id).map_err(|e| anyhow!("{e}")),
                Err(CommandError::Busy(_)) if Instant::now() < deadline => {
                    // Room comes back when a block takes records out of the mempool.
                    let _ =
                        tokio::time::timeout(Duration::from_millis(200), progress.changed()).await;
                }
                Err(e) => bail!("node{at} refused a bench record: {e:?}"),
            }
        }
    }

    /// Waits until record `id` is in a certified block at node `at`; insists it counted.
    /// Returns the block's height.
    async fn wait_accepted(&self, at: usize, id: &Hash) -> anyhow::Result<u64> {
        let mut w = self.nodes[at]
            .watch(id)
            .await
            .map_err(|e| anyhow!("watching {id}: {e:?}"))?;
        let s = tokio::time::timeout(WAIT, w.wait_for(|s| s.status != "pending"))
            .await
            .map_err(|_| anyhow!("record {id} was not final within {}s", WAIT.as_secs()))?
            .map_err(|_| anyhow!("node{at} stopped"))?
            .clone();
        if s.status != "accepted" {
            bail!(
                "bench record {id} was {}: {}",
                s.status,
                s.reason.unwrap_or_default()
            );
        }
        Ok(s.height.unwrap_or(0))
    }

    /// Submits at node `at`, waits until it counted and every node holds its block.
    async fn act(
        &self,
        at: usize,
        key: &Keypair,
        nonce: u64,
        body: RecordBody,
    ) -> anyhow::Result<()> {
        let bytes = SignedRecord::sign(key, &self.chain, nonce, body).to_bytes();
        let id = self.submit(at, bytes).await?;
        let height = self.wait_accepted(at, &id).await?;
        self.all_at(height).await
    }

    /// Waits until every running node has made block `height` final.
    async fn all_at(&self, height: u64) -> anyhow::Result<()> {
        for i in 0..self.nodes.len() {
            self.wait_progress(i, WAIT, |p| p.height >= height).await?;
        }
        Ok(())
    }

    fn progress(&self, at: usize) -> Progress {
        *self.nodes[at].progress().borrow()
    }

    /// Waits until node `at`'s progress satisfies `f`, up to `within`.
    async fn wait_progress(
        &self,
        at: usize,
        within: Duration,
        f: impl Fn(&Progress) -> bool,
    ) -> anyhow::Result<Progress> {
        let mut rx = self.nodes[at].progress();
        let p = tokio::time::timeout(within, rx.wait_for(|p| f(p)))
            .await
            .map_err(|_| {
                anyhow!(
                    "node{at} did not make the expected progress within {}s",
                    within.as_secs()
                )
            })?
            .map_err(|_| anyhow!("node{at} stopped"))?;
        Ok(*p)
    }
}

async fn drive(
    a: &BenchArgs,
    net: &Net,
    members: &[Keypair],
    delegate0: &Keypair,
    coordinator: &Keypair,
    quiet: bool,
) -> anyhow::Result<Run> {
    // The nodes finalize (empty) blocks as soon as they see each other.
    for i in 0..net.nodes.len() {
        net.wait_progress(i, WAIT, |p| p.height >= 3).await?;
    }

    say(
        quiet,
        format!("3/6 idle network: empty blocks for {} s", a.seconds),
    );
    let window = Duration::from_secs(a.seconds);
    let h0 = net.progress(0).height;
    let t0 = Instant::now();
    tokio::time::sleep(window).await; // the measurement window itself, not a wait for an event
    let empty_time = t0.elapsed();
    let empty_blocks = net.progress(0).height.saturating_sub(h0);
    let empty_blocks_per_s = per_s_1(empty_blocks, empty_time);
    say(quiet, format!("    {empty_blocks_per_s} blocks/s"));

    // A period in its work phase where every member won the task: contributions count.
    let period = 1;
    net.act(0, delegate0, 1, RecordBody::OpenPeriod { period })
        .await?;
    net.act(
        1,
        coordinator,
        1,
        RecordBody::PostTask {
            period,
            task: "bench".into(),
            project: "commons".into(),
            hours_mh: 1_000,
            slots: u32::from(a.members),
            min_weight_bp: 5_000,
            max_weight_bp: 50_000,
        },
    )
    .await?;
    let mut bids = Vec::with_capacity(members.len());
    for (j, m) in members.iter().enumerate() {
        let body = RecordBody::BidTask {
            period,
            task: "bench".into(),
            weight_bp: 10_000,
        };
        let at = j % DELEGATES;
        bids.push((
            at,
            net.submit(at, SignedRecord::sign(m, &net.chain, 1, body).to_bytes())
                .await?,
        ));
    }
    let mut top = 0;
    for (at, id) in &bids {
        top = top.max(net.wait_accepted(*at, id).await?);
    }
    net.all_at(top).await?;
    net.act(2, delegate0, 2, RecordBody::CloseBidding { period })
        .await?;

    // Contributions, signed before any clock starts (nonces from 2: 1 was the bid).
    let light = usize::try_from(a.light_rate.saturating_mul(a.seconds)).unwrap_or(usize::MAX);
    let total = light.saturating_add(usize::try_from(a.records).unwrap_or(usize::MAX));
    say(
        quiet,
        format!("    signing {total} contributions ahead of time"),
    );
    let signed = sign_contributions(net.chain, members, period, total);

    say(
        quiet,
        format!(
            "4/6 light load: {} contributions/s for {} s",
            a.light_rate, a.seconds
        ),
    );
    let (light_set, heavy_set) = signed.split_at(light.min(signed.len()));
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / a.light_rate));
    let mut waits = Vec::with_capacity(light_set.len());
    for (i, bytes) in light_set.iter().enumerate() {
        tick.tick().await;
        let at = i % DELEGATES;
        let start = Instant::now();
        let id = net.submit(at, bytes.clone()).await?;
        let w = net.nodes[at]
            .watch(&id)
            .await
            .map_err(|e| anyhow!("watching {id}: {e:?}"))?;
        waits.push(tokio::spawn(async move {
            let mut w = w;
            let ok = tokio::time::timeout(WAIT, w.wait_for(|s| s.status != "pending")).await;
            match ok {
                Ok(Ok(s)) if s.status == "accepted" => Ok(start.elapsed().as_micros()),
                Ok(Ok(s)) => Err(format!(
                    "{} {}",
                    s.status,
                    s.reason.clone().unwrap_or_default()
                )),
                _ => Err("not final in time".to_string()),
            }
        }));
    }
    let mut latencies_us = Vec::with_capacity(waits.len());
    for w in waits {
        match w.await {
            Ok(Ok(us)) => latencies_us.push(us),
            Ok(Err(e)) => bail!("a light-load record was {e}"),
            Err(e) => bail!("a light-load waiter failed: {e}"),
        }
    }
    let mut sorted = latencies_us.clone();
    sorted.sort_unstable();
    say(
        quiet,
        format!(
            "    finality p50 {} ms, p99 {} ms",
            ms_2(percentile(&sorted, 50)),
            ms_2(percentile(&sorted, 99))
        ),
    );

    say(
        quiet,
        format!(
            "5/6 saturation: {} contributions offered as fast as the nodes take them",
            heavy_set.len()
        ),
    );
    let before = net.progress(0).records;
    let start = Instant::now();
    let offered = heavy_set.len() as u64;
    // Many submissions in flight at each node, as many clients would have: the node can
    // then store a group of them with one flush.
    let lanes = DELEGATES * LANES_PER_NODE;
    let submitters: Vec<_> = (0..lanes)
        .map(|lane| {
            let at = lane % DELEGATES;
            let mine: Vec<Vec<u8>> = heavy_set
                .iter()
                .skip(lane)
                .step_by(lanes)
                .cloned()
                .collect();
            async move {
                for bytes in mine {
                    net.submit(at, bytes).await?;
                }
                anyhow::Ok(())
            }
        })
        .collect();
    for r in futures_join_all(submitters).await {
        r?;
    }
    let submitted_in = start.elapsed();
    let target = before.saturating_add(offered);
    let p = net
        .wait_progress(0, WAIT * 5, |p| p.records >= target)
        .await?;
    let heavy_time = start.elapsed();
    let finalized = p.records.saturating_sub(before);
    let finalized_per_s = per_s(finalized, heavy_time);
    say(
        quiet,
        format!(
            "    {finalized} records final in {} ms (all submitted after {} ms): {finalized_per_s}/s",
            heavy_time.as_millis(),
            submitted_in.as_millis()
        ),
    );

    // Recovery: the block rate of the network as it is now, then stop the last delegate.
    let window = recovery_window(a);
    let h0 = net.progress(0).height;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await; // the measurement window itself
    let rate_milli = u128::from(net.progress(0).height.saturating_sub(h0)) * 1_000_000_000
        / t0.elapsed().as_micros().max(1);
    say(
        quiet,
        format!(
            "    stopping node3 (the rate was {}.{:03} blocks/s); up to {} s to recover",
            rate_milli / 1000,
            rate_milli % 1000,
            window.as_secs()
        ),
    );
    let recovery_s = recovery(net, rate_milli, window).await?;
    match &recovery_s {
        Some(s) => say(
            quiet,
            format!("    back to 75% of the idle rate after {s} s"),
        ),
        None => say(
            quiet,
            format!(
                "    not back to 75% of the idle rate within {} s",
                window.as_secs()
            ),
        ),
    }
    Ok(Run {
        empty_blocks_per_s,
        latencies_us,
        finalized_per_s,
        finalized,
        recovery_s,
    })
}

/// Seconds from stopping node3 until node0 finalizes blocks, over a sliding second, at
/// 75% or more of `rate_milli` (blocks per 1000 s); `None` if not within `window`.
async fn recovery(net: &Net, rate_milli: u128, window: Duration) -> anyhow::Result<Option<String>> {
    const SLIDE: Duration = Duration::from_secs(1);
    let _ = net.nodes[3].stopper().send(true);
    let killed = Instant::now();
    let mut rx = net.nodes[0].progress();
    // (when, height) samples; the front is the newest one at least a second old.
    let mut samples: std::collections::VecDeque<(Instant, u64)> = Default::default();
    samples.push_back((killed, rx.borrow_and_update().height));
    loop {
        let left = window.saturating_sub(killed.elapsed());
        if left.is_zero() {
            return Ok(None);
        }
        match tokio::time::timeout(left, rx.changed()).await {
            Err(_) => return Ok(None),
            Ok(Err(_)) => bail!("node0 stopped"),
            Ok(Ok(())) => {}
        }
        let now = Instant::now();
        let h = rx.borrow_and_update().height;
        samples.push_back((now, h));
        while samples.len() > 1 && now.duration_since(samples[1].0) >= SLIDE {
            samples.pop_front();
        }
        let Some(&(first, h0)) = samples.front() else {
            continue;
        };
        let span_us = now.duration_since(first).as_micros();
        if span_us < SLIDE.as_micros() {
            continue;
        }
        // blocks per 1000 s over the window, against 75% of the rate before.
        let got_milli = u128::from(h.saturating_sub(h0)) * 1_000_000_000 / span_us.max(1);
        if got_milli * 4 >= rate_milli * 3 {
            let us = now.duration_since(killed).as_micros();
            return Ok(Some(format!(
                "{}.{:02}",
                us / 1_000_000,
                (us % 1_000_000) / 10_000
            )));
        }
    }
}

/// Awaits all futures concurrently (tokio has no join_all; futures is not a cli dep).
async fn futures_join_all<F, T>(futs: Vec<F>) -> Vec<T>
where
    F: std::future::Future<Output = T>,
{
    let mut set = Vec::with_capacity(futs.len());
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<T>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// `total` contributions, round-robin over the members, signed on all cores.
fn sign_contributions(chain: Hash, members: &[Keypair], period: u64, total: usize) -> Vec<Vec<u8>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let sign = |i: usize| {
        let m = &members[i % members.len()];
        let nonce = 2 + (i / members.len()) as u64;
        let body = RecordBody::Contribute {
            period,
            task: "bench".into(),
            hours_mh: 1_000,
            note: String::new(),
        };
        SignedRecord::sign(m, &chain, nonce, body).to_bytes()
    };
    let chunks: Vec<Vec<Vec<u8>>> = std::thread::scope(|s| {
        let per = total.div_ceil(threads.max(1)).max(1);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let sign = &sign;
                s.spawn(move || {
                    (t * per..((t + 1) * per).min(total))
                        .map(sign)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    chunks.into_iter().flatten().collect()
}

/// Peak resident set of this process (VmHWM), in KiB.
fn peak_rss_kb() -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("/proc/self/status has no VmHWM line"))
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            let md = e.metadata()?;
            if md.is_dir() {
                stack.push(e.path());
            } else {
                total = total.saturating_add(md.len());
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_percentiles_are_integer_exact() {
        assert_eq!(ratio(1, 2), "0.500");
        assert_eq!(ratio(3, 0), "0.000");
        assert_eq!(ratio(12_345, 1_000), "12.345");
        assert_eq!(per_s(10, Duration::from_millis(500)), 20);
        assert_eq!(per_s_1(15, Duration::from_secs(2)), "7.5");
        assert_eq!(ms_2(8_456), "8.45");
        let s: Vec<u128> = (1..=100).collect();
        assert_eq!(percentile(&s, 50), 50);
        assert_eq!(percentile(&s, 99), 99);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[], 50), 0);
    }
}
