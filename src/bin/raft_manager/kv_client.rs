//! `raft-manager kv`: one request line to a `raft-kv` cluster, from any machine that can
//! reach the client ports (no `nc` needed).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
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
        last = once(addr, line, left.max(Duration::from_millis(100)));
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

/// One exchange on a fresh connection.
fn once(addr: SocketAddr, line: &str, timeout: Duration) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout.min(Duration::from_secs(2)))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut answer = String::new();
    BufReader::new(s)
        .read_line(&mut answer)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    if answer.is_empty() {
        return Err(format!("{addr} closed the connection"));
    }
    Ok(answer.trim_end().to_string())
}
