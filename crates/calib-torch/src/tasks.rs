//! The task registry: which kinds of task a recipe may name (`task = "…"`), and the domain crate
//! that owns each. Commands dispatch on [`Kind`]; everything else lives in the domain crates.

use anyhow::Result;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `calib_vision`: image classification.
    Image,
    /// `calib_mt`: translation.
    Translation,
}

/// Every kind, as recipes spell it.
pub const KINDS: [&str; 2] = [calib_vision::recipe::KIND, calib_mt::recipe::KIND];

impl Kind {
    /// The kind a recipe table names (an error lists the kinds when it names none or another).
    pub fn of(table: &toml::Table, path: &Path) -> Result<Self> {
        Ok(match calib_train::recipe::kind(table, path, &KINDS)?.as_str() {
            calib_vision::recipe::KIND => Kind::Image,
            _ => Kind::Translation,
        })
    }

    /// The kind of a run (from its `config.toml`).
    pub fn of_run(run: &Path) -> Result<Self> {
        let path = run.join("config.toml");
        Self::of(&calib_train::recipe::load(&path, &[])?, &path)
    }
}
