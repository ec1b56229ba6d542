//! Helpers shared by meshml's end-to-end tests (`tests/tests/*.rs`).

#![warn(missing_docs)]

use std::path::PathBuf;

/// The workspace root (the folder holding `Cargo.toml`, `data/`, `node/`, ...).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// A dataset shipped in `data/` (e.g. `digits.csv`).
pub fn bundled(name: &str) -> PathBuf {
    let p = workspace_root().join("data").join(name);
    assert!(p.exists(), "bundled dataset {} is missing", p.display());
    p
}
