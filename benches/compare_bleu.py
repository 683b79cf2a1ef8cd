#!/usr/bin/env python3
"""calib bleu against Python sacreBLEU on the WMT22 en-de files (../shared/data/wmt).

Usage: .deps/bench-venv/bin/python benches/compare_bleu.py --calib target/release/calib
(`bash benches/setup-python.sh` makes the venv; `pip install sacrebleu==2.6.0` into it.)
For each system and for 1 and 2 references: sacreBLEU in-process (corpus_score on lists already
read, import excluded), the sacreBLEU command line as a whole process, and `calib bleu` as a whole
process; best of N runs. Scores are compared too.
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

import sacrebleu

ROOT = Path(__file__).resolve().parent.parent
WMT = ROOT.parent / "shared" / "data" / "wmt"
SYSTEMS = ["JDExploreAcademy", "Online-B", "OpenNMT", "PROMT"]


def lines(p):
    text = p.read_text(encoding="utf-8").split("\n")
    return text[:-1] if text and text[-1] == "" else text


def best(fn, n):
    out, times = None, []
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calib", default=str(ROOT / "target/release/calib"))
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    refs = {k: WMT / f"generaltest2022.en-de.ref.{k}.de" for k in "AB"}
    rows, agree = [], True
    for system in SYSTEMS:
        hyp = WMT / f"generaltest2022.en-de.hyp.{system}.de"
        for names in ("A", "AB"):
            ref_lists = [lines(refs[k]) for k in names]
            h = lines(hyp)
            py_in, s = best(lambda: sacrebleu.BLEU().corpus_score(h, ref_lists), a.repeat)
            cli = [sys.executable, "-m", "sacrebleu", *[str(refs[k]) for k in names], "-i", str(hyp), "-b"]
            py_cli, _ = best(lambda: subprocess.run(cli, check=True, capture_output=True), a.repeat)
            ours_cmd = [a.calib, "bleu", "--hyp", str(hyp), *sum((["--ref", str(refs[k])] for k in names), []), "--format", "json"]
            ours_t, out = best(lambda: subprocess.run(ours_cmd, check=True, capture_output=True), a.repeat)
            ours = json.loads(out.stdout)
            agree &= abs(ours["score"] - s.score) < 1e-9 and ours["counts"] == s.counts
            rows.append((system, names, s.score, ours["score"], py_in, py_cli, ours_t))
    print(f"## calib bleu vs sacreBLEU {sacrebleu.__version__} (WMT22 en-de, 2,037 segments), "
          f"{time.strftime('%Y-%m-%d')}, nproc {os.cpu_count()}, best of {a.repeat}\n")
    print("| system | refs | sacreBLEU | calib | sacreBLEU in-process s | sacreBLEU CLI s | calib (whole process) s | ratio in-process | ratio CLI |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for system, names, ps, os_, pin, pcli, ot in rows:
        print(f"| {system} | {names} | {ps:.4f} | {os_:.4f} | {pin:.3f} | {pcli:.3f} | {ot:.3f} | {pin / ot:.1f} | {pcli / ot:.1f} |")
    print(f"\nscores and n-gram counts agree: {agree}")


if __name__ == "__main__":
    main()
