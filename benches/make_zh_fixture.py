"""Makes crates/calib-mt/tests/fixtures/zh-expected.json: what sacreBLEU 2.6.0's `zh` tokeniser and BLEU give on
Chinese and mixed segments (no Chinese corpus is among the project's real data), for crates/calib-mt/tests/wmt22.rs.

    .deps/bench-venv/bin/python benches/make_zh_fixture.py crates/calib-mt/tests/fixtures/zh-expected.json
"""
import json
import sys

import sacrebleu
from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh

assert sacrebleu.__version__ == "2.6.0", sacrebleu.__version__
hyps = [
    "我们今天去北京。",
    "他说：“这是2024年的计划，价格是3.5元。”",
    "Apple发布了新的iPhone 15 Pro，售价999美元。",
    "会议于下午3点开始——请准时到达…",
    "这个句子 有  多余的 空格 ",
    "ＡＢＣ全角字符和①②③符号→结束",
    "欢迎来到上海！Welcome to Shanghai!",
    "猫坐在垫子上。",
]
refs = [
    "我们今天要去北京。",
    "他说：“这是2024年的计划，价格为3.5元。”",
    "苹果发布了新款iPhone 15 Pro，售价999美元。",
    "会议将在下午3点开始——请准时…",
    "这个句子有多余的空格",
    "ＡＢＣ全角字符和①②③符号→完",
    "欢迎来到上海！Welcome to Shanghai !",
    "猫坐在垫子上了。",
]
tok = TokenizerZh()
out = {"hyps": hyps, "refs": refs, "tokenized": [tok(s) for s in hyps + refs], "bleu": []}
for lowercase in (False, True):
    b = sacrebleu.metrics.BLEU(tokenize="zh", lowercase=lowercase)
    r = b.corpus_score(hyps, [refs])
    out["bleu"].append({"lowercase": lowercase, "score": r.score, "counts": r.counts, "totals": r.totals,
                        "signature": str(b.get_signature())})
with open(sys.argv[1], "w", encoding="utf-8") as f:
    json.dump(out, f, ensure_ascii=False, indent=1)
