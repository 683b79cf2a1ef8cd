#!/usr/bin/env python3
"""Reference vectors for the losses that followed the paper, in the schema of ../shared/testvectors/losses_*.json.

For every case of those files (their logits and labels), each loss below is computed with its reference code's formula,
verbatim, in float64 and float32 (value and d loss / d logits), and written to
crates/calib/tests/vectors/losses_followups.json, which crates/calib/tests/loss_vectors.rs reads beside the shared files:
  dual_focal_gamma_G   Linwei94/ICML2023-DualFocalLoss, Losses/dual_focal_loss.py, DualFocalLoss(gamma=G,
                       size_average=False): -(1 - p_k + p_j)^G log p_k summed, p_j = topk(mask * softmax, 1) with
                       mask = softmax < p_k.

Run: .deps/bench-venv/bin/python benches/make_loss_vectors.py   (bash benches/setup-python.sh installs torch)
"""

import glob
import json
import os

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "testvectors")
OUT = os.path.join(ROOT, "crates", "calib", "tests", "vectors", "losses_followups.json")
GAMMAS = [2.0, 5.0]


def dual_focal(input, target, gamma):
    # The reference's forward, verbatim but for the reshaping of >2-d inputs.
    target = target.view(-1, 1)
    logp_k = F.log_softmax(input, dim=1)
    softmax_logits = logp_k.exp()
    logp_k = logp_k.gather(1, target)
    logp_k = logp_k.view(-1)
    p_k = logp_k.exp()
    p_j_mask = torch.lt(softmax_logits, p_k.reshape(p_k.shape[0], 1)) * 1
    p_j = torch.topk(p_j_mask * softmax_logits, 1)[0].squeeze()
    loss = -1 * (1 - p_k + p_j) ** gamma * logp_k
    return loss.sum()


def value_and_grad(fn, logits, labels, dtype):
    x = torch.tensor(logits, dtype=dtype, requires_grad=True)
    v = fn(x, torch.tensor(labels, dtype=torch.int64))
    v.backward()
    return {"value": float(v), "grad": x.grad.double().tolist()}


def main():
    cases = []
    for path in sorted(glob.glob(os.path.join(SHARED, "losses_*.json"))):
        for case in json.load(open(path))["cases"]:
            losses = {}
            for g in GAMMAS:
                fn = lambda x, y, g=g: dual_focal(x, y, g)
                losses[f"dual_focal_gamma_{g:g}"] = {
                    "exact_f64": value_and_grad(fn, case["logits"], case["labels"], torch.float64),
                    "official_f32": value_and_grad(fn, case["logits"], case["labels"], torch.float32),
                }
            cases.append({"name": f"{os.path.basename(path)[:-5]}/{case['name']}", "description": case.get("description", ""),
                          "n": case["n"], "k": case["k"], "logits": case["logits"], "labels": case["labels"], "losses": losses})
    meta = {"generator": "benches/make_loss_vectors.py", "torch": torch.__version__,
            "references": {"dual_focal": "Linwei94/ICML2023-DualFocalLoss Losses/dual_focal_loss.py"}}
    with open(OUT, "w") as fh:
        json.dump({"meta": meta, "cases": cases}, fh, separators=(",", ":"))
    print(f"{OUT}: {len(cases)} cases, {os.path.getsize(OUT) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
