"""Makes the sentencepiece fixtures of crates/calib-mt/tests/spm.rs: small unigram and BPE models trained with the
official sentencepiece library on real Multi30k text, and the ids that library gives for real and tricky sentences.

    .deps/bench-venv/bin/pip install sentencepiece==0.2.3
    .deps/bench-venv/bin/python benches/make_spm_fixture.py ../shared/data/multi30k crates/calib-mt/tests/fixtures
"""
import gzip
import io
import json
import sys

import sentencepiece as spm

src, out = sys.argv[1], sys.argv[2]
lines = []
for side in ("en", "de"):
    with gzip.open(f"{src}/train.{side}.gz", "rt", encoding="utf-8") as f:
        lines += [next(f).rstrip("\n") for _ in range(4000)]
tests = []
for side in ("en", "de"):
    with gzip.open(f"{src}/val.{side}.gz", "rt", encoding="utf-8") as f:
        tests += [l.rstrip("\n") for l in list(f)[:150]]
tests += [
    "  leading and   repeated   spaces  ",
    "ﬁne ﬂowers: Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "Ein Mädchen in einem rosa Kleid — „Zitat“ … und ½ Äpfel",
    "naïve café résumé",
    "numbers 1234567 and symbols #@$%^&*()",
    "中文 und 日本語 sind unbekannt",
    "",
]
cases = {"sentences": tests, "models": {}}
for kind in ("unigram", "bpe"):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=1000, model_type=kind,
        character_coverage=1.0, input_sentence_size=0,
    )
    name = f"spm-{kind}.model"
    with open(f"{out}/{name}", "wb") as f:
        f.write(model.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    cases["models"][name] = {
        "size": sp.get_piece_size(),
        "unk": sp.unk_id(), "bos": sp.bos_id(), "eos": sp.eos_id(), "pad": sp.pad_id(),
        "ids": [sp.encode(s) for s in tests],
        "decoded": [sp.decode(sp.encode(s)) for s in tests],
    }
with open(f"{out}/spm-expected.json", "w", encoding="utf-8") as f:
    json.dump(cases, f, ensure_ascii=False, indent=0)
