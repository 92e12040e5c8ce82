"""Ingestion throughput against the bare encoder, and search latency (query embedding included).

    python bench/bench_ingest.py [--repeat 3]

Both measurements run in this one process, on the same passages, so the ratio is meaningful
on a noisy machine; absolute seconds are printed for context only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eval.questions import load_questions  # noqa: E402
from index.build import build_index  # noqa: E402
from index.chunking import embedding_text  # noqa: E402
from index.embedding import SentenceTransformerEmbedder  # noqa: E402
from index.store import open_index  # noqa: E402
from index.store_protocol import all_passages  # noqa: E402
from qa.retrieve import make_retriever  # noqa: E402
from qa.settings import Settings  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=ROOT / "seeds")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    embedder = SentenceTransformerEmbedder()
    pipeline_s, bare_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            data = Path(tmp) / f"run{i}"
            started = time.perf_counter()
            build_index([args.corpus], data, embedder, rebuild=True)
            pipeline_s.append(time.perf_counter() - started)
            store = open_index(data)
            texts = [embedding_text(p) for _, p in all_passages(store)]
            started = time.perf_counter()
            embedder.embed(texts)
            bare_s.append(time.perf_counter() - started)
        n = len(texts)
        settings = Settings(data_dir=data)
        retriever = make_retriever(store, embedder, settings)
        questions = [q.question for q in load_questions(ROOT / "eval" / "seed_questions.jsonl")]
        retriever.search(questions[0], 5)  # warm-up
        latencies = []
        for _ in range(3):
            for question in questions:
                started = time.perf_counter()
                retriever.search(question, 5, "hybrid")
                latencies.append((time.perf_counter() - started) * 1000)
    pipe, bare = statistics.median(pipeline_s), statistics.median(bare_s)
    result = {
        "passages": n,
        "pipeline_s": round(pipe, 2), "bare_encoder_s": round(bare, 2),
        "pipeline_passages_per_s": round(n / pipe, 1), "bare_passages_per_s": round(n / bare, 1),
        "throughput_ratio_pipeline_over_bare": round(bare / pipe, 3),
        "search_ms_p50": round(percentile(latencies, 0.5), 1),
        "search_ms_p95": round(percentile(latencies, 0.95), 1),
        "searches": len(latencies),
    }
    print(f"ingestion: {n} passages; full pipeline {pipe:.2f} s ({n / pipe:.1f}/s), bare encoder "
          f"{bare:.2f} s ({n / bare:.1f}/s) -> throughput ratio {bare / pipe:.2f}")
    print(f"search (hybrid, k=5, query embedding included): p50 {result['search_ms_p50']} ms, "
          f"p95 {result['search_ms_p95']} ms over {len(latencies)} searches")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
