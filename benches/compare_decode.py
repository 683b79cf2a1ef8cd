#!/usr/bin/env python3
"""Beam-search decoding of a trained translation run: `calib decode` against Hugging Face `generate`.

Exports the run's Transformer into a `MarianMTModel` of the same shape, checks that greedy and
beam search give the same translations sentence for sentence, then times both at equal settings
and prints one JSON object with sentences/s and tokens/s for each and the ratio (ours / HF's).

    .deps/bench-venv/bin/python benches/compare_decode.py --calib target/release/calib \
        --run runs/m30k --src ../shared/data/multi30k/test_2016_flickr.en.gz --limit 500

What had to be adapted to express our model as Marian:
- Marian is post-norm with embeddings scaled by sqrt(d) and tied to the output projection, as
  ours; its activation is set to ReLU (Marian's default is swish) and `final_logits_bias` is zero.
- Positions: ours are Vaswani's interleaved sinusoids (sin at even, cos at odd dimensions),
  Marian's put all sines before all cosines. Marian's position table is a weight, so ours is
  copied into it (both count positions from 0).
- Our q/k/v/out projections map onto Marian's q_proj/k_proj/v_proj/out_proj, the feed-forward
  onto fc1/fc2, the three layer norms of a decoder layer onto self_attn_layer_norm,
  encoder_attn_layer_norm and final_layer_norm.
- Generation: the decoder starts from our BOS (`decoder_start_token_id`); the source is the
  tokens followed by EOS, padded on the right, as `calib decode` builds it. Marian bans the pad
  token by default (`bad_words_ids`); that ban is lifted, since our search has none.
- Search semantics: HF normalises a finished hypothesis by its length without EOS, fairseq (and
  we) with it, so the comparison uses no length normalisation (`--lenpen 0` /
  `length_penalty=0`), where both rank by the summed log-probability. Both stop once `beam`
  hypotheses are finished (`early_stopping=True`) and take the 2·beam best candidates a step.
  Outputs are capped at 199 tokens: we stop at 200 positions with a forced EOS (fairseq's rule), HF after 199
  new tokens without one, so a sentence that runs into the cap (a degenerate repetition of an undertrained model)
  ends with the same tokens. (With beam search, capped beams could still rank differently: ours add the forced EOS's
  log-probability to their score.)
"""

import argparse
import gzip
import json
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import MarianConfig, MarianMTModel

PRESETS = {"small": (256, 4, 1024, 3, 3), "base": (512, 8, 2048, 6, 6)}


def read_safetensors(path):
    """The tensors of a safetensors file (numpy only: no safetensors package needed)."""
    import struct
    dtypes = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    return {k: torch.from_numpy(np.frombuffer(data[slice(*m["data_offsets"])], dtypes[m["dtype"]]).reshape(m["shape"]).copy())
            for k, m in header.items() if k != "__metadata__" and m["dtype"] in dtypes}


def ours_to_marian(run, checkpoint):
    config = tomllib.loads((run / "config.toml").read_text())
    model = config.get("model", {})
    d, heads, ffn, enc, dec = PRESETS[model.get("preset", "base")]
    d, heads, ffn = model.get("d_model", d), model.get("heads", heads), model.get("ffn", ffn)
    enc, dec = model.get("encoder_layers", enc), model.get("decoder_layers", dec)
    if model.get("pre_norm", False):
        sys.exit("compare_decode.py: pre-norm runs have no Marian counterpart (Marian is post-norm)")
    w = read_safetensors(run / f"{checkpoint}.safetensors")
    vocab = w["embed"].shape[0]
    tok = Tokenizer.from_file(str(run / "tokenizer.json"))
    pad, bos, eos = (tok.token_to_id(s) for s in ("<pad>", "<s>", "</s>"))
    positions = model.get("max_positions", 1024)
    cfg = MarianConfig(vocab_size=vocab, decoder_vocab_size=vocab, d_model=d, encoder_layers=enc, decoder_layers=dec,
                       encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn,
                       decoder_ffn_dim=ffn, activation_function="relu", max_position_embeddings=positions,
                       pad_token_id=pad, eos_token_id=eos, bos_token_id=bos, decoder_start_token_id=bos,
                       forced_eos_token_id=None, scale_embedding=True, share_encoder_decoder_embeddings=True,
                       tie_word_embeddings=True, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    marian = MarianMTModel(cfg).eval()
    state = {"model.shared.weight": w["embed"], "final_logits_bias": torch.zeros(1, vocab)}
    attn = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "out": "out_proj"}
    for side, n in (("encoder", enc), ("decoder", dec)):
        for l in range(n):
            ours, theirs = f"{side}.{l}", f"model.{side}.layers.{l}"
            blocks = [("attn", "self_attn")] if side == "encoder" else [("self_attn", "self_attn"), ("cross", "encoder_attn")]
            for a, b in blocks:
                for x, y in attn.items():
                    for p in ("weight", "bias"):
                        state[f"{theirs}.{b}.{y}.{p}"] = w[f"{ours}.{a}.{x}.{p}"]
            norms = ["self_attn_layer_norm", "final_layer_norm"] if side == "encoder" else \
                ["self_attn_layer_norm", "encoder_attn_layer_norm", "final_layer_norm"]
            for i, name in enumerate(norms):
                for p in ("weight", "bias"):
                    state[f"{theirs}.{name}.{p}"] = w[f"{ours}.ln{i + 1}.{p}"]
            for x, y in (("a", "fc1"), ("b", "fc2")):
                for p in ("weight", "bias"):
                    state[f"{theirs}.{y}.{p}"] = w[f"{ours}.ffn.{x}.{p}"]
    missing, unexpected = marian.load_state_dict(state, strict=False)
    left = [k for k in missing if "embed_positions" not in k and "embed_tokens" not in k and k != "lm_head.weight"]
    if left or unexpected:
        sys.exit(f"compare_decode.py: weights not mapped: missing {left}, unexpected {unexpected}")
    # Our sinusoids (interleaved sin/cos, positions from 0) into Marian's position tables.
    pos = torch.arange(positions, dtype=torch.float64)[:, None]
    i = torch.arange(0, d, 2, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(10000.0, i / d)
    table = torch.zeros(positions, d, dtype=torch.float64)
    table[:, 0::2], table[:, 1::2] = angle.sin(), angle.cos()
    with torch.no_grad():
        for side in (marian.model.encoder, marian.model.decoder):
            side.embed_positions.weight.copy_(table.float())
    marian.generation_config.bad_words_ids = None
    marian.generation_config.forced_eos_token_id = None
    return marian, tok, (pad, bos, eos)


def hf_translate(model, tok, specials, lines, beam, max_tokens, device):
    """Batches as `calib decode` makes them: longest first, as many sentences as fit `max_tokens`
    source tokens (EOS and padding included)."""
    pad, bos, eos = specials
    ids = [tok.encode(l, add_special_tokens=False).ids + [eos] for l in lines]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    out = [None] * len(ids)
    start = 0
    while start < len(order):
        rows = order[start:start + max(1, max_tokens // len(ids[order[start]]))]
        start += len(rows)
        width = max(len(ids[r]) for r in rows)
        src = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, r in enumerate(rows):
            src[j, :len(ids[r])] = torch.tensor(ids[r])
            mask[j, :len(ids[r])] = 1
        with torch.no_grad():
            # Greedy is HF's own loop (not a beam of one), where the search flags do not apply.
            search = dict(length_penalty=0.0, early_stopping=True) if beam > 1 else {}
            gen = model.generate(input_ids=src.to(device), attention_mask=mask.to(device), num_beams=beam,
                                 do_sample=False, max_new_tokens=199, decoder_start_token_id=bos, eos_token_id=eos,
                                 pad_token_id=pad, **search)
        for j, r in enumerate(rows):
            seq = gen[j].tolist()[1:]
            out[r] = seq[:seq.index(eos)] if eos in seq else [t for t in seq if t != pad]
    return [(tok.decode(s, skip_special_tokens=True), len(s) + 1) for s in out]


def ours_translate(args, lines, beam):
    cmd = [args.calib, "decode", "--run", str(args.run), "--checkpoint", args.checkpoint, "--beam", str(beam),
           "--lenpen", "0", "--max-len-a", "0", "--max-len-b", "200", "--scores",
           "--device", args.device, "--max-tokens", str(args.max_tokens)]
    out = subprocess.run(cmd, input="\n".join(lines) + "\n", capture_output=True, text=True, check=True)
    # Its own summary times reading, tokenising, searching and writing, not loading the model (nor does HF's side).
    seconds = float(re.search(r"translated \d+ sentences in ([0-9.]+) s", out.stderr).group(1))
    rows = [l.split("\t") for l in out.stdout.rstrip("\n").split("\n")]
    # text, score, then one log-probability per token (EOS included)
    return [(r[0], len(r[2].split()) if len(r) > 2 else len(r) - 2) for r in rows], seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calib", default="target/release/calib")
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--checkpoint", default="last")
    ap.add_argument("--src", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=1024, help="source tokens per batch, on both sides")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = ap.parse_args()
    opener = gzip.open if args.src.suffix == ".gz" else open
    with opener(args.src, "rt") as f:
        lines = [l.rstrip("\n") for _, l in zip(range(args.limit), f)]
    model, tok, specials = ours_to_marian(args.run, args.checkpoint)
    device = torch.device(args.device)
    model.to(device)
    result = {"sentences": len(lines), "beam": args.beam, "device": args.device, "threads": torch.get_num_threads()}
    for beam, name in ((1, "greedy"), (args.beam, f"beam{args.beam}")):
        ours, our_seconds = ours_translate(args, lines, beam)
        start = time.perf_counter()
        theirs = hf_translate(model, tok, specials, lines, beam, args.max_tokens, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        hf_seconds = time.perf_counter() - start
        same = sum(a[0] == b[0] for a, b in zip(ours, theirs))
        tokens = sum(n for _, n in ours)
        result[name] = {
            "identical_translations": same, "differing": [i for i, (a, b) in enumerate(zip(ours, theirs)) if a[0] != b[0]][:10],
            "ours_sentences_per_second": len(lines) / our_seconds, "hf_sentences_per_second": len(lines) / hf_seconds,
            "ours_tokens_per_second": tokens / our_seconds, "hf_tokens_per_second": sum(n for _, n in theirs) / hf_seconds,
            "ratio": hf_seconds / our_seconds,
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
