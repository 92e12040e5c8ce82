"""Dense search at scale: FAISS flat, IVF and HNSW, and Milvus Lite, on N passages (default 1M).

    OMP_WAIT_POLICY=PASSIVE python bench/bench_scale.py [--n 1000000] [--queries 200]
        [--milvus-n N] [--milvus-index IVF_FLAT,HNSW] [--skip-milvus] [--out bench/results/scale.md]

How the N vectors are made (honestly synthetic): the real passages of the seed corpus and of
Python's own documentation (`pydoc_data.topics`, ~770 passages in all) are cut by our chunker
and embedded once with the real all-MiniLM-L6-v2 (cached in <QA_DATA_DIR>/bench-cache/). Each of
the N vectors is one of those seed vectors, picked at random, plus isotropic Gaussian noise of
norm ~`--noise` (default 1.0), then L2-normalised: a vector keeps cosine ~0.7 with its seed and
~0.5 with its siblings, about what neighbouring passages of one topic score with MiniLM. Queries
are 200 further perturbations, held out of the index. Real corpora are lumpier than this (topics
of very different sizes, near-duplicate passages), and isotropic noise makes the neighbours
within a topic almost equidistant, which is hard for approximate search: read recall here as a
fair-to-pessimistic estimate, not as a promise.

What is measured, each method in its own child process over the same vectors: build time (for
Milvus Lite: insert + flush + index + load, i.e. until searchable), memory (growth of the
process's resident set during the build; for FAISS also the serialised index size), single-query
search latency p50/p95 over the queries (k=10), and recall@10 against exact search. Ratios are
against FAISS flat in the same run; the machine (2 cores, shared) makes absolute times noisy.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

K = 10
CHILD_TIMEOUT_S = 1500  # one method; Milvus Lite inserts slowly at 1M
DIMENSION = 384


def seed_vectors(cache_dir: Path) -> np.ndarray:
    """Embeddings of the real seed + pydoc passages, computed once and cached."""
    from pydoc_data.topics import topics

    from index.chunking import ChunkingParams, chunk_text, embedding_text
    from index.embedding import SentenceTransformerEmbedder
    from index.readers import read_documents

    documents, _ = read_documents([ROOT / "seeds"])
    sources = [(d.doc_id, d.text) for d in documents] + sorted(topics.items())
    key = hashlib.sha256("".join(text for _, text in sources).encode()).hexdigest()[:16]
    cached = cache_dir / f"seed-vectors-{key}.npy"
    if cached.is_file():
        return np.load(cached)
    embedder = SentenceTransformerEmbedder()
    texts = [embedding_text(p) for doc_id, text in sources
             for p in chunk_text(doc_id, text, embedder.count_tokens, ChunkingParams())]
    print(f"embedding {len(texts)} seed passages once (cached afterwards)...", flush=True)
    vectors = embedder.embed(texts)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(cached, vectors)
    return vectors


def perturbed(seeds: np.ndarray, n: int, noise: float, seed: int) -> np.ndarray:
    """n unit vectors: random seed vectors plus Gaussian noise of norm ~noise."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, seeds.shape[1]), np.float32)
    for start in range(0, n, 100_000):  # in slices: the temporaries stay small
        stop = min(n, start + 100_000)
        x = seeds[rng.integers(0, len(seeds), stop - start)]
        x = x + rng.standard_normal(x.shape, dtype=np.float32) * (noise / np.sqrt(x.shape[1]))
        out[start:stop] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def rss_mb() -> float:
    """Resident set size of this process, from /proc (Linux; no extra package needed)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def timed_searches(search, queries: np.ndarray) -> tuple[list[float], np.ndarray]:
    """One query at a time, as a user's question arrives: latencies (ms) and the ids found."""
    search(queries[:1])  # warm-up
    latencies, found = [], []
    for q in queries:
        started = time.perf_counter()
        ids = search(q[None, :])
        latencies.append((time.perf_counter() - started) * 1000)
        found.append(ids)
    return latencies, np.vstack(found)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))


def run_faiss(kind: str, base: np.ndarray, queries: np.ndarray, truth: np.ndarray,
              sweep: list[int]) -> list[dict]:
    import faiss

    from index.ann import AnnParams, build_ann, set_search_params

    before = rss_mb()
    started = time.perf_counter()
    params = AnnParams(threshold=len(base) + 1 if kind == "flat" else 0, kind=kind)
    index, choice = build_ann(base, None, params)
    build_s = time.perf_counter() - started
    grown = rss_mb() - before
    size_mb = faiss.serialize_index(index).nbytes / 2**20
    rows = []
    for knob in sweep or [0]:
        if kind == "ivf":
            set_search_params(index, nprobe=knob)
        elif kind == "hnsw":
            set_search_params(index, ef_search=knob)
        latencies, found = timed_searches(lambda q: index.search(q, K)[1], queries)
        label = {"flat": "FAISS flat (exact)", "ivf": f"FAISS IVF{choice.nlist} nprobe={knob}",
                 "hnsw": f"FAISS HNSW M={choice.hnsw_m} efSearch={knob}"}[kind]
        rows.append({"method": label, "n": len(base), "build_s": build_s, "rss_mb": grown,
                     "index_mb": size_mb, "p50_ms": percentile(latencies, 50),
                     "p95_ms": percentile(latencies, 95), "recall": recall(found, truth),
                     "choice": choice.as_dict()})
    return rows


def _wait_for_milvus_lite_indexes(db: Path) -> None:
    """Milvus Lite builds segment indexes in a background thread and searches unindexed
    segments by brute force meanwhile; wait for it (an internal call: no public API says when
    indexing is done), so the search figures are those of the index."""
    from milvus_lite.server_manager import server_manager_instance

    _, lite_db, _ = server_manager_instance._servers[str(db.resolve())]
    collection = lite_db.get_collection("scale")
    for _ in range(3):  # compaction after indexing can schedule another round
        collection._wait_for_bg()


def run_milvus(index_type: str, base: np.ndarray, queries: np.ndarray, truth: np.ndarray,
               sweep: list[int], folder: Path) -> list[dict]:
    from pymilvus import DataType, MilvusClient

    before = rss_mb()
    started = time.perf_counter()
    client = MilvusClient(str(folder / "scale.db"))
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=base.shape[1])
    build = {"IVF_FLAT": {"nlist": 1024}, "HNSW": {"M": 32, "efConstruction": 80}}[index_type]
    index_params = client.prepare_index_params()
    index_params.add_index("vector", index_type=index_type, metric_type="IP", params=build)
    client.create_collection("scale", schema=schema, index_params=index_params)
    for start in range(0, len(base), 10_000):
        rows = base[start:start + 10_000]
        client.insert("scale", [{"id": start + i, "vector": v} for i, v in enumerate(rows.tolist())])
    insert_s = time.perf_counter() - started
    client.flush("scale")
    client.load_collection("scale")
    _wait_for_milvus_lite_indexes(folder / "scale.db")
    rows_out = []
    knob_name = "nprobe" if index_type == "IVF_FLAT" else "ef"
    first = True
    for knob in sweep:
        search_params = {"metric_type": "IP", "params": {knob_name: knob}}

        def search(q: np.ndarray) -> np.ndarray:
            hits = client.search("scale", data=q.tolist(), limit=K, anns_field="vector",
                                 search_params=search_params)
            return np.array([[h["id"] for h in hits[0]]])

        if first:  # indexes are built in the background: searchable with them after this
            search(queries[:1])
            build_s = time.perf_counter() - started
            grown = rss_mb() - before
            disk_mb = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20
            first = False
        latencies, found = timed_searches(search, queries)
        rows_out.append({"method": f"Milvus Lite {index_type} {knob_name}={knob}",
                         "n": len(base), "build_s": build_s, "insert_s": insert_s,
                         "rss_mb": grown, "index_mb": disk_mb,
                         "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
                         "recall": recall(found, truth), "choice": build})
    client.close()
    return rows_out


def worker(args: argparse.Namespace) -> None:
    """Child process: one method over the vectors the parent saved; JSON rows on stdout."""
    data = Path(args.data)
    queries, truth = np.load(data / "queries.npy"), np.load(data / "truth.npy")
    base = np.load(data / "base.npy")
    if args.n:
        base = base[:args.n]
        truth = np.load(data / f"truth-{args.n}.npy")
    gc.collect()
    sweep = [int(x) for x in args.sweep.split(",") if x]
    if args.worker.startswith("milvus:"):
        with tempfile.TemporaryDirectory(dir=data) as folder:
            rows = run_milvus(args.worker.split(":", 1)[1], base, queries, truth, sweep,
                              Path(folder))
    else:
        rows = run_faiss(args.worker, base, queries, truth, sweep)
    print("ROWS " + json.dumps(rows), flush=True)


def exact_truth(base: np.ndarray, queries: np.ndarray) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    return index.search(queries, K)[1]


def child(method: str, data: Path, sweep: str, n: int = 0) -> list[dict]:
    command = [sys.executable, __file__, "--worker", method, "--data", str(data),
               "--sweep", sweep, "--n", str(n)]
    print(f"  {method}{f' (n={n:,})' if n else ''} ...", flush=True)
    started = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(f"  {method} gave up after {CHILD_TIMEOUT_S} s: rerun it with a smaller n", flush=True)
        return []
    line = next((x for x in result.stdout.splitlines() if x.startswith("ROWS ")), None)
    if line is None:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"  {method} failed: {tail}", flush=True)
        return []
    print(f"  {method} done in {time.perf_counter() - started:.0f} s", flush=True)
    return json.loads(line[5:])


def table(rows: list[dict], flat: dict) -> str:
    head = ("| method | passages | build s | memory MB (RSS growth / index) | search p50 ms | "
            "p95 ms | recall@10 | search speed-up vs flat (p50) | build time vs flat |\n|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        same_n = r["n"] == flat["n"]
        lines.append(
            f"| {r['method']} | {r['n']:,} | {r['build_s']:.1f} | {r['rss_mb']:.0f} / "
            f"{r['index_mb']:.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['recall']:.4f} | "
            + (f"{flat['p50_ms'] / r['p50_ms']:.1f}x | {r['build_s'] / max(flat['build_s'], 1e-3):.0f}x"
               if same_n else "(other n) | (other n)") + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--noise", type=float, default=1.0)
    parser.add_argument("--ivf-nprobe", default="8,16,32,64")
    parser.add_argument("--hnsw-ef", default="64,128,256")
    parser.add_argument("--skip-hnsw", action="store_true")
    parser.add_argument("--skip-milvus", action="store_true")
    parser.add_argument("--milvus-n", type=int, default=0, help="fewer passages for Milvus Lite")
    parser.add_argument("--milvus-index", default="IVF_FLAT,HNSW")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--sweep", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    data_dir = Path(os.environ.get("QA_DATA_DIR", ROOT / ".qa-data"))
    seeds = seed_vectors(data_dir / "bench-cache")
    started = time.perf_counter()
    base = perturbed(seeds, args.n, args.noise, seed=1)
    queries = perturbed(seeds, args.queries, args.noise, seed=2)
    with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
        tmp_path = Path(tmp)
        np.save(tmp_path / "base.npy", base)
        np.save(tmp_path / "queries.npy", queries)
        np.save(tmp_path / "truth.npy", exact_truth(base, queries))
        if args.milvus_n and args.milvus_n < args.n:
            np.save(tmp_path / f"truth-{args.milvus_n}.npy",
                    exact_truth(base[:args.milvus_n], queries))
        del base
        gc.collect()
        print(f"{args.n:,} vectors from {len(seeds)} seed passages, {args.queries} queries "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
        rows = child("flat", tmp_path, "")
        rows += child("ivf", tmp_path, args.ivf_nprobe)
        if not args.skip_hnsw:
            rows += child("hnsw", tmp_path, args.hnsw_ef)
        if not args.skip_milvus:
            milvus_n = args.milvus_n if args.milvus_n and args.milvus_n < args.n else 0
            for index_type in [x for x in args.milvus_index.split(",") if x]:
                sweep = args.ivf_nprobe if index_type == "IVF_FLAT" else args.hnsw_ef
                rows += child(f"milvus:{index_type}", tmp_path, sweep, milvus_n)
    flat = next((r for r in rows if r["method"].startswith("FAISS flat")), None)
    if flat is None:
        raise SystemExit("the flat baseline failed; see the messages above")
    load = os.getloadavg()
    report = (f"# Scale benchmark: {args.n:,} passages, {args.queries} queries, k={K}\n\n"
              f"python bench/bench_scale.py --n {args.n} (noise {args.noise}); "
              f"{len(seeds)} real seed passages (MiniLM) perturbed, see the script's docstring.\n"
              f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python "
              f"{platform.python_version()}; load average at the end "
              f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; "
              f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}.\n"
              f"Memory: RSS growth of the child process during the build / FAISS serialised "
              f"index size or Milvus Lite folder size on disk.\n\n" + table(rows, flat) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print("\n" + report)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
