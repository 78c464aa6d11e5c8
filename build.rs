//! Generates the C header `$OUT_DIR/raft.h` with cbindgen (tolerant: a failure is a
//! warning, never a build error) and sets the shared library's soname on Linux.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src/ffi");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("raft.h");
    println!("cargo:rustc-env=RAFT_GENERATED_HEADER={}", out.display());
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libraft.so.0");
    }
    if let Err(e) = generate(&out) {
        println!("cargo:warning=raft.h not generated: {e}");
    }
}

fn generate(out: &PathBuf) -> Result<(), String> {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let mut config =
        cbindgen::Config::from_file(dir.join("cbindgen.toml")).map_err(|e| e.to_string())?;
    let v = |k: &str| env::var(k).unwrap_or_else(|_| "0".into());
    config.after_includes = Some(format!(
        "\n#define RAFT_VERSION_MAJOR {}\n#define RAFT_VERSION_MINOR {}\n#define RAFT_VERSION_PATCH {}\n#define RAFT_VERSION_STRING \"{}\"",
        v("CARGO_PKG_VERSION_MAJOR"),
        v("CARGO_PKG_VERSION_MINOR"),
        v("CARGO_PKG_VERSION_PATCH"),
        v("CARGO_PKG_VERSION"),
    ));
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/ffi/mod.rs"))
        .generate()
        .map_err(|e| e.to_string())?;
    bindings.write_to_file(out);
    Ok(())
}
