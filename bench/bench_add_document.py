"""Cost of adding one document to a ~5,000-passage index, against rebuilding it in full.

    python bench/bench_add_document.py [--passages 5000] [--repeat 3]

The corpus is the Python documentation's topics (`pydoc_data.topics`, shipped with every Python)
plus the seed documents, written as .txt files and repeated in numbered copies whose paragraphs
are rotated (so no two copies share a passage) until the index holds about `--passages`
passages. The full build and the additions run in this one process with one encoder, so the
ratio holds on a noisy machine; absolute seconds are printed for context only.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.build import add_to_index, build_index, remove_from_index  # noqa: E402
from index.chunking import ChunkingParams, chunk_text, embedding_text  # noqa: E402
from index.embedding import SentenceTransformerEmbedder  # noqa: E402
from index.store import open_index  # noqa: E402


def base_texts() -> dict[str, str]:
    """The topics of the Python docs and the seed documents, by file stem."""
    from pydoc_data.topics import topics

    texts = {f"pydoc-{name}": body for name, body in topics.items() if len(body) > 400}
    for path in sorted((ROOT / "seeds").glob("*.txt")):
        texts[f"seed-{path.stem}"] = path.read_text(encoding="utf-8")
    return texts


def rotated(text: str, copy: int) -> str:
    """The text with its paragraphs rotated by `copy` and a numbered first line."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    shift = copy % max(len(paragraphs), 1)
    return f"Copy {copy}\n\n" + "\n\n".join(paragraphs[shift:] + paragraphs[:shift]) + "\n"


def write_corpus(folder: Path, target: int, embedder) -> tuple[int, str]:
    """Enough copies of the base texts for about `target` passages; returns (copies, a sample
    text of median length for the document to add)."""
    texts = base_texts()
    params = ChunkingParams(max_tokens=min(160, embedder.max_tokens))
    per_copy = sum(len(chunk_text(name, body, embedder.count_tokens, params))
                   for name, body in texts.items())
    copies = max(1, math.ceil(target / per_copy))
    for copy in range(copies):
        for name, body in texts.items():
            (folder / f"{name}-{copy}.txt").write_text(rotated(body, copy), encoding="utf-8")
    bodies = sorted(texts.values(), key=len)
    return copies, bodies[len(bodies) // 2]


def timed(function, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passages", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    embedder = SentenceTransformerEmbedder()
    with tempfile.TemporaryDirectory() as tmp:
        corpus, data = Path(tmp) / "corpus", Path(tmp) / "data"
        corpus.mkdir()
        copies, sample = write_corpus(corpus, args.passages, embedder)
        full_s, report = timed(build_index, [corpus], data, embedder, rebuild=True)
        store = open_index(data)
        print(f"index: {report.documents} documents, {report.passages} passages "
              f"({copies} copies); full build {full_s:.1f} s", flush=True)

        new_doc = Path(tmp) / "new-document.txt"
        add_s, remove_s, bare_s = [], [], []
        for attempt in range(args.repeat):
            new_doc.write_text(rotated(sample, 1000 + attempt), encoding="utf-8")
            seconds, added = timed(add_to_index, [new_doc], data, embedder)
            add_s.append(seconds)
            store = open_index(data)
            passages = [p for _, p in store.passages_of("new-document")]
            # The encoder alone on the same passages: what adding cannot avoid.
            bare_s.append(timed(embedder.embed, [embedding_text(p) for p in passages])[0])
            remove_s.append(timed(remove_from_index, ["new-document"], data)[0])
        add, bare, remove = (statistics.median(v) for v in (add_s, bare_s, remove_s))
        result = {
            "passages": report.passages, "documents": report.documents,
            "full_build_s": round(full_s, 2),
            "added_document_passages": len(passages),
            "add_one_s_median": round(add, 3), "remove_one_s_median": round(remove, 3),
            "embed_added_passages_alone_s": round(bare, 3),
            "add_vs_full_ratio": round(add / full_s, 4),
            "remove_vs_full_ratio": round(remove / full_s, 4),
        }
    print(json.dumps(result, indent=2))
    print(f"adding one {len(passages)}-passage document costs {add / full_s:.2%} of a full "
          f"rebuild of {report.passages} passages ({add:.2f} s vs {full_s:.1f} s; the encoder "
          f"alone needs {bare:.2f} s of it)")


if __name__ == "__main__":
    main()
