//! The harness: run the real `peerhours` binary, lay out a test network with `testnet
//! init`, run one `peerhours node run --dir` process per node, and kill them all when the
//! test ends (also when it fails).

use std::cell::Cell;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_peerhours")
}

/// How long a test waits for any one event of a network (a connection, a block, a catch-up).
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a condition is checked while waiting for it.
const POLL_EVERY: Duration = Duration::from_millis(50);
/// The view timeout written into every node's config: a view with a dead leader passes fast.
pub const VIEW_TIMEOUT_MS: u64 = 300;

/// What one run of the binary did.
#[derive(Debug)]
pub struct Out {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts success and returns itself.
    #[track_caller]
    pub fn ok(self) -> Out {
        assert_eq!(
            self.code,
            Some(0),
            "`peerhours {}` failed:\nstdout: {}\nstderr: {}",
            self.args.join(" "),
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts a non-zero exit with one clear sentence on stderr mentioning `needle`
    /// (case-insensitive), and nothing on stdout. Returns the sentence.
    #[track_caller]
    pub fn fails_with(self, needle: &str) -> String {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "`peerhours {}` should have failed but exited {:?}:\nstdout: {}\nstderr: {}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        );
        let err = self.stderr.trim();
        assert!(
            !err.is_empty() && err.lines().count() == 1,
            "`peerhours {}`: the error should be one line on stderr, got:\n{}",
            self.args.join(" "),
            self.stderr
        );
        assert!(
            err.starts_with("error: "),
            "`peerhours {}`: the error should start with `error: `: {err}",
            self.args.join(" ")
        );
        assert!(
            err.to_lowercase().contains(&needle.to_lowercase()),
            "`peerhours {}`: the error should mention {needle:?}: {err}",
            self.args.join(" ")
        );
        assert!(
            self.stdout.trim().is_empty(),
            "`peerhours {}` failed but printed on stdout: {}",
            self.args.join(" "),
            self.stdout
        );
        err.to_string()
    }

    /// Parses stdout as exactly one JSON document (trailing text is an error).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "`peerhours {}` did not print exactly one JSON document ({e}):\n{}",
                self.args.join(" "),
                self.stdout
            )
        })
    }
}

/// Runs `peerhours args...` to completion.
pub fn peerhours<S: AsRef<str>>(args: &[S]) -> Out {
    let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
    let out = Command::new(bin())
        .args(&args)
        .env("PEERHOURS_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .expect("running the peerhours binary");
    Out {
        args,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Polls `f` until it returns `Some`, or panics naming `what` after `timeout`.
#[track_caller]
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = f() {
            return t;
        }
        if Instant::now() > deadline {
            panic!("timed out after {}s waiting for {what}", timeout.as_secs());
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// Asserts that `s` is a lowercase hex string of 64 characters.
#[track_caller]
pub fn assert_hex64(v: &Value, what: &str) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"));
    assert!(
        s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{what} is not 64 lowercase hex characters: {s}"
    );
}

/// Networks share two cores with everything else: run one at a time, so that view
/// timeouts measure the protocol and not the scheduler.
static NETWORKS: Mutex<()> = Mutex::new(());

pub fn network_lock() -> MutexGuard<'static, ()> {
    NETWORKS.lock().unwrap_or_else(|p| p.into_inner())
}

/// A base port P with P..=P+2n+1 free on 127.0.0.1 (best effort: binds and releases them).
/// Below the kernel's ephemeral range, so outgoing connections do not take them meanwhile.
pub fn free_base_port(nodes: usize) -> u16 {
    let span = 2 * nodes as u16 + 2;
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    for attempt in 0..200u64 {
        let p = 20_000 + ((seed.wrapping_add(attempt * 7919)) % 12_000) as u16;
        let free = (p..p + span).all(|q| std::net::TcpListener::bind(("127.0.0.1", q)).is_ok());
        if free {
            return p;
        }
    }
    panic!("no free range of {span} ports on 127.0.0.1");
}

/// A network laid out by `peerhours testnet init`, one `node run` process per node.
pub struct Net {
    _lock: MutexGuard<'static, ()>,
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub delegates: usize,
    pub nodes: Vec<PathBuf>,
    pub api: Vec<String>,
    children: Vec<Option<Child>>,
    /// The highest block that held a record this test saw accepted.
    last_height: Cell<u64>,
}

impl Net {
    /// `testnet init` with `delegates`, `observers` and `members`, configs edited for a
    /// short view timeout, every node started and connected to all others.
    pub fn start(delegates: usize, observers: usize, members: usize) -> Net {
        let lock = network_lock();
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("net");
        let total = delegates + observers;
        let base = free_base_port(total);
        let init = peerhours(&[
            "testnet",
            "init",
            "--dir",
            dir.to_str().expect("utf-8 temp path"),
            "--delegates",
            &delegates.to_string(),
            "--observers",
            &observers.to_string(),
            "--members",
            &members.to_string(),
            "--base-port",
            &base.to_string(),
            "--json",
        ])
        .ok()
        .json();
        let strings = |k: &str| -> Vec<String> {
            init[k]
                .as_array()
                .unwrap_or_else(|| panic!("testnet init --json has no {k:?} list: {init}"))
                .iter()
                .map(|v| v.as_str().expect("a string").to_string())
                .collect()
        };
        let nodes: Vec<PathBuf> = strings("nodes").into_iter().map(PathBuf::from).collect();
        let api = strings("api");
        assert_eq!(nodes.len(), total, "one node directory per node");
        assert_eq!(api.len(), total, "one API URL per node");
        for (i, url) in api.iter().enumerate() {
            // cli.md: node i serves its API on 127.0.0.1 port P + 2i + 1.
            assert_eq!(
                url,
                &format!("http://127.0.0.1:{}", base as usize + 2 * i + 1),
                "API port of node {i}"
            );
            set_view_timeout(&nodes[i].join("config.toml"), VIEW_TIMEOUT_MS);
        }
        let mut net = Net {
            _lock: lock,
            _tmp: tmp,
            dir,
            delegates,
            nodes,
            api,
            children: (0..total).map(|_| None).collect(),
            last_height: Cell::new(0),
        };
        for i in 0..total {
            net.run(i);
        }
        net.wait_connected();
        net
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Starts (or restarts) `peerhours node run --dir` for node `i`; its output is appended
    /// to `DIR/node<i>.log`.
    pub fn run(&mut self, i: usize) {
        assert!(self.children[i].is_none(), "node {i} is already running");
        let log = self.dir.join(format!("node{i}.log"));
        let f = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .expect("node log file");
        let child = Command::new(bin())
            .args(["node", "run", "--dir"])
            .arg(&self.nodes[i])
            .env("PEERHOURS_LOG", "info")
            .stdin(Stdio::null())
            .stdout(f.try_clone().expect("log file handle"))
            .stderr(f)
            .spawn()
            .expect("spawning peerhours node run");
        self.children[i] = Some(child);
        let url = self.api[i].clone();
        wait_for(&format!("node {i}'s API at {url}"), EVENT_TIMEOUT, || {
            if let Some(c) = self.children[i].as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!(
                        "node {i} exited at start-up ({st}):\n{}",
                        tail(&self.dir.join(format!("node{i}.log")), 20)
                    );
                }
            }
            self.try_status(i)
        });
    }

    /// SIGKILL node `i` (no clean shutdown) and reap it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until every running node sees every other running node.
    pub fn wait_connected(&mut self) {
        let running: Vec<usize> = (0..self.len())
            .filter(|&i| self.children[i].is_some())
            .collect();
        let want = running.len() - 1;
        wait_for(
            "every node to connect to every other",
            EVENT_TIMEOUT,
            || {
                running
                    .iter()
                    .all(|&i| {
                        self.try_status(i)
                            .and_then(|s| s["peers"].as_u64())
                            .is_some_and(|p| p as usize >= want)
                    })
                    .then_some(())
            },
        );
    }

    /// `status --json` at node `i`, or `None` if it does not answer.
    pub fn try_status(&self, i: usize) -> Option<Value> {
        let out = peerhours(&["status", "--node", &self.api[i], "--json"]);
        (out.code == Some(0)).then(|| out.json())
    }

    #[track_caller]
    pub fn status(&self, i: usize) -> Value {
        peerhours(&["status", "--node", &self.api[i], "--json"])
            .ok()
            .json()
    }

    pub fn delegate_key(&self, i: usize) -> String {
        assert!(i < self.delegates, "node {i} is not a delegate");
        path_str(&self.nodes[i].join("delegate.key"))
    }

    pub fn member_key(&self, j: usize) -> String {
        path_str(&self.dir.join("members").join(format!("member{j}.key")))
    }

    pub fn coordinator_key(&self) -> String {
        path_str(&self.dir.join("coordinator.key"))
    }

    /// Signs `args` with `key`, submits it at node `at` with `--wait --json`, and insists
    /// the record was accepted in a certified block. Returns the record id.
    #[track_caller]
    pub fn act(&self, at: usize, key: &str, args: &[&str]) -> String {
        // A node checks a submission against what it has committed: let it catch up with
        // the records accepted so far (an observer follows the delegates with a lag).
        self.wait_height(at, self.last_height.get());
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--key", key, "--node", &self.api[at], "--wait", "--json"]);
        let out = peerhours(&all).ok();
        let v = out.json();
        if v["status"] != "accepted" {
            panic!(
                "`peerhours {}` was not accepted: {v}\n(node heights now: {})",
                out.args.join(" "),
                self.heights()
            );
        }
        let h = v["height"].as_u64().filter(|&h| h >= 1);
        let h = h.unwrap_or_else(|| panic!("an accepted record has no height: {v}"));
        self.last_height.set(self.last_height.get().max(h));
        assert!(
            v["reason"].is_null(),
            "an accepted record has no reason: {v}"
        );
        assert_hex64(&v["id"], "record id");
        v["id"].as_str().expect("id").to_string()
    }

    /// Waits until node `i` has committed every record accepted so far (anywhere).
    #[track_caller]
    pub fn catch_up(&self, i: usize) {
        self.wait_height(i, self.last_height.get());
    }

    /// Node `i`'s status once it has committed every record accepted so far: a record
    /// accepted at one node is certified a moment later at the others.
    #[track_caller]
    pub fn settled_status(&self, i: usize) -> Value {
        self.catch_up(i);
        self.status(i)
    }

    /// Every node's height, for failure reports (a stalled chain shows here).
    pub fn heights(&self) -> String {
        (0..self.len())
            .map(|i| match self.try_status(i) {
                Some(s) => format!("node{i}={}", s["height"]),
                None => format!("node{i}=down"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Waits until node `i` has committed block `height`.
    #[track_caller]
    pub fn wait_height(&self, i: usize, height: u64) {
        wait_for(
            &format!("node {i} to reach height {height}"),
            EVENT_TIMEOUT,
            || {
                self.try_status(i)
                    .and_then(|s| s["height"].as_u64())
                    .is_some_and(|h| h >= height)
                    .then_some(())
            },
        );
    }

    /// Waits until every running node reports the same height and state root at once
    /// (blocks keep coming, so this is a snapshot), at least `min_height`. Returns it.
    pub fn wait_same_tip(&self, nodes: &[usize], min_height: u64) -> (u64, String) {
        wait_for(
            &format!("nodes {nodes:?} to agree on one height and state root above {min_height}"),
            EVENT_TIMEOUT,
            || {
                let s: Vec<Value> = nodes
                    .iter()
                    .map(|&i| self.try_status(i))
                    .collect::<Option<_>>()?;
                let h = s[0]["height"].as_u64()?;
                let root = s[0]["state_root"].as_str()?.to_string();
                let same = s
                    .iter()
                    .all(|x| x["height"].as_u64() == Some(h) && x["state_root"] == root.as_str());
                (same && h >= min_height).then_some((h, root))
            },
        )
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
        if std::thread::panicking() {
            for i in 0..self.nodes.len() {
                let log = self.dir.join(format!("node{i}.log"));
                eprintln!("---- node{i}.log (last lines) ----\n{}", tail(&log, 12));
            }
        }
    }
}

/// The last `n` lines of a file without colour codes, for failure reports.
pub fn tail(path: &Path, n: usize) -> String {
    let text = strip_ansi(&std::fs::read_to_string(path).unwrap_or_default());
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... final letter
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn path_str(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

/// Sets `view_timeout_ms` (a documented config key) in a node's `config.toml`.
fn set_view_timeout(config: &Path, ms: u64) {
    let text = std::fs::read_to_string(config).expect("reading config.toml");
    let mut t: toml::Table = toml::from_str(&text).expect("config.toml is TOML");
    assert!(
        t.contains_key("view_timeout_ms"),
        "testnet init writes view_timeout_ms"
    );
    t.insert("view_timeout_ms".into(), toml::Value::Integer(ms as i64));
    std::fs::write(config, toml::to_string(&t).expect("TOML")).expect("writing config.toml");
}
