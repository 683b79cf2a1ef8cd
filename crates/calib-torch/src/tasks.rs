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
    /// `calib_text`: document classification (20 Newsgroups, the Global Pooling CNN).
    Text,
    /// `calib_text`: sentence classification over parse trees (SST, the Tree-LSTM).
    Tree,
}

/// Every kind, as recipes spell it.
pub const KINDS: [&str; 4] =
    [calib_vision::recipe::KIND, calib_mt::recipe::KIND, calib_text::recipe::DOC_KIND, calib_text::recipe::TREE_KIND];

impl Kind {
    /// The kind a recipe table names (an error lists the kinds when it names none or another).
    pub fn of(table: &toml::Table, path: &Path) -> Result<Self> {
        Ok(match calib_train::recipe::kind(table, path, &KINDS)?.as_str() {
            calib_vision::recipe::KIND => Kind::Image,
            calib_mt::recipe::KIND => Kind::Translation,
            calib_text::recipe::DOC_KIND => Kind::Text,
            _ => Kind::Tree,
        })
    }

    /// The kind of a run (from its `config.toml`).
    pub fn of_run(run: &Path) -> Result<Self> {
        let path = run.join("config.toml");
        Self::of(&calib_train::recipe::load(&path, &[])?, &path)
    }
}
