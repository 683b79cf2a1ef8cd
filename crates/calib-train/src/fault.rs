//! Fault injection for the kill tests: with `CALIB_FAULT=<point>:<n>` in the environment, the
//! process kills itself with SIGKILL (no destructors, no flushing: exactly `kill -9`) the n-th
//! time it reaches `point`; `<point>:<n>@<rank>` arms it only in the data-parallel rank whose
//! `RANK` variable is `rank` (the ranks of a launcher share its environment). Without the
//! variable a point costs one atomic load and a branch.
//!
//! Points: `batch` (after every training step), `checkpoint` (inside a checkpoint write: the
//! temporary file is complete, not yet renamed into place), `log` (an epoch's log line is
//! written, its checkpoint not yet).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

fn armed() -> Option<&'static (String, usize)> {
    static SPEC: OnceLock<Option<(String, usize)>> = OnceLock::new();
    SPEC.get_or_init(|| {
        let text = std::env::var("CALIB_FAULT").ok()?;
        let (text, rank) = match text.split_once('@') {
            Some((t, r)) => (t.to_string(), Some(r.to_string())),
            None => (text, None),
        };
        if rank.is_some_and(|r| std::env::var("RANK").ok().as_deref() != Some(r.as_str())) {
            return None;
        }
        let (point, n) = text.split_once(':')?;
        Some((point.to_string(), n.parse().ok()?))
    })
    .as_ref()
}

/// Dies here when `CALIB_FAULT` names this point and this is its n-th visit.
pub fn point(name: &str) {
    static HITS: AtomicUsize = AtomicUsize::new(0);
    if let Some((point, n)) = armed() {
        if point == name && HITS.fetch_add(1, Ordering::Relaxed) + 1 == *n {
            // SAFETY: getpid and kill have no preconditions; SIGKILL ends the process here.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}
