//! Recipes: one TOML file per dataset × model with the paper's settings. Every recipe names its
//! kind of task (`task = "image"`, `"translation"`, …); the binary dispatches on it to the domain
//! crate that owns the recipe's struct. Any value can be overridden (`a.b.c=value`), and the
//! resolved recipe is saved as the run's `config.toml`.

use crate::error::{file, Error, Result};
use serde::de::DeserializeOwned;
use std::path::Path;

/// A recipe's TOML with the overrides applied.
pub fn load(path: &Path, overrides: &[String]) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path).map_err(|e| file(path, format!("cannot read the recipe: {e}")))?;
    parse(&text, path, overrides)
}

/// [`load`] from text; `path` names it in errors.
pub fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<toml::Table> {
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| file(path, format!("not valid TOML: {}", e.message())))?;
    for o in overrides {
        set(&mut table, o)?;
    }
    Ok(table)
}

/// The recipe's `task` key, which must be one of `kinds`.
pub fn kind(table: &toml::Table, path: &Path, kinds: &[&str]) -> Result<String> {
    let list = kinds.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", ");
    match table.get("task") {
        None => Err(file(path, format!("no `task` key: say which kind of task the recipe is (task = {list})"))),
        Some(toml::Value::String(k)) if kinds.contains(&k.as_str()) => Ok(k.clone()),
        Some(other) => Err(file(path, format!("task = {other} is not a kind of task (expected one of {list})"))),
    }
}

/// The recipe as the domain's struct (unknown keys are errors there: `deny_unknown_fields`).
///
/// A value of the wrong type is an error that names its key path and where the value came from:
/// the recipe's line (`path:line`) when the file holds it, `--set` when an override put it there.
/// The table no longer knows which, so the file is read again on that error path only.
pub fn decode<R: DeserializeOwned>(table: toml::Table, path: &Path) -> Result<R> {
    let value = toml::Value::Table(table);
    serde_path_to_error::deserialize(value.clone()).map_err(|e: serde_path_to_error::Error<toml::de::Error>| {
        let key = e.path().to_string();
        let message = e.inner().message().to_string();
        if key.is_empty() || key == "?" {
            return file(path, message);
        }
        let text = std::fs::read_to_string(path).ok();
        let in_file = text.as_deref().and_then(|t| toml::from_str::<toml::Value>(t).ok());
        let at = |v: &toml::Value| lookup(v, &key).cloned();
        match (text.as_deref(), in_file.as_ref().and_then(at), at(&value)) {
            (Some(text), Some(from_file), Some(used)) if from_file == used => match line_of(text, &key) {
                Some(line) => file(format!("{}:{line}", path.display()), format!("{key}: {message}")),
                None => file(path, format!("{key}: {message}")),
            },
            (Some(_), _, Some(used)) => file(path, format!("{key}: {message} (from --set {key}={used})")),
            _ => file(path, format!("{key}: {message}")),
        }
    })
}

/// The value at a dotted key path (`train.schedule.milestones[1]`) of a TOML value.
fn lookup<'a>(value: &'a toml::Value, key: &str) -> Option<&'a toml::Value> {
    key.split('.').try_fold(value, |v, part| {
        let (name, indices) = part.split_once('[').map_or((part, ""), |(n, rest)| (n, rest));
        let mut v = v.get(name)?;
        for index in indices.split('[').filter(|s| !s.is_empty()) {
            v = v.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
        Some(v)
    })
}

/// The 1-based line of a recipe's text that sets `key` (indices dropped): the `name = …` line
/// under the `[table]` header that, joined with the name, gives the key path.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let key: String = key.split('.').map(|p| p.split('[').next().unwrap_or(p)).collect::<Vec<_>>().join(".");
    let unquote = |s: &str| s.split('.').map(|p| p.trim().trim_matches('"').to_string()).collect::<Vec<_>>().join(".");
    let mut table = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(header) = t.strip_prefix('[') {
            table = unquote(header.trim_start_matches('[').split(']').next().unwrap_or(""));
        } else if let Some((name, _)) = t.split_once('=').filter(|_| !t.starts_with('#')) {
            let name = unquote(name);
            let full = if table.is_empty() { name } else { format!("{table}.{name}") };
            if full == key {
                return Some(i + 1);
            }
        }
    }
    None
}

/// A domain's recipe struct: the kind it answers to and its own checks.
pub trait Recipe: DeserializeOwned {
    /// The `task` key of this domain's recipes.
    const KIND: &'static str;
    type Error: From<Error> + std::fmt::Display;
    /// The recipe's `task` key as read.
    fn task(&self) -> &str;
    /// Everything the domain checks beyond the types (names, sizes, consistency).
    fn check(&self) -> Result<(), Self::Error>;
}

/// The recipe of a TOML table as the domain's struct: decoded, its `task` key checked, and
/// validated; errors name `path`.
pub fn typed<R: Recipe>(table: toml::Table, path: &Path) -> Result<R, R::Error> {
    let r: R = decode(table, path)?;
    if r.task() != R::KIND {
        return Err(file(path, format!("task = '{}': expected '{}'", r.task(), R::KIND)).into());
    }
    r.check().map_err(|e| R::Error::from(file(path, e)))?;
    Ok(r)
}

/// The recipe as TOML text (the run's `config.toml`).
pub fn encode<R: serde::Serialize>(recipe: &R) -> Result<String> {
    toml::to_string(recipe).map_err(|e| Error::Config(format!("cannot write the recipe as TOML: {e}")))
}

/// Applies one `a.b.c=value` override (a TOML value; a bare word is a string).
pub fn set(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) =
        assignment.split_once('=').ok_or_else(|| Error::Config(format!("override '{assignment}' is not KEY=VALUE")))?;
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::Config(format!("override '{assignment}': empty key")));
    }
    let mut node = table;
    for p in &parts[..parts.len() - 1] {
        node = node
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| Error::Config(format!("override '{assignment}': '{p}' is not a table")))?;
    }
    node.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_overrides_and_errors() {
        let p = Path::new("r.toml");
        let t = parse("task = \"image\"\n[train]\nepochs = 3\n", p, &["train.epochs=5".into(), "data.dir=x".into()])
            .unwrap();
        assert_eq!(kind(&t, p, &["image", "translation"]).unwrap(), "image");
        assert_eq!(t["train"]["epochs"].as_integer(), Some(5));
        assert_eq!(t["data"]["dir"].as_str(), Some("x"));
        let missing = kind(&parse("[train]\n", p, &[]).unwrap(), p, &["image", "translation"]).unwrap_err().to_string();
        assert!(missing.contains("r.toml") && missing.contains("\"image\", \"translation\""), "{missing}");
        let unknown = kind(&parse("task = \"audio\"\n", p, &[]).unwrap(), p, &["image"]).unwrap_err().to_string();
        assert!(unknown.contains("\"audio\"") && unknown.contains("expected one of \"image\""), "{unknown}");
        assert!(parse("x = 1\n", p, &["x.y=2".into()]).unwrap_err().to_string().contains("not a table"));
        assert!(parse("x = 1\n", p, &["novalue".into()]).is_err());
    }

    #[derive(Debug, serde::Deserialize)]
    struct Train {
        epochs: usize,
        milestones: Vec<usize>,
    }

    #[derive(Debug, serde::Deserialize)]
    struct Doc {
        task: String,
        train: Train,
    }

    /// A value of the wrong type names its key path and the recipe's line, or the override.
    #[test]
    fn a_type_error_names_the_key_and_where_the_value_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.toml");
        std::fs::write(&p, "task = \"image\"\n\n[train]\n# comment = 1\nepochs = 3\nmilestones = [1, \"x\"]\n")
            .unwrap();
        let from_set = decode::<Doc>(load(&p, &["train.epochs=\"abc\"".into()]).unwrap(), &p).unwrap_err().to_string();
        assert_eq!(
            from_set,
            format!(
                "{}: train.epochs: invalid type: string \"abc\", expected usize (from --set train.epochs=\"abc\")",
                p.display()
            )
        );
        let in_file = decode::<Doc>(load(&p, &[]).unwrap(), &p).unwrap_err().to_string();
        assert_eq!(
            in_file,
            format!("{}:6: train.milestones[1]: invalid type: string \"x\", expected usize", p.display())
        );
        let fixed = load(&p, &["train.milestones=[1, 2]".into()]).unwrap();
        let doc = decode::<Doc>(fixed, &p).unwrap();
        assert_eq!((doc.task.as_str(), doc.train.epochs, doc.train.milestones), ("image", 3, vec![1, 2]));
    }
}
