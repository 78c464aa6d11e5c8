//! Checking and converting the arguments Python callers pass: addresses, durations in
//! seconds, peer maps and id lists (each bad value a `TypeError`/`ValueError`/`OverflowError`).

use crate::errors::{type_error, value_error};
use pyo3::exceptions::PyOverflowError;
use pyo3::prelude::*;
use pyo3::types::PyMapping;
use raft::core::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// "No timeout" for engine calls that need one.
pub(crate) const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Resolves `"host:port"` to its first socket address.
pub(crate) fn resolve(addr: &str) -> PyResult<SocketAddr> {
    addr.to_socket_addrs()
        .map_err(|e| value_error(format!("bad address {addr:?}: {e}")))?
        .next()
        .ok_or_else(|| value_error(format!("address {addr:?} resolves to nothing")))
}

/// The longest accepted duration, in seconds (100 years): longer ones raise OverflowError,
/// as Python's own timeouts do, instead of overflowing a clock.
const MAX_SECONDS: f64 = FOREVER.as_secs() as f64;

/// Converts `v` seconds (already known finite and non-negative) to a duration, refusing
/// values above [`MAX_SECONDS`] with OverflowError.
pub(crate) fn duration(name: &str, v: f64) -> PyResult<Duration> {
    if v > MAX_SECONDS {
        return Err(PyOverflowError::new_err(format!(
            "{name} of {v} seconds is too large (at most {MAX_SECONDS})"
        )));
    }
    Ok(Duration::from_secs_f64(v))
}

/// A positive duration option (`election_timeout=`...) in seconds.
pub(crate) fn seconds(name: &str, v: f64) -> PyResult<Duration> {
    if v.is_nan() || v <= 0.0 {
        return Err(value_error(format!(
            "{name} must be a positive number of seconds"
        )));
    }
    duration(name, v)
}

/// A call's `timeout=`: `None` (wait forever) or a non-negative number of seconds.
pub(crate) fn timeout_of(t: Option<f64>) -> PyResult<Option<Duration>> {
    match t {
        None => Ok(None),
        Some(v) if v >= 0.0 => duration("timeout", v).map(Some),
        Some(_) => Err(value_error(
            "timeout must be None or a non-negative number (not NaN)",
        )),
    }
}

/// Parses `peers`: a mapping `{id: "host:port" | None}` or an iterable of ids.
pub(crate) fn parse_peers(
    peers: &Bound<'_, PyAny>,
) -> PyResult<(BTreeSet<NodeId>, BTreeMap<NodeId, String>)> {
    let mut ids = BTreeSet::new();
    let mut addrs = BTreeMap::new();
    if let Ok(map) = peers.cast::<PyMapping>() {
        for item in map.items()?.iter() {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
            let id: NodeId = k
                .extract()
                .map_err(|_| type_error("peers keys must be node ids (int)"))?;
            ids.insert(id);
            if !v.is_none() {
                let a: String = v
                    .extract()
                    .map_err(|_| type_error("peers values must be \"host:port\" strings"))?;
                addrs.insert(id, a);
            }
        }
    } else if peers.is_instance_of::<pyo3::types::PyString>() {
        return Err(type_error(
            "peers must be a dict {id: address} or a list of ids",
        ));
    } else {
        for item in peers
            .try_iter()
            .map_err(|_| type_error("peers must be a dict {id: address} or a list of ids"))?
        {
            let id: NodeId = item?
                .extract()
                .map_err(|_| type_error("peers must contain node ids (int)"))?;
            ids.insert(id);
        }
    }
    if ids.contains(&0) {
        return Err(value_error("node ids must be non-zero"));
    }
    Ok((ids, addrs))
}

/// Collects node ids from any iterable of ints.
pub(crate) fn ids_of(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<NodeId>> {
    let bad = || type_error(format!("{what} must be an iterable of node ids (int)"));
    if obj.is_instance_of::<pyo3::types::PyString>() {
        return Err(bad());
    }
    let mut ids = Vec::new();
    for item in obj.try_iter().map_err(|_| bad())? {
        let id: NodeId = item?.extract().map_err(|_| bad())?;
        if id == 0 {
            return Err(value_error("node ids must be non-zero"));
        }
        ids.push(id);
    }
    Ok(ids)
}
