//! TLS between peers: a 3-node Raft cluster over mutually authenticated TLS 1.3 with
//! certificates generated here (`rcgen`); a node whose certificate comes from another CA, or
//! names another node than the one it claims to be, gets nowhere.

#[path = "../src/bin/raft_kv/cluster.rs"]
mod cluster;

use raft::core::Role;
use raft::runtime::{Committed, Node, NodeConfig, NodeSlot, StateMachine};
use raft::transport::{tls, SendClass, TcpTransport, TlsConfig, TransportConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLUSTER: u64 = 5;
const WAIT: Duration = Duration::from_secs(20);

type Ca = CertifiedIssuer<'static, KeyPair>;

fn new_ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate from `ca` naming node `named` (`node-<named>.raft`), trusting `trust`.
fn node_tls(ca: &Ca, named: u64, trust: &Ca) -> TlsConfig {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec![tls::node_name(named)]).unwrap();
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = p.signed_by(&key, ca).unwrap();
    TlsConfig::from_pem(
        cert.pem().into_bytes(),
        key.serialize_pem().into_bytes(),
        trust.pem().into_bytes(),
    )
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Counts applied commands.
struct Counter(Arc<AtomicU64>);

impl StateMachine for Counter {
    fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
        self.0.fetch_add(batch.len() as u64, Ordering::SeqCst);
        Ok(batch.iter().map(|_| None).collect())
    }
    fn snapshot(&mut self, out: &mut dyn Write) -> Result<(), String> {
        out.write_all(&self.0.load(Ordering::SeqCst).to_be_bytes())
            .map_err(|e| e.to_string())
    }
    fn restore(&mut self, input: &mut dyn Read) -> Result<(), String> {
        let mut b = [0u8; 8];
        input.read_exact(&mut b).map_err(|e| e.to_string())?;
        self.0.store(u64::from_be_bytes(b), Ordering::SeqCst);
        Ok(())
    }
}

/// A started transport and the slot its node goes in.
type Started = (Arc<TcpTransport>, NodeSlot);

/// A transport over TLS whose frames go to the node in the slot once it is set.
fn transport(id: u64, tls: TlsConfig) -> Started {
    let slot = NodeSlot::new();
    let mut cfg = TransportConfig::new(id, CLUSTER, "127.0.0.1:0".parse().unwrap());
    cfg.tls = Some(tls);
    cfg.reconnect_backoff_min = Duration::from_millis(5);
    cfg.reconnect_backoff_max = Duration::from_millis(100);
    (
        Arc::new(TcpTransport::start(cfg, slot.on_message()).unwrap()),
        slot,
    )
}

#[test]
fn three_nodes_over_tls_and_intruders_refused() {
    let ca = new_ca("raft test CA");
    let other_ca = new_ca("another CA");
    let ids = [1u64, 2, 3];
    let nodes: Vec<_> = ids
        .iter()
        .map(|&id| transport(id, node_tls(&ca, id, &ca)))
        .collect();
    for (a, _) in &nodes {
        for (b, _) in &nodes {
            if a.node_id() != b.node_id() {
                a.add_peer(b.node_id(), b.local_addr());
            }
        }
    }
    let applied: Vec<Arc<AtomicU64>> = ids.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    let rafts: Vec<Arc<Node>> = nodes
        .iter()
        .zip(&applied)
        .map(|((t, slot), count)| {
            let mut cfg = NodeConfig::new(t.node_id(), ids);
            cfg.election_timeout = Duration::from_millis(150);
            cfg.heartbeat_interval = Duration::from_millis(30);
            cfg.tick = Duration::from_millis(10);
            let node =
                Arc::new(Node::start(cfg, Box::new(Counter(count.clone())), t.clone()).unwrap());
            let _ = slot.set(node.clone());
            node
        })
        .collect();
    let leader = || {
        rafts
            .iter()
            .find(|n| n.status().is_ok_and(|s| s.role == Role::Leader))
            .cloned()
    };
    wait_until("a leader", || leader().is_some());
    for i in 0..10u8 {
        wait_until("a committed proposal", || {
            leader().is_some_and(|l| l.propose(vec![i], Duration::from_secs(5)).is_ok())
        });
    }
    wait_until("every node applied the 10 commands", || {
        applied.iter().all(|a| a.load(Ordering::SeqCst) >= 10)
    });
    for (t, _) in &nodes {
        let s = t.stats();
        assert!(s.connects >= 2 && s.frames_received > 0, "{s:?}");
        assert_eq!((s.tls_failures, s.auth_failures), (0, 0), "{s:?}");
    }
    let term = rafts[0].status().unwrap().term;
    let n1 = &nodes[0].0;
    let node2_reconnects = nodes[1].0.stats().reconnects;

    // Claims to be node 2 with a certificate from another CA: the TLS handshake fails on both
    // sides and nothing it sends reaches node 1.
    let before = n1.stats().tls_failures;
    let (intruder, _) = transport(2, node_tls(&other_ca, 2, &ca));
    intruder.add_peer(1, n1.local_addr());
    intruder
        .send(1, b"forged".to_vec(), SendClass::Normal)
        .unwrap();
    wait_until("node 1 refuses the foreign certificate", || {
        n1.stats().tls_failures > before
    });
    wait_until("the intruder sees the refusal", || {
        intruder.stats().tls_failures > 0
    });
    assert_eq!(intruder.stats().connects, 0);
    drop(intruder);

    // A certificate from the right CA naming node 3, claiming to be node 2: refused after the
    // hello (the certificate does not name the claimed node).
    let auth_before = n1.stats().auth_failures;
    let (liar, _) = transport(2, node_tls(&ca, 3, &ca));
    liar.add_peer(1, n1.local_addr());
    liar.send(1, b"forged".to_vec(), SendClass::Normal).unwrap();
    wait_until("node 1 refuses the mismatched certificate", || {
        n1.stats().auth_failures > auth_before
    });
    assert_eq!(liar.stats().connects, 0);
    drop(liar);

    // A node trusting another CA refuses the cluster's certificates when it dials.
    let (stranger, _) = transport(4, node_tls(&other_ca, 4, &other_ca));
    stranger.add_peer(1, n1.local_addr());
    stranger.send(1, b"x".to_vec(), SendClass::Normal).unwrap();
    wait_until("the stranger refuses node 1", || {
        stranger.stats().tls_failures > 0
    });
    drop(stranger);

    // The cluster is undisturbed: same term, still replicating, node 2's real connection up.
    let l = leader().expect("leader");
    l.propose(vec![99], Duration::from_secs(5)).unwrap();
    wait_until("the 11th command everywhere", || {
        applied.iter().all(|a| a.load(Ordering::SeqCst) >= 11)
    });
    assert_eq!(rafts[0].status().unwrap().term, term);
    // The intruders claiming id 2 never displaced node 2's own connection to node 1.
    assert_eq!(nodes[1].0.stats().reconnects, node2_reconnects);
    for n in &rafts {
        n.shutdown().unwrap();
    }
}

#[test]
fn bad_tls_material_is_refused_at_start() {
    let ca = new_ca("raft test CA");
    let good = node_tls(&ca, 1, &ca);
    let start = |tls: TlsConfig| {
        let mut cfg = TransportConfig::new(1, CLUSTER, "127.0.0.1:0".parse().unwrap());
        cfg.tls = Some(tls);
        TcpTransport::start(cfg, Arc::new(|_, _| {})).map(|_| ())
    };
    assert!(start(good.clone()).is_ok());
    for (what, bad) in [
        (
            "certificate",
            TlsConfig::from_pem(b"junk".to_vec(), good.key_pem.to_vec(), good.ca_pem.clone()),
        ),
        (
            "key",
            TlsConfig::from_pem(
                good.cert_chain_pem.clone(),
                b"junk".to_vec(),
                good.ca_pem.clone(),
            ),
        ),
        (
            "CA",
            TlsConfig::from_pem(
                good.cert_chain_pem.clone(),
                good.key_pem.to_vec(),
                Vec::new(),
            ),
        ),
    ] {
        let e = start(bad).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{what}: {e}");
        assert!(e.to_string().starts_with("TLS "), "{what}: {e}");
    }
}

/// `raft-kv` over TLS: three server processes, each with its own certificate from the test CA
/// (`--tls-cert/--tls-key/--tls-ca`), elect a leader and replicate writes.
#[test]
fn raft_kv_cluster_over_tls() {
    let ca = new_ca("raft-kv test CA");
    let dir = std::env::temp_dir().join(format!("raft-kv-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for id in 1..=3 {
        let t = node_tls(&ca, id, &ca);
        std::fs::write(dir.join(format!("node-{id}.pem")), &t.cert_chain_pem).unwrap();
        std::fs::write(dir.join(format!("node-{id}.key")), &*t.key_pem).unwrap();
    }
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let arg = |name: &str| dir.join(name).display().to_string();
    let (cert, key, ca_file) = (arg("node-{id}.pem"), arg("node-{id}.key"), arg("ca.pem"));
    let extra = [
        "--tls-cert",
        cert.as_str(),
        "--tls-key",
        key.as_str(),
        "--tls-ca",
        ca_file.as_str(),
    ];
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_raft-kv"));
    let mut c = cluster::Cluster::new(bin, 3, 150, &extra).unwrap();
    c.deadline = Instant::now() + Duration::from_secs(45);
    c.spawn_all().unwrap();
    c.wait_up(&[1, 2, 3], Duration::from_secs(15)).unwrap();
    let leader = c
        .wait_leader(&[1, 2, 3], 0, Duration::from_secs(15))
        .unwrap()
        .id;
    assert_eq!(c.request(leader, "PUT k tls").as_deref(), Ok("OK"));
    for id in 1..=3 {
        // Linearizable reads on every node: each reached the leader over TLS.
        wait_until("a TLS read", || {
            c.request(id, "GET k").as_deref() == Ok("VALUE tls")
        });
    }
    c.stop_all();
    let _ = std::fs::remove_dir_all(&dir);
}
