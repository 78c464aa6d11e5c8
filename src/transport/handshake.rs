//! Connection handshake: cluster/identity checks and optional mutual HMAC authentication.
//!
//! Wire messages (all integers big endian, fixed sizes):
//!
//! 1. dialer → acceptor, [`Hello`] (62 bytes):
//!    `magic "RMGR" | u16 protocol version | u64 cluster_id | u64 from | u64 to | [u8; 32] dialer_nonce`
//! 2. acceptor → dialer, [`Reply`] (33 bytes): `u8 status | [u8; 32] body`
//!    - `ACCEPT` (no secret configured; body zero) — handshake done, or
//!    - `CHALLENGE` (body = fresh acceptor nonce from the OS generator, `getrandom`), or
//!    - `REJECT_*` (body zero) — the connection is then closed.
//!
//!    With a secret the acceptor always challenges (only `REJECT_VERSION`, which says nothing
//!    about the cluster, may come first): the cluster, target and membership checks run after
//!    the dialer's proof verifies, so a stranger learns nothing but `REJECT_AUTH`. Without a
//!    secret there is no authentication to wait for, and the reasons are sent at once.
//! 3. (secret only) dialer → acceptor: 32-byte
//!    `HMAC-SHA256(secret, "raft-manager-v1" | cluster | from | to | acceptor_nonce | dialer_nonce)`
//! 4. (secret only) acceptor → dialer, [`Reply`]: `PROOF` with body
//!    `HMAC-SHA256(secret, "raft-manager-v1/acceptor" | cluster | from | to | acceptor_nonce | dialer_nonce)`,
//!    or `REJECT_AUTH`.
//!
//! The acceptor only sends its proof after verifying the dialer's, and the two MACs use different
//! labels so one can never be reflected as the other. Both nonces are fresh per connection, so a
//! recorded handshake cannot be replayed. MACs are compared in constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use std::io::{self, Read, Write};

/// Magic bytes opening every handshake.
pub const MAGIC: [u8; 4] = *b"RMGR";
/// Handshake protocol version.
pub const PROTOCOL_VERSION: u16 = 1;
/// Nonce size in bytes.
pub const NONCE_LEN: usize = 32;
/// Size of an encoded [`Hello`].
pub const HELLO_LEN: usize = 4 + 2 + 8 + 8 + 8 + NONCE_LEN;
/// Size of an encoded [`Reply`].
pub const REPLY_LEN: usize = 1 + 32;
/// Size of the dialer's proof.
pub const PROOF_LEN: usize = 32;

/// Label of the dialer's MAC.
pub const DIALER_LABEL: &[u8] = b"raft-manager-v1";
/// Label of the acceptor's MAC.
pub const ACCEPTOR_LABEL: &[u8] = b"raft-manager-v1/acceptor";

/// Reply status: accepted, no authentication.
pub const ACCEPT: u8 = 0;
/// Reply status: body is the acceptor's challenge nonce.
pub const CHALLENGE: u8 = 1;
/// Reply status: body is the acceptor's MAC; handshake done.
pub const PROOF: u8 = 2;
/// Reply status: refused, wrong cluster.
pub const REJECT_CLUSTER: u8 = 0x10;
/// Reply status: refused, the dialer is not a known peer.
pub const REJECT_UNKNOWN_NODE: u8 = 0x11;
/// Reply status: refused, the dialer addressed another node.
pub const REJECT_WRONG_TARGET: u8 = 0x12;
/// Reply status: refused, unsupported protocol version.
pub const REJECT_VERSION: u8 = 0x13;
/// Reply status: refused, authentication failed.
pub const REJECT_AUTH: u8 = 0x14;
/// Reply status: refused, the acceptor holds its maximum of inbound connections.
pub const REJECT_BUSY: u8 = 0x15;

/// The dialer's opening message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version spoken by the dialer.
    pub version: u16,
    /// Cluster the dialer belongs to.
    pub cluster_id: u64,
    /// Dialer's node id.
    pub from: u64,
    /// Node id the dialer wants to reach.
    pub to: u64,
    /// Dialer's fresh nonce.
    pub nonce: [u8; NONCE_LEN],
}

impl Hello {
    /// Encodes to the fixed wire layout.
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut out = [0u8; HELLO_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&self.version.to_be_bytes());
        out[6..14].copy_from_slice(&self.cluster_id.to_be_bytes());
        out[14..22].copy_from_slice(&self.from.to_be_bytes());
        out[22..30].copy_from_slice(&self.to.to_be_bytes());
        out[30..62].copy_from_slice(&self.nonce);
        out
    }

    /// Parses the wire layout. Checks length and magic only; the version is returned for the
    /// caller to judge.
    pub fn parse(bytes: &[u8]) -> Result<Hello, HandshakeError> {
        if bytes.len() != HELLO_LEN {
            return Err(HandshakeError::Malformed("hello has the wrong length"));
        }
        if bytes[0..4] != MAGIC {
            return Err(HandshakeError::Malformed("bad magic"));
        }
        let u64_at = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        Ok(Hello {
            version: u16::from_be_bytes([bytes[4], bytes[5]]),
            cluster_id: u64_at(6),
            from: u64_at(14),
            to: u64_at(22),
            nonce: bytes[30..62].try_into().expect("32 bytes"),
        })
    }
}

/// An acceptor → dialer message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// One of the status constants.
    pub status: u8,
    /// Nonce, MAC or zeros depending on `status`.
    pub body: [u8; 32],
}

impl Reply {
    /// Encodes to the fixed wire layout.
    pub fn encode(&self) -> [u8; REPLY_LEN] {
        let mut out = [0u8; REPLY_LEN];
        out[0] = self.status;
        out[1..].copy_from_slice(&self.body);
        out
    }

    /// Parses the wire layout (any status byte is accepted here).
    pub fn parse(bytes: &[u8]) -> Result<Reply, HandshakeError> {
        if bytes.len() != REPLY_LEN {
            return Err(HandshakeError::Malformed("reply has the wrong length"));
        }
        Ok(Reply {
            status: bytes[0],
            body: bytes[1..].try_into().expect("32 bytes"),
        })
    }

    /// A reply carrying only a status (body zero), as refusals are sent.
    pub fn refusal(status: u8) -> Reply {
        Reply {
            status,
            body: [0; 32],
        }
    }
}

/// Why a handshake failed.
#[derive(Debug)]
pub enum HandshakeError {
    /// Socket error or timeout.
    Io(io::Error),
    /// Structurally invalid message.
    Malformed(&'static str),
    /// Unsupported protocol version.
    BadVersion(u16),
    /// The dialer belongs to another cluster.
    WrongCluster(u64),
    /// The dialer is not a known peer.
    UnknownNode(u64),
    /// The dialer addressed a different node id.
    WrongTarget(u64),
    /// A MAC did not verify, or one side has a secret and the other does not.
    AuthFailed(&'static str),
    /// The acceptor refused with this status byte.
    Rejected(u8),
    /// The TLS handshake failed (certificate not from the CA, not naming the node, protocol).
    Tls(String),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Io(e) => write!(f, "i/o error: {e}"),
            HandshakeError::Malformed(why) => write!(f, "malformed handshake: {why}"),
            HandshakeError::BadVersion(v) => write!(f, "unsupported protocol version {v}"),
            HandshakeError::WrongCluster(c) => write!(f, "peer is in cluster {c}"),
            HandshakeError::UnknownNode(n) => write!(f, "node {n} is not a known peer"),
            HandshakeError::WrongTarget(n) => write!(f, "peer addressed node {n}, not us"),
            HandshakeError::AuthFailed(why) => write!(f, "authentication failed: {why}"),
            HandshakeError::Tls(why) => write!(f, "TLS handshake failed: {why}"),
            HandshakeError::Rejected(s) => {
                let why = match *s {
                    REJECT_CLUSTER => "wrong cluster id",
                    REJECT_UNKNOWN_NODE => "we are not a known peer there",
                    REJECT_WRONG_TARGET => "it is not the node we dialed",
                    REJECT_VERSION => "unsupported protocol version",
                    REJECT_BUSY => "too many inbound connections",
                    _ => "unknown reason",
                };
                write!(f, "refused by peer: {why} (status {s:#x})")
            }
        }
    }
}

impl std::error::Error for HandshakeError {}

impl From<io::Error> for HandshakeError {
    fn from(e: io::Error) -> Self {
        HandshakeError::Io(e)
    }
}

/// A fresh nonce from the operating system's generator (`getrandom`).
pub fn random_nonce() -> io::Result<[u8; NONCE_LEN]> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(io::Error::other)?;
    Ok(nonce)
}

type HmacSha256 = Hmac<Sha256>;

fn handshake_hmac(
    secret: &[u8],
    label: &[u8],
    hello: &Hello,
    acceptor_nonce: &[u8; NONCE_LEN],
) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    for part in [
        label,
        &hello.cluster_id.to_be_bytes(),
        &hello.from.to_be_bytes(),
        &hello.to.to_be_bytes(),
        acceptor_nonce,
        &hello.nonce,
    ] {
        mac.update(part);
    }
    mac
}

/// Computes a handshake MAC (HMAC-SHA256) with the given label.
pub fn handshake_mac(
    secret: &[u8],
    label: &[u8],
    hello: &Hello,
    acceptor_nonce: &[u8; NONCE_LEN],
) -> [u8; 32] {
    handshake_hmac(secret, label, hello, acceptor_nonce)
        .finalize()
        .into_bytes()
        .into()
}

/// Verifies a handshake MAC in constant time (`subtle`, through `Mac::verify_slice`).
pub fn verify_handshake_mac(
    secret: &[u8],
    label: &[u8],
    hello: &Hello,
    acceptor_nonce: &[u8; NONCE_LEN],
    mac: &[u8],
) -> bool {
    handshake_hmac(secret, label, hello, acceptor_nonce)
        .verify_slice(mac)
        .is_ok()
}

/// Runs the dialer side on a connected stream.
pub fn dial<S: Read + Write>(
    stream: &mut S,
    cluster_id: u64,
    from: u64,
    to: u64,
    secret: Option<&[u8]>,
) -> Result<(), HandshakeError> {
    let hello = Hello {
        version: PROTOCOL_VERSION,
        cluster_id,
        from,
        to,
        nonce: random_nonce()?,
    };
    stream.write_all(&hello.encode())?;
    stream.flush()?;
    let reply = read_reply(stream)?;
    match (reply.status, secret) {
        (ACCEPT, None) => Ok(()),
        (ACCEPT, Some(_)) => Err(HandshakeError::AuthFailed(
            "peer does not authenticate but we have a secret",
        )),
        (CHALLENGE, None) => Err(HandshakeError::AuthFailed(
            "peer requires a secret but we have none",
        )),
        (CHALLENGE, Some(secret)) => {
            let acceptor_nonce = reply.body;
            let proof = handshake_mac(secret, DIALER_LABEL, &hello, &acceptor_nonce);
            stream.write_all(&proof)?;
            stream.flush()?;
            let reply = read_reply(stream)?;
            if reply.status != PROOF {
                return Err(rejected(reply.status));
            }
            if verify_handshake_mac(secret, ACCEPTOR_LABEL, &hello, &acceptor_nonce, &reply.body) {
                Ok(())
            } else {
                Err(HandshakeError::AuthFailed("acceptor proof does not verify"))
            }
        }
        (status, _) => Err(rejected(status)),
    }
}

fn rejected(status: u8) -> HandshakeError {
    match status {
        REJECT_AUTH => HandshakeError::AuthFailed("acceptor refused our proof"),
        s => HandshakeError::Rejected(s),
    }
}

fn read_reply<S: Read>(stream: &mut S) -> Result<Reply, HandshakeError> {
    let mut buf = [0u8; REPLY_LEN];
    stream.read_exact(&mut buf)?;
    Reply::parse(&buf)
}

/// What the acceptor checks a [`Hello`] against.
pub struct AcceptPolicy<'a> {
    /// Our cluster.
    pub cluster_id: u64,
    /// Our node id.
    pub node_id: u64,
    /// Shared secret, if authentication is on.
    pub secret: Option<&'a [u8]>,
    /// Whether a node id is a currently known peer.
    pub is_known: &'a dyn Fn(u64) -> bool,
    /// Whether the connection's own authentication (the TLS client certificate) names this
    /// node id; `None` when the connection has none.
    pub identity: Option<&'a dyn Fn(u64) -> bool>,
}

/// Runs the acceptor side on a freshly accepted stream; returns the authenticated peer id.
/// On refusal a `REJECT_*` reply is sent (best effort) before the error is returned.
pub fn accept<S: Read + Write>(
    stream: &mut S,
    policy: &AcceptPolicy<'_>,
) -> Result<u64, HandshakeError> {
    let mut buf = [0u8; HELLO_LEN];
    stream.read_exact(&mut buf)?;
    let hello = Hello::parse(&buf)?;
    let refuse = |stream: &mut S, status: u8, err: HandshakeError| {
        let _ = stream.write_all(&Reply::refusal(status).encode());
        let _ = stream.flush();
        Err(err)
    };
    if hello.version != PROTOCOL_VERSION {
        return refuse(
            stream,
            REJECT_VERSION,
            HandshakeError::BadVersion(hello.version),
        );
    }
    let Some(secret) = policy.secret else {
        if let Some((status, err)) = check_identity(&hello, policy) {
            return refuse(stream, status, err);
        }
        stream.write_all(&Reply::refusal(ACCEPT).encode())?;
        stream.flush()?;
        return Ok(hello.from);
    };
    let acceptor_nonce = random_nonce()?;
    stream.write_all(
        &Reply {
            status: CHALLENGE,
            body: acceptor_nonce,
        }
        .encode(),
    )?;
    stream.flush()?;
    let mut proof = [0u8; PROOF_LEN];
    stream.read_exact(&mut proof)?;
    if !verify_handshake_mac(secret, DIALER_LABEL, &hello, &acceptor_nonce, &proof) {
        return refuse(
            stream,
            REJECT_AUTH,
            HandshakeError::AuthFailed("dialer proof does not verify"),
        );
    }
    // The dialer knows the secret: it may now learn why it is refused.
    if let Some((status, err)) = check_identity(&hello, policy) {
        return refuse(stream, status, err);
    }
    let mine = handshake_mac(secret, ACCEPTOR_LABEL, &hello, &acceptor_nonce);
    stream.write_all(
        &Reply {
            status: PROOF,
            body: mine,
        }
        .encode(),
    )?;
    stream.flush()?;
    Ok(hello.from)
}

/// Cluster, target and membership checks; the refusal to send if one fails.
fn check_identity(hello: &Hello, policy: &AcceptPolicy<'_>) -> Option<(u8, HandshakeError)> {
    if hello.cluster_id != policy.cluster_id {
        return Some((
            REJECT_CLUSTER,
            HandshakeError::WrongCluster(hello.cluster_id),
        ));
    }
    if hello.to != policy.node_id {
        return Some((REJECT_WRONG_TARGET, HandshakeError::WrongTarget(hello.to)));
    }
    if hello.from == policy.node_id || !(policy.is_known)(hello.from) {
        return Some((REJECT_UNKNOWN_NODE, HandshakeError::UnknownNode(hello.from)));
    }
    if policy.identity.is_some_and(|names| !names(hello.from)) {
        return Some((
            REJECT_AUTH,
            HandshakeError::AuthFailed("the certificate does not name the claimed node"),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn run(
        dial_secret: Option<&'static [u8]>,
        accept_secret: Option<&'static [u8]>,
        cluster: u64,
        from: u64,
    ) -> (Result<(), HandshakeError>, Result<u64, HandshakeError>) {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || dial(&mut a, cluster, from, 1, dial_secret));
        let known = |id: u64| id == 2;
        let policy = AcceptPolicy {
            cluster_id: 7,
            node_id: 1,
            secret: accept_secret,
            is_known: &known,
            identity: None,
        };
        let acc = accept(&mut b, &policy);
        drop(b);
        (t.join().unwrap(), acc)
    }

    #[test]
    fn mac_binds_every_field() {
        let hello = Hello {
            version: 1,
            cluster_id: 2,
            from: 3,
            to: 4,
            nonce: [9; 32],
        };
        let an = [5u8; 32];
        let mac = handshake_mac(b"secret", DIALER_LABEL, &hello, &an);
        assert!(verify_handshake_mac(
            b"secret",
            DIALER_LABEL,
            &hello,
            &an,
            &mac
        ));
        assert!(!verify_handshake_mac(
            b"secrex",
            DIALER_LABEL,
            &hello,
            &an,
            &mac
        ));
        assert!(!verify_handshake_mac(
            b"secret",
            ACCEPTOR_LABEL,
            &hello,
            &an,
            &mac
        ));
        assert!(!verify_handshake_mac(
            b"secret",
            DIALER_LABEL,
            &hello,
            &[6; 32],
            &mac
        ));
        let other = Hello {
            from: 5,
            ..hello.clone()
        };
        assert!(!verify_handshake_mac(
            b"secret",
            DIALER_LABEL,
            &other,
            &an,
            &mac
        ));
        let mut flipped = mac;
        flipped[31] ^= 1;
        assert!(!verify_handshake_mac(
            b"secret",
            DIALER_LABEL,
            &hello,
            &an,
            &flipped
        ));
        assert!(!verify_handshake_mac(
            b"secret",
            DIALER_LABEL,
            &hello,
            &an,
            &mac[..31]
        ));
        assert_ne!(random_nonce().unwrap(), random_nonce().unwrap());
    }

    #[test]
    fn hello_roundtrip() {
        let h = Hello {
            version: 1,
            cluster_id: 2,
            from: 3,
            to: 4,
            nonce: [9; 32],
        };
        assert_eq!(Hello::parse(&h.encode()).unwrap(), h);
    }

    #[test]
    fn outcomes() {
        let (d, a) = run(None, None, 7, 2);
        assert!(d.is_ok() && a.unwrap() == 2);
        let (d, a) = run(Some(b"s"), Some(b"s"), 7, 2);
        assert!(d.is_ok() && a.unwrap() == 2);
        let (d, a) = run(Some(b"s"), Some(b"t"), 7, 2);
        assert!(matches!(d, Err(HandshakeError::AuthFailed(_))));
        assert!(matches!(a, Err(HandshakeError::AuthFailed(_))));
        let (d, _) = run(None, Some(b"t"), 7, 2);
        assert!(matches!(d, Err(HandshakeError::AuthFailed(_))));
        let (d, a) = run(Some(b"s"), None, 7, 2);
        assert!(matches!(d, Err(HandshakeError::AuthFailed(_))));
        assert!(a.is_ok()); // the acceptor has no way to know; the dialer hangs up
        let (d, a) = run(None, None, 8, 2);
        assert!(matches!(d, Err(HandshakeError::Rejected(REJECT_CLUSTER))));
        assert!(matches!(a, Err(HandshakeError::WrongCluster(8))));
        let (d, a) = run(None, None, 7, 3);
        assert!(matches!(
            d,
            Err(HandshakeError::Rejected(REJECT_UNKNOWN_NODE))
        ));
        assert!(matches!(a, Err(HandshakeError::UnknownNode(3))));
        // With a secret, the reasons come only after the dialer proved it knows the secret.
        let (d, a) = run(Some(b"s"), Some(b"s"), 8, 2);
        assert!(matches!(d, Err(HandshakeError::Rejected(REJECT_CLUSTER))));
        assert!(matches!(a, Err(HandshakeError::WrongCluster(8))));
        let (d, a) = run(Some(b"s"), Some(b"s"), 7, 3);
        assert!(matches!(
            d,
            Err(HandshakeError::Rejected(REJECT_UNKNOWN_NODE))
        ));
        assert!(matches!(a, Err(HandshakeError::UnknownNode(3))));
    }

    /// A stranger without the secret learns nothing about membership or cluster: whatever
    /// identity it claims, it gets a challenge and then `REJECT_AUTH`.
    #[test]
    fn no_membership_reveal_before_authentication() {
        for (cluster, from, to) in [(7, 2, 1), (8, 2, 1), (7, 3, 1), (7, 2, 9), (7, 1, 1)] {
            let (mut a, mut b) = UnixStream::pair().unwrap();
            let t = std::thread::spawn(move || {
                let known = |id: u64| id == 2;
                let policy = AcceptPolicy {
                    cluster_id: 7,
                    node_id: 1,
                    secret: Some(b"s"),
                    is_known: &known,
                    identity: None,
                };
                accept(&mut b, &policy)
            });
            let hello = Hello {
                version: PROTOCOL_VERSION,
                cluster_id: cluster,
                from,
                to,
                nonce: [3; 32],
            };
            a.write_all(&hello.encode()).unwrap();
            let first = read_reply(&mut a).unwrap();
            assert_eq!(first.status, CHALLENGE, "{cluster} {from} {to}");
            a.write_all(&[0u8; PROOF_LEN]).unwrap();
            let second = read_reply(&mut a).unwrap();
            assert_eq!(second.status, REJECT_AUTH, "{cluster} {from} {to}");
            assert!(matches!(
                t.join().unwrap(),
                Err(HandshakeError::AuthFailed(_))
            ));
        }
    }
}
