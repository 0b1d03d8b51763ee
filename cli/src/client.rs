//! Talking to a node's local HTTP API, and signing and submitting records.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use node::api_types::{ApiError, Status, Submitted};
use protocol::{Hash, Keypair, RecordBody, SignedRecord};

/// Which node to talk to.
#[derive(Args, Clone, Debug)]
pub struct NodeArgs {
    /// The node's API URL.
    #[arg(long, default_value = "http://127.0.0.1:7001")]
    pub node: String,
}

/// How to submit.
#[derive(Args, Clone, Debug)]
pub struct SubmitOpts {
    /// Return only once a certified block holds the record, and say whether it counted.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    #[command(flatten)]
    pub json: crate::JsonFlag,
}

/// The signing key of a submitting command.
#[derive(Args, Clone, Debug)]
pub struct KeyArg {
    /// Your key file (made with `peerhours key generate`).
    #[arg(long)]
    pub key: PathBuf,
}

impl KeyArg {
    pub fn load(&self) -> anyhow::Result<Keypair> {
        Ok(node::keyfile::read(&self.key)?)
    }
}

/// A small blocking HTTP client with clear errors.
pub struct Api {
    base: String,
    agent: ureq::Agent,
}

impl Api {
    pub fn new(node: &NodeArgs) -> anyhow::Result<Api> {
        let base = node.node.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            bail!(
                "--node {:?} is not an http:// URL such as http://127.0.0.1:7001",
                node.node
            );
        }
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .build();
        Ok(Api { base, agent })
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> anyhow::Error {
        anyhow!(
            "cannot reach the node at {} ({e}); is `peerhours node run` running there?",
            self.base
        )
    }

    fn handle(&self, r: Result<ureq::Response, ureq::Error>) -> anyhow::Result<ureq::Response> {
        match r {
            Ok(resp) => Ok(resp),
            Err(ureq::Error::Status(code, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                match serde_json::from_str::<ApiError>(&text) {
                    Ok(e) => Err(anyhow!("{}", e.error)),
                    Err(_) => Err(anyhow!("the node answered HTTP {code}: {}", text.trim())),
                }
            }
            Err(e) => Err(self.unreachable(e)),
        }
    }

    pub fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        timeout: Duration,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let resp = self.handle(self.agent.get(&url).timeout(timeout).call())?;
        resp.into_json()
            .with_context(|| format!("reading the node's answer to {path}"))
    }

    pub fn get_bytes(&self, path: &str, timeout: Duration) -> anyhow::Result<Vec<u8>> {
        let url = format!("{}{path}", self.base);
        let resp = self.handle(self.agent.get(&url).timeout(timeout).call())?;
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut out)
            .context("reading the node's answer")?;
        Ok(out)
    }

    pub fn status(&self) -> anyhow::Result<Status> {
        self.get_json("/v1/status", Duration::from_secs(10))
    }

    pub fn post_record(&self, bytes: &[u8]) -> anyhow::Result<Submitted> {
        let url = format!("{}/v1/records", self.base);
        let resp = self.handle(
            self.agent
                .post(&url)
                .set("content-type", "application/octet-stream")
                .timeout(Duration::from_secs(30))
                .send_bytes(bytes),
        )?;
        resp.into_json()
            .context("reading the node's answer to the submission")
    }

    pub fn wait(&self, id: &str, timeout: Duration) -> anyhow::Result<Submitted> {
        let ms = timeout.as_millis();
        self.get_json(
            &format!("/v1/records/{id}?wait_ms={ms}"),
            timeout + Duration::from_secs(10),
        )
    }
}

/// The chain id the node serves, which every signature covers.
pub fn chain_id(status: &Status) -> anyhow::Result<Hash> {
    Hash::from_hex(&status.chain_id)
        .map_err(|e| anyhow!("the node reported a malformed chain id: {e}"))
}

/// A fresh nonce: any u64, unique per signer with overwhelming probability.
pub fn nonce() -> u64 {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).expect("the operating system's random generator failed");
    u64::from_le_bytes(b)
}

/// Signs `body` with `key`, submits it, and prints the outcome.
pub fn submit(
    node: &NodeArgs,
    opts: &SubmitOpts,
    key: &Keypair,
    body: RecordBody,
) -> anyhow::Result<()> {
    let api = Api::new(node)?;
    let status = api.status()?;
    submit_with(&api, &status, opts, key, body)
}

/// As `submit`, with a status already fetched (so the period is known).
pub fn submit_with(
    api: &Api,
    status: &Status,
    opts: &SubmitOpts,
    key: &Keypair,
    body: RecordBody,
) -> anyhow::Result<()> {
    let chain = chain_id(status)?;
    let rec = SignedRecord::sign(key, &chain, nonce(), body);
    let mut out = api.post_record(&rec.to_bytes())?;
    if opts.wait {
        out = api.wait(&out.id, Duration::from_secs(opts.timeout))?;
    }
    print_submitted(&out, opts.json.json);
    if out.status == "rejected" {
        bail!(
            "the record was committed but rejected: {}",
            out.reason.unwrap_or_default()
        );
    }
    Ok(())
}

/// Signs and posts one record; with `wait`, waits for a certified block to hold it.
pub fn send_record(
    api: &Api,
    chain: &Hash,
    key: &Keypair,
    body: RecordBody,
    wait: Option<Duration>,
) -> anyhow::Result<Submitted> {
    let rec = SignedRecord::sign(key, chain, nonce(), body);
    let out = api.post_record(&rec.to_bytes())?;
    match wait {
        Some(t) => api.wait(&out.id, t),
        None => Ok(out),
    }
}

pub fn print_submitted(s: &Submitted, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string(s).expect("JSON of a plain struct")
        );
        return;
    }
    println!("{}", s.id);
    match (s.status.as_str(), s.height) {
        ("accepted", Some(h)) => eprintln!("accepted in block {h}"),
        ("rejected", Some(h)) => eprintln!(
            "rejected in block {h}: {}",
            s.reason.as_deref().unwrap_or("")
        ),
        _ => eprintln!("stored and gossiped; pending a certified block"),
    }
}
