//! Operator tool for raft-manager store directories.
//!
//! `raft-manager inspect DIR` prints the hard state, WAL segments, snapshot and entry range,
//! checking every checksum. `raft-manager verify DIR DIR [DIR...]` checks that replicas' logs
//! agree. Exit code 0 on success, 1 on corruption or divergence, 2 on usage errors.

use clap::{Parser, Subcommand};
use raft::core::StorageError;
use raft::storage::inspect::{check_owners, first_divergence, inspect_dir, Report};
use std::path::PathBuf;
use std::process::ExitCode;

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
