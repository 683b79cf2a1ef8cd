#!/usr/bin/env python3
"""Reference vectors for the scaling calibrators (crates/calib/src/calibrators/{linear,ets,binary}.rs).

Every method is fitted in float64 with scipy's L-BFGS-B at tight tolerances (bounds a, b >= 0 for
beta calibration; ETS weights with SLSQP as the reference code does, checked against the exact
simplex solution). Features are divided by their root mean square before the fit, as the Rust
fit does: a linear change of variables that leaves the optimum unchanged and makes L-BFGS-B's
stopping rule independent of the scale of the scores. Without a penalty, W (columns) and b are
returned centred, the representative the Rust fit returns.

Cases: the validation predictions of data/predictions/*/ (CIFAR-10, K = 10; rows subsampled,
logits rounded to 4 decimals so the JSON text is the input exactly), one of them also as
probabilities and with its logits x100 and x0.01, a synthetic K = 2 set of logits, a synthetic
K = 2 set of probabilities whose beta fit has the constraint a >= 0 active, and a synthetic
K = 100 set (seeded). Each file crates/calib/tests/vectors/scaling_<method>_<case>.json holds the
method's `--method` name, the fitting rows and labels, the optimal objective, the parameters, and
the calibrated probabilities of some held-out rows (test rows for CIFAR).

Run (numpy and scipy): python3 -m venv /tmp/scalvenv && /tmp/scalvenv/bin/pip install numpy scipy
                       /tmp/scalvenv/bin/python benches/make_scaling_vectors.py
"""

import glob
import json
import os

import numpy as np
from scipy.optimize import minimize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates", "calib", "tests", "vectors")
TINY = np.finfo(np.float64).tiny  # dirichletcal's clip_for_log
EPS = np.finfo(np.float64).eps  # betacal's clip
LBFGSB = dict(maxcor=30, ftol=0.0, gtol=1e-13, maxiter=200000, maxfun=400000, maxls=100)
MAX_STORED_PARAMETERS = 2000


def log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def softmax(z):
    return np.exp(log_softmax(z))


def softplus(t):
    return np.logaddexp(0.0, t)


# ---------------------------------------------------------------- vector, matrix, Dirichlet


def linear_features(x, kind, log_probs):
    if kind == "probs":
        return np.log(np.maximum(x, TINY))
    if log_probs:
        return np.maximum(log_softmax(x), np.log(TINY))
    return x.copy()


def linear_logits(shape, f, w, b):
    return f * w + b if shape == "vector" else f @ w.reshape(len(b), len(b)).T + b


def linear_penalty(shape, w, b, odir):
    if odir is None:
        return 0.0
    lam, mu = odir
    k = len(b)
    off = 0.0
    if shape == "full" and k > 1:
        W = w.reshape(k, k)
        off = lam * (np.sum(W**2) - np.sum(np.diag(W) ** 2)) / (k * (k - 1))
    return off + mu * np.sum(b**2) / k


def linear_objective(shape, f, y, w, b, odir):
    L = log_softmax(linear_logits(shape, f, w, b))
    return -L[np.arange(len(y)), y].mean() + linear_penalty(shape, w, b, odir)


def fit_linear(shape, f, y, odir):
    n, k = f.shape
    s = np.sqrt(np.mean(f**2))
    s = s if s > 0 and np.isfinite(s) else 1.0
    X = f / s
    nw = k if shape == "vector" else k * k
    pen = np.zeros(nw + k)
    if odir is not None:
        lam, mu = odir
        if shape == "full" and k > 1:
            off = np.ones((k, k)) - np.eye(k)
            pen[:nw] = (lam / (k * (k - 1)) / s**2 * off).ravel()
        pen[nw:] = mu / k
    Y = np.eye(k)[y]

    def fun(theta):
        w, b = theta[:nw], theta[nw:]
        L = log_softmax(linear_logits(shape, X, w, b))
        R = np.exp(L) - Y
        gw = (R * X).sum(axis=0) if shape == "vector" else (R.T @ X).ravel()
        g = np.concatenate([gw, R.sum(axis=0)]) / n + 2 * pen * theta
        return -L[np.arange(n), y].mean() + np.sum(pen * theta**2), g

    theta0 = np.concatenate([s * (np.ones(k) if shape == "vector" else np.eye(k).ravel()), np.zeros(k)])
    res = minimize(fun, theta0, jac=True, method="L-BFGS-B", options=LBFGSB)
    w, b = res.x[:nw].copy(), res.x[nw:].copy()
    if shape == "full" and not np.any(pen[:nw]):
        W = w.reshape(k, k)
        w = (W - W.mean(axis=0, keepdims=True)).ravel()
    if not np.any(pen[nw:]):
        b = b - b.mean()
    w = w / s
    info = dict(iterations=int(res.nit), max_gradient=float(np.abs(res.jac).max()), message=str(res.message))
    return w, b, info


# ---------------------------------------------------------------- Platt, beta


def log_parts(x, kind):
    if kind == "logits":
        d = x[:, 1] - x[:, 0]
        return -softplus(-d), -softplus(d)
    p = np.clip(x[:, 1], EPS, 1 - EPS)
    return np.log(p), np.log1p(-p)


def binary_features(x, kind, method):
    l1, l0 = log_parts(x, kind)
    if method == "platt":
        return np.stack([l1 - l0, np.ones_like(l1)], axis=1)
    return np.stack([l1, -l0, np.ones_like(l1)], axis=1)


def logistic_objective(phi, y, theta):
    t = phi @ theta
    return np.mean(softplus(t) - y * t)


def fit_binary(method, x, kind, y):
    phi = binary_features(x, kind, method)
    s = np.sqrt(np.mean(phi**2, axis=0))
    X = phi / s
    yf = y.astype(np.float64)

    def fun(theta):
        t = X @ theta
        p = np.exp(-softplus(-t))
        return np.mean(softplus(t) - yf * t), X.T @ (p - yf) / len(y)

    bounds = None if method == "platt" else [(0, None), (0, None), (None, None)]
    res = minimize(fun, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B", bounds=bounds, options=LBFGSB)
    theta = res.x / s
    info = dict(iterations=int(res.nit), max_gradient=float(np.abs(res.jac).max()), message=str(res.message))
    return theta, info


def binary_probs(method, x, kind, theta):
    t = binary_features(x, kind, method) @ theta
    q1 = np.exp(-softplus(-t))
    return np.stack([np.exp(-softplus(t)), q1], axis=1)


# ---------------------------------------------------------------- ETS


def ets_members(z, t):
    k = z.shape[1]
    return [softmax(z / t), softmax(z), np.full(z.shape, 1.0 / k)]


def ets_mse(members, Y, w):
    return np.mean((w[0] * members[0] + w[1] * members[1] + w[2] * members[2] - Y) ** 2)


def exact_simplex(members, Y):
    """The exact minimiser over the faces of the simplex (a cross-check of SLSQP)."""
    P = np.stack([m.ravel() for m in members], axis=1)
    Q = P.T @ P / len(Y.ravel())
    c = P.T @ Y.ravel() / len(Y.ravel())
    best = (None, np.inf)
    for face in range(1, 8):
        idx = [m for m in range(3) if face >> m & 1]
        last, free = idx[-1], idx[:-1]
        w = np.zeros(3)
        if free:
            A = np.array([[Q[i, j] - Q[i, last] - Q[last, j] + Q[last, last] for j in free] for i in free])
            r = np.array([(c[i] - Q[i, last]) - (c[last] - Q[last, last]) for i in free])
            if np.linalg.matrix_rank(A) < len(free):
                continue
            v = np.linalg.solve(A, r)
            w[free] = v
            w[last] = 1 - v.sum()
        else:
            w[last] = 1.0
        if np.all(w >= 0):
            val = ets_mse(members, Y, w)
            if val < best[1]:
                best = (w, val)
    return best


def fit_ets(z, y):
    n, k = z.shape
    spread = np.sqrt(np.mean((z - z.mean(axis=1, keepdims=True)) ** 2))
    zn = z / spread

    def nll(beta):
        L = log_softmax(zn * beta[0])
        P = np.exp(L)
        value = -L[np.arange(n), y].mean()
        grad = np.mean((P * zn).sum(axis=1) - zn[np.arange(n), y])
        return value, np.array([grad])

    res = minimize(nll, np.array([1.0]), jac=True, method="L-BFGS-B", bounds=[(0.01, 50.0)],
                   options=dict(LBFGSB, gtol=1e-15))
    t = spread / res.x[0]
    members = ets_members(z, t)
    Y = np.eye(k)[y]
    cons = {"type": "eq", "fun": lambda w: np.sum(w) - 1}
    sl = minimize(lambda w: ets_mse(members, Y, w), np.array([1.0, 0.0, 0.0]), method="SLSQP",
                  bounds=[(0.0, 1.0)] * 3, constraints=cons, tol=1e-15, options=dict(maxiter=1000))
    w = np.clip(sl.x, 0, None)
    w = w / w.sum()
    exact_w, exact_val = exact_simplex(members, Y)
    assert ets_mse(members, Y, w) <= exact_val * (1 + 1e-9), (w, exact_w)
    info = dict(iterations=int(sl.nit), temperature_gradient=float(abs(res.jac[0])), message=str(sl.message),
                exact_weights=exact_w.tolist())
    return t, w, info


# ---------------------------------------------------------------- cases


def fit_case(method, x, kind, y, held):
    k = x.shape[1]
    name = method.split(":")[0]
    if name in ("vector", "matrix", "matrix-odir", "dirichlet"):
        shape = "vector" if name == "vector" else "full"
        odir = None
        if name == "matrix-odir" or name == "dirichlet":
            odir = tuple(float(v) for v in method.split(":")[1].split(",")) if ":" in method else (1e-3, 1e-3)
        log_probs = name == "dirichlet"
        f = linear_features(x, kind, log_probs)
        w, b, info = fit_linear(shape, f, y, odir)
        objective = linear_objective(shape, f, y, w, b, odir)
        probs = softmax(linear_logits(shape, linear_features(held, kind, log_probs), w, b))
        params = {"scale" if shape == "vector" else "weights": w.tolist(), "bias": b.tolist()}
    elif name == "ets":
        t, w, info = fit_ets(x, y)
        objective = ets_mse(ets_members(x, t), np.eye(k)[y], w)
        m = ets_members(held, t)
        probs = w[0] * m[0] + w[1] * m[1] + w[2] * m[2]
        params = {"temperature": t, "weights": w.tolist()}
    else:
        theta, info = fit_binary(name, x, kind, y)
        objective = logistic_objective(binary_features(x, kind, name), y, theta)
        probs = binary_probs(name, held, kind, theta)
        params = dict(zip("abc", theta.tolist()))
    n_params = sum(len(v) if isinstance(v, list) else 1 for v in params.values())
    return objective, (params if n_params <= MAX_STORED_PARAMETERS else None), probs, info


def write(method, case, kind, x, y, held):
    objective, params, probs, info = fit_case(method, x, kind, y, held)
    doc = {
        "method": method,
        "case": case,
        "kind": kind,
        "classes": int(x.shape[1]),
        "objective": float(objective),
        # L-BFGS-B at its iteration limit here means the loss was still falling with the weights growing (checked
        # for the one such case, matrix on step150-flsd53: from 1e3 to 2e4 to 1e5 iterations the objective fell
        # from 0.19775 to 0.19503 to 0.19492 while the largest weight grew from 91 to 599 to 1,544): rows
        # (quasi-)separable under the map, no finite optimum. The Rust fit must then refuse with "no finite optimum".
        "finite_optimum": "ITERATIONS REACHED LIMIT" not in info["message"],
        "parameters": params,
        "fit": {"rows": x.tolist(), "labels": y.tolist()},
        "held_out": {"rows": held.tolist(), "probs": [[float(f"{v:.12g}") for v in r] for r in probs]},
        "reference": dict(info, optimizer="scipy L-BFGS-B (ETS weights: SLSQP)"),
    }
    safe = method.replace(":", "_").replace(",", "_")
    path = os.path.join(OUT, f"scaling_{safe}_{case}.json")
    with open(path, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"))
    grad = info.get("max_gradient", info.get("temperature_gradient"))
    print(f"{os.path.basename(path):58s} {os.path.getsize(path) / 1e6:5.2f} MB  objective {objective:.15g}  "
          f"grad {grad:.1e}  it {info['iterations']}  {info['message'][:40]}")


def main():
    os.makedirs(OUT, exist_ok=True)
    for old in glob.glob(os.path.join(OUT, "scaling_*.json")):
        os.remove(old)
    rng = np.random.default_rng(20240611)
    k10 = ["vector", "matrix", "matrix-odir:0.01,0.01", "dirichlet", "ets"]
    for d in sorted(os.path.dirname(p) for p in glob.glob(os.path.join(ROOT, "data", "predictions", "*", "val_logits.npy"))):
        case = os.path.basename(d)
        z = np.load(os.path.join(d, "val_logits.npy")).astype(np.float64)
        y = np.load(os.path.join(d, "val_labels.npy")).astype(np.int64)
        zt = np.load(os.path.join(d, "test_logits.npy")).astype(np.float64)
        idx = np.sort(rng.choice(len(y), 1200, replace=False))
        x, yy = np.round(z[idx], 4), y[idx]
        held = np.round(zt[rng.choice(len(zt), 40, replace=False)], 4)
        for m in k10:
            write(m, case, "logits", x, yy, held)
        if case == "cifar10-resnet18-step150-ce":
            p, ph = np.round(softmax(x), 6), np.round(softmax(held), 6)
            for m in ["vector", "matrix", "dirichlet"]:
                write(m, case + "-probs", "probs", p, yy, ph)
            for c, dec, tag in [(100.0, 2, "x100"), (0.01, 6, "x0.01")]:
                for m in k10:
                    write(m, f"{case}-{tag}", "logits", np.round(x * c, dec), yy, np.round(held * c, dec))

    # K = 2 logits: class-conditional logit differences, arbitrary offsets.
    n = 2000 + 40
    yb = (rng.random(n) < 0.4).astype(np.int64)
    d = np.where(yb == 1, rng.normal(1.5, 2.0, n), rng.normal(-1.0, 1.2, n)) * 2.5
    z0 = rng.normal(0.0, 1.0, n)
    zb = np.round(np.stack([z0, z0 + d], axis=1), 4)
    for m in ["platt", "beta", "vector", "matrix", "matrix-odir:0.01,0.01", "dirichlet", "ets"]:
        write(m, "binary", "logits", zb[:2000], yb[:2000], zb[2000:])

    # K = 2 probabilities drawn so that the unconstrained beta fit has a < 0 (a = 0 active);
    # two rows at exactly 0 and 1 exercise the clipping.
    p1 = np.round(0.001 + 0.998 * rng.random(n), 6)
    p1[:2] = [0.0, 1.0]
    t = -0.6 * np.log(np.clip(p1, EPS, 1 - EPS)) + 1.5 * -np.log1p(-np.clip(p1, EPS, 1 - EPS)) + 0.3
    yp = (rng.random(n) < 1 / (1 + np.exp(-t))).astype(np.int64)
    pb = np.stack([np.round(1 - p1, 6), p1], axis=1)
    for m in ["platt", "beta"]:
        write(m, "binary-probs", "probs", pb[:2000], yp[:2000], pb[2000:])

    # K = 100: class prototypes plus noise, overconfident; every class has 7 fitting rows.
    k, n_fit, n_held = 100, 700, 30
    y100 = np.concatenate([rng.permutation(np.arange(n_fit) % k), rng.integers(0, k, n_held)])
    proto = rng.normal(0.0, 1.0, (k, k)) * 0.5 + np.eye(k) * 2.0
    z100 = np.round(3.0 * (proto[y100] + rng.normal(0.0, 1.0, (n_fit + n_held, k))), 2)
    for m in ["vector", "matrix-odir:10,1", "dirichlet:10,1", "ets"]:
        write(m, "k100", "logits", z100[:n_fit], y100[:n_fit], z100[n_fit:])


if __name__ == "__main__":
    main()
