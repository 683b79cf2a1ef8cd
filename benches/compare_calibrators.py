#!/usr/bin/env python3
"""Post-hoc calibrators and the newer metrics: `calib` against netcal 1.4.0, relplot 1.0.3 and
uncertainty-calibration 0.1.4 on the same predictions, outputs checked equal in the same run.

    bash benches/setup-python.sh      # once: .deps/bench-venv with the peers
    cargo build --release -p calib-cli
    .deps/bench-venv/bin/python benches/compare_calibrators.py --calib target/release/calib \
        [--sizes 100000x10,10000x100] [--methods histogram,isotonic,bbq,enir] [--repeat 3] [--json OUT]

Data: seeded over-confident float64 probabilities (softmax of 1.5·(noise + 3 on the label in 80 % of rows)),
half the rows to fit on and half to transform, per size N×K.

Per method and size:
  netcal   fit + transform in-process (import and data loading excluded), best of --repeat;
  calib    `calib calibrate --probs --method M --val-logits FIT --logits HELD --save-probs OUT`
           as a whole process (start-up, .npy reading, the before/after metrics and writing
           included), best of --repeat, and the fit's own time from its JSON (in-process);
  equal    max |calib − netcal| over every calibrated probability (netcal's argsort made stable
           and its all-zero rows replaced by the uniform row, as benches/make_netcal_vectors.py
           and docs/calibrators.md say).
Metrics (on the held-out rows): relplot.smECE and uncertainty-calibration's debiased L2 error
in-process against `calib metrics --probs` as a whole process (which computes the full suite).
Ratios are peer time / calib time: above 1, calib is faster.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def data(n: int, k: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k))
    z[np.arange(n), y] += 3.0 * (rng.random(n) < 0.8)
    z *= 1.5
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    half = n // 2
    return p[:half], y[:half], p[half:], y[half:]


def netcal_methods():
    from netcal import AbstractCalibration
    from netcal.binning import BBQ, ENIR, HistogramBinning, IsotonicRegression

    def stable(cls, array1, *args):
        order = array1.argsort(kind="stable")
        return tuple([array1[order]] + [a[order] for a in args])

    AbstractCalibration._sort_arrays = classmethod(stable)
    return {
        "histogram": lambda: HistogramBinning(bins=15),
        "isotonic": IsotonicRegression,
        "bbq": BBQ,
        "enir": ENIR,
    }


def best_of(repeat: int, fn):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def run_netcal(make, fit, yfit, held):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        model = make()
        model.fit(fit, yfit)
        q = np.asarray(model.transform(held), dtype=np.float64)
    if q.ndim == 1:
        q = np.stack([1 - q, q], 1)
    bad = ~np.isfinite(q).all(1) | (q.sum(1) == 0)
    q[bad] = 1.0 / q.shape[1]
    return q


def run_calib(calib: str, method: str, files: dict, out: Path):
    cmd = [calib, "calibrate", "--probs", "--method", method, "--val-logits", files["fit"], "--val-labels",
           files["yfit"], "--logits", files["held"], "--labels", files["yheld"], "--save-probs", str(out),
           "--format", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calib", default=str(REPO / "target/release/calib"))
    ap.add_argument("--sizes", default="100000x10,10000x100")
    ap.add_argument("--methods", default="histogram,isotonic,bbq,enir")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()

    import calibration
    import relplot

    methods = netcal_methods()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in a.sizes.split(","):
            n, k = map(int, size.lower().split("x"))
            fit, yfit, held, yheld = data(n, k, a.seed)
            files = {}
            for name, arr in [("fit", fit), ("yfit", yfit), ("held", held), ("yheld", yheld)]:
                files[name] = str(tmp / f"{name}-{size}.npy")
                np.save(files[name], arr)
            print(f"\n{n:,} × {k} ({len(fit):,} rows fitted, {len(held):,} transformed), best of {a.repeat}")
            print(f"{'method':12s} {'netcal s':>10s} {'calib s':>9s} {'calib fit s':>12s} {'ratio':>7s} {'max |Δp|':>10s}")
            for m in a.methods.split(","):
                t_peer, q_peer = best_of(a.repeat, lambda: run_netcal(methods[m], fit, yfit, held))
                out = tmp / f"q-{m}-{size}.npy"
                t_ours, doc = best_of(a.repeat, lambda: run_calib(a.calib, m, files, out))
                q_ours = np.load(out)
                diff = float(np.abs(q_ours - q_peer).max())
                row = {"size": size, "method": m, "peer": "netcal 1.4.0", "peer_seconds": t_peer,
                       "calib_seconds": t_ours, "calib_fit_seconds": doc["fit_seconds"], "ratio": t_peer / t_ours,
                       "max_abs_diff": diff}
                results.append(row)
                print(f"{m:12s} {t_peer:10.3f} {t_ours:9.3f} {doc['fit_seconds']:12.4f} {t_peer / t_ours:6.1f}× {diff:10.2e}")

            conf, correct = held.max(1), (held.argmax(1) == yheld).astype(np.float64)
            t_sm, sm = best_of(a.repeat, lambda: relplot.smECE(conf, correct))
            t_l2, l2 = best_of(a.repeat, lambda: calibration.lower_bound_scaling_top_ce(
                held, yheld, p=2, debias=True, num_bins=15, binning_scheme=calibration.get_equal_bins))
            cmd = [a.calib, "metrics", "--probs", "--logits", files["held"], "--labels", files["yheld"], "--format", "json"]
            t_m, doc = best_of(a.repeat, lambda: json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout))
            for key, peer, t_peer, value in [("smece", "relplot 1.0.3 smECE", t_sm, sm),
                                             ("ece_debiased_l2", "uncertainty-calibration 0.1.4", t_l2, l2)]:
                diff = abs(doc[key] - value)
                results.append({"size": size, "method": key, "peer": peer, "peer_seconds": t_peer, "calib_seconds": t_m,
                                "ratio": t_peer / t_m, "max_abs_diff": diff})
                print(f"{key:12s} {t_peer:10.3f} {t_m:9.3f} {'(all metrics)':>12s} {t_peer / t_m:6.1f}× {diff:10.2e}")

    worst = max(r["max_abs_diff"] for r in results)
    print(f"\nlargest output difference: {worst:.2e}")
    if a.json:
        a.json.write_text(json.dumps({"cpu": os.cpu_count(), "python": sys.version.split()[0], "results": results}, indent=1))


if __name__ == "__main__":
    main()
