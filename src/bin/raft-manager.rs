//! Operator tool for raft-manager store directories.
//!
//! `raft-manager inspect DIR` prints the hard state, WAL segments, snapshot and entry range,
//! checking every checksum. `raft-manager verify DIR DIR [DIR...]` checks that replicas' logs
//! agree. `raft-manager snapshot export DIR FILE` / `snapshot import FILE DIR --voters ..`
//! back up a node's latest snapshot and start a new cluster from one. `raft-manager kv
//! --servers ADDR,.. REQUEST` sends one request line to a `raft-kv` cluster. Exit code 0 on
//! success, 1 on corruption, divergence or a failed request, 2 on usage errors.

#[path = "raft_manager/kv_client.rs"]
mod kv_client;
#[path = "raft_manager/snapshot.rs"]
mod snapshot;

use clap::{Parser, Subcommand};
use raft::core::StorageError;
use raft::storage::inspect::{check_owners, first_divergence, inspect_dir, Report};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Parsed command line.
#[derive(Parser, Debug)]
#[command(
    name = "raft-manager",
    version,
    about = "Operator tool for raft-manager store directories",
    long_about = "Operator tool for raft-manager store directories. Exit code 0 on success, \
1 on corruption or divergence, 2 on usage errors."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// The operator commands.
#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print the hard state, WAL segments, snapshot and entry range of a store directory,
    /// checking every checksum.
    Inspect {
        /// The store directory (a node's data directory).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Check that the logs of two or more replicas agree.
    Verify {
        /// The replicas' store directories (at least two).
        #[arg(value_name = "DIR", num_args = 2.., required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Back up a node's latest snapshot, or start a new cluster's data directory from one.
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Send one request line to a raft-kv cluster (tries the servers in turn until one that
    /// is not a follower answers) and print the answer line.
    Kv {
        /// Client addresses of the raft-kv servers, comma-separated.
        #[arg(
            long,
            value_name = "HOST:PORT,...",
            value_delimiter = ',',
            required = true
        )]
        servers: Vec<SocketAddr>,
        /// Give up after this many milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 10_000)]
        timeout_ms: u64,
        /// The request, e.g. `PUT k v`, `MEMBERS`, `ADD_LEARNER 4 10.0.0.4:7101`.
        #[arg(value_name = "REQUEST", num_args = 1.., required = true)]
        request: Vec<String>,
    },
}

/// `raft-manager snapshot ...`
#[derive(Subcommand, Debug)]
enum SnapshotCmd {
    /// Copy the latest snapshot of a store directory (a running or stopped node's) to FILE.
    Export {
        /// The store directory.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The file to write (must not exist).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Create a new store directory holding the snapshot in FILE, for a new cluster whose
    /// voters are --voters (import the same file into every new node's directory).
    Import {
        /// A file written by `snapshot export`.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The new store directory (must not hold a store).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The new cluster's voters, comma-separated node ids.
        #[arg(long, value_name = "ID,...", value_delimiter = ',', required = true)]
        voters: Vec<u64>,
        /// The node that will run on DIR (recorded in the directory's identity).
        #[arg(long, value_name = "N")]
        id: u64,
        /// The new cluster's id (recorded in the directory's identity; raft-kv's default
        /// is 1).
        #[arg(long, value_name = "X", default_value_t = 1)]
        cluster_id: u64,
    },
}

fn print_report(r: &Report) {
    println!("directory: {}", r.dir.display());
    println!("format version: {}", r.format_version);
    match &r.identity {
        Some(id) => println!("identity: {id}"),
        None => println!("identity: (not recorded yet: format version 1)"),
    }
    println!(
        "bootstrap membership: voters {:?} learners {:?}",
        r.bootstrap.voters, r.bootstrap.learners
    );
    match &r.hard_state {
        Some(hs) => println!(
            "hard state: term {} vote {} commit {}",
            hs.term, hs.vote, hs.commit
        ),
        None => println!("hard state: (never written)"),
    }
    println!("segments: {}", r.segments.len());
    for s in &r.segments {
        let last = s.last_index.map_or("-".to_string(), |l| l.to_string());
        println!(
            "  {}  first {}  last {}  {} bytes{}",
            s.file.file_name().unwrap_or_default().to_string_lossy(),
            s.first_index,
            last,
            s.bytes,
            if s.torn_tail.is_some() {
                "  (torn tail)"
            } else {
                ""
            }
        );
    }
    match &r.snapshot {
        Some((m, p)) => println!(
            "snapshot: {}  index {} term {} size {} checksum {:#010x} conf_index {} voters {:?} \
             outgoing {:?} learners {:?} (data checksum OK)",
            p.file_name().unwrap_or_default().to_string_lossy(),
            m.index,
            m.term,
            m.size,
            m.checksum,
            m.conf_index,
            m.conf.voters,
            m.conf.voters_outgoing,
            m.conf.learners
        ),
        None => println!("snapshot: none"),
    }
    if let Some((m, n)) = &r.partial {
        println!(
            "incoming snapshot: index {} term {}: {n} of {} bytes received",
            m.index, m.term, m.size
        );
    }
    if r.terms.is_empty() {
        println!("entries: none (last index {})", r.last_index());
    } else {
        println!(
            "entries: [{}, {}] ({} entries, terms {}..={})",
            r.log_first,
            r.last_index(),
            r.terms.len(),
            r.terms[0],
            r.terms[r.terms.len() - 1]
        );
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
}

/// Reports why a directory is refused (exit code 1): `CORRUPT` for damaged bytes,
/// `REFUSED` for a missing path, a directory that is not a store, a store missing state its
/// own records require, or replicas of different owners.
fn refused(e: &StorageError) -> ExitCode {
    match e {
        StorageError::Io(_) => eprintln!("CORRUPT: {e}"),
        _ => eprintln!("REFUSED: {e}"),
    }
    ExitCode::from(1)
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Snapshot(SnapshotCmd::Export { dir, file }) => match snapshot::export(&dir, &file) {
            Ok(m) => {
                println!(
                    "exported snapshot index {} term {} ({} bytes) to {}",
                    m.index,
                    m.term,
                    m.size,
                    file.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("raft-manager: {e}");
                ExitCode::from(1)
            }
        },
        Cmd::Snapshot(SnapshotCmd::Import {
            file,
            dir,
            voters,
            id,
            cluster_id,
        }) => match snapshot::import(&file, &dir, &voters, id, cluster_id) {
            Ok(m) => {
                println!(
                    "imported snapshot index {} term {} into {} (voters {:?})",
                    m.index,
                    m.term,
                    dir.display(),
                    m.conf.voters
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("raft-manager: {e}");
                ExitCode::from(1)
            }
        },
        Cmd::Kv {
            servers,
            timeout_ms,
            request,
        } => {
            let line = request.join(" ");
            match kv_client::request(&servers, &line, Duration::from_millis(timeout_ms)) {
                Ok(answer) => {
                    println!("{answer}");
                    if answer.starts_with("ERR") {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => {
                    eprintln!("raft-manager: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Cmd::Inspect { dir } => match inspect_dir(&dir) {
            Ok(r) => {
                print_report(&r);
                println!("all checksums OK");
                ExitCode::SUCCESS
            }
            Err(e) => refused(&e),
        },
        Cmd::Verify { dirs } => {
            let mut reports = Vec::new();
            for d in &dirs {
                match inspect_dir(d) {
                    Ok(r) => reports.push(r),
                    Err(e) => return refused(&e),
                }
            }
            if let Err(e) = check_owners(&reports) {
                return refused(&e);
            }
            match first_divergence(&reports) {
                None => {
                    println!("logs agree");
                    ExitCode::SUCCESS
                }
                Some(d) => {
                    println!(
                        "logs diverge at index {}: {} has term {}, {} has term {}",
                        d.index,
                        d.dir_a.display(),
                        d.term_a,
                        d.dir_b.display(),
                        d.term_b
                    );
                    ExitCode::from(1)
                }
            }
        }
    }
}
