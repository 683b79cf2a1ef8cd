#!/usr/bin/env python3
"""Reference vectors for focal temperature scaling (crates/calib/src/calibrators/focal_ts.rs).

Komisarenko & Kull (ECAI 2024), slavikkom/focal_temperature_scaling, temperature_scaling.py: the calibrated
probabilities are the focal link of softmax(z / T),
    q = softmax(z / T) clamped to [1e-12, 1 - 1e-12],  d_k = (1 - q_k)^γ (γ log q_k / (1 - q_k) - 1 / q_k),
    p_k = (1 / d_k) / Σ_j (1 / d_j),
with a row holding a non-finite value replaced by 1 - 1e-5 on the largest logit and 1e-5 / (K - 1) elsewhere, then p
clamped to [1e-12, 1]; T is the best of T = 0.05, 0.10, … (accumulated in float, 100 values) against the unscaled
link (T = 1), by the mean NLL of p (`cross_validate='ce'`, the reference's default: a later T must be strictly
better). The formulas below are the reference's, in float64 torch.

Cases: the validation/test logits of data/predictions/* (fit on 2,000 validation rows, 300 test rows transformed),
γ = 2 (the reference's default) and γ = 1, and synthetic K = 3 logits with rows large enough to overflow the link.

Run: .deps/bench-venv/bin/python benches/make_focal_ts_vectors.py
"""

import glob
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates", "calib", "tests", "vectors", "focal_ts.json")


def focal_derivative(p, gamma):
    eps = 1e-12
    p = p.clamp(min=eps, max=1.0 - eps)
    one_minus_p = 1.0 - p
    return (one_minus_p ** gamma) * (gamma * torch.log(p).div(one_minus_p) - p.reciprocal())


def multi_focal_link(x, a):
    q = F.softmax(x, dim=-1)
    inv = focal_derivative(q, a).reciprocal()
    p = inv.div(inv.sum(dim=-1, keepdim=True))
    rows = (~p.isfinite()).any(dim=1)
    if rows.any():
        idx = rows.nonzero(as_tuple=True)[0]
        top = torch.argmax(x, dim=1)[idx]
        k = p.size(1)
        p[idx.unsqueeze(1), torch.arange(k)] = 1e-5 / (k - 1)
        p[idx, top] = 1.0 - 1e-5
    return p.clamp(min=1e-12, max=1.0)


def fit(z, y, gamma):
    nll = lambda p: F.nll_loss(torch.log(p), y).item()
    best_t, best = 1.0, nll(multi_focal_link(z, gamma))
    t = 0.05
    for _ in range(100):
        v = nll(multi_focal_link(z / t, gamma))
        if best > v and not np.isnan(v):
            best_t, best = t, v
        t += 0.05
    return best_t, best


def case(name, z_fit, y_fit, z_held, gamma):
    zf, yf = torch.tensor(z_fit, dtype=torch.float64), torch.tensor(y_fit, dtype=torch.int64)
    t, v = fit(zf, yf, gamma)
    p = multi_focal_link(torch.tensor(z_held, dtype=torch.float64) / t, gamma)
    return {"case": name, "gamma": gamma, "fit": {"logits": z_fit.tolist(), "labels": y_fit.tolist()},
            "held_out": z_held.tolist(), "temperature": t, "fit_nll": v, "probs": p.tolist()}


def main():
    rng = np.random.default_rng(11)
    cases = []
    for d in sorted(glob.glob(os.path.join(ROOT, "data", "predictions", "*", "")))[:2]:
        d = d.rstrip("/")
        z = np.load(os.path.join(d, "val_logits.npy")).astype(np.float64)
        y = np.load(os.path.join(d, "val_labels.npy")).astype(np.int64)
        zt = np.load(os.path.join(d, "test_logits.npy")).astype(np.float64)
        idx = np.sort(rng.choice(len(y), 2000, replace=False))
        held = zt[rng.choice(len(zt), 300, replace=False)]
        for gamma in (2.0, 1.0):
            cases.append(case(f"{os.path.basename(d)}-gamma{gamma:g}", z[idx], y[idx], held, gamma))
    z = rng.normal(0, 3, (400, 3))
    z[:10, 0] += 60.0  # softmax saturates: q = 1 - 1e-12 after the clamp, 1 / d overflows or not
    y = np.where(rng.random(400) < 0.7, z.argmax(1), rng.integers(0, 3, 400))
    cases.append(case("synthetic-k3-saturated", z[:300], y[:300], z[np.r_[0:10, 300:400]], 2.0))
    with open(OUT, "w") as fh:
        json.dump({"reference": "slavikkom/focal_temperature_scaling temperature_scaling.py (formulas in float64)",
                   "cases": cases}, fh, separators=(",", ":"))
    for c in cases:
        print(f"{c['case']:45s} T {c['temperature']:.2f}  fit NLL {c['fit_nll']:.5f}")
    print(f"{OUT}: {os.path.getsize(OUT) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
