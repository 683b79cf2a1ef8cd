#!/usr/bin/env python3
"""Reference vectors for the binning-free and debiased metrics of `calib::top_label` (and the Brier score of `calib::metrics`).

    python benches/make_metric_vectors.py [--out crates/calib/tests/vectors]

Needs numpy, scipy, relplot==1.0.3 and uncertainty-calibration==0.1.4 (relplot pulls pandas,
matplotlib, seaborn, scikit-learn and deprecation; uncertainty-calibration pulls scikit-learn):
`bash benches/setup-python.sh` installs them in .deps/bench-venv.
Writes one `metrics_<case>.json` per input set; `crates/calib/tests/top_label_vectors.rs` reads
every such file.

Each file holds one input (probabilities or logits, inline or as .npy paths relative to the
repository root) and a list of evaluations (temperature, bins) with what the references give:
  smece, smece_bandwidth  relplot.smECE(f, y, return_width=True) on the top-label confidence f
                          and correctness y (relplot.multiclass_logits_to_confidences);
  ece_debiased_l2         calibration.lower_bound_scaling_top_ce(p, labels, p=2, debias=True,
                          num_bins=bins, binning_scheme=calibration.get_equal_bins);
  ece_sweep, ece_sweep_bins
                          Roelofs et al. 2022's equal-mass ECE_sweep, written here from the paper:
                          stable sort by confidence, numpy.array_split into b = 1, 2, ..., N
                          bins, stop before the first b whose bin accuracies are not
                          non-decreasing, L1 ECE at the last monotone b;
  ks                      Gupta et al. 2021's KS error: sort by confidence, max |cumsum(f)
                          - cumsum(y)| / N read at the end of each run of equal confidences, so
                          the order of tied rows (which their unstable argsort leaves open) does
                          not change it; with distinct confidences it is their code's value
                          (asserted here);
  brier                   mean over rows of sum_k (p_k - 1[k = label])^2.
Probabilities are scipy.special.softmax(z / T) in float64 (logits read as float64).
"""

from __future__ import annotations

import argparse
import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
import scipy.special

import calibration
import relplot

REPO = Path(__file__).resolve().parent.parent


def top_label(p: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f, y = relplot.multiclass_logits_to_confidences(p, labels, probs=True)
    return np.asarray(f, dtype=np.float64), np.asarray(y, dtype=np.float64)


def ece_sweep(f: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    order = np.argsort(f, kind="stable")
    f, y = f[order], y[order]
    n, best = len(f), 1
    for b in range(2, n + 1):
        accs = np.array([g.mean() for g in np.array_split(y, b)])
        if np.any(np.diff(accs) < 0):
            break
        best = b
    ece = sum(len(gf) / n * abs(gf.mean() - gy.mean()) for gf, gy in zip(np.array_split(f, best), np.array_split(y, best)))
    return float(ece), best


def ks(f: np.ndarray, y: np.ndarray) -> float:
    order = np.argsort(f, kind="stable")
    f, y, n = f[order], y[order], len(f)
    gap = np.abs(np.cumsum(f) / n - np.cumsum(y) / n)
    value = float(np.max(gap[np.append(f[1:] != f[:-1], True)]))
    if len(np.unique(f)) == n:  # distinct confidences: Gupta et al.'s code, verbatim
        assert value == float(np.max(gap))
    return value


def brier(p: np.ndarray, labels: np.ndarray) -> float:
    onehot = np.zeros_like(p)
    onehot[np.arange(len(labels)), labels] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def expected(p: np.ndarray, labels: np.ndarray, bins: int) -> dict:
    f, y = top_label(p, labels)
    smece, width = relplot.smECE(f, y, return_width=True)
    l2 = calibration.lower_bound_scaling_top_ce(
        p, labels, p=2, debias=True, num_bins=bins, binning_scheme=calibration.get_equal_bins
    )
    sweep, sweep_bins = ece_sweep(f, y)
    return {
        "smece": float(smece),
        "smece_bandwidth": float(width),
        "ece_debiased_l2": float(l2),
        "ece_sweep": sweep,
        "ece_sweep_bins": sweep_bins,
        "ks": ks(f, y),
        "brier": brier(p, labels),
    }


def evaluations(kind: str, values: np.ndarray, labels: np.ndarray, settings) -> list[dict]:
    out = []
    for t, bins in settings:
        if kind == "logits":
            p = scipy.special.softmax(values / (1.0 if t is None else t), axis=1)
        else:
            p = values
        out.append({"temperature": t, "bins": bins, "expected": expected(p, labels, bins)})
    return out


def inline(name: str, description: str, kind: str, values: np.ndarray, labels: np.ndarray, settings) -> dict:
    return {
        "name": name,
        "description": description,
        "input": {"kind": kind, "values": values.tolist(), "labels": labels.tolist()},
        "evaluations": evaluations(kind, values, labels, settings),
    }


def synthetic_logits(rng: np.random.Generator, n: int, k: int, boost: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Over-confident logits: noise, the label raised in most rows, then sharpened; rounded to 4
    decimals so the file stays small (the rounded values are the data)."""
    labels = rng.integers(0, k, size=n)
    z = rng.normal(size=(n, k))
    hit = rng.random(n) < 0.8
    z[np.arange(n), labels] += boost * hit
    return np.round(scale * z, 4), labels


def random_probs(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    p = rng.dirichlet(np.full(k, 0.3), size=n)
    return p


def cases(rng: np.random.Generator) -> list[dict]:
    out = []
    for model in sorted((REPO / "data/predictions").glob("*/test_logits.npy")):
        d = model.parent
        z = np.load(d / "test_logits.npy").astype(np.float64)
        y = np.load(d / "test_labels.npy").astype(np.int64)
        out.append(
            {
                "name": f"real_{d.name}",
                "description": f"CIFAR-10 test logits of {d.name} (data/predictions), with and without a temperature",
                "input": {
                    "kind": "logits",
                    "npy": {
                        "values": str((d / "test_logits.npy").relative_to(REPO)),
                        "labels": str((d / "test_labels.npy").relative_to(REPO)),
                    },
                },
                "evaluations": evaluations("logits", z, y, [(None, 15), (1.5, 15), (0.7, 10)]),
            }
        )

    for k, n, boost, scale in [(2, 3000, 1.0, 2.0), (10, 3000, 3.0, 1.5), (100, 800, 5.0, 1.2)]:
        z, y = synthetic_logits(rng, n, k, boost, scale)
        out.append(inline(f"synthetic_k{k}", f"seeded over-confident logits, n={n}, K={k}", "logits", z, y,
                          [(None, 15), (2.0, 15), (None, 7)]))

    p = random_probs(rng, 400, 10)
    pred = p.argmax(axis=1)
    out.append(inline("edge_all_correct", "every prediction correct", "probs", p, pred, [(None, 15)]))
    out.append(inline("edge_all_wrong", "every prediction wrong", "probs", p, (pred + 1) % 10, [(None, 15)]))

    # One-hot rows (confidence exactly 1), right and wrong, mixed with ordinary rows.
    p = random_probs(rng, 120, 5)
    p[:60] = np.eye(5)[rng.integers(0, 5, size=60)]
    labels = p.argmax(axis=1)
    flip = rng.random(120) < 0.25
    labels[flip] = (labels[flip] + 1) % 5
    out.append(inline("edge_confidence_one", "half the rows one-hot (confidence exactly 1)", "probs", p, labels, [(None, 15)]))
    q = np.eye(4)[rng.integers(0, 4, size=30)]
    out.append(inline("edge_all_one", "every confidence exactly 1", "probs", q, np.where(rng.random(30) < 0.7, q.argmax(axis=1), (q.argmax(axis=1) + 1) % 4), [(None, 15)]))

    # Fewer rows than bins.
    p = random_probs(rng, 7, 3)
    out.append(inline("edge_n7", "7 rows, fewer than the 15 bins", "probs", p, rng.integers(0, 3, size=7), [(None, 15), (None, 3)]))
    p = random_probs(rng, 2, 3)
    out.append(inline("edge_n2", "2 rows", "probs", p, np.array([0, 1]), [(None, 15)]))
    out.append(inline("edge_n1", "one row", "probs", np.array([[0.2, 0.7, 0.1]]), np.array([1]), [(None, 15)]))

    # Ties: a few distinct rows repeated, top probabilities tied within a row too (the first
    # index is the prediction), correctness mixed inside every tie group.
    base = np.array([[0.5, 0.5, 0.0], [0.6, 0.3, 0.1], [0.25, 0.75, 0.0], [0.9, 0.05, 0.05], [0.4, 0.4, 0.2]])
    rows = rng.integers(0, len(base), size=300)
    p = base[rows]
    out.append(inline("edge_ties", "five distinct rows repeated: tied confidences, tied top classes", "probs", p,
                      rng.integers(0, 3, size=300), [(None, 15), (None, 4)]))
    # Correctness sorted by confidence (every sweep is monotone, up to b = N).
    c = np.sort(rng.uniform(0.5, 1.0, size=50))
    p = np.stack([c, 1 - c], axis=1)
    labels = (np.arange(50) < 20).astype(np.int64)  # the 20 lowest wrong, the rest right
    out.append(inline("edge_sorted_correctness", "wrong rows below right rows: monotone at every bin count", "probs",
                      p, labels, [(None, 15)]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "crates/calib/tests/vectors")
    ap.add_argument("--seed", type=int, default=20220501)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    refs = {pkg: version(pkg) for pkg in ["relplot", "uncertainty-calibration", "numpy", "scipy"]}
    for case in cases(np.random.default_rng(a.seed)):
        case = {"generator": "benches/make_metric_vectors.py", "references": refs, **case}
        path = a.out / f"metrics_{case['name']}.json"
        path.write_text(json.dumps(case, separators=(",", ":")) + "\n")
        e = case["evaluations"][0]["expected"]
        print(f"{path.relative_to(REPO)}: smece {e['smece']:.6f} l2 {e['ece_debiased_l2']:.6f} "
              f"sweep {e['ece_sweep']:.6f} ({e['ece_sweep_bins']} bins) ks {e['ks']:.6f} brier {e['brier']:.6f}")


if __name__ == "__main__":
    main()
