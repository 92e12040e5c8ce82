"""Benchmark: whole-answer latency of `Assistant.ask`, alone and with competing work.

Three phases in one command, on the same questions (the answerable questions of one split of
eval/seed_questions.jsonl) and the same loaded models:

1. alone: one question at a time (the baseline);
2. second request: two threads ask at once, as two browser tabs would (the loaded model serves
   one request at a time, so the second waits: this measures what a user sees, queue included);
3. embedding: one question at a time while another process embeds passages in a loop with the
   same encoder, as `qa index` of a new document would.

Reports per phase p50/p95 of the whole answer, p50 of time to first model token and of time to
the first verified text (the source sentence judged to answer, sent before the draft; the whole
answer's time when there is none), and the ratios of phases 2 and 3 to phase 1 (taken in the same
run, so a busy machine affects all three).

    .venv/bin/python bench/bench_answer_latency.py [--model smollm2] [--split test] [--limit 8]
                                                   [--json OUT.json]

Uses the index in QA_DATA_DIR (build it with `qa index seeds`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from qa.compose import Components  # noqa: E402
from qa.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

EMBED_LOOP = """
import sys, time
from pathlib import Path
from index.embedding import SentenceTransformerEmbedder
texts = [p for f in sorted(Path(sys.argv[1]).glob('*.txt'))
         for p in f.read_text(encoding='utf-8').split('\\n\\n') if len(p) > 200]
embedder = SentenceTransformerEmbedder()
print('ready', flush=True)
while True:
    embedder.embed(texts[:64])
"""


def questions(split: str, limit: int) -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "eval" / "seed_questions.jsonl").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    return [r["question"] for r in rows if r.get("split") == split and r.get("answerable", True)
            ][:limit]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(timings: list[dict]) -> dict:
    total = [t["total_ms"] for t in timings]
    first = [t["first_token_ms"] for t in timings if t.get("first_token_ms")]
    return {"answers": len(timings),
            "total_p50_ms": statistics.median(total), "total_p95_ms": percentile(total, 0.95),
            "first_token_p50_ms": statistics.median(first) if first else None,
            # The early quote (source sentence judged to answer) or, without one, the answer.
            "first_verified_p50_ms": statistics.median(t["first_verified_ms"] for t in timings)}


def ask_all(assistant, asked: list[str]) -> list[dict]:
    return [dict(assistant.ask(q).timings) for q in asked]


def ask_two_at_once(assistant, asked: list[str]) -> list[dict]:
    """Each question asked by two threads at the same moment; both answers' timings kept."""
    timings: list[dict] = []
    lock = threading.Lock()

    def worker(question: str) -> None:
        started = time.perf_counter()
        answer = assistant.ask(question)
        with lock:  # the user's wait includes the queue for the model
            timings.append(dict(answer.timings,
                                total_ms=round((time.perf_counter() - started) * 1000, 1)))

    for question in asked:
        threads = [threading.Thread(target=worker, args=(question,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return timings


def ask_while_embedding(assistant, asked: list[str]) -> list[dict]:
    loop = subprocess.Popen([sys.executable, "-c", EMBED_LOOP, str(ROOT / "seeds")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=ROOT)
    try:
        assert loop.stdout is not None and loop.stdout.readline().strip() == "ready"
        return ask_all(assistant, asked)
    finally:
        loop.kill()
        loop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="answer model (default: QA_MODEL)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    overrides = {"model": args.model} if args.model else {}
    components = Components(Settings.from_env(**overrides))
    asked = questions(args.split, args.limit)
    assistant = components.assistant()
    assistant.ask(asked[0])  # load the models and warm their caches before timing
    load_before = os.getloadavg()[0]
    # Each phase gets a fresh assistant over the same loaded models: an assistant remembers the
    # sentence embeddings and answerability scores of questions it has seen, and a later phase
    # asking the same questions would otherwise look faster than the first.
    phases = {"alone": summary(ask_all(components.assistant(), asked)),
              "second_request": summary(ask_two_at_once(components.assistant(), asked)),
              "embedding": summary(ask_while_embedding(components.assistant(), asked))}
    base = phases["alone"]["total_p50_ms"]
    report = {"model": assistant.backend_label()[1], "questions": len(asked),
              "load_average_before": round(load_before, 2),
              "load_average_after": round(os.getloadavg()[0], 2), "phases": phases,
              "p50_ratio_vs_alone": {k: round(v["total_p50_ms"] / base, 2)
                                     for k, v in phases.items()}}
    print(f"model {report['model']}, {len(asked)} questions, load "
          f"{report['load_average_before']} -> {report['load_average_after']}")
    for name, phase in phases.items():
        first = phase["first_token_p50_ms"]
        print(f"{name:<15} answer p50 {phase['total_p50_ms'] / 1000:6.1f} s  p95 "
              f"{phase['total_p95_ms'] / 1000:6.1f} s  first token p50 "
              f"{(first or 0) / 1000:5.1f} s  first verified p50 "
              f"{phase['first_verified_p50_ms'] / 1000:5.1f} s  "
              f"({report['p50_ratio_vs_alone'][name]}x alone)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
