//! W2: 3 nodes as 3 processes (`bench-node`) on 127.0.0.1 over the built-in TCP transport,
//! DiskStorage with fsync ALWAYS, 64-byte commands. The load runs inside the leader process
//! (`propose_async` with 1/16/64/256 in flight), so client networking is not measured.
//!
//! Around the 1-in-flight row (before and after it) the hardware floor is sampled on the same
//! disk (`floor_samples`: fdatasync of a 100-byte append, loopback TCP round trip), because
//! this shared disk's fdatasync latency changes by 10-30x from one minute to the next: the
//! target p50 <= 1.2 x (fdatasync p50 + RTT p50) is judged against these samples
//! (`w2.floor.*` lines).
//!
//! With `--tls` the peers use mutually authenticated TLS 1.3 (certificates generated for the
//! run with `rcgen`, one CA, each node's certificate naming it); rows are tagged `.tls`
//! instead of `.tcp`.
//!
//! `w2 [--secs 4] [--warmup 1] [--windows 1,16,64,256] [--fsync always|never] [--caller-runs]
//!     [--tls]`

use raft_bench::*;
use std::time::Duration;

fn main() {
    let a = Args::parse();
    let secs = a.float("secs", 4.0);
    let warmup = a.float("warmup", 1.0);
    let windows = a.list("windows", &[1, 16, 64, 256]);
    let fsync = a.str("fsync").unwrap_or_else(|| "always".into());
    let caller_runs = a.str("caller-runs").is_some_and(|v| v != "0");
    let dir = scratch_dir("w2");
    let mut extra: Vec<String> = vec![
        "--fsync".into(),
        fsync.clone(),
        "--election-ms".into(),
        "1000".into(),
    ];
    if caller_runs {
        extra.push("--caller-runs".into());
    }
    let tls = a.str("tls").is_some_and(|v| v != "0");
    if tls {
        let tls_dir = dir.join("tls");
        write_certs(&tls_dir, 3);
        extra.push("--tls-dir".into());
        extra.push(tls_dir.display().to_string());
    }
    let net = if tls { "tls" } else { "tcp" };
    let mut procs = spawn_cluster(Some(&dir), &extra);
    let mode = if caller_runs { ".caller_runs" } else { "" };
    let (mut floor_sync, mut floor_rtt) = (Vec::new(), Vec::new());
    let l = find_leader(&mut procs, Duration::from_secs(15)).expect("no leader");
    let mut rows = Vec::new();
    for &w in &windows {
        if w == 1 {
            let (s, r) = floor_samples(&dir, 100, 2000, 100);
            floor_sync.extend(s);
            floor_rtt.extend(r);
        }
        let r = procs[l].cmd(&format!("LOAD {w} {secs} {warmup}"));
        if w == 1 {
            let (s, r) = floor_samples(&dir, 100, 2000, 100);
            floor_sync.extend(s);
            floor_rtt.extend(r);
        }
        let v: Vec<f64> = r
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap_or(f64::NAN))
            .collect();
        assert!(
            r.starts_with("LOAD") && v.len() == 6,
            "unexpected answer: {r}"
        );
        let ops = v[0] / v[2];
        let tag = format!("w2.disk-fsync-{fsync}.{net}{mode}.c{w}");
        bench_line(&format!("{tag}.ops"), ops, "ops/s");
        bench_line(&format!("{tag}.p50"), v[3], "us");
        bench_line(&format!("{tag}.p99"), v[4], "us");
        bench_line(&format!("{tag}.p999"), v[5], "us");
        rows.push(vec![
            w.to_string(),
            format!("{ops:.0}"),
            format!("{:.1}", v[3]),
            format!("{:.1}", v[4]),
            format!("{:.1}", v[5]),
            format!("{}", v[1]),
        ]);
    }
    if !floor_sync.is_empty() {
        floor_sync.sort_unstable();
        floor_rtt.sort_unstable();
        let (fs, rtt) = (pct_us(&floor_sync, 0.5), pct_us(&floor_rtt, 0.5));
        bench_line(&format!("w2.floor{mode}.fdatasync.p50"), fs, "us");
        bench_line(&format!("w2.floor{mode}.tcp_rtt.p50"), rtt, "us");
        println!(
            "hardware floor around the 1-in-flight row: fdatasync p50 {fs:.1} us, loopback RTT p50 {rtt:.1} us"
        );
    }
    table(
        &format!("W2{mode}: raft-manager, 3 processes over {net} (127.0.0.1), DiskStorage fsync={fsync}, load inside the leader, {secs} s per row"),
        &["in flight", "ops/s", "p50 us", "p99 us", "p999 us", "errors"],
        &rows,
    );
    for p in procs {
        p.quit();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A CA and one certificate per node (naming it as the transport expects) in `dir`:
/// `ca.pem`, `node-N.pem`, `node-N.key`.
fn write_certs(dir: &std::path::Path, nodes: u64) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair,
    };
    std::fs::create_dir_all(dir).expect("create the TLS directory");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "w2 bench CA");
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().expect("CA key")).expect("CA");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write ca.pem");
    for id in 1..=nodes {
        let key = KeyPair::generate().expect("node key");
        let mut p =
            CertificateParams::new(vec![raft::transport::tls::node_name(id)]).expect("node params");
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = p.signed_by(&key, &ca).expect("node certificate");
        std::fs::write(dir.join(format!("node-{id}.pem")), cert.pem()).expect("write cert");
        std::fs::write(dir.join(format!("node-{id}.key")), key.serialize_pem()).expect("write key");
    }
}
