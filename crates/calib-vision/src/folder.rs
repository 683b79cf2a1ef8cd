//! Image folders: `<root>/<class>/<file>.{jpg,jpeg,png}`, classes in sorted order (the label
//! order of CIFAR-10's release, whose class names sort that way), files in sorted order; and the
//! same tree inside a `.tar.gz`.

use crate::{input_error, Images, Result};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

fn is_image(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".jpg") || lower.ends_with(".jpeg") || lower.ends_with(".png")
}

fn decode(name: &str, bytes: &[u8]) -> Result<image::RgbImage> {
    image::load_from_memory(bytes).map(|i| i.to_rgb8()).map_err(|e| input_error(name, format!("cannot decode: {e}")))
}

/// Class name → encoded files (name, bytes), sorted; decoded in parallel into [`Images`].
fn assemble(tree: BTreeMap<String, BTreeMap<String, Vec<u8>>>, root: &Path) -> Result<Images> {
    if tree.is_empty() {
        return Err(input_error(root, "no class folders with images"));
    }
    let classes: Vec<String> = tree.keys().cloned().collect();
    let files: Vec<(String, i64, Vec<u8>)> = tree
        .into_iter()
        .enumerate()
        .flat_map(|(label, (_, files))| files.into_iter().map(move |(name, bytes)| (name, label as i64, bytes)))
        .collect();
    let decoded = files
        .into_par_iter()
        .map(|(name, label, bytes)| decode(&name, &bytes).map(|img| (name, label, img)))
        .collect::<Result<Vec<_>>>()?;
    Images::from_decoded(decoded, classes)
}

/// Reads `<root>/<class>/*.{jpg,png}`. An empty class folder is an error (it would silently
/// shift every later label).
pub fn read_folder(root: &Path) -> Result<Images> {
    let entries = std::fs::read_dir(root).map_err(|e| input_error(root, format!("cannot read the folder: {e}")))?;
    let mut tree = BTreeMap::new();
    for entry in entries {
        let dir = entry.map_err(|e| input_error(root, e.to_string()))?.path();
        if !dir.is_dir() {
            continue;
        }
        let class = dir.file_name().expect("entry").to_string_lossy().into_owned();
        let mut files = BTreeMap::new();
        for f in std::fs::read_dir(&dir).map_err(|e| input_error(&dir, format!("cannot read the folder: {e}")))? {
            let path = f.map_err(|e| input_error(&dir, e.to_string()))?.path();
            let name = path.to_string_lossy().into_owned();
            if path.is_file() && is_image(&name) {
                let bytes = std::fs::read(&path).map_err(|e| input_error(&path, format!("cannot read: {e}")))?;
                files.insert(name, bytes);
            }
        }
        if files.is_empty() {
            return Err(input_error(&dir, "class folder holds no .jpg/.png images"));
        }
        tree.insert(class, files);
    }
    assemble(tree, root)
}

/// Reads the same layout from a `.tar.gz`: entries `<top>/<class>/<file>` (one leading folder,
/// e.g. `train/airplane/0000.jpg`) or `<class>/<file>`.
pub fn read_tar_gz(path: &Path) -> Result<Images> {
    let file = std::fs::File::open(path).map_err(|e| input_error(path, format!("cannot open: {e}")))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    let mut tree: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    let broken = |e: std::io::Error| input_error(path, format!("broken archive: {e}"));
    let (mut members, mut last) = (0usize, String::from("(none)"));
    for entry in archive.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        members += 1;
        last = entry.path().map_err(broken)?.to_string_lossy().into_owned();
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().map_err(broken)?.to_string_lossy().into_owned();
        if !is_image(&name) {
            continue;
        }
        let parts: Vec<&str> = name.trim_start_matches("./").split('/').collect();
        let class = match parts.len() {
            2 => parts[0],
            3 => parts[1],
            _ => return Err(input_error(path, format!("entry {name} is not <class>/<file> or <top>/<class>/<file>"))),
        }
        .to_string();
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(broken)?;
        tree.entry(class).or_default().insert(format!("{}:{name}", path.display()), bytes);
    }
    // The tar reader stops silently at the end of the stream as well as at the end-of-archive
    // marker (two zero blocks). It consumes the first zero block when it stops there, so the
    // second must follow; a stream cut between members has neither and is truncated.
    let mut rest = Vec::new();
    archive.into_inner().read_to_end(&mut rest).map_err(broken)?;
    if rest.len() < 512 || rest[..512].iter().any(|&b| b != 0) {
        return Err(input_error(
            path,
            format!(
                "truncated archive: the tar stream ends without its end-of-archive blocks after {members} members \
                 (the last read: {last})"
            ),
        ));
    }
    assemble(tree, path)
}

/// Reads every image directly inside `dir` (no class folders; all labels 0): out-of-distribution
/// sets such as Tiny-ImageNet's `val/images`.
pub fn read_flat(dir: &Path) -> Result<Images> {
    let entries = std::fs::read_dir(dir).map_err(|e| input_error(dir, format!("cannot read the folder: {e}")))?;
    let mut files = BTreeMap::new();
    for entry in entries {
        let path = entry.map_err(|e| input_error(dir, e.to_string()))?.path();
        let name = path.to_string_lossy().into_owned();
        if path.is_file() && is_image(&name) {
            files.insert(name, std::fs::read(&path).map_err(|e| input_error(&path, format!("cannot read: {e}")))?);
        }
    }
    if files.is_empty() {
        return Err(input_error(dir, "holds no .jpg/.png images"));
    }
    assemble(BTreeMap::from([("images".to_string(), files)]), dir)
}

/// Reads images in any of the distribution forms: CIFAR binary batches (`.bin`, all of `paths`,
/// with `layout`), a `.tar.gz` of an image-folder tree, or an image-folder tree.
pub fn read_any(paths: &[std::path::PathBuf], layout: crate::cifar::Layout) -> Result<Images> {
    let first = paths.first().ok_or_else(|| input_error("", "no path given"))?;
    let name = first.to_string_lossy();
    if name.ends_with(".bin") {
        let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
        crate::cifar::read_binary(&refs, layout)
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        read_tar_gz(first)
    } else if first.is_dir() {
        read_folder(first)
    } else {
        Err(input_error(first, "does not exist (expected an image folder, a .tar.gz or CIFAR .bin files)"))
    }
}
