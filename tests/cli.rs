//! The command-line programs: `--help` exits 0 and describes every option, `--version`
//! prints the crate version, and usage errors exit 2 with a message.

use std::process::Command;

fn run(bin: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin)
        .args(args)
        .output()
        .expect("run the binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every option line of a long `--help` (`--name ...` or `-x, --name ...`) is followed by a
/// description, on the same line or on the next one. Returns the option names seen.
fn described_options(help: &str) -> Vec<String> {
    let lines: Vec<&str> = help.lines().collect();
    let mut seen = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        if !(t.starts_with("--") || (t.starts_with('-') && t.contains(", --"))) {
            continue;
        }
        let name = t
            .split("--")
            .nth(1)
            .and_then(|r| r.split([' ', '<', '=']).next())
            .expect("an option name")
            .to_string();
        // Same-line description: two or more spaces after the option spec.
        let same_line = t.split("  ").skip(1).any(|s| !s.trim().is_empty());
        let next_line = lines.get(i + 1).is_some_and(|n| !n.trim().is_empty());
        assert!(
            same_line || next_line,
            "option --{name} has no description in:\n{help}"
        );
        seen.push(name);
    }
    seen
}

fn check_help_and_version(bin: &str, name: &str, must_list: &[&str]) {
    let (code, out, err) = run(bin, &["--help"]);
    assert_eq!(code, 0, "{name} --help exit code; stderr: {err}");
    let opts = described_options(&out);
    for o in must_list {
        assert!(
            opts.iter().any(|s| s == o),
            "{name} --help does not describe --{o}:\n{out}"
        );
    }
    assert!(opts.iter().any(|s| s == "version"), "{out}");
    let (code, out, err) = run(bin, &["--version"]);
    assert_eq!(code, 0, "{name} --version exit code; stderr: {err}");
    assert_eq!(
        out.trim(),
        format!("{name} {}", env!("CARGO_PKG_VERSION")),
        "{name} --version"
    );
}

#[test]
fn raft_kv_help_version_and_usage_errors() {
    let bin = env!("CARGO_BIN_EXE_raft-kv");
    // The flag names used by scripts, tests and docs/DEMO.md.
    check_help_and_version(
        bin,
        "raft-kv",
        &[
            "id",
            "peers",
            "client",
            "data-dir",
            "election-ms",
            "cluster-id",
            "secret",
            "snapshot-entries",
            "request-timeout-ms",
            "test-hooks",
            "manual-rejoin",
            "rejoin-max-lag",
            "help",
        ],
    );
    let (code, _, err) = run(bin, &["--id", "1"]);
    assert_eq!(code, 2);
    assert!(err.contains("--peers"), "{err}");
    let (code, _, err) = run(
        bin,
        &[
            "--id",
            "1",
            "--peers",
            "2=127.0.0.1:1",
            "--client",
            "127.0.0.1:0",
            "--data-dir",
            "unused",
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("must include this node's id 1"), "{err}");
    let (code, _, err) = run(bin, &["--id", "1", "--peers", "1=nowhere"]);
    assert_eq!(code, 2);
    assert!(err.contains("bad address nowhere"), "{err}");
    let (code, _, err) = run(bin, &["--manual-rejoin", "--rejoin-max-lag", "8"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot be used with"), "{err}");
    let (code, _, err) = run(bin, &["--election-ms", "5"]);
    assert_eq!(code, 2);
    assert!(err.contains("--election-ms"), "{err}");
}

#[test]
fn raft_manager_help_version_and_usage_errors() {
    let bin = env!("CARGO_BIN_EXE_raft-manager");
    check_help_and_version(bin, "raft-manager", &["help"]);
    let (_, out, _) = run(bin, &["--help"]);
    assert!(out.contains("inspect") && out.contains("verify"), "{out}");
    for sub in ["inspect", "verify"] {
        let (code, out, err) = run(bin, &[sub, "--help"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("<DIR>"), "{out}");
    }
    let (code, _, err) = run(bin, &["verify", "only-one"]);
    assert_eq!(code, 2);
    assert!(err.contains("2 values required"), "{err}");
    let (code, _, _) = run(bin, &["frobnicate"]);
    assert_eq!(code, 2);
}

#[test]
fn raft_kv_demo_help_and_version() {
    let bin = env!("CARGO_BIN_EXE_raft-kv-demo");
    check_help_and_version(bin, "raft-kv-demo", &["bin", "keep", "help"]);
    let (code, _, _) = run(bin, &["--frobnicate"]);
    assert_eq!(code, 2);
}
