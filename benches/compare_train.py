#!/usr/bin/env python3
"""Training speed of our networks against the same networks in PyTorch eager, in one run.

Runs `calib bench train` with the given settings, then times the same training step in PyTorch:
the same network (written here after our definitions, which follow the paper's official code; the
parameter counts are asserted equal), the same synthetic batch shapes, loss, optimiser, clipping,
precision and thread count, and the same warm-up and timed steps. Prints one JSON object with both
figures and the ratio (ours / PyTorch's samples per second; above 1 means we are faster).

    .deps/bench-venv/bin/python benches/compare_train.py --calib target/release/calib --model resnet110 \
        --batch-size 128 --steps 20 --device cpu

Image networks: SGD (momentum 0.9, weight decay 5e-4, as the official code), cross-entropy, no
clipping. Transformers: Adam (0.9, 0.98, 1e-9), label smoothing 0.1, gradient norm clipped at 1;
post-norm nn.TransformerEncoderLayer / nn.TransformerDecoderLayer stacks (no final layer norm, as
fairseq's post-norm model), tied embeddings scaled by sqrt(d), sinusoidal positions.

Each side runs as shipped unless told otherwise, and the flags set either side up as the other, so a
lever's share of a ratio can be read off. Host memory: our binary keeps freed blocks in the process
(glibc without mmap or trimming; see calib_train::host_memory), PyTorch leaves glibc at its defaults
(--peer-malloc keep, --ours-malloc glibc). Layout of the image networks: ours is channels-last,
PyTorch's NCHW (--peer-layout channels-last, --ours-layout nchw).
"""

import argparse
import ctypes
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBn(nn.Module):
    def __init__(self, i, o, k, stride):
        super().__init__()
        self.conv = nn.Conv2d(i, o, k, stride, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(o)

    def forward(self, x):
        return self.bn(self.conv(x))


class Residual(nn.Module):
    """Basic (two 3x3) or bottleneck (1x1, 3x3, 1x1 x4) block, projection shortcut on a change of shape."""

    def __init__(self, bottleneck, i, planes, stride):
        super().__init__()
        if bottleneck:
            self.layers = nn.ModuleList([ConvBn(i, planes, 1, 1), ConvBn(planes, planes, 3, stride),
                                         ConvBn(planes, 4 * planes, 1, 1)])
            self.out = 4 * planes
        else:
            self.layers = nn.ModuleList([ConvBn(i, planes, 3, stride), ConvBn(planes, planes, 3, 1)])
            self.out = planes
        self.shortcut = ConvBn(i, self.out, 1, stride) if stride != 1 or i != self.out else None

    def forward(self, x):
        y = x
        for j, layer in enumerate(self.layers):
            y = layer(y)
            if j < len(self.layers) - 1:
                y = F.relu(y)
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class ResNet(nn.Module):
    """The ImageNet ResNet adapted to CIFAR (3x3 stem, no max-pool); also the Wide-ResNet's frame."""

    def __init__(self, bottleneck, counts, classes, stem=64, widths=(64, 128, 256, 512)):
        super().__init__()
        self.stem = ConvBn(3, stem, 3, 1)
        blocks, i = [], stem
        for s, (n, planes) in enumerate(zip(counts, widths)):
            for b in range(n):
                block = Residual(bottleneck, i, planes, 2 if b == 0 and s > 0 else 1)
                blocks.append(block)
                i = block.out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(i, classes)

    def forward(self, x):
        y = self.blocks(F.relu(self.stem(x)))
        return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet (6n+2 layers) with parameter-free shortcuts (subsample, zero-pad)."""

    def __init__(self, n, classes):
        super().__init__()
        self.stem = ConvBn(3, 16, 3, 1)
        self.blocks = nn.ModuleList()
        i = 16
        for s, planes in enumerate([16, 32, 64]):
            for b in range(n):
                stride = 2 if b == 0 and s > 0 else 1
                self.blocks.append(nn.ModuleList([ConvBn(i, planes, 3, stride), ConvBn(planes, planes, 3, 1)]))
                self.blocks[-1].down = stride == 2
                i = planes
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        y = F.relu(self.stem(x))
        for a, b in self.blocks:
            out = b(F.relu(a(y)))
            if a.conv.stride[0] == 2:
                s = y[:, :, ::2, ::2]
                extra = out.shape[1] - s.shape[1]
                short = F.pad(s, (0, 0, 0, 0, extra // 2, extra - extra // 2))
            else:
                short = y
            y = F.relu(out + short)
        return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))


class DenseNet(nn.Module):
    """DenseNet-BC for CIFAR: bottleneck layers concatenated, transitions halving the channels."""

    def __init__(self, counts, g, classes):
        super().__init__()
        c = 2 * g
        self.stem = nn.Conv2d(3, c, 3, 1, 1, bias=False)
        self.stages = nn.ModuleList()
        for s, n in enumerate(counts):
            layers = nn.ModuleList()
            for _ in range(n):
                layers.append(nn.ModuleList([nn.BatchNorm2d(c), nn.Conv2d(c, 4 * g, 1, bias=False),
                                             nn.BatchNorm2d(4 * g), nn.Conv2d(4 * g, g, 3, 1, 1, bias=False)]))
                c += g
            trans = None
            if s + 1 < len(counts):
                trans = nn.ModuleList([nn.BatchNorm2d(c), nn.Conv2d(c, c // 2, 1, bias=False)])
                c //= 2
            self.stages.append(nn.ModuleList([layers, trans]) if trans is not None else nn.ModuleList([layers]))
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        y = self.stem(x)
        for stage in self.stages:
            for b1, c1, b2, c2 in stage[0]:
                y = torch.cat([c2(F.relu(b2(c1(F.relu(b1(y)))))), y], 1)
            if len(stage) > 1:
                b, c = stage[1]
                y = F.avg_pool2d(c(F.relu(b(y))), 2)
        return self.fc(F.adaptive_avg_pool2d(F.relu(self.bn(y)), 1).flatten(1))


class SmallCnn(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.convs = nn.ModuleList([ConvBn(3, 32, 3, 1), ConvBn(32, 64, 3, 2), ConvBn(64, 128, 3, 2)])
        self.fc = nn.Linear(128, classes)

    def forward(self, x):
        for c in self.convs:
            x = F.relu(c(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class Seq2Seq(nn.Module):
    """Post-norm encoder-decoder from nn.TransformerEncoderLayer / DecoderLayer, tied scaled embeddings."""

    def __init__(self, vocab, d, heads, ffn, enc, dec, dropout=0.1):
        super().__init__()
        self.d = d
        self.embed = nn.Embedding(vocab, d, padding_idx=1)
        layer = dict(d_model=d, nhead=heads, dim_feedforward=ffn, dropout=dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**layer), enc, enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**layer), dec)
        self.drop = nn.Dropout(dropout)

    def positions(self, n, device):
        half = self.d // 2
        freq = torch.exp(torch.arange(half, device=device) * -(math.log(10000.0) / (half - 1)))
        angles = torch.arange(n, device=device)[:, None] * freq[None, :]
        return torch.cat([angles.sin(), angles.cos()], 1)

    def embed_tokens(self, ids):
        return self.drop(self.embed(ids) * math.sqrt(self.d) + self.positions(ids.shape[1], ids.device))

    def forward(self, src, tgt):
        pad = src.eq(1)
        memory = self.encoder(self.embed_tokens(src), src_key_padding_mask=pad)
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1], device=tgt.device)
        h = self.decoder(self.embed_tokens(tgt), memory, tgt_mask=causal, tgt_is_causal=True,
                         memory_key_padding_mask=pad)
        return h @ self.embed.weight.t()


def image_network(name, classes):
    return {
        "small-cnn": lambda: SmallCnn(classes),
        "resnet18": lambda: ResNet(False, [2, 2, 2, 2], classes),
        "resnet50": lambda: ResNet(True, [3, 4, 6, 3], classes),
        "resnet110-official": lambda: ResNet(True, [3, 4, 26, 3], classes),
        "resnet110": lambda: CifarResNet(18, classes),
        "wrn-26-10": lambda: ResNet(False, [4, 4, 4], classes, stem=16, widths=(160, 320, 640)),
        "densenet121": lambda: DenseNet([6, 12, 24, 16], 32, classes),
    }[name]()


TRANSFORMERS = {"transformer-small": (256, 4, 1024, 3, 3), "transformer-base": (512, 8, 2048, 6, 6)}


def ours(args):
    cmd = [args.calib, "--format", "json", "bench", "train", "--model", args.model, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--precision", args.precision, "--device", args.device,
           "--length", str(args.length), "--image-size", str(args.image_size)]
    for flag, value in [("--batch-size", args.batch_size), ("--tokens", args.tokens), ("--classes", args.classes)]:
        if value is not None:
            cmd += [flag, str(value)]
    if args.ours_layout == "nchw":
        cmd.append("--nchw")
    env = dict(os.environ)
    if args.ours_malloc == "glibc":
        # glibc's own default for the mmap count: our binary leaves an allocator tuned by the user alone.
        env["GLIBC_TUNABLES"] = "glibc.malloc.mmap_max=65536"
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout)


def keep_freed_memory():
    """What `calib_train::host_memory::keep_freed_memory` does, for the peer: glibc serves every block from its
    heaps (M_MMAP_MAX = 0) and never trims them (M_TRIM_THRESHOLD = INT_MAX)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-4, 0)
    libc.mallopt(-1, 2**31 - 1)


def peer(args, threads):
    if args.peer_malloc == "keep":
        keep_freed_memory()
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    device = torch.device("cuda" if args.device == "cuda" else "cpu")
    if args.model in TRANSFORMERS:
        d, heads, ffn, enc, dec = TRANSFORMERS[args.model]
        vocab = args.classes or 32000
        model = Seq2Seq(vocab, d, heads, ffn, enc, dec).to(device)
        n = max(1, (args.tokens or 4096) // args.length)
        ids = lambda: torch.randint(4, vocab, (n, args.length), device=device)
        src, tgt, y = ids(), ids(), ids().view(-1)
        samples = n * args.length
        opt = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.9, 0.98), eps=1e-9)
        forward = lambda: model(src, tgt).view(-1, vocab)
        loss_fn = lambda logits: F.cross_entropy(logits.float(), y, label_smoothing=0.1)
        clip = 1.0
    else:
        classes = args.classes or 10
        model = image_network(args.model, classes).to(device)
        b = args.batch_size or 128
        x = torch.randn(b, 3, args.image_size, args.image_size, device=device)
        y = torch.randint(0, classes, (b,), device=device)
        samples = b
        if args.peer_layout == "channels-last":
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        forward = lambda: model(x)
        loss_fn = lambda logits: F.cross_entropy(logits.float(), y)
        clip = None
    model.train()
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    layout = "nchw"
    if args.model not in TRANSFORMERS and any(
            p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters()):
        layout = "channels-last"

    def step():
        opt.zero_grad(set_to_none=False)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            logits = forward()
        loss_fn(logits).backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()

    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = time.perf_counter() - start
    return {"implementation": f"pytorch {torch.__version__} eager", "parameters": params,
            "step_ms": 1000 * seconds / args.steps, "samples_per_second": samples * args.steps / seconds,
            "samples_per_step": samples, "threads": torch.get_num_threads(), "layout": layout}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calib", default="target/release/calib")
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--tokens", type=int)
    ap.add_argument("--length", type=int, default=32)
    ap.add_argument("--classes", type=int)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--ours-layout", choices=["channels-last", "nchw"], default="channels-last",
                    help="image networks: channels-last is what `calib train` uses")
    ap.add_argument("--peer-layout", choices=["nchw", "channels-last"], default="nchw",
                    help="image networks: nchw is PyTorch's default, channels-last its model.to(memory_format=...)")
    ap.add_argument("--ours-malloc", choices=["keep", "glibc"], default="keep",
                    help="keep: our binary's default (freed host memory stays in the process); glibc: glibc's default")
    ap.add_argument("--peer-malloc", choices=["glibc", "keep"], default="glibc",
                    help="glibc: what a PyTorch user gets; keep: the peer set up as our binary is")
    args = ap.parse_args()
    a = ours(args)
    b = peer(args, a["threads"])
    if a["parameters"] != b["parameters"]:
        sys.exit(f"{args.model}: {a['parameters']} parameters in ours, {b['parameters']} in the PyTorch peer")
    print(json.dumps({"model": args.model, "device": args.device, "precision": args.precision,
                      "ours_malloc": args.ours_malloc, "peer_malloc": args.peer_malloc,
                      "ours_layout": args.ours_layout, "peer_layout": args.peer_layout,
                      "samples_per_step": a["samples_per_step"], "unit": a["unit"], "threads": a["threads"],
                      "parameters": a["parameters"], "ours": a, "pytorch": b,
                      "ratio": a["samples_per_second"] / b["samples_per_second"]}))


if __name__ == "__main__":
    main()
