#!/usr/bin/env python3
"""Compare the `calib` CLI's calibration metrics with Python baselines: speed and values.

    bash benches/setup-python.sh          # once: .deps/bench-venv with numpy, torch, torchmetrics
    .deps/bench-venv/bin/python benches/compare_metrics.py --calib target/release/calib \
        [--n 1000000] [--classes 100] [--seed 0] [--file PATH] [--skip-official] [--json OUT]

Implementations timed (each as load-from-disk + compute, best of --repeat runs after --warmup
warm-up runs; the warm-up leaves the .npy files in the page cache, so no cold-disk I/O is timed):
  a) numpy:        a plain vectorised numpy version of the whole suite in float64
                   (softmax, ECE, AdaECE, classwise ECE, MCE, NLL);
  b) official:     the algorithms of torrvision/focal_calibration Metrics/metrics.py (ECELoss,
                   AdaptiveECELoss, ClasswiseECELoss; re-implemented, same operations), torch on
                   CPU in float32, plus NLL with nn.CrossEntropyLoss; each metric timed separately;
  c) torchmetrics: multiclass_calibration_error(n_bins=15, norm='l1') on the logits (ECE only);
  d) calib:        `calib metrics --logits L --labels Y --format json` (full suite) and the same
                   with `--only ece`, timed as whole processes (wall clock, process start-up included;
                   the Python rows are timed in-process, without interpreter/import start-up);
  and a 'one pass' reference: np.load + one float32 softmax in numpy (single-threaded), the work
  any ECE has to do at least (torch's softmax uses all cores, so it can beat this row).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
N_BINS = 15
# Values of two implementations count as agreeing within this (float32 vs float64 differences
# are ~1e-6).
TOLERANCE = 1e-4


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

def labels_path_for(logits_path: Path) -> Path:
    name = logits_path.name
    if name.endswith(".logits.npy"):
        return logits_path.with_name(name[: -len(".logits.npy")] + ".labels.npy")
    stem = name[:-4] if name.endswith(".npy") else name
    return logits_path.with_name(stem + ".labels.npy")


def make_data(n: int, k: int, seed: int, logits_path: Path, labels_path: Path) -> None:
    """float32 logits ~ N(0,1)*2, with the label's logit raised by 4 in 85% of rows (an
    over-confident classifier), and int64 labels uniform over the k classes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=n, dtype=np.int64)
    boosted = np.flatnonzero(rng.random(n) < 0.85)
    logits = rng.standard_normal((n, k), dtype=np.float32)
    logits *= 2
    logits[boosted, labels[boosted]] += 4
    logits_path.parent.mkdir(parents=True, exist_ok=True)
    for path, arr in ((logits_path, logits), (labels_path, labels)):
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, arr)
        os.replace(tmp, path)


def prepare_data(args) -> tuple[Path, Path, int, int]:
    if args.file:
        logits_path = Path(args.file)
    else:
        logits_path = REPO / ".deps" / "bench-data" / f"n{args.n}_k{args.classes}_seed{args.seed}.logits.npy"
    labels_path = Path(args.labels_file) if args.labels_file else labels_path_for(logits_path)
    if logits_path.exists() and labels_path.exists():
        lg = np.load(logits_path, mmap_mode="r")
        lb = np.load(labels_path, mmap_mode="r")
        if lg.ndim != 2 or lb.shape != (lg.shape[0],):
            sys.exit(f"error: {logits_path} {lg.shape} and {labels_path} {lb.shape} do not match")
        n, k = lg.shape
        print(f"reusing {logits_path} ({lg.dtype}, {n}x{k}) and {labels_path}", file=sys.stderr)
        del lg, lb
    else:
        n, k = args.n, args.classes
        print(f"writing {n}x{k} float32 logits to {logits_path} "
              f"({n * k * 4 / 1e6:.0f} MB) and labels to {labels_path}", file=sys.stderr)
        t0 = time.perf_counter()
        make_data(n, k, args.seed, logits_path, labels_path)
        print(f"  done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return logits_path, labels_path, n, k


# --------------------------------------------------------------------------------------------
# Timing helpers
# --------------------------------------------------------------------------------------------

class Laps:
    """Named stage times of one run; 'total' is added by `done`."""

    def __init__(self):
        self.t0 = self.last = time.perf_counter()
        self.stages: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = self.stages.get(name, 0.0) + (now - self.last)
        self.last = now

    def done(self) -> dict[str, float]:
        self.stages["total"] = time.perf_counter() - self.t0
        return self.stages


def bench(name: str, fn, warmup: int, repeat: int):
    """Runs fn() warmup + repeat times; fn returns (values, stage times). Returns the values of
    the last run and the stage times of the timed runs."""
    runs, values = [], None
    for i in range(warmup + repeat):
        gc.collect()
        values, stages = fn()
        tag = "warm-up" if i < warmup else f"run {i - warmup + 1}/{repeat}"
        print(f"  {name} {tag}: {stages['total']:.3f} s", file=sys.stderr)
        if i >= warmup:
            runs.append(stages)
    gc.collect()
    return values, runs


def best(runs: list[dict[str, float]], *stages: str) -> float:
    """Best (minimum over runs) of the sum of the given stages within each run."""
    return min(sum(r[s] for s in stages) for r in runs)


# --------------------------------------------------------------------------------------------
# a) numpy, float64
# --------------------------------------------------------------------------------------------

def np_binned(conf, acc, edges, n):
    """(lo, hi] bins over `edges`: ECE (sum of |acc - conf| * share) and MCE (max gap over
    non-empty bins). Samples outside every bin (conf <= edges[0]) count in n only."""
    nb = len(edges) - 1
    b = np.searchsorted(edges, conf, side="left") - 1  # edges[b] < conf <= edges[b+1]
    keep = (b >= 0) & (b < nb)
    b = b[keep]
    count = np.bincount(b, minlength=nb)
    sum_conf = np.bincount(b, weights=conf[keep], minlength=nb)
    sum_acc = np.bincount(b, weights=acc[keep], minlength=nb)
    gap = np.abs(sum_acc - sum_conf)
    ece = gap.sum() / n
    nonempty = count > 0
    mce = (gap[nonempty] / count[nonempty]).max() if nonempty.any() else 0.0
    return float(ece), float(mce)


def np_classwise(p, labels, edges, chunk=1 << 15):
    """Mean over classes of the ECE of each class's probability column against (label == class),
    with the same (lo, hi] bins; rows processed in chunks to bound the temporaries."""
    n, k = p.shape
    nb = len(edges) - 1
    count = np.zeros(k * nb)
    sum_conf = np.zeros(k * nb)
    sum_hit = np.zeros(k * nb)
    offsets = np.arange(k) * nb
    for s in range(0, n, chunk):
        pc = p[s:s + chunk]
        yc = labels[s:s + chunk]
        b = np.searchsorted(edges, pc, side="left") - 1
        keep = (b >= 0) & (b < nb)
        key = (b + offsets)[keep]
        count += np.bincount(key, minlength=k * nb)
        sum_conf += np.bincount(key, weights=pc[keep], minlength=k * nb)
        by = b[np.arange(len(yc)), yc]
        ok = (by >= 0) & (by < nb)
        sum_hit += np.bincount(yc[ok] * nb + by[ok], minlength=k * nb)
    per_class = np.abs(sum_hit - sum_conf).reshape(k, nb).sum(axis=1) / n
    return float(per_class.mean())


def run_numpy(logits_path, labels_path):
    t = Laps()
    logits = np.load(logits_path)
    labels = np.load(labels_path)
    t.lap("load")
    n = logits.shape[0]
    rows = np.arange(n)
    x = logits.astype(np.float64)
    del logits
    x -= x.max(axis=1, keepdims=True)
    shifted_label_logit = x[rows, labels]
    np.exp(x, out=x)
    z = x.sum(axis=1)
    x /= z[:, None]
    p = x
    nll = float(np.mean(np.log(z) - shifted_label_logit))
    t.lap("softmax+nll")
    pred = p.argmax(axis=1)
    conf = p[rows, pred]
    acc = (pred == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, N_BINS + 1)
    ece, mce = np_binned(conf, acc, edges, n)
    t.lap("ece+mce")
    # The official AdaECE edges: interpolated over a grid that runs to n (not n-1).
    ada_edges = np.interp(np.linspace(0, n, N_BINS + 1), np.arange(n), np.sort(conf))
    adaece, _ = np_binned(conf, acc, ada_edges, n)
    t.lap("adaece")
    classwise = np_classwise(p, labels, edges)
    t.lap("classwise")
    del p, x
    values = dict(ece=ece, adaece=adaece, classwise_ece=classwise, mce=mce, nll=nll,
                  error=float(1.0 - acc.mean()))
    return values, t.done()


def masked_ece(conf, hits, edges):
    """ECE the straightforward way: one boolean mask per (lo, hi] bin, its share, and the gap."""
    total, worst = 0.0, 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        share = m.mean()
        if share > 0:
            gap = abs(conf[m].mean() - hits[m].mean())
            total += gap * share
            worst = max(worst, gap)
    return total, worst


def run_numpy_masks(logits_path, labels_path):
    """The same suite as run_numpy, written as most users would: the official code's structure
    (a mask per bin, and per class and bin for classwise-ECE) in vectorised numpy, float64."""
    t = Laps()
    logits = np.load(logits_path)
    labels = np.load(labels_path)
    t.lap("load")
    n, k = logits.shape
    x = logits.astype(np.float64)
    x -= x.max(axis=1, keepdims=True)
    p = np.exp(x)
    p /= p.sum(axis=1, keepdims=True)
    nll = float(-np.mean(np.log(p[np.arange(n), labels])))
    t.lap("softmax+nll")
    pred = p.argmax(axis=1)
    conf = p.max(axis=1)
    hits = (pred == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, N_BINS + 1)
    ece, mce = masked_ece(conf, hits, edges)
    t.lap("ece+mce")
    ada_edges = np.interp(np.linspace(0, n, N_BINS + 1), np.arange(n), np.sort(conf))
    adaece, _ = masked_ece(conf, hits, ada_edges)
    t.lap("adaece")
    classwise = float(np.mean([masked_ece(p[:, c], (labels == c).astype(np.float64), edges)[0] for c in range(k)]))
    t.lap("classwise")
    values = dict(ece=ece, adaece=adaece, classwise_ece=classwise, mce=mce, nll=nll, error=float(1.0 - hits.mean()))
    return values, t.done()


# --------------------------------------------------------------------------------------------
# b) the official focal_calibration metrics (torch, float32, CPU)
# --------------------------------------------------------------------------------------------

def official_gap_sum(torch, confidences, hits, lowers, uppers):
    """The official bin loop: one boolean mask per bin, a share, and the gap when non-empty."""
    total = torch.zeros(1)
    for lo, hi in zip(lowers, uppers):
        in_bin = confidences.gt(lo.item()) * confidences.le(hi.item())
        share = in_bin.float().mean()
        if share.item() > 0:
            hit_rate = hits[in_bin].float().mean()
            mean_conf = confidences[in_bin].mean()
            total += torch.abs(mean_conf - hit_rate) * share
    return total


def official_ece(torch, F, logits, labels):
    edges = torch.linspace(0, 1, N_BINS + 1)
    probs = F.softmax(logits, dim=1)
    confidences, predictions = torch.max(probs, 1)
    hits = predictions.eq(labels)
    return official_gap_sum(torch, confidences, hits, edges[:-1], edges[1:]).item()


def official_adaece(torch, F, logits, labels):
    probs = F.softmax(logits, dim=1)
    confidences, predictions = torch.max(probs, 1)
    hits = predictions.eq(labels)
    conf_np = confidences.cpu().detach().numpy()
    npt = len(conf_np)
    edges = np.interp(np.linspace(0, npt, N_BINS + 1), np.arange(npt), np.sort(conf_np))
    # The official code passes the edges through np.histogram and keeps only the edges it
    # returns (the counts are unused); kept here so the timing covers the same work.
    _, edges = np.histogram(conf_np, edges)
    return official_gap_sum(torch, confidences, hits, edges[:-1], edges[1:]).item()


def official_classwise(torch, F, logits, labels):
    edges = torch.linspace(0, 1, N_BINS + 1)
    num_classes = int((torch.max(labels) + 1).item())
    probs = F.softmax(logits, dim=1)
    per_class = []
    for c in range(num_classes):
        column = probs[:, c]
        is_c = labels.eq(c)
        per_class.append(official_gap_sum(torch, column, is_c, edges[:-1], edges[1:]))
    return torch.mean(torch.cat(per_class, dim=0)).item()


def run_official(torch, F, nn, logits_path, labels_path):
    t = Laps()
    logits = torch.from_numpy(np.load(logits_path))
    labels = torch.from_numpy(np.load(labels_path))
    t.lap("load")
    with torch.no_grad():
        ece = official_ece(torch, F, logits, labels)
        t.lap("ece")
        adaece = official_adaece(torch, F, logits, labels)
        t.lap("adaece")
        classwise = official_classwise(torch, F, logits, labels)
        t.lap("classwise")
        nll = nn.CrossEntropyLoss()(logits, labels).item()
        t.lap("nll")
    del logits, labels
    return dict(ece=ece, adaece=adaece, classwise_ece=classwise, nll=nll), t.done()


# --------------------------------------------------------------------------------------------
# c) torchmetrics
# --------------------------------------------------------------------------------------------

def run_torchmetrics(torch, mce_fn, logits_path, labels_path):
    t = Laps()
    preds = torch.from_numpy(np.load(logits_path))
    target = torch.from_numpy(np.load(labels_path))
    t.lap("load")
    with torch.no_grad():
        ece = mce_fn(preds, target, num_classes=preds.shape[1], n_bins=N_BINS, norm="l1").item()
    t.lap("ece")
    del preds, target
    return dict(ece=ece), t.done()


# --------------------------------------------------------------------------------------------
# One-pass reference: load + one float32 softmax
# --------------------------------------------------------------------------------------------

def run_one_pass(logits_path, labels_path):
    t = Laps()
    x = np.load(logits_path)
    np.load(labels_path)
    t.lap("load")
    x -= x.max(axis=1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=1, keepdims=True)
    t.lap("softmax")
    del x
    return {}, t.done()


# --------------------------------------------------------------------------------------------
# d) the calib CLI
# --------------------------------------------------------------------------------------------

def find_key(obj, key):
    """Looks for key at the top level of a JSON object, then one level down."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            if isinstance(v, dict) and key in v:
                return v[key]
    return None


def run_cli_once(cmd):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"exit status {r.returncode}: {r.stderr.strip()[-2000:]}")
    return r.stdout, dt


def bench_cli(label, cmd, warmup, repeat):
    print(f"  {label}: {shlex.join(cmd)}", file=sys.stderr)
    times, out = [], None
    try:
        for i in range(warmup + repeat):
            out, dt = run_cli_once(cmd)
            tag = "warm-up" if i < warmup else f"run {i - warmup + 1}/{repeat}"
            print(f"  {label} {tag}: {dt:.3f} s", file=sys.stderr)
            if i >= warmup:
                times.append(dt)
        values = json.loads(out)
    except (OSError, RuntimeError, ValueError) as e:
        msg = f"{type(e).__name__}: {e}"
        print(f"  {label} FAILED: {msg}", file=sys.stderr)
        return None, None, msg
    return values, times, None


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

def machine_info():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc"], stdout=subprocess.PIPE, text=True).stdout.strip()
    except OSError:
        nproc = str(len(os.sched_getaffinity(0)))
    return dict(date=_dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                nproc=nproc, cpu=cpu, memory=mem, python=platform.python_version(),
                numpy=np.__version__)


def loadavg():
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return None


def fmt(v, digits=8):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calib", default=str(REPO / "target" / "release" / "calib"),
                    help="path of the calib binary (default: target/release/calib)")
    ap.add_argument("--n", type=int, default=1_000_000, help="rows (default 1000000)")
    ap.add_argument("--classes", type=int, default=100, help="classes (default 100)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--file", help="logits .npy to use; created there with --n/--classes/--seed "
                    "if it does not exist (default: .deps/bench-data/n{N}_k{K}_seed{S}.logits.npy)")
    ap.add_argument("--labels-file", help="labels .npy (default: beside --file, *.labels.npy)")
    ap.add_argument("--skip-official", action="store_true", help="skip the official torch metrics")
    ap.add_argument("--skip-torchmetrics", action="store_true")
    ap.add_argument("--skip-numpy", action="store_true")
    ap.add_argument("--calib-args", default="",
                    help="extra arguments for both calib commands, e.g. '--mode paper'")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per implementation (best is kept)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs per implementation")
    ap.add_argument("--torch-threads", type=int,
                    help="torch.set_num_threads for the official and torchmetrics parts "
                    "(default: torch's own choice)")
    ap.add_argument("--json", metavar="OUT", help="also write all figures to this JSON file")
    args = ap.parse_args()
    if args.repeat < 1 or args.warmup < 0:
        ap.error("--repeat must be >= 1 and --warmup >= 0")

    logits_path, labels_path, n, k = prepare_data(args)
    info = machine_info()
    info.update(n=n, classes=k, seed=args.seed, logits=str(logits_path), labels=str(labels_path),
                logits_bytes=logits_path.stat().st_size, repeat=args.repeat, warmup=args.warmup)
    W, R = args.warmup, args.repeat
    results: dict[str, dict] = {}  # name -> {values, runs, error}
    L, Y = str(logits_path), str(labels_path)

    torch = F = nn = tm_fn = None
    if not (args.skip_official and args.skip_torchmetrics):
        try:
            import torch
            import torch.nn as nn
            import torch.nn.functional as F
            if args.torch_threads:
                torch.set_num_threads(args.torch_threads)
            info["torch"] = torch.__version__
            info["torch_threads"] = torch.get_num_threads()
        except Exception as e:  # noqa: BLE001 - report and go on without torch
            print(f"torch unavailable ({type(e).__name__}: {e}); skipping the official and "
                  "torchmetrics parts", file=sys.stderr)
            results["official"] = results["torchmetrics"] = dict(error=f"import torch: {e}")
    if torch is not None and not args.skip_torchmetrics:
        try:
            import torchmetrics
            from torchmetrics.functional.classification import multiclass_calibration_error as tm_fn
            info["torchmetrics"] = torchmetrics.__version__
        except Exception as e:  # noqa: BLE001
            print(f"torchmetrics unavailable ({type(e).__name__}: {e})", file=sys.stderr)
            results["torchmetrics"] = dict(error=f"import torchmetrics: {e}")

    info["loadavg_start"] = loadavg()
    print(f"benchmarking on {n}x{k} (best of {R} after {W} warm-up)", file=sys.stderr)

    def record(name, fn):
        try:
            values, runs = bench(name, fn, W, R)
            results[name] = dict(values=values, runs=runs)
        except Exception as e:  # noqa: BLE001 - one failing part must not stop the others
            print(f"  {name} FAILED: {type(e).__name__}: {e}", file=sys.stderr)
            results[name] = dict(error=f"{type(e).__name__}: {e}")

    record("one_pass", lambda: run_one_pass(L, Y))
    if not args.skip_numpy:
        record("numpy", lambda: run_numpy(L, Y))
        record("numpy_masks", lambda: run_numpy_masks(L, Y))
    if torch is not None and not args.skip_official:
        record("official", lambda: run_official(torch, F, nn, L, Y))
    if tm_fn is not None:
        record("torchmetrics", lambda: run_torchmetrics(torch, tm_fn, L, Y))

    extra = shlex.split(args.calib_args)
    base = [args.calib, "metrics", "--logits", L, "--labels", Y]
    for name, cmd in (("calib_full", base + extra + ["--format", "json"]),
                      ("calib_ece", base + extra + ["--only", "ece", "--format", "json"])):
        values, times, err = bench_cli(name, cmd, W, R)
        results[name] = dict(command=shlex.join(cmd), values=values,
                             runs=[{"total": t} for t in times] if times else None, error=err)

    info["loadavg_end"] = loadavg()

    # ---------------- report ----------------
    def total_of(name, *stages):
        r = results.get(name)
        if not r or not r.get("runs"):
            return None
        return best(r["runs"], *(stages or ("total",)))

    calib_full, calib_ece = total_of("calib_full"), total_of("calib_ece")

    rows = []  # (implementation, what, seconds, ratio reference)
    rows.append(("one pass (numpy f32)", "np.load + one f32 softmax, 1 thread (ECE's floor)",
                 total_of("one_pass"), calib_ece))
    if "numpy" in results:
        rows.append(("numpy (f64)", "full suite, optimised (searchsorted + bincount)",
                     total_of("numpy"), calib_full))
        rows.append(("numpy (f64)", "  stages: load + softmax/NLL + ECE/MCE",
                     total_of("numpy", "load", "softmax+nll", "ece+mce"), calib_ece))
        for st in ("load", "softmax+nll", "ece+mce", "adaece", "classwise"):
            rows.append(("numpy (f64)", f"  stage {st}", total_of("numpy", st), None))
    if "numpy_masks" in results:
        rows.append(("numpy, straightforward (f64)", "full suite, a mask per bin (and per class)",
                     total_of("numpy_masks"), calib_full))
        for st in ("softmax+nll", "ece+mce", "adaece", "classwise"):
            rows.append(("numpy, straightforward (f64)", f"  stage {st}", total_of("numpy_masks", st), None))
    if "official" in results:
        rows.append(("official (torch f32)", "full suite: load + ECE + AdaECE + classwise + NLL",
                     total_of("official"), calib_full))
        rows.append(("official (torch f32)", "load + ECELoss", total_of("official", "load", "ece"),
                     calib_ece))
        for st, what in (("load", "load (np.load + from_numpy)"), ("ece", "ECELoss"),
                         ("adaece", "AdaptiveECELoss"), ("classwise", "ClasswiseECELoss"),
                         ("nll", "CrossEntropyLoss (NLL)")):
            rows.append(("official (torch f32)", f"  {what}", total_of("official", st), None))
    if "torchmetrics" in results:
        rows.append(("torchmetrics", "load + multiclass_calibration_error (ECE)",
                     total_of("torchmetrics"), calib_ece))
    rows.append(("calib", "full suite (whole process)", calib_full, calib_full))
    rows.append(("calib", "--only ece (whole process)", calib_ece, calib_ece))

    out = []
    out.append(f"## calib vs Python baselines: {n} x {k} float32 logits")
    out.append("")
    out.append(f"- date: {info['date']}; nproc: {info['nproc']}; CPU: {info['cpu']}; "
               f"memory: {info['memory']}; load average (1, 5, 15 min) at start "
               f"{info['loadavg_start']}, at end {info['loadavg_end']} (other work on the machine "
               "slows the torch rows most)")
    out.append(f"- python {info['python']}, numpy {info['numpy']}"
               + (f", torch {info['torch']} ({info['torch_threads']} threads)" if "torch" in info else "")
               + (f", torchmetrics {info['torchmetrics']}" if "torchmetrics" in info else ""))
    out.append(f"- data: {logits_path} ({info['logits_bytes'] / 1e6:.0f} MB) + labels; "
               f"seconds are the best of {R} runs after {W} warm-up; the page cache is warm "
               "(files read by the warm-up), so no cold-disk I/O is included")
    out.append("- Python rows: load + compute timed in-process (interpreter start-up and imports "
               "excluded); calib rows: whole-process wall clock")
    out.append("- ratio = baseline seconds / calib seconds (full suite rows against calib's full "
               "suite, ECE rows against `calib --only ece`)")
    out.append("")
    out.append("| implementation | what | seconds | ratio |")
    out.append("| --- | --- | ---: | ---: |")
    key_of = {"one pass (numpy f32)": "one_pass", "numpy (f64)": "numpy",
              "numpy, straightforward (f64)": "numpy_masks",
              "official (torch f32)": "official", "torchmetrics": "torchmetrics"}
    for impl, what, secs, ref in rows:
        key = key_of.get(impl) or ("calib_ece" if "only ece" in what else "calib_full")
        if secs is None:
            s = "failed" if results.get(key, {}).get("error") else "—"
        else:
            s = f"{secs:.3f}"
        ratio = f"{secs / ref:.2f}" if (secs is not None and ref) else "—"
        out.append(f"| {impl} | {what} | {s} | {ratio} |")
    for name in ("one_pass", "numpy", "numpy_masks", "official", "torchmetrics", "calib_full", "calib_ece"):
        if results.get(name, {}).get("error"):
            out.append("")
            out.append(f"{name} failed: `{results[name]['error'].splitlines()[0][:300]}`")

    # Cross-check of the values.
    def val(name, key):
        r = results.get(name)
        if not r or not r.get("values"):
            return None
        v = find_key(r["values"], key) if name.startswith("calib") else r["values"].get(key)
        return float(v) if isinstance(v, (int, float)) else None

    out.append("")
    out.append("### Values (fractions)")
    out.append("")
    out.append("| metric | numpy f64 | official torch f32 | torchmetrics | calib | max abs diff |")
    out.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    disagreements = []
    paper_mode = "paper" in extra
    for key in ("ece", "adaece", "classwise_ece", "mce", "nll"):
        vals = [val("numpy", key), val("official", key), val("torchmetrics", key),
                val("calib_full", key)]
        checked = vals if (key != "adaece" or paper_mode) else vals[:3]
        present = [v for v in checked if v is not None]
        diff = max(present) - min(present) if len(present) > 1 else None
        if diff is not None and diff > TOLERANCE:
            disagreements.append(f"{key}: spread {diff:.2e} > {TOLERANCE:g}")
        note = "" if checked is vals else " (numpy vs official)"
        out.append(f"| {key} | " + " | ".join(fmt(v) for v in vals) + " | "
                   + (f"{diff:.1e}{note}" if diff is not None else "—") + " |")
    ce = val("calib_ece", "ece")
    if ce is not None:
        out.append(f"| ece (calib --only ece) | | | | {fmt(ce)} | |")
    out.append("")
    out.append("AdaECE here uses the official edges (np.interp over np.linspace(0, n, 16)), which "
               "leave the minimum-confidence sample(s) out; calib's default `corrected` mode "
               "splits into equal-count groups instead, so its AdaECE differs unless "
               "`--calib-args '--mode paper'` is given. torchmetrics bins are [lo, hi).")
    if disagreements:
        out.append("")
        out.append("**Disagreement:** " + "; ".join(disagreements))
    else:
        out.append("")
        out.append(f"All values present agree within {TOLERANCE:g}.")
    report = "\n".join(out)
    print(report)

    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        summary = {f"{impl} | {what.strip()}": secs for impl, what, secs, _ in rows}
        with open(args.json, "w") as f:
            json.dump(dict(info=info, best_seconds=summary, results=results,
                           disagreements=disagreements), f, indent=2, default=float)
        print(f"\nwrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
