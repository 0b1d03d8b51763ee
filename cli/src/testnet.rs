//! `peerhours testnet init`: everything a test network needs, in one directory.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;
use node::{config::NodeConfig, keyfile};
use protocol::genesis::{Association, Genesis, GenesisMember, GenesisProject, Params, SocialRule};
use protocol::record::DelegateInfo;

#[derive(Subcommand)]
pub enum TestnetCommand {
    /// Lay out a test network: genesis, node directories, delegate, member and coordinator keys.
    Init(InitArgs),
}

#[derive(clap::Args, Clone)]
pub struct InitArgs {
    /// The directory to create (must be empty or absent).
    #[arg(long)]
    pub dir: PathBuf,
    /// Number of delegates (nodes that vote); 4 tolerate one fault.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub delegates: u16,
    /// Number of observer nodes (follow and serve the log, do not vote).
    #[arg(long, default_value_t = 0)]
    pub observers: u16,
    /// Number of members admitted in the genesis (key files in DIR/members/).
    #[arg(long, default_value_t = 0)]
    pub members: u16,
    /// Node i listens for peers on port P+2i and serves its API on P+2i+1.
    #[arg(long, default_value_t = 7000)]
    pub base_port: u16,
    /// One listen address per node (comma-separated), e.g. for network namespaces.
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<IpAddr>,
    #[command(flatten)]
    pub json: crate::JsonFlag,
}

/// What `init` made, for the demo and tests.
pub struct Layout {
    pub dir: PathBuf,
    pub nodes: Vec<PathBuf>,
    pub api_urls: Vec<String>,
    pub genesis: Genesis,
}

pub fn run(c: TestnetCommand) -> anyhow::Result<()> {
    match c {
        TestnetCommand::Init(a) => {
            let layout = init(&a)?;
            if a.json.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "dir": layout.dir,
                        "chain_id": layout.genesis.chain_id().to_hex(),
                        "nodes": layout.nodes,
                        "api": layout.api_urls,
                    })
                );
            } else {
                println!("test network in {}", layout.dir.display());
                println!("chain id {}", layout.genesis.chain_id());
                for (i, (n, url)) in layout.nodes.iter().zip(&layout.api_urls).enumerate() {
                    let role = if i < a.delegates as usize {
                        "delegate"
                    } else {
                        "observer"
                    };
                    println!(
                        "  node{i} ({role}): peerhours node run --dir {}   # API {url}",
                        n.display()
                    );
                }
            }
            Ok(())
        }
    }
}

/// Creates the layout of `cli.md`.
pub fn init(a: &InitArgs) -> anyhow::Result<Layout> {
    let total = a.delegates as usize + a.observers as usize;
    if !a.hosts.is_empty() && a.hosts.len() != total {
        bail!(
            "--hosts names {} addresses but there are {total} nodes; give one per node",
            a.hosts.len()
        );
    }
    let last_port = a.base_port as u32 + 2 * total as u32 + 1;
    if last_port > u16::MAX as u32 || a.base_port < 1024 {
        bail!("--base-port {} leaves no room for {total} nodes (ports P to P+2n+1 must be 1024..=65535)", a.base_port);
    }
    if a.dir.exists()
        && std::fs::read_dir(&a.dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not empty; choose a new --dir",
            a.dir.display()
        );
    }
    std::fs::create_dir_all(a.dir.join("members"))
        .with_context(|| format!("creating {}", a.dir.display()))?;
    let host = |i: usize| {
        a.hosts
            .get(i)
            .copied()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    };
    let p2p_port = |i: usize| a.base_port + 2 * i as u16;
    let multiaddr = |i: usize| {
        let h = host(i);
        let proto = if h.is_ipv4() { "ip4" } else { "ip6" };
        format!("/{proto}/{h}/tcp/{}", p2p_port(i))
    };

    let coordinator = keyfile::random_keypair();
    keyfile::write(&a.dir.join("coordinator.key"), &coordinator)?;
    let mut members = Vec::new();
    for j in 0..a.members as usize {
        let k = keyfile::random_keypair();
        keyfile::write(&a.dir.join("members").join(format!("member{j}.key")), &k)?;
        members.push(GenesisMember {
            key: k.public(),
            association: "local".into(),
            exempt: false,
            opening_mh: 0,
        });
    }
    let mut delegate_keys = Vec::new();
    for _ in 0..a.delegates {
        delegate_keys.push(keyfile::random_keypair());
    }
    let genesis = Genesis {
        version: Genesis::VERSION,
        pool: "testnet".into(),
        associations: vec![Association {
            name: "local".into(),
            social_rule: SocialRule::Average,
            credit_limit_mh: 40_000,
        }],
        delegates: delegate_keys
            .iter()
            .enumerate()
            .map(|(i, k)| DelegateInfo {
                key: k.public(),
                association: "local".into(),
                addr: multiaddr(i),
            })
            .collect(),
        members,
        projects: vec![GenesisProject {
            name: "commons".into(),
            association: "local".into(),
            coordinators: vec![coordinator.public()],
            flat_rate: false,
        }],
        params: Params::default(),
    };
    genesis.validate()?;
    let genesis_toml = genesis.to_toml();
    write_new(&a.dir.join("genesis.toml"), &genesis_toml)?;

    let mut nodes = Vec::new();
    let mut api_urls = Vec::new();
    for i in 0..total {
        let nd = a.dir.join(format!("node{i}"));
        std::fs::create_dir_all(nd.join("data"))
            .with_context(|| format!("creating {}", nd.display()))?;
        write_new(&nd.join("genesis.toml"), &genesis_toml)?;
        let api = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p2p_port(i) + 1);
        let mut cfg = NodeConfig::new(multiaddr(i), api);
        cfg.bootstrap = (0..total).filter(|&j| j != i).map(multiaddr).collect();
        if let Some(k) = delegate_keys.get(i) {
            keyfile::write(&nd.join("delegate.key"), k)?;
            cfg.delegate_key = Some("delegate.key".into());
        }
        // The libp2p identity is an ed25519 key too, in the same file format.
        keyfile::write(&nd.join("p2p.key"), &keyfile::random_keypair())?;
        write_new(&nd.join("config.toml"), &cfg.to_toml())?;
        api_urls.push(format!("http://{api}"));
        nodes.push(nd);
    }
    Ok(Layout {
        dir: a.dir.clone(),
        nodes,
        api_urls,
        genesis,
    })
}

/// A base port with `n + 2` free ports from it on 127.0.0.1, for a network on this machine
/// (best effort: each port is bound and released, so another program may still take one).
pub fn free_base_port(n: u16) -> anyhow::Result<u16> {
    for _ in 0..50 {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let p = l.local_addr()?.port();
        drop(l);
        if p < 1024 || p.checked_add(n + 2).is_none() {
            continue;
        }
        if (p..p + n + 2).all(|q| std::net::TcpListener::bind(("127.0.0.1", q)).is_ok()) {
            return Ok(p);
        }
    }
    bail!("could not find {n} free ports on 127.0.0.1; pass --base-port")
}

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
