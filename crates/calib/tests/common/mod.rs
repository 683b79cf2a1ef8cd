//! Reading the reference vectors in `../shared/testvectors` (computed with the paper's official
//! code). Tests iterate over every file with a given prefix and every case in it: other files of
//! the same schema exist and must pass too.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;

pub fn vector_dir() -> PathBuf {
    calib_fixtures::shared("testvectors")
}

/// The `.json` files of `dir` whose name starts with `prefix`, sorted; at least one.
fn json_files(dir: &std::path::Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no {prefix}*.json vectors in {}", dir.display());
    files
}

/// Every `(file name, case)` in the files whose name starts with `prefix`.
pub fn cases(prefix: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for f in json_files(&vector_dir(), prefix) {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        for c in v["cases"].as_array().expect("cases") {
            out.push((f.file_name().unwrap().to_string_lossy().into_owned(), c.clone()));
        }
    }
    out
}

/// Every `(file name, document)` of the project's own vectors (`tests/vectors`, written by the
/// generators in `benches/`) whose name starts with `prefix`.
pub fn own_vectors(prefix: &str) -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("vectors");
    json_files(&dir, prefix)
        .into_iter()
        .map(|f| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
            (f.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect()
}

pub fn matrix(v: &Value) -> (Vec<f64>, usize) {
    let rows = v.as_array().expect("matrix");
    let k = rows[0].as_array().unwrap().len();
    (rows.iter().flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap())).collect(), k)
}

pub fn ints(v: &Value) -> Vec<i64> {
    v.as_array().expect("int list").iter().map(|x| x.as_i64().unwrap()).collect()
}

pub fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Relative closeness with an absolute floor for values near zero.
pub fn close(ours: f64, expected: f64, rel: f64, abs: f64) -> bool {
    (ours - expected).abs() <= abs.max(rel * expected.abs())
}

#[track_caller]
pub fn check(what: &str, ours: f64, expected: &Value, rel: f64, abs: f64) {
    let e = expected.as_f64().unwrap_or_else(|| panic!("{what}: expected value missing: {expected}"));
    assert!(close(ours, e, rel, abs), "{what}: ours {ours:e}, expected {e:e}, diff {:e}", (ours - e).abs());
}
