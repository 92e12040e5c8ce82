"""The persisted index: a directory with a manifest, FAISS vectors, a BM25 index and passages.

Layout under the data directory:
    index -> builds/<build-id>        (a symlink, swapped atomically when a build finishes)
    builds/<build-id>/manifest.json   (format, embedder, chunking, documents, file checksums)
    builds/<build-id>/passages.jsonl  (one passage per line, in vector order)
    builds/<build-id>/vectors.npy     (normalised embeddings; reused by incremental rebuilds)
    builds/<build-id>/dense.faiss     (IndexFlatIP over the vectors)
    builds/<build-id>/bm25/           (bm25s lexical index over the same passages)
    builds/<build-id>/texts/<id>.txt  (the text each document's offsets refer to)
A killed build leaves only an unreferenced folder behind; readers keep using the old symlink.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .chunking import normalize_for_search
from .contracts import Document, Passage
from .errors import IndexDamaged, IndexMismatch, IndexMissing

FORMAT_VERSION = 1
REBUILD_HINT = "rebuild it with: qa index --rebuild"


def _quiet_bm25s() -> None:
    """bm25s sets its own logger to DEBUG on import; its progress chatter is not for users."""
    logging.getLogger("bm25s").setLevel(logging.WARNING)


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def lexical_tokens(texts: list[str]) -> list[list[str]]:
    """Stemmed, stopword-free tokens for BM25 (the same function for passages and questions)."""
    import bm25s

    return bm25s.tokenize([normalize_for_search(t) for t in texts], stopwords="en",
                          stemmer=_stemmer(), return_ids=False, show_progress=False)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class DocumentRecord:
    """What the manifest keeps about one indexed document."""

    doc_id: str
    source: str
    title: str
    kind: str
    content_hash: str
    n_passages: int
    meta: dict


class IndexStore:
    """A loaded, read-only index build."""

    def __init__(self, path: Path, manifest: dict, passages: list[Passage], vectors: np.ndarray,
                 dense, bm25) -> None:
        self.path = path
        self.manifest = manifest
        self.passages = passages
        self.vectors = vectors
        self.dense = dense
        self.bm25 = bm25
        self.documents = {d["doc_id"]: DocumentRecord(**d) for d in manifest["documents"]}
        self._texts: dict[str, str] = {}

    @property
    def embedder_name(self) -> str:
        return self.manifest["embedder"]["name"]

    @property
    def manifest_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.manifest, sort_keys=True).encode()).hexdigest()[:16]

    def document_text(self, doc_id: str) -> str:
        """The text a document's offsets refer to (a snapshot taken at indexing time)."""
        if doc_id not in self._texts:
            self._texts[doc_id] = (self.path / "texts" / f"{doc_id}.txt").read_text(encoding="utf-8")
        return self._texts[doc_id]

    def check_embedder(self, name: str, dimension: int) -> None:
        """Refuse to search with a different embedding model than the index was built with."""
        built = self.manifest["embedder"]
        if built["name"] != name or built["dimension"] != dimension:
            raise IndexMismatch(
                f"The index at {self.path} was built with embedding model '{built['name']}' "
                f"({built['dimension']}-d) but this run uses '{name}' ({dimension}-d); "
                f"{REBUILD_HINT}.")


def index_link(data_dir: Path) -> Path:
    return data_dir / "index"


def open_index(data_dir: Path) -> IndexStore:
    """Load the current index build; every failure becomes one line that says how to rebuild."""
    import bm25s
    import faiss

    _quiet_bm25s()
    link = index_link(data_dir)
    if not link.exists():
        raise IndexMissing(f"No index found in {data_dir}: build one with: qa index")
    path = link.resolve()
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexDamaged(f"The index at {path} has format version "
                               f"{manifest.get('format_version')}, this program reads "
                               f"{FORMAT_VERSION}; {REBUILD_HINT}.")
        for name, expected in manifest["checksums"].items():
            if _sha256(path / name) != expected:
                raise IndexDamaged(f"The index file {path / name} is damaged (checksum mismatch); "
                                   f"{REBUILD_HINT}.")
        passages = []
        with (path / "passages.jsonl").open(encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                passages.append(Passage(row["doc_id"], row["start"], row["end"], row["text"],
                                        row["heading"]))
        vectors = np.load(path / "vectors.npy")
        dense = faiss.read_index(str(path / "dense.faiss"))
        bm25 = bm25s.BM25.load(str(path / "bm25")) if passages else None
        if dense.ntotal != len(passages) or len(vectors) != len(passages):
            raise IndexDamaged(f"The index at {path} is inconsistent; {REBUILD_HINT}.")
    except (IndexDamaged, IndexMismatch):
        raise
    except Exception as exc:
        raise IndexDamaged(f"The index at {path} cannot be read ({type(exc).__name__}); "
                           f"{REBUILD_HINT}.") from exc
    return IndexStore(path, manifest, passages, vectors, dense, bm25)


def write_index(data_dir: Path, documents: list[Document], passages: list[Passage],
                vectors: np.ndarray, embedder_name: str, dimension: int, chunking: dict) -> Path:
    """Write a complete new build beside the old one, then switch the `index` link atomically."""
    import bm25s
    import faiss

    _quiet_bm25s()
    builds = data_dir / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    build = builds / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    (build / "texts").mkdir(parents=True)
    with (build / "passages.jsonl").open("w", encoding="utf-8") as handle:
        for passage in passages:
            handle.write(json.dumps({"doc_id": passage.doc_id, "start": passage.start,
                                     "end": passage.end, "heading": passage.heading,
                                     "text": passage.text}, ensure_ascii=False) + "\n")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(passages), dimension)
    np.save(build / "vectors.npy", vectors)
    dense = faiss.IndexFlatIP(dimension)
    if len(vectors):
        dense.add(vectors)
    faiss.write_index(dense, str(build / "dense.faiss"))
    files = ["passages.jsonl", "vectors.npy", "dense.faiss"]
    if passages:
        bm25 = bm25s.BM25()
        bm25.index(lexical_tokens([(p.heading + " " + p.text) for p in passages]),
                   show_progress=False)
        bm25.save(str(build / "bm25"))
        files += [f"bm25/{f.name}" for f in sorted((build / "bm25").iterdir())]
    counts: dict[str, int] = {}
    for passage in passages:
        counts[passage.doc_id] = counts.get(passage.doc_id, 0) + 1
    for document in documents:
        (build / "texts" / f"{document.doc_id}.txt").write_text(document.text, encoding="utf-8")
    manifest = {
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "embedder": {"name": embedder_name, "dimension": dimension},
        "chunking": chunking,
        "documents": [
            {"doc_id": d.doc_id, "source": d.source, "title": d.title, "kind": d.kind,
             "content_hash": d.content_hash, "n_passages": counts.get(d.doc_id, 0),
             "meta": d.meta} for d in documents],
        "checksums": {name: _sha256(build / name) for name in files},
    }
    (build / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False),
                                         encoding="utf-8")
    _fsync_tree(build)
    link = index_link(data_dir)
    previous = link.resolve() if link.is_symlink() and link.exists() else None
    _switch_link(data_dir, build)
    # The previous build stays one generation so a running server can still read its texts.
    _remove_old_builds(builds, keep={build, previous})
    return build


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())


def _switch_link(data_dir: Path, build: Path) -> None:
    """Point `index` at the new build with one atomic rename."""
    link = index_link(data_dir)
    temp = data_dir / f".index-{uuid.uuid4().hex[:8]}"
    temp.symlink_to(Path("builds") / build.name)
    if link.exists() and not link.is_symlink():  # an index folder from elsewhere: keep it aside
        link.rename(data_dir / f"index.replaced-{int(time.time())}")
    os.replace(temp, link)


def _remove_old_builds(builds: Path, keep: set) -> None:
    for build in builds.iterdir():
        if build.resolve() not in {k.resolve() for k in keep if k} and build.is_dir():
            shutil.rmtree(build, ignore_errors=True)
