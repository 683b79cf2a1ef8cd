//! The table of bad inputs: every command, given a missing, damaged or nonsensical input or an
//! argument outside its domain, stops with one line on stderr naming the problem (and the file),
//! nothing on stdout, exit code 1 (a bad input) or 2 (a bad argument), and no file changed.

use calib::npy;
use calib_e2e::{cmd, data};
use std::collections::BTreeMap;
use std::path::Path;

/// Every file under `dir` and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The inputs the cases spoil, and a small trained SST run.
fn setup(d: &Path) {
    let f = |name: &str| d.join(name);
    npy::write(&f("l.npy"), &[3, 4], &[0.5f32, 1.0, -1.0, 2.0, 0.0, 0.1, 0.2, 0.3, 3.0, 1.0, 0.0, 0.0]).unwrap();
    npy::write(&f("l5.npy"), &[3, 5], &[0.1f32; 15]).unwrap();
    npy::write(&f("y.npy"), &[3], &[3i64, 2, 0]).unwrap();
    npy::write(&f("y5.npy"), &[5], &[0i64; 5]).unwrap();
    npy::write(&f("ybad.npy"), &[3], &[0i64, 9, 1]).unwrap();
    npy::write(&f("yign.npy"), &[3], &[-1i64; 3]).unwrap();
    npy::write(&f("yf.npy"), &[3], &[1.0f32; 3]).unwrap();
    npy::write(&f("p.npy"), &[3, 4], &[0.1f32, 0.1, 0.1, 0.2, 0.25, 0.25, 0.25, 0.25, 0.7, 0.1, 0.1, 0.1]).unwrap();
    npy::write(&f("nan.npy"), &[3, 4], &[0.5f32, f32::NAN, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]).unwrap();
    npy::write(&f("int.npy"), &[3, 4], &[1i64; 12]).unwrap();
    npy::write(&f("flat.npy"), &[12], &[0.5f32; 12]).unwrap();
    npy::write(&f("empty.npy"), &[0, 4], &[] as &[f32]).unwrap();
    let whole = std::fs::read(f("l.npy")).unwrap();
    std::fs::write(f("trunc.npy"), &whole[..whole.len() - 7]).unwrap();
    std::fs::write(f("text.npy"), b"hello, not numpy\n").unwrap();
    std::fs::write(f("hyp.txt"), "a cat sits\non the mat\n").unwrap();
    std::fs::write(f("blank.txt"), "\n  \n").unwrap();
    std::fs::write(f("ref3.txt"), "a cat sat\non the mat\nextra line\n").unwrap();
    std::fs::write(f("broken.toml"), "task = \"tree\"\n[train\nepochs = 1\n").unwrap();
    let sst = std::fs::read_to_string(calib_e2e::root().join("recipes/sst/tree-lstm.toml")).unwrap();
    std::fs::write(f("unknown-key.toml"), sst.replace("[model]\n", "[model]\nwidth = 3\n")).unwrap();
    std::fs::write(f("no-task.toml"), sst.replace("task = \"tree\"\n", "")).unwrap();
    std::fs::create_dir(f("foreign")).unwrap();
    std::fs::write(f("foreign/notes.txt"), "my notes\n").unwrap();
    std::fs::write(f("foreign/config.toml"), "theme = \"dark\"\n").unwrap();
    // A small real SST run: 100 dev sentences for validation and test, 5,000 GloVe rows.
    let head = |file: &str, n: usize, name: &str| {
        let text = std::fs::read_to_string(data(file)).unwrap();
        std::fs::write(f(name), text.lines().take(n).collect::<Vec<_>>().join("\n") + "\n").unwrap();
        f(name).display().to_string()
    };
    let dev = head("sst/trees/dev.txt", 100, "dev100.txt");
    let glove = head("glove/glove.6B.50d.subset.txt", 5000, "glove5k.txt");
    let run = f("run").display().to_string();
    let sets = [format!("data.valid=\"{dev}\""), format!("data.test=\"{dev}\""), format!("data.glove=\"{glove}\"")];
    let mut c = cmd(&["train", "--recipe", "recipes/sst/tree-lstm.toml", "--out", &run, "--epochs", "1"]);
    c.args(["--set", "train.max_batches=2", "--device", "cpu", "--quiet"]);
    for s in &sets {
        c.args(["--set", s]);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A copy whose log is damaged.
    std::fs::create_dir(f("damaged")).unwrap();
    for e in std::fs::read_dir(f("run")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, f("damaged").join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(f("damaged/metrics.jsonl"), "{\"epoch\": 1, \"lr\":\n").unwrap();
}

/// `(arguments with {d} for the folder, what the message holds, exit code)`.
const CASES: &[(&str, &[&str], i32)] = &[
    // metrics
    ("metrics --logits {d}/nope.npy --labels {d}/y.npy", &["nope.npy"], 1),
    ("metrics --logits {d}/trunc.npy --labels {d}/y.npy", &["trunc.npy"], 1),
    ("metrics --logits {d}/text.npy --labels {d}/y.npy", &["text.npy"], 1),
    ("metrics --logits {d}/int.npy --labels {d}/y.npy", &["int.npy", "float32 or float64"], 1),
    ("metrics --logits {d}/l.npy --labels {d}/yf.npy", &["yf.npy", "int32, int64 or uint8"], 1),
    ("metrics --logits {d}/flat.npy --labels {d}/y.npy", &["flat.npy"], 1),
    ("metrics --logits {d}/l.npy --labels {d}/y5.npy", &["y5.npy"], 1),
    ("metrics --logits {d}/l.npy --labels {d}/ybad.npy", &["label 9"], 1),
    ("metrics --logits {d}/nan.npy --labels {d}/y.npy", &["nan.npy", "row 0, column 1"], 1),
    ("metrics --logits {d}/p.npy --labels {d}/y.npy --probs", &["row 0", "sum to 0.5"], 1),
    ("metrics --logits {d}/l.npy --labels {d}/y.npy --probs", &["outside [0, 1]"], 1),
    ("metrics --logits {d}/empty.npy --labels {d}/y.npy", &["empty.npy"], 1),
    ("metrics --logits {d}/l.npy --labels {d}/y.npy --bins 0", &["--bins", "0 is outside 1–100000"], 2),
    ("metrics --logits {d}/l.npy --labels {d}/y.npy --bins 1000000000", &["--bins", "outside 1–100000"], 2),
    ("metrics --logits {d}/l.npy --labels {d}/y.npy --bins many", &["--bins", "not a whole number"], 2),
    ("metrics --logits {d}/l.npy --labels {d}/y.npy --mode odd", &["odd"], 1),
    ("metrics --logits {d}/l.npy --labels {d}/y.npy --temperature 0", &["--temperature", "must be above 0"], 2),
    ("metrics --logits {d}/l.npy --labels {d}/y.npy --temperature nan", &["--temperature", "not a finite number"], 2),
    ("metrics --logits {d}/l.npy --labels {d}/y.npy --bootstrap 1000001", &["--bootstrap", "outside"], 2),
    ("metrics --logits {d}/l.npy --labels {d}/y.npy --bootstrap 10 --level 1.5", &["--level", "between 0 and 1"], 2),
    ("metrics --logits {d}/l.npy --labels {d}/y.npy --precision f16", &["--precision"], 2),
    ("metrics --logits {d}/l.npy", &["--labels"], 2),
    // calibrate, ood, gamma, report
    ("calibrate --val-logits {d}/l.npy --val-labels {d}/y.npy --method lbfgs", &["lbfgs"], 1),
    ("calibrate --val-logits {d}/nan.npy --val-labels {d}/y.npy", &["nan.npy"], 1),
    ("calibrate --val-logits {d}/l.npy --val-labels {d}/y.npy --method platt", &["platt", "K = 2", "4 classes"], 1),
    ("calibrate --val-logits {d}/l.npy --val-labels {d}/y.npy --method dirichlet:x", &["dirichlet:x"], 1),
    ("calibrate --val-logits {d}/l.npy --val-labels {d}/y.npy --method all --save {d}/c.json", &["--save"], 1),
    ("apply --calibrator {d}/nope.json --logits {d}/l.npy --out {d}/p2.npy", &["nope.json"], 1),
    ("apply --calibrator {d}/hyp.txt --logits {d}/l.npy --out {d}/p2.npy", &["hyp.txt", "calibrator"], 1),
    ("calibrate --val-logits {d}/l.npy --val-labels {d}/y.npy --logits {d}/l5.npy --labels {d}/y.npy", &["l5.npy"], 1),
    ("ood --in-logits {d}/nope.npy --out-logits {d}/l.npy", &["nope.npy"], 1),
    ("ood --in-logits {d}/l.npy --out-logits {d}/l5.npy", &["l5.npy"], 1),
    ("ood --in-logits {d}/l.npy --out-logits {d}/l.npy --temperature -1", &["--temperature", "-1 must be above 0"], 2),
    ("gamma --p0 1.5", &["--p0", "between 0 and 1"], 2),
    ("gamma --gammas 1,nan", &["--gammas", "not a finite number"], 2),
    ("gamma --gammas -1", &["--gammas", "at least 0"], 2),
    ("report --predictions {d}/nowhere --out {d}/rep", &["nowhere"], 1),
    ("report --predictions {d}/run --out {d}/rep --bins 0", &["--bins"], 2),
    // bleu, tokenizer
    ("bleu --ref {d}/ref3.txt --hyp {d}/hyp.txt", &["ref3.txt"], 1),
    ("bleu --ref {d}/nope.txt --hyp {d}/hyp.txt", &["nope.txt"], 1),
    ("bleu --ref {d}/hyp.txt --hyp {d}/hyp.txt --tokenize klingon", &["klingon"], 1),
    ("bleu --ref {d}/hyp.txt --hyp {d}/hyp.txt --smooth-value nan", &["--smooth-value", "not a finite number"], 2),
    ("tokenizer train --input {d}/nope.txt --vocab 100 --out {d}/tok.json", &["nope.txt"], 1),
    ("tokenizer train --input {d}/hyp.txt --vocab 0 --out {d}/tok.json", &["--vocab", "outside"], 2),
    ("tokenizer train --input {d}/blank.txt --vocab 100 --out {d}/tok.json", &["blank.txt", "no training text"], 1),
    ("tokenizer train --input {d}/hyp.txt --vocab 99999999999 --out {d}/tok.json", &["--vocab", "outside"], 2),
    // loss (libtorch)
    ("loss --logits {d}/l.npy --labels {d}/y.npy --loss focal:-1", &["focal"], 1),
    ("loss --logits {d}/l.npy --labels {d}/y.npy --loss mmce:-1", &["MMCE λ = -1 must be ≥ 0"], 1),
    ("loss --logits {d}/l.npy --labels {d}/y.npy --loss ls:2", &["must lie in [0, 1]"], 1),
    ("loss --logits {d}/l.npy --labels {d}/y.npy --loss hinge", &["hinge"], 1),
    ("loss --logits {d}/l.npy --labels {d}/y.npy --loss ce --reduction median", &["median"], 1),
    ("loss --logits {d}/empty.npy --labels {d}/y.npy --loss ce", &["empty.npy"], 1),
    (
        "loss --logits {d}/l.npy --labels {d}/yign.npy --loss ce --reduction mean --ignore-index -1",
        &["every label is the ignore index -1"],
        1,
    ),
    ("loss --logits {d}/nan.npy --labels {d}/y.npy --loss ce", &["nan.npy", "not finite"], 1),
    ("loss --logits {d}/l.npy --labels {d}/ybad.npy --loss ce", &["label 9"], 1),
    // train
    ("train --recipe {d}/nope.toml --out {d}/t1", &["nope.toml"], 1),
    ("train --recipe {d}/broken.toml --out {d}/t1", &["broken.toml"], 1),
    ("train --recipe {d}/unknown-key.toml --out {d}/t1", &["width"], 1),
    ("train --recipe {d}/no-task.toml --out {d}/t1", &["no `task` key"], 1),
    ("train --recipe recipes/sst/tree-lstm.toml --loss hinge --out {d}/t1", &["hinge"], 1),
    ("train --recipe recipes/sst/tree-lstm.toml --epochs 0 --out {d}/t1", &["--epochs", "outside"], 2),
    ("train --recipe recipes/sst/tree-lstm.toml --batch-size 0 --out {d}/t1", &["--batch-size", "outside"], 2),
    ("train --recipe recipes/sst/tree-lstm.toml --set train.optimizer.kind=\"lbfgs\" --out {d}/t1", &["lbfgs"], 1),
    ("train --recipe recipes/sst/tree-lstm.toml --set model.dropout=1.5 --out {d}/t1", &["model.dropout 1.5"], 1),
    (
        "train --recipe recipes/sst/tree-lstm.toml --set train.epochs=\"abc\" --out {d}/t1",
        &["tree-lstm.toml: train.epochs: invalid type", "(from --set train.epochs=\"abc\")"],
        1,
    ),
    (
        "train --recipe recipes/sst/tree-lstm.toml --set train.groups=[{prefix=\"emb\",lr_scale=-1.0}] --out {d}/t1",
        &["lr_scale -1 must be positive"],
        1,
    ),
    ("train --recipe recipes/sst/tree-lstm.toml --data {d}/nodata --out {d}/t1", &["nodata"], 1),
    (
        "train --recipe recipes/sst/tree-lstm.toml --set data.glove=\"{d}/hyp.txt\" --out {d}/t1 --quiet",
        &["hyp.txt", "line 1"],
        1,
    ),
    ("train --recipe recipes/sst/tree-lstm.toml --out {d}/foreign", &["not a calib run", "config.toml, notes.txt"], 1),
    ("train --recipe recipes/sst/tree-lstm.toml --out {d}/run", &["already holds a run"], 1),
    ("train --resume --out {d}/nowhere", &["nowhere"], 1),
    (
        "train --resume --out {d}/run --set model.memory=10 --quiet",
        &["last.safetensors", "b_iou has shape [1, 450], the model [1, 30]"],
        1,
    ),
    ("train --resume --out {d}/damaged --set model.memory=10 --quiet", &["damaged"], 1),
    // eval, decode, average, bench
    ("eval --run {d}/nowhere", &["nowhere"], 1),
    ("eval --run {d}/damaged", &["metrics.jsonl", "line 1"], 1),
    ("eval --run {d}/run --checkpoint {d}/nope.safetensors", &["nope.safetensors"], 1),
    ("eval --run {d}/run --bootstrap 10000000", &["--bootstrap", "outside"], 2),
    ("eval --run {d}/run --ood x={d}/l.npy", &["--ood applies to image runs"], 1),
    ("decode --run {d}/run", &["run"], 1),
    ("decode --run {d}/run --buffer 1000000000000000000", &["--buffer", "outside 1–1000000"], 2),
    ("decode --run {d}/run --beam 0", &["--beam", "outside"], 2),
    ("decode --run {d}/run --lenpen nan", &["--lenpen", "not a finite number"], 2),
    ("decode --run {d}/run --max-len-a -1", &["--max-len-a", "at least 0"], 2),
    ("average-checkpoints --input {d}/run/last.safetensors --input {d}/l.npy --out {d}/avg.safetensors", &["l.npy"], 1),
    ("average-checkpoints --run {d}/run --last 2", &["fewer than --last 2"], 1),
    ("average-checkpoints --input {d}/run/last.safetensors", &["--out"], 1),
    ("bench metrics --n 100000000 --classes 100000 --file {d}/bench.npy", &["10^9"], 1),
    ("bench text --recipe recipes/quickstart/small-cnn.toml", &["text or tree recipe"], 1),
];

#[test]
fn every_bad_input_is_one_line_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d);
    let before = snapshot(d);
    assert!(CASES.len() >= 60, "{} cases", CASES.len());
    let mut failures = Vec::new();
    for &(line, expect, code) in CASES {
        let args: Vec<String> = line.split(' ').map(|a| a.replace("{d}", d.to_str().unwrap())).collect();
        let o = cmd(&args.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        let mut problems = Vec::new();
        if o.status.code() != Some(code) {
            problems.push(format!("exit {:?}, expected {code}", o.status.code()));
        }
        if stderr.trim_end().lines().count() != 1 {
            problems.push("not one line".to_string());
        }
        if !stdout.is_empty() {
            problems.push(format!("stdout: {stdout}"));
        }
        for e in expect {
            if !stderr.contains(e) {
                problems.push(format!("'{e}' missing"));
            }
        }
        if snapshot(d) != before {
            problems.push("files changed".to_string());
        }
        if !problems.is_empty() {
            failures.push(format!("calib {line}: {} — stderr: {}", problems.join("; "), stderr.trim_end()));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}
