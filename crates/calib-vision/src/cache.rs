//! A cache of decoded datasets, so the second run on the same files starts without decoding
//! 50,000 JPEGs again. Entries live in `$CALIB_CACHE`, else `$XDG_CACHE_HOME/calib`, else
//! `~/.cache/calib`, keyed by the sources' paths, sizes and modification times (a changed file
//! is a miss), as `<key>.npy` (uint8 `[n, h, w, 3]`) and `<key>.json` (labels, classes), written
//! atomically. Any problem reading an entry falls back to decoding.

use crate::{Images, Result};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// Bumped when the decoded form changes (decoder, colour conversion, layout).
const FORMAT: u32 = 1;

pub fn dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("CALIB_CACHE")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("calib")))
        .or_else(|| env("HOME").map(|h| h.join(".cache").join("calib")))
}

/// Hashes a file's or a folder tree's names, sizes and modification times.
fn fingerprint(path: &Path, h: &mut std::collections::hash_map::DefaultHasher) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    path.file_name().hash(h);
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            fingerprint(&e, h)?;
        }
    } else {
        meta.len().hash(h);
        meta.modified()?.hash(h);
    }
    Ok(())
}

fn key(sources: &[PathBuf], what: &str) -> Option<String> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (FORMAT, what).hash(&mut h);
    for s in sources {
        std::fs::canonicalize(s).ok()?.hash(&mut h);
        fingerprint(s, &mut h).ok()?;
    }
    Some(format!("{:016x}", h.finish()))
}

fn load(base: &Path) -> Option<Images> {
    let (shape, pixels) = calib::npy::read_u8(&base.with_extension("npy")).ok()?;
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base.with_extension("json")).ok()?).ok()?;
    let labels: Vec<i64> = serde_json::from_value(meta["labels"].clone()).ok()?;
    let classes: Vec<String> = serde_json::from_value(meta["classes"].clone()).ok()?;
    (shape.len() == 4 && shape[0] == labels.len()).then_some(Images {
        height: shape[1],
        width: shape[2],
        pixels,
        labels,
        classes,
    })
}

fn store(base: &Path, images: &Images) -> Result<()> {
    let fail = crate::Error::Core;
    calib::npy::write(&base.with_extension("npy"), &[images.len(), images.height, images.width, 3], &images.pixels)
        .map_err(fail)?;
    let meta = serde_json::json!({"labels": images.labels, "classes": images.classes});
    calib::atomic::write(&base.with_extension("json"), meta.to_string().as_bytes()).map_err(fail)
}

/// The decoded images of `sources` (read with `what`, e.g. "folder"), from the cache when an
/// entry for exactly these files exists, else from `decode` (and then stored).
pub fn cached<E>(
    sources: &[PathBuf],
    what: &str,
    decode: impl FnOnce() -> std::result::Result<Images, E>,
) -> std::result::Result<Images, E> {
    let Some((dir, key)) = dir().zip(key(sources, what)) else {
        return decode();
    };
    let base = dir.join(key);
    if let Some(images) = load(&base) {
        return Ok(images);
    }
    let images = decode()?;
    // A cache that cannot be written (read-only home, full disk) only costs speed.
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = store(&base, &images);
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_then_miss_after_a_change() {
        let cache = tempfile::tempdir().unwrap();
        std::env::set_var("CALIB_CACHE", cache.path());
        let data = tempfile::tempdir().unwrap();
        let file = data.path().join("batch.bin");
        std::fs::write(&file, [1u8, 2, 3]).unwrap();
        let img = Images { height: 1, width: 1, pixels: vec![9, 8, 7], labels: vec![4], classes: vec!["a".into()] };
        let sources = vec![file.clone()];
        let decoded = std::cell::Cell::new(0);
        let get = || {
            cached(&sources, "test", || {
                decoded.set(decoded.get() + 1);
                Ok::<_, crate::Error>(img.clone())
            })
        };
        assert_eq!(get().unwrap(), img);
        assert_eq!(get().unwrap(), img);
        assert_eq!(decoded.get(), 1, "the second read must come from the cache");
        std::fs::write(&file, [1u8, 2, 3, 4]).unwrap();
        let again =
            cached(&sources, "test", || Ok::<_, crate::Error>(Images { labels: vec![5], ..img.clone() })).unwrap();
        assert_eq!(again.labels, vec![5], "a changed source must be decoded again");
    }
}
