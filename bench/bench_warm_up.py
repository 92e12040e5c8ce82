"""Benchmark: the first answer after start, with and without `Assistant.warm_up`.

Each phase runs in a fresh process (models are loaded once per process), on the same questions:

1. cold: the first question is asked as soon as the index is open, as after a server start;
2. warm: `warm_up()` runs first (the web server does this in the background at start), then the
   same questions.

Reports per phase the whole-answer time of the first question and the median of the others, and
the ratio first / later within each phase (a busy machine affects both alike).

    .venv/bin/python bench/bench_warm_up.py [--split test] [--limit 4] [--json OUT.json]

Uses the index in QA_DATA_DIR (build it with `qa index seeds`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_answer_latency import questions  # the same questions as the latency benchmark

ROOT = Path(__file__).resolve().parent.parent

PHASE = """
import json, sys, time
from qa.compose import Components
from qa.settings import Settings
questions, warm = json.loads(sys.argv[1]), sys.argv[2] == "warm"
assistant = Components(Settings.from_env()).assistant()
warm_s = None
if warm:
    started = time.perf_counter()
    assistant.warm_up()
    warm_s = time.perf_counter() - started
times = []
for question in questions:
    started = time.perf_counter()
    assistant.ask(question)
    times.append(time.perf_counter() - started)
print(json.dumps({"warm_up_s": warm_s, "answer_s": times}))
"""


def run_phase(asked: list[str], phase: str) -> dict:
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    out = subprocess.run([sys.executable, "-c", PHASE, json.dumps(asked), phase], cwd=ROOT,
                         env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    first, later = result["answer_s"][0], result["answer_s"][1:]
    result["first_s"] = round(first, 2)
    result["later_median_s"] = round(statistics.median(later), 2)
    result["first_over_later"] = round(first / statistics.median(later), 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    asked = questions(args.split, max(2, args.limit))
    started = time.perf_counter()
    report = {"questions": len(asked), "cold": run_phase(asked, "cold"),
              "warm": run_phase(asked, "warm")}
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
