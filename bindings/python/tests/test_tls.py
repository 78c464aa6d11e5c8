"""TLS between Python nodes: certificates made with the openssl command line, a 3-node
cluster replicating over mutually authenticated TLS 1.3, bad files refused with ValueError."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from raft_manager import Node

from conftest import FAST, KV, free_ports, propose_retry, wait_for


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path, ids: list[int]) -> None:
    """A CA and, per node, a P-256 key and a certificate naming node-<id>.raft."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "2", "-subj", "/CN=raft-test-ca", "-keyout", "ca.key", "-out", "ca.pem",
            cwd=d)
    for i in ids:
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-subj", f"/CN=node-{i}", "-keyout", f"n{i}.key", "-out", f"n{i}.csr", cwd=d)
        ext = d / f"n{i}.ext"
        ext.write_text(f"subjectAltName=DNS:node-{i}.raft\n"
                       "extendedKeyUsage=serverAuth,clientAuth\n")
        openssl("x509", "-req", "-in", f"n{i}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-days", "2", "-out", f"n{i}.pem", "-extfile", ext.name, cwd=d)


def test_three_nodes_over_tls(tmp_path: Path) -> None:
    ids = [1, 2, 3]
    make_pki(tmp_path, ids)
    ports = free_ports(3)
    peers = {i: f"127.0.0.1:{p}" for i, p in zip(ids, ports)}
    sms = {i: KV() for i in ids}
    nodes = [
        Node(i, peers, sms[i], **FAST,
             tls=(tmp_path / f"n{i}.pem", tmp_path / f"n{i}.key", str(tmp_path / "ca.pem")))
        for i in ids
    ]
    try:
        propose_retry(nodes, b"t=1")
        for sm in sms.values():
            wait_for(lambda sm=sm: sm.data.get("t") == "1", what="replication over TLS")
    finally:
        for n in nodes:
            n.close()


def test_bad_tls_files_raise_value_error(tmp_path: Path) -> None:
    make_pki(tmp_path, [1])
    (tmp_path / "junk.pem").write_text("not a certificate")
    port = free_ports(1)[0]
    good = (tmp_path / "n1.pem", tmp_path / "n1.key", tmp_path / "ca.pem")
    for bad in [
        (tmp_path / "missing.pem", good[1], good[2]),
        (tmp_path / "junk.pem", good[1], good[2]),
        (good[0], good[1], tmp_path / "junk.pem"),
    ]:
        with pytest.raises(ValueError, match="TLS"):
            Node(1, {1: f"127.0.0.1:{port}"}, KV(), **FAST, tls=bad)
