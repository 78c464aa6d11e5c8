//! One exchange of `raft-kv`'s line protocol: shared by `raft-manager kv`, the demo's cluster
//! harness and the tests, so every client opens, times out and reads the same way.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Sends one request line to `addr` on a fresh connection and returns the answer line
/// (without its newline). Connecting waits at most `timeout` (capped at 2 s); reading and
/// writing wait at most `timeout`.
pub fn exchange(addr: SocketAddr, line: &str, timeout: Duration) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout.min(Duration::from_secs(2)))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
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
