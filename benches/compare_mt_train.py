#!/usr/bin/env python3
"""Our Transformer's learning curve beside a PyTorch eager peer of the same model, data and settings.

The peer is written here for the project: the translation recipe's Transformer (post-norm, shared embeddings tied to
the output projection and scaled by sqrt(d), Vaswani's interleaved sinusoids, fairseq's initialisation and dropout
placement), the run's own `tokenizer.json` (Hugging Face tokenizers reads the same file), the same batching rule
(pairs sorted by length, cut so that pairs x longest side <= the recipe's batch_size, batches shuffled every epoch;
its own random order, as the two programs' generators differ), Adam (beta1, beta2, eps from the recipe), fairseq's
inverse-sqrt schedule, gradient clipping and the recipe's label smoothing, mean over target tokens.

After every epoch both are measured the same way: validation token NLL and token error under teacher forcing over
every reference token including end-of-sentence, padding left out. The script runs `calib train` itself (unless
--ours names a finished run), then the peer, and prints one JSON line per epoch with both and their differences:

    bash benches/setup-python.sh
    .deps/bench-venv/bin/python benches/compare_mt_train.py --calib target/release/calib \
        --recipe recipes/multi30k/transformer-small.toml --epochs 4 --seed 1 --out runs/mt-peer-s1

--threads sets the intra-op threads of each side (both default to 2). `--plot OUT.svg --from A/comparison.jsonl
B/comparison.jsonl …` draws the validation NLL and token error of both sides of every given comparison (one per seed)
against the epoch, and trains nothing. --init xavier-all starts the peer as
`torch.nn.Transformer` does instead (Xavier-uniform on every matrix), the rule the issue's first peer used.
"""

import argparse
import gzip
import json
import math
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

PRESETS = {
    "small": dict(d_model=256, heads=4, ffn=1024, encoder_layers=3, decoder_layers=3),
    "base": dict(d_model=512, heads=8, ffn=2048, encoder_layers=6, decoder_layers=6),
}


def fail(message):
    print(f"compare_mt_train: {message}", file=sys.stderr)
    sys.exit(1)


def read_lines(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def encode(tok, path):
    lines = read_lines(path)
    for i, line in enumerate(lines):
        if not line.strip():
            fail(f"{path}:{i + 1}: empty line")
    return [e.ids for e in tok.encode_batch(lines, add_special_tokens=False)]


def token_batches(src_len, tgt_len, max_tokens, rng):
    """Our rule: order by (source, target) length with ties in random order, cut greedily so that pairs x longest
    side (end-of-sentence counted) stays within max_tokens, then shuffle the batches."""
    order = rng.permutation(len(src_len))
    order = sorted(order, key=lambda i: (src_len[i], tgt_len[i]))
    batches, current, longest = [], [], 0
    for i in order:
        w = max(src_len[i], tgt_len[i], 1)
        if current and (len(current) + 1) * max(longest, w) > max_tokens:
            batches.append(current)
            current, longest = [], 0
        longest = max(longest, w)
        current.append(i)
    if current:
        batches.append(current)
    return [batches[j] for j in rng.permutation(len(batches))]


def pad_rows(rows, pad):
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), pad, dtype=torch.long)
    for k, r in enumerate(rows):
        out[k, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def make_batch(src, tgt, rows, sp):
    s = pad_rows([src[r] + [sp["eos"]] for r in rows], sp["pad"])
    t_in = pad_rows([[sp["bos"]] + tgt[r] for r in rows], sp["pad"])
    t_out = pad_rows([tgt[r] + [sp["eos"]] for r in rows], sp["pad"])
    return s, t_in, t_out.reshape(-1)


def sinusoids(n, d):
    pe = torch.zeros(n, d)
    pos = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(0, d, 2, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, i / d)
    pe[:, 0::2] = torch.sin(angle).float()
    pe[:, 1::2] = torch.cos(angle).float()[:, : d // 2]
    return pe


class Attention(nn.Module):
    def __init__(self, d, heads, init):
        super().__init__()
        self.q, self.k, self.v, self.out = (nn.Linear(d, d) for _ in range(4))
        self.heads = heads
        gain = 1 / math.sqrt(2) if init == "fairseq" else 1.0
        for lin in (self.q, self.k, self.v):
            nn.init.xavier_uniform_(lin.weight, gain=gain)
        nn.init.xavier_uniform_(self.out.weight)
        if init == "fairseq":
            nn.init.zeros_(self.out.bias)

    def split(self, x):
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, query, memory, keep, causal, drop):
        q, k, v = self.split(self.q(query)), self.split(self.k(memory)), self.split(self.v(memory))
        mask = None
        if keep is not None:
            mask = keep[:, None, None, :]
            if causal:
                tq, tk = q.shape[2], k.shape[2]
                mask = mask & torch.ones(tq, tk, dtype=torch.bool).tril()
                causal = False
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop, is_causal=causal)
        b, h, t, dh = ctx.shape
        return self.out(ctx.transpose(1, 2).reshape(b, t, h * dh))


class FeedForward(nn.Module):
    def __init__(self, d, ffn, init):
        super().__init__()
        self.a, self.b = nn.Linear(d, ffn), nn.Linear(ffn, d)
        if init == "xavier-all":
            nn.init.xavier_uniform_(self.a.weight)
            nn.init.xavier_uniform_(self.b.weight)

    def forward(self, x, drop):
        return self.b(F.dropout(F.relu(self.a(x)), drop, self.training))


class Peer(nn.Module):
    def __init__(self, vocab, pad, cfg, init):
        super().__init__()
        d = cfg["d_model"]
        self.cfg, self.pad, self.d = cfg, pad, d
        self.embed = nn.Parameter(torch.randn(vocab, d) * d**-0.5)
        with torch.no_grad():
            self.embed[pad].zero_()
        self.register_buffer("positions", sinusoids(1024, d), persistent=False)
        h, f = cfg["heads"], cfg["ffn"]
        self.enc = nn.ModuleList(
            nn.ModuleDict(dict(attn=Attention(d, h, init), ln1=nn.LayerNorm(d), ffn=FeedForward(d, f, init), ln2=nn.LayerNorm(d)))
            for _ in range(cfg["encoder_layers"])
        )
        self.dec = nn.ModuleList(
            nn.ModuleDict(
                dict(
                    self_attn=Attention(d, h, init), ln1=nn.LayerNorm(d), cross=Attention(d, h, init), ln2=nn.LayerNorm(d),
                    ffn=FeedForward(d, f, init), ln3=nn.LayerNorm(d),
                )
            )
            for _ in range(cfg["decoder_layers"])
        )

    def embedding(self, tokens):
        x = F.embedding(tokens, self.embed, padding_idx=self.pad) * math.sqrt(self.d)
        return F.dropout(x + self.positions[: tokens.shape[1]], self.cfg["dropout"], self.training)

    def forward(self, src, tgt_in):
        c = self.cfg
        drop = c["dropout"] if self.training else 0.0
        att = c["attention_dropout"] if self.training else 0.0
        act = c["activation_dropout"] if self.training else 0.0
        res = lambda x, ln, y: ln(x + F.dropout(y, drop, self.training))  # noqa: E731
        keep = src.ne(self.pad)
        x = self.embedding(src)
        for l in self.enc:
            x = res(x, l["ln1"], l["attn"](x, x, keep, False, att))
            x = res(x, l["ln2"], l["ffn"](x, act))
        y = self.embedding(tgt_in)
        for l in self.dec:
            y = res(y, l["ln1"], l["self_attn"](y, y, None, True, att))
            y = res(y, l["ln2"], l["cross"](y, x, keep, False, att))
            y = res(y, l["ln3"], l["ffn"](y, act))
        return y @ self.embed.t()


def loss_of(logits, targets, pad, loss_name):
    if loss_name == "ce":
        alpha = 0.0
    elif loss_name.startswith("ls:"):
        alpha = float(loss_name[3:])
    else:
        fail(f"the peer implements ce and ls:A, not {loss_name!r}")
    return F.cross_entropy(logits, targets, ignore_index=pad, label_smoothing=alpha)


def inverse_sqrt(peak, warmup, step):
    s, w = step + 1, max(warmup, 1)
    return peak * s / w if s < w else peak * math.sqrt(w / s)


@torch.no_grad()
def validate(model, src, tgt, batches, sp):
    model.eval()
    nll, wrong, n = 0.0, 0, 0
    for rows in batches:
        s, t_in, t_out = make_batch(src, tgt, rows, sp)
        logits = model(s, t_in).reshape(-1, model.embed.shape[0])
        keep = t_out.ne(sp["pad"])
        lp = logits[keep].double().log_softmax(-1)
        target = t_out[keep]
        nll -= lp.gather(1, target[:, None]).sum().item()
        wrong += lp.argmax(-1).ne(target).sum().item()
        n += target.numel()
    model.train()
    return nll / n, wrong / n


def run_ours(args, recipe_path, out):
    if args.ours:
        return Path(args.ours)
    ours = out / "ours"
    cmd = [args.calib, "train", "--recipe", str(recipe_path), "--epochs", str(args.epochs), "--out", str(ours),
           "--set", f"train.seed={args.seed}"]
    if args.limit:
        cmd += ["--set", f"data.limit={args.limit}"]
    if (ours / "state.json").exists():
        cmd.append("--resume")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    print("compare_mt_train: " + " ".join(cmd), file=sys.stderr)
    started = time.time()
    if subprocess.run(cmd, env=env).returncode != 0:
        fail("calib train failed")
    (out / "ours-seconds.txt").write_text(f"{time.time() - started:.1f}\n")
    return ours


def plot(out, files):
    """Two panels (validation NLL, token error %) of ours (solid) and the peer (dashed), one colour per file."""
    runs = []
    for f in files:
        rows = [json.loads(line) for line in Path(f).read_text().splitlines() if line.strip()]
        if not rows or any("ours" not in r for r in rows):
            fail(f"{f}: no comparison rows with both sides")
        runs.append((Path(f).parent.name, rows))
    colours = ["#c8503c", "#3c6ec8", "#3c9a5a", "#8a4fb0"]
    width, height, pad = 440, 320, 50
    panels = [("validation token NLL", lambda d: d["val_nll"]), ("validation token error (%)", lambda d: 100 * d["val_error"])]
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * width}" height="{height + 30}" font-family="sans-serif" font-size="12">',
           f'<rect width="{2 * width}" height="{height + 30}" fill="white"/>']
    for p, (name, get) in enumerate(panels):
        x0 = p * width
        values = [get(r[side]) for _, rows in runs for r in rows for side in ("ours", "peer")]
        epochs = [r["epoch"] for _, rows in runs for r in rows]
        lo, hi = min(values), max(values)
        lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)
        e0, e1 = min(epochs), max(max(epochs), min(epochs) + 1)
        sx = lambda e: x0 + pad + (e - e0) / (e1 - e0) * (width - 2 * pad)  # noqa: E731
        sy = lambda v: pad / 2 + (hi - v) / (hi - lo) * (height - pad)  # noqa: E731
        svg.append(f'<text x="{x0 + width / 2}" y="16" text-anchor="middle" font-size="14">{name}</text>')
        svg.append(f'<line x1="{sx(e0)}" y1="{sy(lo)}" x2="{sx(e1)}" y2="{sy(lo)}" stroke="black"/>')
        svg.append(f'<line x1="{sx(e0)}" y1="{sy(lo)}" x2="{sx(e0)}" y2="{sy(hi)}" stroke="black"/>')
        for e in range(e0, e1 + 1):
            svg.append(f'<text x="{sx(e)}" y="{sy(lo) + 16}" text-anchor="middle">{e}</text>')
        for k in range(5):
            v = lo + k * (hi - lo) / 4
            svg.append(f'<text x="{sx(e0) - 6}" y="{sy(v) + 4}" text-anchor="end">{v:.2f}</text>')
        svg.append(f'<text x="{x0 + width / 2}" y="{height + 22}" text-anchor="middle">epoch</text>')
        for c, (label, rows) in enumerate(runs):
            for side, dash in (("ours", ""), ("peer", ' stroke-dasharray="6 4"')):
                pts = " ".join(f"{sx(r['epoch']):.1f},{sy(get(r[side])):.1f}" for r in rows)
                svg.append(f'<polyline points="{pts}" fill="none" stroke="{colours[c % 4]}" stroke-width="2"{dash}/>')
            if p == 0:
                y = 40 + 16 * c
                svg.append(f'<text x="{x0 + width - pad}" y="{y}" text-anchor="end" fill="{colours[c % 4]}">{label}: ours solid, peer dashed</text>')
    svg.append("</svg>")
    Path(out).write_text("\n".join(svg) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calib", default="target/release/calib")
    ap.add_argument("--recipe", default="recipes/multi30k/transformer-small.toml")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="folder for both runs and the comparison")
    ap.add_argument("--plot", help="draw the curves of --from comparisons into this SVG and train nothing")
    ap.add_argument("--from", dest="sources", nargs="+", default=[], help="comparison.jsonl files for --plot")
    ap.add_argument("--ours", help="a finished run of ours to compare with instead of training one")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", choices=["fairseq", "xavier-all"], default="fairseq")
    ap.add_argument("--limit", type=int, help="only the first this many training pairs (a smoke run), on both sides")
    args = ap.parse_args()
    if args.plot:
        return plot(args.plot, args.sources)
    if not args.out:
        fail("--out is required to train")

    recipe_path = Path(args.recipe)
    recipe = tomllib.loads(recipe_path.read_text())
    if recipe.get("task") != "translation":
        fail(f"{recipe_path}: not a translation recipe")
    data, model_cfg, train = recipe["data"], recipe["model"], recipe["train"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ours = run_ours(args, recipe_path, out)
    tok_path = ours / "tokenizer.json"
    if not tok_path.exists():
        fail(f"{tok_path}: missing (train our run first)")
    tok = Tokenizer.from_file(str(tok_path))
    sp = {name: tok.token_to_id(t) for name, t in (("pad", "<pad>"), ("bos", "<s>"), ("eos", "</s>"))}
    if None in sp.values():
        fail(f"{tok_path}: the vocabulary lacks <pad>, <s> or </s>")

    base = Path(data["dir"])  # relative to the current folder, as `calib train` reads it
    src, tgt = encode(tok, base / data["train_src"]), encode(tok, base / data["train_tgt"])
    if args.limit:
        src, tgt = src[: args.limit], tgt[: args.limit]
    if len(src) != len(tgt):
        fail(f"{data['train_src']} has {len(src)} lines, {data['train_tgt']} {len(tgt)}")
    max_len = data.get("max_len", 250)
    keep = [i for i in range(len(src)) if len(src[i]) <= max_len and len(tgt[i]) <= max_len]
    src, tgt = [src[i] for i in keep], [tgt[i] for i in keep]
    vsrc, vtgt = encode(tok, base / data["valid_src"]), encode(tok, base / data["valid_tgt"])

    cfg = dict(PRESETS[model_cfg["preset"]])
    for key in ("d_model", "heads", "ffn", "encoder_layers", "decoder_layers"):
        cfg[key] = model_cfg.get(key, cfg[key])
    cfg["dropout"] = model_cfg.get("dropout", 0.1)
    cfg["attention_dropout"] = model_cfg.get("attention_dropout", 0.0)
    cfg["activation_dropout"] = model_cfg.get("activation_dropout", 0.0)
    if model_cfg.get("pre_norm"):
        fail("the peer is post-norm only")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = Peer(tok.get_vocab_size(), sp["pad"], cfg, args.init)
    o = train["optimizer"]
    opt = torch.optim.Adam(model.parameters(), lr=0.0, betas=(o["beta1"], o["beta2"]), eps=o["eps"])
    sched = train["schedule"]
    if sched["kind"] != "inverse-sqrt":
        fail("the peer implements the inverse-sqrt schedule only")
    max_tokens, clip, loss_name = train["batch_size"], train.get("clip_grad_norm"), train["loss"]
    src_len, tgt_len = [len(s) + 1 for s in src], [len(t) + 1 for t in tgt]
    val_batches = token_batches([len(s) + 1 for s in vsrc], [len(t) + 1 for t in vtgt], max_tokens, np.random.default_rng(0))
    params = sum(p.numel() for p in model.parameters())
    print(f"compare_mt_train: peer {params:,} parameters, {len(src):,} training pairs", file=sys.stderr)

    ours_log = [json.loads(line) for line in (ours / "metrics.jsonl").read_text().splitlines() if line.strip()]
    step = 0
    rows = []
    for epoch in range(1, args.epochs + 1):
        started = time.time()
        total, count = 0.0, 0
        batches = token_batches(src_len, tgt_len, max_tokens, rng)
        for rows_ in batches:
            s, t_in, t_out = make_batch(src, tgt, rows_, sp)
            lr = inverse_sqrt(sched["peak"], sched["warmup"], step)
            for g in opt.param_groups:
                g["lr"] = lr
            logits = model(s, t_in).reshape(-1, model.embed.shape[0])
            loss = loss_of(logits, t_out, sp["pad"], loss_name)
            if not torch.isfinite(loss):
                fail(f"epoch {epoch}, step {step + 1}: the loss is {loss.item()}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            step += 1
            total += loss.item()
            count += 1
        seconds = time.time() - started
        nll, err = validate(model, vsrc, vtgt, val_batches, sp)
        row = {"epoch": epoch, "steps": step, "batches": len(batches), "peer": {"val_nll": nll, "val_error": err,
               "train_loss": total / count, "seconds": seconds}}
        if epoch <= len(ours_log):
            o_val = ours_log[epoch - 1]["val"]
            row["ours"] = {"val_nll": o_val["nll"], "val_error": o_val["error"],
                           "train_loss": ours_log[epoch - 1]["train_loss"], "seconds": ours_log[epoch - 1]["seconds"]}
            row["ours_minus_peer"] = {"val_nll": o_val["nll"] - nll, "val_error": o_val["error"] - err}
        rows.append(row)
        print(json.dumps(row), flush=True)
    (out / "comparison.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
