"""Rule matching: the prose matcher (matcher 2) against matcher 1, in the same run.

    .venv/bin/python bench/rules.py [--corpus tests/sinks/corpus] [--min-cpu-s 2]

Two tables:

* **quality**, per corpus file and for the whole corpus: micro precision/recall/F1 of matcher 1
  with the rules file it shipped with (``bench/rules_v1.yaml``, five rules) against matcher 2
  with ``examples/rules.yaml``, on those five rule ids; and matcher 2 on all its rules.
* **speed**: captions/s per core (process CPU time; one thread) on captions of ~1,000 and
  ~2,600 characters, built from whole corpus paragraphs. Matcher 2 runs every rule of the
  file on every caption (all streams), as the alert runner does for a stream all rules apply to.

Headline ``name=value`` lines at the end go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import rules_baseline as baseline  # noqa: E402

from sinks.evaluate import Counts, load_corpus  # noqa: E402
from sinks.rules import RuleSet, load_rules  # noqa: E402

SHARED = ("glass-breaking", "gunshot", "alarm", "screaming", "profanity")
LENGTHS = (1_000, 2_600)
SAMPLES = 120


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "tests/sinks/corpus")
    parser.add_argument("--min-cpu-s", type=float, default=2.0, help="CPU seconds per timing")
    args = parser.parse_args()
    old = baseline.load(ROOT / "bench/rules_v1.yaml")
    old_rules_new_matcher = load_rules(ROOT / "bench/rules_v1.yaml")
    pack = load_rules(ROOT / "examples/rules.yaml")
    print(_quality(args.corpus, old, pack))
    print()
    rows = _speed(args.corpus, old, old_rules_new_matcher, pack, args.min_cpu_s)
    print(rows)
    return 0


# --- quality ---------------------------------------------------------------------------------


def _quality(corpus: Path, old: list[baseline.Matcher], pack: RuleSet) -> str:
    files = sorted(corpus.glob("*.jsonl"))
    lines = [
        "quality (micro P / R / F1)  | matcher 1, its 5 rules | matcher 2, same 5 ids | "
        "matcher 2, all rules",
        "---|---|---|---",
    ]
    for name, path in [*((f.name, f) for f in files), ("whole corpus", corpus)]:
        examples = load_corpus(path)
        one, two, every = Counts(), Counts(), Counts()
        for ex in examples:
            old_fired = set(baseline.fired(old, ex.text, ex.stream))
            new_fired = {r for r, d in pack.decide(ex.text, ex.stream).items() if d.fired}
            _add(one, old_fired, ex.expect, SHARED)
            _add(two, new_fired, ex.expect, SHARED)
            _add(every, new_fired, ex.expect, tuple(pack.by_id))
        lines.append(f"{name} ({len(examples)}) | {_prf(one)} | {_prf(two)} | {_prf(every)}")
    return "\n".join(lines)


def _add(counts: Counts, fired: set[str], expect: frozenset[str], ids: tuple[str, ...]) -> None:
    for rule_id in ids:
        counts.tp += rule_id in fired and rule_id in expect
        counts.fp += rule_id in fired and rule_id not in expect
        counts.fn += rule_id in expect and rule_id not in fired


def _prf(c: Counts) -> str:
    return " / ".join("-" if v is None else f"{v:.3f}" for v in (c.precision, c.recall, c.f1))


# --- speed -----------------------------------------------------------------------------------


def samples(corpus: Path, length: int) -> list[str]:
    """Captions of about ``length`` characters, built from consecutive corpus paragraphs."""
    paragraphs = [
        p
        for path in sorted(corpus.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        for p in json.loads(line)["text"].split("\n\n")
    ]
    out: list[str] = []
    start = 0
    while len(out) < SAMPLES:
        text = ""
        while len(text) < length * 0.95:
            text += ("\n\n" if text else "") + paragraphs[start % len(paragraphs)]
            start += 1
        out.append(text[: int(length * 1.05)])
    return out


def _rate(match: Callable[[str], object], captions: list[str], min_cpu_s: float) -> float:
    """Captions per CPU second (one thread: per core)."""
    for caption in captions[:10]:
        match(caption)
    done, begin = 0, time.process_time()
    while (elapsed := time.process_time() - begin) < min_cpu_s:
        for caption in captions:
            match(caption)
        done += len(captions)
    return done / elapsed


def _speed(
    corpus: Path,
    old: list[baseline.Matcher],
    old_rules: RuleSet,
    pack: RuleSet,
    min_cpu_s: float,
) -> str:
    def matcher_1(caption: str) -> object:
        return [m.evaluate(caption) for m in old]

    rows = [
        (f"matcher 1 (baseline), {len(old)} rules", matcher_1),
        (
            f"matcher 2, the same {len(old_rules)} rules",
            old_rules.compiled.decide,
        ),
        (
            f"matcher 2, the pack's {len(pack)} rules",
            pack.compiled.decide,
        ),
    ]
    header = "captions/s per core | " + " | ".join(f"~{n:,} chars" for n in LENGTHS)
    lines = [header, "---|" + "---|" * len(LENGTHS)]
    headline: list[str] = []
    texts = {n: samples(corpus, n) for n in LENGTHS}
    for index, (name, match) in enumerate(rows):
        rates = [_rate(match, texts[n], min_cpu_s) for n in LENGTHS]
        lines.append(name + " | " + " | ".join(f"{r:,.0f}" for r in rates))
        tag = ("baseline", "prose_v1_rules", "prose_pack")[index]
        headline += [f"rules_{tag}_{n}c_per_s={r:.0f}" for n, r in zip(LENGTHS, rates, strict=True)]
    mean = {n: sum(len(t) for t in texts[n]) / len(texts[n]) for n in LENGTHS}
    lines.append("")
    lines.append("sample lengths (mean chars): " + ", ".join(f"{v:.0f}" for v in mean.values()))
    return "\n".join([*lines, "", *headline])


if __name__ == "__main__":
    raise SystemExit(main())
