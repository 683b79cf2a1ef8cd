//! The readers on the real files in ../shared/data.

use calib_vision::cifar::{self, Layout, CIFAR10_CLASSES};
use calib_vision::folder::{read_folder, read_tar_gz};
use std::path::{Path, PathBuf};

fn shared(rel: &str) -> PathBuf {
    calib_fixtures::data(rel)
}

#[test]
fn cifar10_test_folder() {
    let t = read_folder(&shared("cifar10/test")).unwrap();
    assert_eq!((t.len(), t.height, t.width), (10_000, 32, 32));
    assert_eq!(t.classes, CIFAR10_CLASSES.map(String::from));
    for c in 0..10 {
        assert_eq!(t.labels[c * 1000..(c + 1) * 1000], vec![c as i64; 1000][..]);
    }
}

/// The 20 lossless PNGs (cifar10_NN_L.png: index NN in the official test batch, label L) against
/// their JPEG twins: the k-th image of class L in test-batch order is test/<class>/k.jpg.
#[test]
fn lossless_pngs_match_their_jpeg_twins() {
    let pngs = read_folder_flat(&shared("cifar10/lossless_check"));
    assert_eq!(pngs.len(), 20);
    let mut seen = [0usize; 10];
    for (nn, label, png) in pngs {
        let k = seen[label];
        seen[label] += 1;
        let jpg_path = shared(&format!("cifar10/test/{}/{k:04}.jpg", CIFAR10_CLASSES[label]));
        let jpg = image::open(&jpg_path).unwrap().to_rgb8();
        let err: Vec<f64> = png.as_raw().iter().zip(jpg.as_raw()).map(|(&a, &b)| (a as f64 - b as f64).abs()).collect();
        let mean = err.iter().sum::<f64>() / err.len() as f64;
        let mse = err.iter().map(|e| e * e).sum::<f64>() / err.len() as f64;
        let psnr = 10.0 * (255.0f64 * 255.0 / mse).log10();
        assert!(
            mean < 12.0 && psnr > 24.0,
            "image {nn}: mean |err| {mean:.1}, PSNR {psnr:.1} dB vs {}",
            jpg_path.display()
        );
    }
}

/// (index, label, image) of `cifar10_NN_L.png` files, by index.
fn read_folder_flat(dir: &Path) -> Vec<(usize, usize, image::RgbImage)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            let parts: Vec<&str> = stem.split('_').collect();
            (parts[1].parse().unwrap(), parts[2].parse().unwrap(), image::open(&p).unwrap().to_rgb8())
        })
        .collect();
    out.sort_by_key(|x| x.0);
    out
}

#[test]
fn train_tar_gz_holds_all_50000_and_agrees_with_the_unpacked_subset() {
    let all = read_tar_gz(&shared("cifar10/train.tar.gz")).unwrap();
    assert_eq!(all.len(), 50_000);
    assert_eq!(all.classes, CIFAR10_CLASSES.map(String::from));
    let subset = read_folder(&shared("cifar10/train_subset")).unwrap();
    // train_subset/<class>/k.jpg is the archive's train/<class>/k.jpg for k < 1000.
    for (c, i) in [(0usize, 0usize), (3, 417), (9, 999)] {
        assert_eq!(subset.image(c * 1000 + i), all.image(c * 5000 + i), "class {c} image {i}");
    }
}

#[test]
fn binary_round_trip_and_cifar100_layout() {
    let t = read_folder(&shared("cifar10/test")).unwrap().select(&[0, 1500, 9999]);
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("test_batch.bin");
    std::fs::write(&bin, cifar::to_binary(&t).unwrap()).unwrap();
    let back = cifar::read_binary(&[&bin], Layout::Cifar10).unwrap();
    assert_eq!(back.pixels, t.pixels);
    assert_eq!(back.labels, vec![0, 1, 9]);
    // CIFAR-100 records: coarse label, fine label, pixels.
    let mut rec = vec![7u8, 42u8];
    rec.extend(vec![5u8; 3072]);
    let p100 = dir.path().join("train.bin");
    std::fs::write(&p100, &rec).unwrap();
    assert_eq!(cifar::read_binary(&[&p100], Layout::Cifar100Fine).unwrap().labels, vec![42]);
    assert_eq!(cifar::read_binary(&[&p100], Layout::Cifar100Coarse).unwrap().labels, vec![7]);
}

#[test]
fn bad_input_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // Truncated binary batch.
    let bin = dir.path().join("data_batch_1.bin");
    std::fs::write(&bin, vec![0u8; 3073 * 2 + 100]).unwrap();
    let e = cifar::read_binary(&[&bin], Layout::Cifar10).unwrap_err().to_string();
    assert!(e.contains("data_batch_1.bin") && e.contains("truncated"), "{e}");
    // A folder that does not exist.
    let e = read_folder(&dir.path().join("nope")).unwrap_err().to_string();
    assert!(e.contains("nope") && e.contains("cannot read"), "{e}");
    // An empty class folder.
    std::fs::create_dir_all(dir.path().join("set/cat")).unwrap();
    std::fs::create_dir_all(dir.path().join("set/dog")).unwrap();
    std::fs::copy(shared("cifar10/test/dog/0000.jpg"), dir.path().join("set/dog/0.jpg")).unwrap();
    let e = read_folder(&dir.path().join("set")).unwrap_err().to_string();
    assert!(e.contains("cat") && e.contains("no .jpg/.png"), "{e}");
    // An image of the wrong size.
    std::fs::copy(shared("cifar10/test/cat/0000.jpg"), dir.path().join("set/cat/0.jpg")).unwrap();
    image::RgbImage::new(30, 32).save(dir.path().join("set/cat/1.png")).unwrap();
    let e = read_folder(&dir.path().join("set")).unwrap_err().to_string();
    assert!(e.contains("1.png") && e.contains("30×32"), "{e}");
    // A corrupt JPEG.
    std::fs::write(dir.path().join("set/cat/1.png"), b"not an image").unwrap();
    let e = read_folder(&dir.path().join("set")).unwrap_err().to_string();
    assert!(e.contains("1.png") && e.contains("cannot decode"), "{e}");
}

#[test]
fn tiny_imagenet_val_and_train_subset() {
    use calib_vision::tiny;
    let root = shared("tinyimagenet/tiny-imagenet-200");
    let val = tiny::read_val(&root).unwrap();
    assert_eq!((val.len(), val.height, val.width, val.classes.len()), (10_000, 64, 64, 200));
    // Official label order: sorted wnids; every class has 50 validation images.
    assert_eq!(val.classes[0], "n01443537");
    assert!((0..200).all(|c| val.labels.iter().filter(|&&l| l == c).count() == 50));
    // val_0.JPEG is annotated n03444034 (a greyscale-safe decode to RGB).
    assert_eq!(val.labels[0] as usize, val.classes.binary_search(&"n03444034".to_string()).unwrap());
    let train = tiny::read_train(&root, &root.join("train_subset")).unwrap();
    assert_eq!(train.len(), 10_000);
    assert_eq!(train.labels[..50], vec![0; 50][..]);
    // Bad annotation line.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wnids.txt"), "n1\nn2\n").unwrap();
    std::fs::create_dir_all(dir.path().join("val")).unwrap();
    std::fs::write(dir.path().join("val/val_annotations.txt"), "a.JPEG\tn3\t0\t0\t1\t1\n").unwrap();
    let e = tiny::read_val(dir.path()).unwrap_err().to_string();
    assert!(e.contains("val_annotations.txt") && e.contains("line 1") && e.contains("n3"), "{e}");
}

/// Gaussian-noise CIFAR-10-C regenerated from the real test images: the noise has the published σ
/// (less where clipping bites), the files have the published layout, and reading a severity back
/// returns exactly what was written.
#[test]
fn cifar10c_gaussian_noise_round_trip() {
    use calib_vision::corrupt;
    let test = read_folder(&shared("cifar10/test")).unwrap().select(&(0..10_000).step_by(50).collect::<Vec<_>>());
    let by_severity: Vec<_> = (1..=5).map(|s| corrupt::gaussian_noise(&test, s, 0).unwrap()).collect();
    for (s, noisy) in by_severity.iter().enumerate() {
        let diffs: Vec<f64> = test
            .pixels
            .iter()
            .zip(&noisy.pixels)
            .filter(|(&a, _)| a > 60 && a < 195)
            .map(|(&a, &b)| b as f64 - a as f64)
            .collect();
        let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
        let sd = (diffs.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / diffs.len() as f64).sqrt();
        let sigma = 255.0 * corrupt::GAUSSIAN_NOISE_SIGMA[s];
        // Truncation to uint8 lowers the mean by about half a level.
        assert!((mean + 0.5).abs() < 0.3, "severity {}: mean shift {mean}", s + 1);
        assert!((sd - sigma).abs() < 0.05 * sigma, "severity {}: sd {sd} vs {sigma}", s + 1);
    }
    assert!(corrupt::gaussian_noise(&test, 6, 0).is_err());
    let dir = tempfile::tempdir().unwrap();
    corrupt::write(dir.path(), "gaussian_noise", &by_severity).unwrap();
    let back = corrupt::read(&dir.path().join("gaussian_noise.npy"), 5, test.classes.clone()).unwrap();
    assert_eq!(back.pixels, by_severity[4].pixels);
    assert_eq!(back.labels, test.labels);
}

/// SVHN's MAT-file layout (the real test_32x32.mat is not obtainable here): fixtures written by
/// scipy.io.savemat with SVHN's variables, uncompressed (uint8 y) and compressed (double y).
#[test]
fn svhn_mat_files() {
    use calib_vision::svhn;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let a = svhn::read_mat(&fixtures.join("svhn_like.mat")).unwrap();
    let b = svhn::read_mat(&fixtures.join("svhn_like_compressed.mat")).unwrap();
    assert_eq!(a, b);
    assert_eq!((a.len(), a.height, a.width), (4, 32, 32));
    assert_eq!(a.labels, vec![0, 1, 9, 0]);
    // X[0, 1, 2, 3] = 7 (row 0, column 1, blue, image 3) and X[5, 0, 0, 0] = 200.
    let at = |img: &[u8], row: usize, col: usize, ch: usize| img[(row * 32 + col) * 3 + ch];
    assert_eq!(at(a.image(3), 0, 1, 2), 7);
    assert_eq!(at(a.image(0), 5, 0, 0), 200);
    assert_eq!(a.image(1).iter().map(|&v| v as u64).sum::<u64>(), 385_454);
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("test_32x32.mat");
    std::fs::write(&cut, &std::fs::read(fixtures.join("svhn_like.mat")).unwrap()[..5000]).unwrap();
    let e = svhn::read_mat(&cut).unwrap_err().to_string();
    assert!(e.contains("test_32x32.mat") && e.contains("truncated"), "{e}");
}

/// The first `n` members of the real training archive as a new `.tar.gz`; with `end`, closed by
/// the end-of-archive blocks, else cut off after the last member as a truncated copy would be.
fn first_members(n: usize, end: bool, out: &Path) {
    use std::io::Read;
    let file = std::fs::File::open(shared("cifar10/train.tar.gz")).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut builder = tar::Builder::new(Vec::new());
    for entry in archive.entries().unwrap().take(n) {
        let mut entry = entry.unwrap();
        let (mut header, mut data) = (entry.header().clone(), Vec::new());
        entry.read_to_end(&mut data).unwrap();
        builder.append_data(&mut header, entry.path().unwrap(), data.as_slice()).unwrap();
    }
    let tar = if end { builder.into_inner().unwrap() } else { builder.get_ref().clone() };
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(out).unwrap(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap();
}

/// A tar stream that stops after 1,000 of 1,500 members without its end-of-archive blocks is
/// truncated: an error naming the archive and the last member read, not 1,000 images.
#[test]
fn a_tar_without_its_end_marker_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, cut) = (dir.path().join("whole.tar.gz"), dir.path().join("cut.tar.gz"));
    first_members(1500, true, &whole);
    first_members(1000, false, &cut);
    let images = read_tar_gz(&whole).unwrap();
    assert!(images.len() > 1000 && images.len() <= 1500, "{}", images.len());
    let e = read_tar_gz(&cut).unwrap_err().to_string();
    assert!(e.starts_with(&cut.display().to_string()), "{e}");
    assert!(e.contains("truncated archive") && e.contains("after 1000 members"), "{e}");
    let last = {
        let file = std::fs::File::open(shared("cifar10/train.tar.gz")).unwrap();
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let name = a.entries().unwrap().nth(999).unwrap().unwrap().path().unwrap().display().to_string();
        name
    };
    assert!(e.contains(&format!("the last read: {last}")), "{e}");
}
