"""Benchmark: which packaged judge decides best per millisecond on the adversarial set.

Runs each LLM judge (without the pre-filter, so every pair costs a model call) over the same
pairs of `eval/adversarial_pairs.jsonl`, in one process, alternating nothing else. Reports per
judge: ms per claim (mean over the pairs, first call with the cached preamble excluded), the
scores' precision/recall on "supported" at the calibrated threshold, and the ratio of its cost to
the first judge's. Say what else was running when you quote the numbers: two jobs on two cores
swing llama.cpp's timings by 10x.

    .venv/bin/python bench/bench_judge.py [--split test] [--limit 40] [--models qwen-1.5b,qwen-0.5b]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from eval.judge_check import load_pairs, score
from qa.judge import CALIBRATED_THRESHOLDS
from qa.judge.llm import LlamaJudge
from qa.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=40, help="pairs per judge (0: all)")
    parser.add_argument("--models", default="qwen-1.5b,qwen-0.5b")
    args = parser.parse_args()
    pairs = load_pairs(ROOT / "eval" / "adversarial_pairs.jsonl", args.split)
    pairs = pairs[:args.limit] if args.limit else pairs
    settings = Settings.from_env()
    results = []
    for model in args.models.split(","):
        judge = LlamaJudge(settings, model, CALIBRATED_THRESHOLDS.get(model, 0.5))
        judge.judge([pairs[0].claim])  # evaluates the shared preamble once
        rows, spent = [], 0.0
        for pair in pairs:
            began = time.perf_counter()
            verdict = judge.judge([pair.claim])[0]
            ms = (time.perf_counter() - began) * 1000
            spent += ms
            rows.append(dict(pair.fields, verdict=verdict.label, ms=ms))
        report = score(rows)
        results.append((model, spent / len(pairs), report))
    base = results[0][1]
    print(f"{len(pairs)} pairs of the {args.split} split, no pre-filter")
    print(f"{'judge':<12}{'ms/claim':>10}{'x first':>9}{'precision':>11}{'recall':>8}{'F1':>7}")
    for model, ms, report in results:
        print(f"{model:<12}{ms:>10.0f}{ms / base:>9.2f}{report['precision'] or 0:>11.3f}"
              f"{report['recall'] or 0:>8.3f}{report['f1'] or 0:>7.3f}")


if __name__ == "__main__":
    main()
