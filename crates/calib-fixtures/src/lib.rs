//! Where tests find things: the workspace root, the built binaries, and the shared real data
//! (`../shared` beside the workspace, or `$CALIB_SHARED`). One locator for every crate's tests,
//! instead of relative paths counted from each crate's folder.

use std::path::{Path, PathBuf};

/// The workspace root (where `Cargo.toml`, `recipes/` and `data/` are).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root exists")
}

/// The shared data folder: `$CALIB_SHARED` when set, else `../shared` beside the workspace.
pub fn shared_root() -> PathBuf {
    match std::env::var_os("CALIB_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => workspace().join("../shared"),
    }
}

/// A path inside the shared folder, e.g. `shared("data/multi30k/val.en.gz")`.
pub fn shared(rel: &str) -> PathBuf {
    shared_root().join(rel)
}

/// A path inside the shared data, e.g. `data("multi30k/val.en.gz")`.
pub fn data(rel: &str) -> PathBuf {
    shared_root().join("data").join(rel)
}

/// A binary of the workspace built for the running test (`target/<profile>/NAME`), for tests of
/// crates other than the binary's own (which use `CARGO_BIN_EXE_…`). `cargo test --workspace`
/// builds every binary before running any test.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("a test runs from target/<profile>/deps");
    let path = dir.join(name);
    assert!(path.is_file(), "{} is not built: run `cargo build -p calib-cli -p calib-torch` first", path.display());
    path
}
