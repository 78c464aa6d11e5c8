//! The committed header `include/raft.h` must equal the one build.rs generated
//! (`$OUT_DIR/raft.h`). Bless a change with `RAFT_BLESS_HEADER=1 cargo test --test header`.

use std::path::Path;

#[test]
fn committed_header_is_up_to_date() {
    let generated = Path::new(env!("RAFT_GENERATED_HEADER"));
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/raft.h");
    let fresh = std::fs::read_to_string(generated).unwrap_or_else(|e| {
        panic!(
            "{} was not generated ({e}); see the cbindgen warning of the build",
            generated.display()
        )
    });
    if std::env::var_os("RAFT_BLESS_HEADER").is_some_and(|v| v == "1") {
        std::fs::write(&committed, &fresh).expect("write include/raft.h");
        return;
    }
    let old = std::fs::read_to_string(&committed).unwrap_or_default();
    assert!(
        old == fresh,
        "include/raft.h differs from the generated {}; run RAFT_BLESS_HEADER=1 cargo test --test header",
        generated.display()
    );
}
