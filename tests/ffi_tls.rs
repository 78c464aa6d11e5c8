//! The C builder's TLS option, `raft_config_builder_set_tls`: argument validation, files read
//! and checked up front, and a node started over TLS.

use raft::ffi::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use std::ffi::{c_int, c_void, CString};
use std::path::Path;
use std::ptr::{null, null_mut};

const OK: raft_status = raft_status::Ok;

unsafe extern "C" fn apply(
    _: *mut c_void,
    _: u64,
    _: *const u8,
    _: usize,
    _: *mut raft_buf,
) -> c_int {
    0
}

fn c(p: &Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

#[test]
fn builder_tls_is_validated_and_a_node_starts_over_tls() {
    let dir = std::env::temp_dir().join(format!("raft-ffi-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![raft::transport::tls::node_name(1)])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let (cert_p, key_p, ca_p, junk_p) = (
        dir.join("n1.pem"),
        dir.join("n1.key"),
        dir.join("ca.pem"),
        dir.join("junk.pem"),
    );
    std::fs::write(&cert_p, cert.pem()).unwrap();
    std::fs::write(&key_p, key.serialize_pem()).unwrap();
    std::fs::write(&ca_p, ca.pem()).unwrap();
    std::fs::write(&junk_p, "not a certificate").unwrap();
    let (cert_c, key_c, ca_c, junk_c) = (c(&cert_p), c(&key_p), c(&ca_p), c(&junk_p));
    let missing = c(&dir.join("missing.pem"));
    unsafe {
        let mut b = null_mut();
        assert_eq!(raft_config_builder_new(&mut b), OK);
        assert_eq!(
            raft_config_builder_set_tls(b, cert_c.as_ptr(), null(), ca_c.as_ptr()),
            raft_status::NullArgument
        );
        assert_eq!(
            raft_config_builder_set_tls(b, missing.as_ptr(), key_c.as_ptr(), ca_c.as_ptr()),
            raft_status::InvalidArgument
        );
        assert_eq!(
            raft_config_builder_set_tls(b, junk_c.as_ptr(), key_c.as_ptr(), ca_c.as_ptr()),
            raft_status::InvalidArgument
        );
        // A CA file without a certificate.
        assert_eq!(
            raft_config_builder_set_tls(b, cert_c.as_ptr(), key_c.as_ptr(), junk_c.as_ptr()),
            raft_status::InvalidArgument
        );
        assert_eq!(raft_config_builder_set_tls(b, null(), null(), null()), OK);
        assert_eq!(
            raft_config_builder_set_tls(b, cert_c.as_ptr(), key_c.as_ptr(), ca_c.as_ptr()),
            OK
        );
        assert_eq!(raft_config_builder_set_id(b, 1), OK);
        assert_eq!(raft_config_builder_add_voter(b, 1), OK);
        let listen = CString::new("127.0.0.1:0").unwrap();
        assert_eq!(
            raft_config_builder_set_listen_address(b, listen.as_ptr()),
            OK
        );
        assert_eq!(raft_config_builder_set_apply_callback(b, Some(apply)), OK);
        let mut cfg = null_mut();
        assert_eq!(raft_config_builder_build(b, &mut cfg), OK);
        let mut n = null_mut();
        assert_eq!(raft_node_start(cfg, &mut n), OK);
        raft_config_free(cfg);
        assert_eq!(raft_node_free(n), OK);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
