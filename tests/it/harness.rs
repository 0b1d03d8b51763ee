//! A small harness for multi-node tests: real nodes (sled, libp2p on loopback, HTTP API) in
//! one process, each in its own temporary directory, talked to over their HTTP API.
//!
//! Tests are plain `#[test]` functions: the nodes run on a tokio runtime owned by the
//! [`Net`], and the test thread drives them with a blocking HTTP client, as the CLI does.
//! Multi-node tests take a process-wide lock so two networks never compete for the two
//! cores of the test machine (their view timeouts would fire spuriously).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use node::api_types::{ApiError, Status, Submitted};
use node::config::NodeConfig;
use node::runtime::RunningNode;
use protocol::testkit::Fixture;
use protocol::{CertifiedBlock, Hash, Keypair, RecordBody, SignedRecord};

/// How long any one condition may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(60);
/// View timeout of test delegates: short, so views of a stopped leader pass quickly.
pub const VIEW_TIMEOUT_MS: u64 = 300;
/// An idle leader's heartbeat block: at most `VIEW_TIMEOUT_MS - 200` (the config's rule).
pub const IDLE_BLOCK_MS: u64 = 100;

static SERIAL: Mutex<()> = Mutex::new(());

/// Polls `check` until it returns `Ok`, or fails the test after `within` with the last
/// reason `check` gave. The short sleep is between polls, never a wait for an event.
pub fn wait_until<T>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(v) => return v,
            Err(why) if Instant::now() >= deadline => {
                panic!("timed out after {:?} waiting for {what}: {why}", within)
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Sets up `tracing` output once, filtered by `RUST_LOG` (silent by default).
fn init_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("RUST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
    });
}

/// A fresh nonce for a record (unique in the process; signers never reuse one).
pub fn nonce() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    // Mixed with the clock so two test runs on one persisted network never collide.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (t << 20) ^ NEXT.fetch_add(1, Ordering::Relaxed)
}

/// An HTTP failure of the API: status code and the node's one-sentence error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub error: String,
}

/// A blocking client of one node's HTTP API.
#[derive(Clone)]
pub struct Api {
    base: String,
    agent: ureq::Agent,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Api {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(90))
            .build();
        Api {
            base: format!("http://{addr}"),
            agent,
        }
    }

    fn call(&self, r: Result<ureq::Response, ureq::Error>) -> Result<ureq::Response, Refusal> {
        match r {
            Ok(resp) => Ok(resp),
            Err(ureq::Error::Status(code, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                let error = serde_json::from_str::<ApiError>(&text)
                    .map(|e| e.error)
                    .unwrap_or(text);
                Err(Refusal { code, error })
            }
            Err(e) => Err(Refusal {
                code: 0,
                error: format!("{} unreachable: {e}", self.base),
            }),
        }
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Refusal> {
        let resp = self.call(self.agent.get(&format!("{}{path}", self.base)).call())?;
        resp.into_json().map_err(|e| Refusal {
            code: 0,
            error: format!("bad JSON from {path}: {e}"),
        })
    }

    pub fn status(&self) -> Result<Status, Refusal> {
        self.get_json("/v1/status")
    }

    /// Posts the bytes of one record.
    pub fn post(&self, bytes: &[u8]) -> Result<Submitted, Refusal> {
        let req = self
            .agent
            .post(&format!("{}/v1/records", self.base))
            .set("content-type", "application/octet-stream");
        let resp = self.call(req.send_bytes(bytes))?;
        resp.into_json().map_err(|e| Refusal {
            code: 0,
            error: format!("bad JSON from a submission: {e}"),
        })
    }

    /// Where record `id` stands here, waiting up to `wait` for a certified block.
    pub fn record(&self, id: &str, wait: Duration) -> Result<Submitted, Refusal> {
        self.get_json(&format!("/v1/records/{id}?wait_ms={}", wait.as_millis()))
    }

    pub fn balance(&self, account: &str) -> Result<serde_json::Value, Refusal> {
        self.get_json(&format!("/v1/balance/{account}"))
    }

    /// Certified block `height` as the node shows it.
    pub fn block(&self, height: u64) -> Result<node::api_types::BlockInfo, Refusal> {
        self.get_json(&format!("/v1/block/{height}"))
    }

    /// The node's log as certified blocks, read from its export (`GET /v1/log`).
    pub fn blocks(&self) -> Result<Vec<CertifiedBlock>, Refusal> {
        let resp = self.call(self.agent.get(&format!("{}/v1/log", self.base)).call())?;
        let bad = |e: String| Refusal {
            code: 0,
            error: format!("bad export from {}: {e}", self.base),
        };
        let mut r = storage::export::ExportReader::new(resp.into_reader())
            .map_err(|e| bad(e.to_string()))?;
        let mut out = Vec::new();
        while let Some(b) = r.next_block().map_err(|e| bad(e.to_string()))? {
            out.push(b);
        }
        Ok(out)
    }
}

/// Signs `body` for the chain with a fresh nonce.
pub fn sign(key: &Keypair, chain_id: &Hash, body: RecordBody) -> SignedRecord {
    SignedRecord::sign(key, chain_id, nonce(), body)
}

/// One node of a test network: its configuration (kept across restarts) and, while it
/// runs, the running node and its API.
pub struct Slot {
    pub config: NodeConfig,
    pub running: Option<RunningNode>,
    pub api: Option<Api>,
}

/// A network of delegates (nodes `0..delegates`) and observers (the rest).
pub struct Net {
    pub fx: Fixture,
    pub slots: Vec<Slot>,
    /// The runtime every node runs on; dropped after the nodes stop.
    pub rt: tokio::runtime::Runtime,
    /// Every node's directory; removed after the nodes and the runtime are gone.
    _dir: tempfile::TempDir,
    _serial: MutexGuard<'static, ()>,
}

/// `n` TCP ports free on 127.0.0.1 right now (held together, so they are distinct).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("a bound address").port())
        .collect()
}

impl Net {
    /// Lays out `delegates` delegate and `observers` observer nodes of a fresh chain
    /// (genesis from `Fixture::new(label, delegates, members)`), every node bootstrapping
    /// to every other; starts none of them.
    pub fn new(label: &str, delegates: usize, observers: usize, members: usize) -> Net {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        init_tracing();
        let fx = Fixture::new(label, delegates, members);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let total = delegates + observers;
        let ports = free_ports(total);
        let addr = |i: usize| format!("/ip4/127.0.0.1/tcp/{}", ports[i]);
        let genesis_toml = fx.genesis.to_toml();
        let mut slots = Vec::new();
        for i in 0..total {
            let nd: PathBuf = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&nd).expect("a node directory");
            std::fs::write(nd.join("genesis.toml"), &genesis_toml).expect("writing the genesis");
            let mut c = NodeConfig::new(addr(i), SocketAddr::from(([127, 0, 0, 1], 0)));
            c.genesis = nd.join("genesis.toml");
            c.data = nd.join("data");
            c.p2p_key = nd.join("p2p.key");
            c.bootstrap = (0..total).filter(|&j| j != i).map(addr).collect();
            c.view_timeout_ms = VIEW_TIMEOUT_MS;
            c.idle_block_ms = IDLE_BLOCK_MS;
            c.cache_mb = 8;
            if i < delegates {
                let key = nd.join("delegate.key");
                node::keyfile::write(&key, &fx.delegates[i]).expect("writing a delegate key");
                c.delegate_key = Some(key);
            }
            slots.push(Slot {
                config: c,
                running: None,
                api: None,
            });
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        Net {
            fx,
            slots,
            rt,
            _dir: dir,
            _serial: serial,
        }
    }

    pub fn chain_id(&self) -> Hash {
        self.fx.chain_id
    }

    /// Starts node `i` (again, after a stop: same directory, keys and ports).
    pub fn start(&mut self, i: usize) {
        assert!(self.slots[i].running.is_none(), "node {i} runs already");
        let cfg = self.slots[i].config.clone();
        let running = self
            .rt
            .block_on(node::runtime::start(cfg))
            .unwrap_or_else(|e| panic!("starting node {i}: {e}"));
        self.slots[i].api = Some(Api::new(running.api));
        self.slots[i].running = Some(running);
    }

    pub fn start_all(&mut self) {
        for i in 0..self.slots.len() {
            self.start(i);
        }
    }

    /// Stops node `i` cleanly and waits until it has.
    pub fn stop(&mut self, i: usize) {
        let running = self.slots[i]
            .running
            .take()
            .unwrap_or_else(|| panic!("node {i} is not running"));
        self.slots[i].api = None;
        let stopped = self.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), running.stop()).await
        });
        match stopped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("node {i} stopped with an error: {e}"),
            Err(_) => panic!("node {i} did not stop within 30s"),
        }
    }

    /// The indices of the running nodes.
    pub fn up(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].running.is_some())
            .collect()
    }

    pub fn api(&self, i: usize) -> &Api {
        self.slots[i]
            .api
            .as_ref()
            .unwrap_or_else(|| panic!("node {i} is not running"))
    }

    pub fn status(&self, i: usize) -> Status {
        self.api(i)
            .status()
            .unwrap_or_else(|e| panic!("status of node {i}: {e:?}"))
    }

    /// Waits until every running node is connected to every other running node.
    pub fn wait_connected(&self) {
        let up = self.up();
        wait_until(WAIT, "the running nodes to connect", || {
            let peers: Vec<usize> = up
                .iter()
                .map(|&i| self.api(i).status().map(|s| s.peers).unwrap_or(0))
                .collect();
            if peers.iter().all(|&p| p + 1 >= up.len()) {
                Ok(())
            } else {
                Err(format!("peers seen by nodes {up:?}: {peers:?}"))
            }
        })
    }

    /// Signs `body` with `key`, submits it to node `at`, and waits for it to be accepted
    /// in a certified block; returns its outcome.
    pub fn act(&self, at: usize, key: &Keypair, body: RecordBody) -> Submitted {
        let rec = sign(key, &self.chain_id(), body);
        let s = self
            .api(at)
            .post(&rec.to_bytes())
            .unwrap_or_else(|e| panic!("node {at} refused a submission: {e:?}"));
        self.wait_accepted(at, &s.id)
    }

    /// Waits until node `at` reports record `id` accepted in a certified block.
    pub fn wait_accepted(&self, at: usize, id: &str) -> Submitted {
        let s = wait_until(
            WAIT,
            &format!("record {id} to be committed at node {at}"),
            || match self.api(at).record(id, Duration::from_secs(2)) {
                Ok(s) if s.status != "pending" => Ok(s),
                Ok(s) => Err(format!("still {}", s.status)),
                Err(e) => Err(format!("{e:?}")),
            },
        );
        assert_eq!(
            s.status, "accepted",
            "record {id} was {}: {:?}",
            s.status, s.reason
        );
        s
    }

    /// Waits until every running node holds at least `height` blocks.
    pub fn wait_height(&self, height: u64) {
        for i in self.up() {
            wait_until(WAIT, &format!("node {i} to reach height {height}"), || {
                let h = self.api(i).status().map_err(|e| format!("{e:?}"))?.height;
                if h >= height {
                    Ok(())
                } else {
                    Err(format!("at height {h}"))
                }
            });
        }
    }

    /// The highest height any running node reports.
    pub fn max_height(&self) -> u64 {
        self.up()
            .into_iter()
            .map(|i| self.status(i).height)
            .max()
            .unwrap_or(0)
    }

    /// Checks that the running nodes agree: their logs are one chain (the same block at
    /// every height they share, so no two conflicting blocks were certified), every log
    /// links from the chain id, and every node's reported state root is the one its own
    /// tip block commits to. Returns the longest log.
    pub fn check_agreement(&self) -> Vec<CertifiedBlock> {
        let up = self.up();
        // Status first, then the log: the log is at least as long as the status says.
        let mut logs = Vec::new();
        for &i in &up {
            let status = self.status(i);
            let log = self
                .api(i)
                .blocks()
                .unwrap_or_else(|e| panic!("log of node {i}: {e:?}"));
            assert!(
                log.len() as u64 >= status.height,
                "node {i} reports height {} but exports {}",
                status.height,
                log.len()
            );
            let mut parent = self.chain_id();
            for (h, b) in log.iter().enumerate() {
                assert_eq!(
                    b.block.height,
                    h as u64 + 1,
                    "node {i}: block {h} out of place"
                );
                assert_eq!(
                    b.block.parent, parent,
                    "node {i}: block {} does not link",
                    b.block.height
                );
                parent = b.block.hash();
            }
            if status.height > 0 {
                let tip = &log[status.height as usize - 1];
                assert_eq!(
                    status.state_root,
                    tip.block.state_root.to_hex(),
                    "node {i}: reported state root differs from its block {}",
                    status.height
                );
            }
            logs.push(log);
        }
        for (k, log) in logs.iter().enumerate() {
            for (h, b) in log.iter().enumerate() {
                for (m, other) in logs.iter().enumerate().skip(k + 1) {
                    if let Some(o) = other.get(h) {
                        assert_eq!(
                            b.block.hash(),
                            o.block.hash(),
                            "nodes {} and {} certified different blocks at height {}",
                            up[k],
                            up[m],
                            h + 1
                        );
                    }
                }
            }
        }
        logs.into_iter().max_by_key(Vec::len).unwrap_or_default()
    }

    /// Waits until every running node has reached the height the most advanced one had
    /// when called, then checks agreement (see [`Net::check_agreement`]).
    pub fn wait_converged(&self) -> Vec<CertifiedBlock> {
        let target = self.max_height();
        self.wait_height(target);
        self.check_agreement()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            if let Some(running) = slot.running.take() {
                let _ = self.rt.block_on(async {
                    tokio::time::timeout(Duration::from_secs(10), running.stop()).await
                });
            }
        }
    }
}
