//! Tiny-ImageNet (`tiny-imagenet-200/`) in its distribution layout: `wnids.txt`,
//! `train/<wnid>/images/<wnid>_<k>.JPEG`, `val/images/val_<k>.JPEG` with `val/val_annotations.txt`.
//! Labels follow the official code: the index of the wnid in *sorted* order. About 2 % of the
//! JPEGs are greyscale; they are converted to RGB.

use crate::{input_error, Images, Result};
use rayon::prelude::*;
use std::path::Path;

/// The 200 class ids, sorted (label order).
pub fn classes(root: &Path) -> Result<Vec<String>> {
    let path = root.join("wnids.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| input_error(&path, format!("cannot read: {e}")))?;
    let mut ids: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if ids.is_empty() {
        return Err(input_error(&path, "no class ids"));
    }
    ids.sort();
    Ok(ids)
}

fn decode_all(files: Vec<(std::path::PathBuf, i64)>, classes: Vec<String>) -> Result<Images> {
    let decoded = files
        .into_par_iter()
        .map(|(p, label)| {
            let name = p.display().to_string();
            let img = image::open(&p).map_err(|e| input_error(&p, format!("cannot decode: {e}")))?.to_rgb8();
            Ok((name, label, img))
        })
        .collect::<Result<Vec<_>>>()?;
    Images::from_decoded(decoded, classes)
}

/// Training images from `train_dir` (`<root>/train`, or the shared `train_subset`), class by class
/// in label order, files sorted.
pub fn read_train(root: &Path, train_dir: &Path) -> Result<Images> {
    let classes = classes(root)?;
    let mut files = Vec::new();
    for (label, wnid) in classes.iter().enumerate() {
        let dir = train_dir.join(wnid).join("images");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| input_error(&dir, format!("cannot read the class folder: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("jpeg") || x.eq_ignore_ascii_case("jpg")))
            .collect();
        if names.is_empty() {
            return Err(input_error(&dir, "class folder holds no JPEG images"));
        }
        names.sort();
        files.extend(names.into_iter().map(|p| (p, label as i64)));
    }
    decode_all(files, classes)
}

/// The labelled validation set (the paper's Tiny-ImageNet test set), in annotation order.
pub fn read_val(root: &Path) -> Result<Images> {
    let classes = classes(root)?;
    let ann = root.join("val").join("val_annotations.txt");
    let text = std::fs::read_to_string(&ann).map_err(|e| input_error(&ann, format!("cannot read: {e}")))?;
    let mut files = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let mut cols = line.split('\t');
        let (Some(file), Some(wnid)) = (cols.next(), cols.next()) else {
            return Err(input_error(&ann, format!("line {}: expected FILE<TAB>WNID…", i + 1)));
        };
        let label = classes
            .binary_search_by(|c| c.as_str().cmp(wnid))
            .map_err(|_| input_error(&ann, format!("line {}: class {wnid} is not in wnids.txt", i + 1)))?;
        files.push((root.join("val").join("images").join(file), label as i64));
    }
    if files.is_empty() {
        return Err(input_error(&ann, "no annotated images"));
    }
    decode_all(files, classes)
}
