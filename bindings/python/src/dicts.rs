//! The dicts `Node.status()` and `Node.metrics()` return.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use raft::core::{Role, Status};
use raft::runtime::NodeMetrics;

/// The role as `status()["role"]` spells it.
fn role_name(r: Role) -> &'static str {
    match r {
        Role::Follower => "follower",
        Role::PreCandidate => "pre_candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

/// `status()`: role, term, leader, indexes, membership and (on the leader) each peer's progress.
pub(crate) fn status_dict<'py>(py: Python<'py>, s: &Status) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", s.id)?;
    d.set_item("role", role_name(s.role))?;
    d.set_item("term", s.term)?;
    d.set_item("leader", if s.leader == 0 { None } else { Some(s.leader) })?;
    d.set_item("commit", s.commit)?;
    d.set_item("applied", s.applied)?;
    d.set_item("last_index", s.last_index)?;
    d.set_item("voters", PyList::new(py, &s.conf.voters)?)?;
    d.set_item("voters_outgoing", PyList::new(py, &s.conf.voters_outgoing)?)?;
    d.set_item("learners", PyList::new(py, &s.conf.learners)?)?;
    d.set_item("conf_id", s.conf_index)?;
    let voted = (s.voted_for != 0).then_some(s.voted_for);
    d.set_item("voted_for", voted)?;
    d.set_item("learner", s.learner)?;
    let peers = PyDict::new(py);
    for p in &s.peers {
        let pd = PyDict::new(py);
        pd.set_item("matched", p.matched)?;
        pd.set_item("next", p.next)?;
        pd.set_item("state", p.state)?;
        pd.set_item("learner", p.learner)?;
        peers.set_item(p.id, pd)?;
    }
    d.set_item("peers", peers)?;
    Ok(d)
}

/// `metrics()`: every metric by name (see `PyNode::metrics`).
pub(crate) fn metrics_dict<'py>(py: Python<'py>, m: &NodeMetrics) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, _, _, v) in m.scalars() {
        d.set_item(name, v)?;
    }
    for (name, _, label, values) in m.labelled() {
        let fam = PyDict::new(py);
        for (k, v) in values {
            if label == "peer" {
                let id: u64 = k.parse().unwrap_or(0);
                fam.set_item(id, v)?;
            } else {
                fam.set_item(k, v)?;
            }
        }
        d.set_item(name, fam)?;
    }
    for (name, _, h) in m.histograms() {
        let hd = PyDict::new(py);
        hd.set_item("bounds", PyList::new(py, &h.bounds)?)?;
        hd.set_item("buckets", PyList::new(py, &h.buckets)?)?;
        hd.set_item("sum", h.sum)?;
        hd.set_item("count", h.count)?;
        d.set_item(name, hd)?;
    }
    Ok(d)
}
