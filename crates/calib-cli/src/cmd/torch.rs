//! Commands that compute with libtorch run in the sibling binary `calib-torch`, so that `calib`
//! itself starts without loading libtorch (about 0.2 s of start-up on every call otherwise).
//! `calib` parses their arguments first (the definitions in `calib_cli::args` are shared), so
//! `--help` and bad arguments never need `calib-torch`; then it hands the original arguments over.
//!
//! Note: cargo unifies features across a workspace build, so a `calib` built together with
//! `calib-torch` (`cargo build --workspace`) links libtorch anyway (still correct, just slower to
//! start); `cargo build --release -p calib-cli`, as the README does, gives the libtorch-free one.

use anyhow::{bail, Context, Result};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Replaces this process by `calib-torch` with this process's own arguments (same stdio, same
/// exit code); `command` names the command in errors.
pub fn hand_over(command: &str) -> Result<()> {
    let exe = std::env::current_exe().context("cannot locate the calib executable")?;
    let torch = exe.with_file_name("calib-torch");
    if !torch.is_file() {
        bail!(
            "`calib {command}` needs {}, which is not built (run `cargo build --release -p calib-torch`)",
            torch.display()
        );
    }
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "calib".into());
    let err = Command::new(&torch).arg0(arg0).args(args).exec();
    Err(err).with_context(|| format!("cannot run {}", torch.display()))
}
