#!/usr/bin/env python3
"""Reference vectors for the binning calibrators (crates/calib/src/calibrators/{histogram,isotonic,enir}.rs).

Each case is fitted with netcal 1.4.0's HistogramBinning(bins=B), IsotonicRegression(), BBQ() and ENIR()
on probabilities, and the calibrated probabilities of held-out rows are stored. netcal returns p(class 1)
for K = 2; it is stored as the row [1 - q, q]. Two rules of ours differ from netcal and are applied to its
output here, as docs/calibrators.md names them:
- a row whose mapped values are all 0 (netcal: NaN, or zeros for ENIR) is the uniform row;
- netcal's argsort is NumPy's unstable quicksort, so rows with equal probabilities and different labels
  fall in a machine-dependent order (it changes ENIR's label runs); netcal is run here with the sort
  made stable, as ours is.

Cases:
- the validation predictions of data/predictions/*/ (CIFAR-10, K = 10): 2,000 fitting rows, 300
  held-out test rows, softmax probabilities in float64 (stored exactly: JSON floats round-trip);
- a synthetic K = 2 set with probabilities of exactly 0 and 1, probabilities on bin edges (i/15 and
  i/10 as np.linspace computes them), a gap that leaves bins empty, and tied probabilities with
  different labels;
- a synthetic K = 100 set (seeded, 800 fitting rows) in which class 7 never occurs among the fitting labels.

Run (bash benches/setup-python.sh installs netcal and what it imports):
  .deps/bench-venv/bin/python benches/make_netcal_vectors.py
"""

import glob
import json
import os

import numpy as np
from netcal import AbstractCalibration
from netcal.binning import BBQ, ENIR, HistogramBinning, IsotonicRegression

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates", "calib", "tests", "vectors")


def _stable_sort_arrays(cls, array1, *args):
    p = array1.argsort(kind="stable")
    return tuple([array1[p]] + [a[p] for a in args])


AbstractCalibration._sort_arrays = classmethod(_stable_sort_arrays)

METHODS = {
    "histogram": lambda: HistogramBinning(bins=15),
    "histogram:7": lambda: HistogramBinning(bins=7),
    "isotonic": IsotonicRegression,
    "bbq": BBQ,
    "enir": ENIR,
}


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def calibrate(method, x, y, held):
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        model = METHODS[method]()
        model.fit(x, y)
        q = np.asarray(model.transform(held), dtype=np.float64)
    if q.ndim == 1:
        q = np.stack([1.0 - q, q], axis=1)
    k = q.shape[1]
    zero = ~np.isfinite(q).all(axis=1) | (q.sum(axis=1) == 0.0)
    q[zero] = 1.0 / k
    return q, int(zero.sum())


def write(case, x, y, held):
    outputs = {}
    for method in METHODS:
        q, zero_rows = calibrate(method, x, y, held)
        outputs[method] = {"probs": q.tolist(), "uniform_rows": zero_rows}
    doc = {
        "case": case,
        "kind": "probs",
        "classes": int(x.shape[1]),
        "fit": {"rows": x.tolist(), "labels": y.tolist()},
        "held_out": held.tolist(),
        "methods": outputs,
        "reference": "netcal 1.4.0 (argsort made stable)",
    }
    path = os.path.join(OUT, f"netcal_{case}.json")
    with open(path, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"))
    print(f"{os.path.basename(path):50s} {os.path.getsize(path) / 1e6:5.2f} MB  uniform rows "
          + ", ".join(f"{m} {o['uniform_rows']}" for m, o in outputs.items()))


def main():
    os.makedirs(OUT, exist_ok=True)
    for old in glob.glob(os.path.join(OUT, "netcal_*.json")):
        os.remove(old)
    rng = np.random.default_rng(20261207)
    for d in sorted(glob.glob(os.path.join(ROOT, "data", "predictions", "*"))):
        if not os.path.exists(os.path.join(d, "val_logits.npy")):
            continue
        z = np.load(os.path.join(d, "val_logits.npy")).astype(np.float64)
        y = np.load(os.path.join(d, "val_labels.npy")).astype(np.int64)
        zt = np.load(os.path.join(d, "test_logits.npy")).astype(np.float64)
        idx = np.sort(rng.choice(len(y), 2000, replace=False))
        held = softmax(zt[rng.choice(len(zt), 300, replace=False)])
        write(os.path.basename(d), softmax(z[idx]), y[idx], held)

    # K = 2: a logistic score with a gap in (0.35, 0.5) that leaves bins empty, exact 0 and 1, bin edges
    # and ties with both labels.
    n = 1500
    p1 = rng.beta(0.7, 0.7, n)
    p1 = np.where((p1 > 0.35) & (p1 < 0.5), p1 * 0.5, p1)
    edges = np.concatenate([np.linspace(0.0, 1.0, 16), np.linspace(0.0, 1.0, 11), np.linspace(0.0, 1.0, 8)])
    p1[: len(edges)] = edges
    p1[len(edges) : len(edges) + 20] = 0.8125
    yb = (rng.random(n) < np.clip(p1 * 0.8 + 0.1, 0, 1)).astype(np.int64)
    yb[len(edges) : len(edges) + 20] = np.arange(20) % 2
    held1 = np.concatenate([edges, [0.0, 1.0, 0.8125, 0.4, 0.42, 1e-300, 1 - 1e-16], rng.random(60)])
    write("synthetic-k2", np.stack([1.0 - p1, p1], axis=1), yb, np.stack([1.0 - held1, held1], axis=1))

    # K = 100: prototypes plus noise; class 7 is absent from the fitting labels.
    k, n_fit, n_held = 100, 800, 60
    labels = rng.integers(0, k, n_fit + n_held)
    labels[:n_fit][labels[:n_fit] == 7] = 8
    proto = rng.normal(0.0, 1.0, (k, k)) * 0.5 + np.eye(k) * 2.5
    p = softmax(2.0 * (proto[labels] + rng.normal(0.0, 1.0, (n_fit + n_held, k))))
    write("synthetic-k100", p[:n_fit], labels[:n_fit], p[n_fit:])


if __name__ == "__main__":
    main()
