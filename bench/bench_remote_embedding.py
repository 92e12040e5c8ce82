"""Remote-embedding throughput: our RemoteEmbedder against our own /v1/embeddings vs the bare encoder.

    OMP_WAIT_POLICY=PASSIVE python bench/bench_remote_embedding.py [--repeat 3] [--copies 2]

The server (the real `qa serve` app under uvicorn, in this process) and the client share the
same cores, so this measures the cost of the HTTP path, not what a separate GPU server gives:
the ratio remote / bare shows the overhead, and concurrency 1 vs 4 shows whether requests in
flight keep the encoder busy while JSON travels.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from fastapi import FastAPI

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import live_server  # noqa: E402

from index.chunking import ChunkingParams, chunk_text, embedding_text  # noqa: E402
from index.embedding import SentenceTransformerEmbedder  # noqa: E402
from index.readers import read_documents  # noqa: E402
from index.remote_embedding import RemoteEmbedder  # noqa: E402
from web import embeddings_api  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--copies", type=int, default=2, help="times the seed passages repeat")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    embedder = SentenceTransformerEmbedder()
    documents, _ = read_documents([ROOT / "seeds"])
    texts = [embedding_text(p) for d in documents
             for p in chunk_text(d.doc_id, d.text, embedder.count_tokens, ChunkingParams())]
    texts = texts * args.copies
    # The endpoint needs only the server's encoder: no index, no generator.
    app = FastAPI()
    app.include_router(embeddings_api.router)
    app.state.live = SimpleNamespace(components=SimpleNamespace(embedder=embedder))
    times: dict[str, list[float]] = {"bare": [], "remote_c1": [], "remote_c4": []}
    with live_server(app) as url:
        clients = {"remote_c1": RemoteEmbedder(f"{url}/v1", batch_size=args.batch_size,
                                               concurrency=1),
                   "remote_c4": RemoteEmbedder(f"{url}/v1", batch_size=args.batch_size,
                                               concurrency=4)}
        embedder.embed(texts[:8])
        for _ in range(args.repeat):
            started = time.perf_counter()
            embedder.embed(texts)
            times["bare"].append(time.perf_counter() - started)
            for name, client in clients.items():
                started = time.perf_counter()
                client.embed(texts)
                times[name].append(time.perf_counter() - started)
    n = len(texts)
    median = {k: statistics.median(v) for k, v in times.items()}
    result = {"passages": n, "batch_size": args.batch_size,
              **{f"{k}_passages_per_s": round(n / v, 1) for k, v in median.items()},
              "ratio_remote_c1_over_bare": round(median["bare"] / median["remote_c1"], 3),
              "ratio_remote_c4_over_bare": round(median["bare"] / median["remote_c4"], 3)}
    print(f"{n} passages: bare encoder {n / median['bare']:.1f}/s; through /v1/embeddings "
          f"1 in flight {n / median['remote_c1']:.1f}/s (x{result['ratio_remote_c1_over_bare']}), "
          f"4 in flight {n / median['remote_c4']:.1f}/s (x{result['ratio_remote_c4_over_bare']})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
