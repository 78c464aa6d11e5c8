//! `raft-manager kv`: one request line to a `raft-kv` cluster, from any machine that can
//! reach the client ports (no `nc` needed).

#[path = "../raft_kv/line_client.rs"]
mod line_client;
use line_client::exchange;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Sends `line` to the servers in turn and returns the first answer that is not a redirect
/// or a transient refusal (`ERR NOTLEADER`, `ERR BUSY`, `ERR TIMEOUT` on a read, a server
/// that does not answer); after `timeout`, the last answer or error. A write answered
/// `ERR TIMEOUT` is returned as is: its outcome is unknown and retrying is the caller's call.
pub fn request(servers: &[SocketAddr], line: &str, timeout: Duration) -> Result<String, String> {
    let end = Instant::now() + timeout;
    let is_read = matches!(
        line.split_whitespace()
            .next()
            .map(|v| v.to_ascii_uppercase())
            .as_deref(),
        Some("GET" | "STATUS" | "MEMBERS")
    );
    let mut last: Result<String, String> = Err("no server given".into());
    for attempt in 0.. {
        let addr = servers[attempt % servers.len()];
        let left = end.saturating_duration_since(Instant::now());
        last = exchange(addr, line, left.max(Duration::from_millis(100)));
        let retry = match &last {
            Ok(a) => {
                a.starts_with("ERR NOTLEADER") || a == "ERR BUSY" || (is_read && a == "ERR TIMEOUT")
            }
            Err(_) => true,
        };
        if !retry || Instant::now() >= end {
            break;
        }
        if attempt % servers.len() == servers.len() - 1 {
            // Every server refused: no leader yet; pause before the next round.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    last
}
