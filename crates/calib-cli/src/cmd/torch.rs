//! Commands that compute with libtorch run in the sibling binary `calib-torch`, so that `calib`
//! itself starts without loading libtorch (about 0.2 s of start-up on every call otherwise).
//!
//! Note: cargo unifies features across a workspace build, so a `calib` built together with
//! `calib-torch` (`cargo build --workspace`) links libtorch anyway (still correct, just slower to
//! start); `cargo build --release -p calib-cli`, as the README does, gives the libtorch-free one.

use anyhow::{bail, Context, Result};
use calib_cli::output::Format;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Replaces this process by `calib-torch <command> <args…>` (same stdio, same exit code).
pub fn hand_over(command: &str, args: &[String], format: Format) -> Result<()> {
    let exe = std::env::current_exe().context("cannot locate the calib executable")?;
    let torch = exe.with_file_name("calib-torch");
    if !torch.is_file() {
        bail!(
            "`calib {command}` needs {}, which is not built (run `cargo build --release -p calib-torch`)",
            torch.display()
        );
    }
    let mut cmd = Command::new(&torch);
    cmd.arg(command).args(args);
    if format == Format::Json {
        cmd.args(["--format", "json"]);
    }
    let err = cmd.exec();
    Err(err).with_context(|| format!("cannot run {}", torch.display()))
}
