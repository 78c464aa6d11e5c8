//! TLS 1.3 with mutual authentication (rustls, `ring` provider) for the built-in transport.
//!
//! Every node has a certificate chain and key, and trusts one CA bundle. A node's certificate
//! names it with the DNS subject alternative name [`node_name`]`(id)` (`node-<id>.raft`):
//!
//! * the dialer verifies that the acceptor's certificate chains to the CA **and** is valid for
//!   `node-<to>.raft`, the node it meant to reach;
//! * the acceptor verifies that the dialer's certificate chains to the CA, and after the
//!   in-band hello, that it is valid for `node-<from>.raft`, the id the dialer claims.
//!
//! So a node can only speak as the id its certificate names. The transport's own handshake
//! (cluster id, membership, and the HMAC if a secret is also set) then runs inside TLS.
//! Session tickets and resumption are off: connections are long-lived and every one is fully
//! authenticated.

use super::handshake::HandshakeError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

/// The DNS name a node's certificate must carry as a subject alternative name.
pub fn node_name(id: u64) -> String {
    format!("node-{id}.raft")
}

/// PEM material of one node: its certificate chain and key, and the CA(s) it trusts.
#[derive(Clone)]
pub struct TlsConfig {
    /// This node's certificate chain, leaf first (PEM). The leaf must carry the DNS SAN
    /// [`node_name`]`(node_id)`.
    pub cert_chain_pem: Vec<u8>,
    /// This node's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_pem: zeroize::Zeroizing<Vec<u8>>,
    /// The certificate authorities whose certificates peers must present (PEM bundle).
    pub ca_pem: Vec<u8>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field(
                "cert_chain_pem",
                &format_args!("{} bytes", self.cert_chain_pem.len()),
            )
            .field("key_pem", &"<redacted>")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .finish()
    }
}

impl TlsConfig {
    /// From PEM bytes.
    pub fn from_pem(cert_chain_pem: Vec<u8>, key_pem: Vec<u8>, ca_pem: Vec<u8>) -> Self {
        TlsConfig {
            cert_chain_pem,
            key_pem: zeroize::Zeroizing::new(key_pem),
            ca_pem,
        }
    }

    /// Reads the three PEM files.
    pub fn from_files(cert: &Path, key: &Path, ca: &Path) -> io::Result<Self> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))
        };
        Ok(TlsConfig::from_pem(read(cert)?, read(key)?, read(ca)?))
    }
}

fn invalid(what: &str, e: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("TLS {what}: {e}"))
}

/// The rustls configurations built once from a [`TlsConfig`].
pub(crate) struct TlsContext {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl TlsContext {
    /// Parses and checks the material; errors name what is wrong.
    pub(crate) fn new(cfg: &TlsConfig) -> io::Result<TlsContext> {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&cfg.cert_chain_pem)
                .collect::<Result<_, _>>()
                .map_err(|e| invalid("certificate chain", e))?;
        if certs.is_empty() {
            return Err(invalid("certificate chain", "no certificate in the PEM"));
        }
        let key = PrivateKeyDer::from_pem_slice(&cfg.key_pem).map_err(|e| invalid("key", e))?;
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(&cfg.ca_pem) {
            let ca = ca.map_err(|e| invalid("CA bundle", e))?;
            roots.add(ca).map_err(|e| invalid("CA certificate", e))?;
        }
        if roots.is_empty() {
            return Err(invalid("CA bundle", "no certificate in the PEM"));
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| invalid("client verifier", e))?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| invalid("server config", e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(|e| invalid("certificate or key", e))?;
        // Nothing may arrive on an outgoing connection after the handshake (the writer treats
        // readable data as a closed peer), so no session tickets.
        server.send_tls13_tickets = 0;
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| invalid("client config", e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| invalid("certificate or key", e))?;
        client.resumption = rustls::client::Resumption::disabled();
        Ok(TlsContext {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    /// Runs the server side of the TLS handshake on `io` (which enforces the deadline).
    pub(crate) fn accept<S: Read + Write>(
        &self,
        io: &mut S,
    ) -> Result<ServerConnection, HandshakeError> {
        let mut conn = ServerConnection::new(self.server.clone()).map_err(tls_error)?;
        while conn.is_handshaking() {
            conn.complete_io(io).map_err(io_or_tls)?;
        }
        Ok(conn)
    }

    /// Runs the client side of the TLS handshake to node `to` on `io`.
    pub(crate) fn connect<S: Read + Write>(
        &self,
        to: u64,
        io: &mut S,
    ) -> Result<ClientConnection, HandshakeError> {
        let name = ServerName::try_from(node_name(to))
            .map_err(|e| HandshakeError::Tls(format!("server name: {e}")))?;
        let mut conn = ClientConnection::new(self.client.clone(), name).map_err(tls_error)?;
        while conn.is_handshaking() {
            conn.complete_io(io).map_err(io_or_tls)?;
        }
        Ok(conn)
    }
}

fn tls_error(e: rustls::Error) -> HandshakeError {
    HandshakeError::Tls(e.to_string())
}

/// A handshake error seen through TLS: an I/O error wrapping a TLS alert or protocol error
/// (e.g. the acceptor refusing our certificate after we finished our side) becomes `Tls`.
pub(crate) fn through_tls(e: HandshakeError) -> HandshakeError {
    match e {
        HandshakeError::Io(e) => io_or_tls(e),
        other => other,
    }
}

/// rustls reports protocol and certificate errors as `InvalidData` I/O errors wrapping a
/// `rustls::Error`; those are TLS failures, the rest are I/O.
fn io_or_tls(e: io::Error) -> HandshakeError {
    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        HandshakeError::Tls(e.to_string())
    } else {
        HandshakeError::Io(e)
    }
}

/// The dialer's leaf certificate (already verified against the CA by the TLS handshake).
pub(crate) fn peer_leaf(conn: &ServerConnection) -> Option<CertificateDer<'static>> {
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned())
}

/// True if `leaf` is valid for node `id`'s name ([`node_name`]).
pub(crate) fn names_node(leaf: Option<&CertificateDer<'_>>, id: u64) -> bool {
    let (Some(leaf), Ok(name)) = (leaf, ServerName::try_from(node_name(id))) else {
        return false;
    };
    webpki::EndEntityCert::try_from(leaf)
        .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
}

/// An established connection, plain or TLS.
pub(crate) enum Conn {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS, accepted.
    Server(Box<rustls::StreamOwned<ServerConnection, TcpStream>>),
    /// TLS, dialed.
    Client(Box<rustls::StreamOwned<ClientConnection, TcpStream>>),
}

impl Conn {
    /// The underlying socket.
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Server(s) => &s.sock,
            Conn::Client(s) => &s.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Server(s) => s.read(buf),
            Conn::Client(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Server(s) => s.write(buf),
            Conn::Client(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Server(s) => s.flush(),
            Conn::Client(s) => s.flush(),
        }
    }
}
