//! Fuzzing every parser of outside data with proptest (on stable): `.npy` files, CIFAR binary
//! batches, `.tar.gz` image folders, PTB trees, GloVe rows, 20 Newsgroups posts, WMT SGML,
//! sentencepiece `.model` protobufs, recipe TOML and saved calibrators (JSON). Each target feeds its reader real samples
//! with random byte edits (replace, insert, delete, truncate) and random bytes; a reader may
//! accept or refuse an input, never panic. CI runs `PROPTEST_CASES` (default 256) inputs per
//! target; `scripts/fuzz.sh` runs many more (docs/reliability.md says how many).

use calib_e2e::{data, root};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

/// Up to 8 edits of a sample: (position, byte, kind: 0 replace, 1 insert, 2 delete), then an
/// optional cut.
type Edits = (Vec<(usize, u8, u8)>, Option<usize>);

fn edits() -> impl Strategy<Value = Edits> {
    (prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..8), prop::option::weighted(0.2, any::<usize>()))
}

fn mutate(sample: &[u8], (ops, cut): &Edits) -> Vec<u8> {
    let mut b = sample.to_vec();
    for &(pos, byte, kind) in ops {
        let i = if b.is_empty() { 0 } else { pos % b.len() };
        match kind {
            0 if !b.is_empty() => b[i] = byte,
            1 => b.insert(i, byte),
            2 if !b.is_empty() => {
                b.remove(i);
            }
            _ => {}
        }
    }
    if let Some(c) = cut {
        b.truncate(c % (b.len() + 1));
    }
    b
}

/// Inputs for one target: an edited sample, or random bytes.
fn inputs(samples: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = samples.len();
    prop_oneof![
        4 => (0..n, edits()).prop_map(move |(i, e)| mutate(&samples[i], &e)),
        1 => prop::collection::vec(any::<u8>(), 0..600),
    ]
}

/// Writes `bytes` to `name` in a fresh temporary folder.
fn file(bytes: &[u8], name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

fn npy_samples() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
    calib::npy::write(&a, &[3, 4], &[0.5f32, 1.0, -1.0, 2.0, 0.0, 0.1, 0.2, 0.3, 3.0, 1.0, 0.0, 0.0]).unwrap();
    calib::npy::write(&b, &[3], &[3i64, 2, 0]).unwrap();
    vec![std::fs::read(a).unwrap(), std::fs::read(b).unwrap()]
}

/// Two CIFAR-10 records of real pixels (a label byte, then 3 × 1024).
fn cifar_samples() -> Vec<Vec<u8>> {
    let png = data("cifar10/lossless_check/cifar10_00_3.png");
    let img = image::open(png).unwrap().to_rgb8();
    let mut record = vec![3u8];
    for c in 0..3 {
        record.extend(img.pixels().map(|p| p.0[c]));
    }
    vec![[record.clone(), record].concat()]
}

/// A `.tar.gz` of a class folder with one real PNG.
fn tar_samples() -> Vec<Vec<u8>> {
    let png = data("cifar10/lossless_check/cifar10_00_3.png");
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    builder.append_path_with_name(&png, "train/cat/0.png").unwrap();
    vec![builder.into_inner().unwrap().finish().unwrap()]
}

fn lines(file: &str, n: usize) -> Vec<u8> {
    let text = std::fs::read_to_string(data(file)).unwrap();
    (text.lines().take(n).collect::<Vec<_>>().join("\n") + "\n").into_bytes()
}

fn sgml_sample() -> Vec<u8> {
    let segs: String = String::from_utf8(lines("wmt14/newstest2014.en", 5))
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, s)| format!("<seg id=\"{}\">{s}</seg>\n", i + 1))
        .collect();
    format!(
        "<srcset setid=\"newstest2014\" srclang=\"any\">\n<doc sysid=\"ref\" docid=\"1\">\n{segs}</doc>\n</srcset>\n"
    )
    .into_bytes()
}

fn recipes() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(root().join("recipes")).unwrap() {
        let dir = dir.unwrap().path();
        for f in std::fs::read_dir(&dir).into_iter().flatten() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|x| x == "toml") {
                out.push((f.clone(), std::fs::read(&f).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Every typed recipe reads a table (the registry's kinds).
fn read_recipe(text: &str, path: &Path) {
    let Ok(table) = calib_train::recipe::parse(text, path, &[]) else { return };
    let _ = calib_vision::recipe::Recipe::from_table(table.clone(), path);
    let _ = calib_mt::recipe::MtRecipe::from_table(table.clone(), path);
    let _ = calib_text::recipe::DocRecipe::from_table(table.clone(), path);
    let _ = calib_text::recipe::TreeRecipe::from_table(table, path);
}

/// Saved calibrators of several methods, fitted on real CIFAR-10 predictions (K = 10) and on
/// their first two classes' logits (K = 2, for Platt and beta).
fn calibrator_samples() -> Vec<Vec<u8>> {
    use calib::calibrators::{FitOptions, Method, Predictions, Saved};
    let d = root().join("data/predictions/cifar10-resnet18-step150-ce");
    let logits = calib::npy::read_floats(&d.join("val_logits.npy"), 2, "logits").unwrap();
    let labels: Vec<usize> =
        calib::npy::read_labels(&d.join("val_labels.npy")).unwrap().iter().map(|&l| l as usize).collect();
    let (n, k) = (2000, 10);
    let all = Predictions::from_values(logits.values, k, calib::ScoreKind::Logits).unwrap();
    let x = Predictions::new(all.values()[..n * k].to_vec(), k, calib::ScoreKind::Logits).unwrap();
    let pairs: Vec<(Vec<f64>, usize)> =
        (0..n).filter(|&i| labels[i] < 2).map(|i| (x.row(i)[..2].to_vec(), labels[i])).collect();
    let x2 =
        Predictions::new(pairs.iter().flat_map(|p| p.0.clone()).collect::<Vec<f64>>(), 2, calib::ScoreKind::Logits)
            .unwrap();
    let y2: Vec<usize> = pairs.iter().map(|p| p.1).collect();
    let mut out = Vec::new();
    for m in ["nll", "vector", "dirichlet", "ets", "histogram:5", "isotonic", "bbq", "enir"] {
        let method: Method = m.parse().unwrap();
        let fitted = method.fit(&x, &labels[..n], &FitOptions::default()).unwrap();
        out.push(Saved::new(m, calib::ScoreKind::Logits, fitted).to_json().into_bytes());
    }
    for m in ["platt", "beta", "enir"] {
        let fitted = m.parse::<Method>().unwrap().fit(&x2, &y2, &FitOptions::default()).unwrap();
        out.push(Saved::new(m, calib::ScoreKind::Logits, fitted).to_json().into_bytes());
    }
    out
}

proptest! {
    #[test]
    fn npy_files(bytes in inputs(npy_samples())) {
        let (_dir, path) = file(&bytes, "x.npy");
        let _ = calib::npy::read_floats(&path, 2, "logits");
        let _ = calib::npy::read_labels(&path);
        let _ = calib::npy::read_u8(&path);
    }

    #[test]
    fn cifar_binary_batches(bytes in inputs(cifar_samples())) {
        let (_dir, path) = file(&bytes, "data_batch_1.bin");
        for layout in [calib_vision::cifar::Layout::Cifar10, calib_vision::cifar::Layout::Cifar100Fine] {
            let _ = calib_vision::cifar::read_binary(&[path.as_path()], layout);
        }
    }

    #[test]
    fn tar_gz_image_folders(bytes in inputs(tar_samples())) {
        let (_dir, path) = file(&bytes, "train.tar.gz");
        let _ = calib_vision::folder::read_tar_gz(&path);
    }

    #[test]
    fn ptb_trees(bytes in inputs(vec![lines("sst/trees/dev.txt", 3), b"(3 (2 a) (4 (1 b) (2 c)))\n".to_vec()])) {
        let _ = calib_text::sst::parse(&String::from_utf8_lossy(&bytes));
        let (_dir, path) = file(&bytes, "trees.txt");
        if let Ok(trees) = calib_text::sst::read_trees(&path) {
            let refs: Vec<&calib_text::sst::Tree> = trees.iter().collect();
            let _ = calib_text::sst::Levels::build(&refs, calib_text::sst::Labels::Binary, |_| 0);
            for t in &trees {
                prop_assert_eq!(calib_text::sst::parse(&t.to_string()).unwrap(), t.clone());
            }
        }
    }

    #[test]
    fn glove_rows(bytes in inputs(vec![lines("glove/glove.6B.50d.subset.txt", 4)])) {
        let (_dir, path) = file(&bytes, "glove.txt");
        let vocab = std::collections::HashMap::from([("the".to_string(), 1usize), (",".to_string(), 2)]);
        let _ = calib_text::glove::read(&path, &vocab, 3, &calib_text::glove::GloveOptions::default());
    }

    #[test]
    fn newsgroups_posts(bytes in inputs(vec![std::fs::read(data("20ng/20news-bydate-test/sci.space/61242")).unwrap()])) {
        let (_dir, path) = file(&bytes, "61242");
        let options = calib_text::newsgroups::ReadOptions::default().with_footers(true).with_quotes(true);
        let _ = calib_text::newsgroups::read_document(&path, &options);
    }

    #[test]
    fn wmt_sgml(bytes in inputs(vec![sgml_sample()])) {
        let (_dir, path) = file(&bytes, "newstest.sgm");
        let _ = calib_mt::corpus::read_sgml(&path);
    }

    #[test]
    fn sentencepiece_models(bytes in inputs(vec![
        std::fs::read(root().join("crates/calib-mt/tests/fixtures/spm-bpe.model")).unwrap(),
        std::fs::read(root().join("crates/calib-mt/tests/fixtures/spm-unigram.model")).unwrap(),
    ])) {
        let (_dir, path) = file(&bytes, "spm.model");
        let _ = calib_mt::spm::load(&path, "<pad>");
    }

    #[test]
    fn recipe_toml(bytes in inputs(recipes().into_iter().map(|(_, b)| b).collect())) {
        read_recipe(&String::from_utf8_lossy(&bytes), Path::new("fuzzed.toml"));
    }

    #[test]
    fn saved_calibrators(bytes in inputs(calibrator_samples())) {
        use calib::calibrators::{Predictions, Saved};
        if let Ok(saved) = Saved::from_json(&String::from_utf8_lossy(&bytes)) {
            let k = calib::calibrators::Calibrator::classes(&saved.fitted);
            let rows: Vec<f64> = (0..3 * k).map(|i| (i % 7) as f64 / 6.0).collect();
            let x = Predictions::new(rows, k, saved.input).unwrap();
            let q = saved.transform(&x).unwrap();
            prop_assert!(q.iter().all(|v| v.is_finite()));
        }
    }
}
