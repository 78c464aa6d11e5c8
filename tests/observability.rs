//! Observability of the `raft-kv` server as an operator sees it: the Prometheus endpoint
//! (`--metrics-addr`) scraped over HTTP, and a misconfigured peer (wrong `--cluster-id`)
//! producing a WARN naming the reason on both nodes within 2 election timeouts.

#[path = "../src/bin/raft_kv/cluster.rs"]
mod cluster;

use cluster::{free_addrs, request};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_raft-kv"))
}

/// A child process killed on drop.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("raft-obs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn spawn(args: &[String], log: &Path) -> Proc {
    let f = std::fs::File::create(log).unwrap();
    Proc(
        Command::new(bin())
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("start raft-kv"),
    )
}

fn http_get(addr: SocketAddr) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn wait_until<T>(what: &str, deadline: Instant, mut f: impl FnMut() -> Option<T>) -> T {
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn metrics_endpoint_serves_prometheus_text() {
    let dir = scratch("metrics");
    let a = free_addrs(3).unwrap();
    let (raft, client, metrics) = (a[0], a[1], a[2]);
    let _p = spawn(
        &[
            "--id".into(),
            "1".into(),
            "--peers".into(),
            format!("1={raft}"),
            "--client".into(),
            client.to_string(),
            "--data-dir".into(),
            dir.join("data").display().to_string(),
            "--election-ms".into(),
            "100".into(),
            "--metrics-addr".into(),
            metrics.to_string(),
        ],
        &dir.join("node.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    // The single voter elects itself.
    wait_until("leader in metrics", deadline, || {
        let t = http_get(metrics).ok()?;
        (value(&t, "raft_role") == Some(3.0)).then_some(())
    });
    for i in 0..5 {
        let r = request(client, &format!("PUT k{i} v{i}"), Duration::from_secs(5)).unwrap();
        assert_eq!(r, "OK");
    }
    let text = http_get(metrics).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Content-Type: text/plain"), "{text}");
    for t in [
        "# TYPE raft_term gauge",
        "# TYPE raft_proposals counter",
        "# TYPE raft_fsync_seconds histogram",
        "# TYPE raft_apply_seconds histogram",
    ] {
        assert!(text.lines().any(|l| l == t), "{t} missing:\n{text}");
    }
    assert!(value(&text, "raft_term").unwrap() >= 1.0, "{text}");
    assert!(
        value(&text, "raft_proposals_total").unwrap() >= 5.0,
        "{text}"
    );
    assert!(
        value(&text, "raft_entries_committed_total").unwrap() >= 5.0,
        "{text}"
    );
    assert!(value(&text, "raft_applied_index").unwrap() >= 5.0, "{text}");
    assert!(value(&text, "raft_fsyncs_total").unwrap() >= 1.0, "{text}");
    assert!(
        value(&text, "raft_fsync_seconds_count").unwrap() >= 1.0,
        "{text}"
    );
    // INFO is the default level: the election was logged.
    let log = std::fs::read_to_string(dir.join("node.log")).unwrap();
    assert!(log.contains("leader"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wrong_cluster_id_is_logged_on_both_nodes() {
    const ELECTION_MS: u64 = 300;
    let dir = scratch("cluster-id");
    let a = free_addrs(4).unwrap();
    let peers = format!("1={},2={}", a[0], a[1]);
    let args = |id: u64, cluster: u64| -> Vec<String> {
        vec![
            "--id".into(),
            id.to_string(),
            "--peers".into(),
            peers.clone(),
            "--client".into(),
            a[1 + id as usize].to_string(),
            "--data-dir".into(),
            dir.join(format!("data{id}")).display().to_string(),
            "--election-ms".into(),
            ELECTION_MS.to_string(),
            "--cluster-id".into(),
            cluster.to_string(),
        ]
    };
    let (l1, l2) = (dir.join("n1.log"), dir.join("n2.log"));
    let _p1 = spawn(&args(1, 1), &l1);
    let _p2 = spawn(&args(2, 2), &l2);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    // Both processes are up (they print a start line once the node runs).
    let deadline = Instant::now() + Duration::from_secs(20);
    wait_until("both nodes started", deadline, || {
        (read(&l1).contains("raft-kv: node") && read(&l2).contains("raft-kv: node")).then_some(())
    });
    let started = Instant::now();
    let warned = |p: &Path| {
        read(p)
            .lines()
            .any(|l| l.contains("WARN") && l.contains("cluster"))
    };
    wait_until(
        "a WARN naming the cluster mismatch on both nodes",
        deadline,
        || (warned(&l1) && warned(&l2)).then_some(()),
    );
    let took = started.elapsed();
    assert!(
        took <= Duration::from_millis(2 * ELECTION_MS),
        "the WARN lines took {took:?}:\n{}\n{}",
        read(&l1),
        read(&l2)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
