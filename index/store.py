"""The local store: FAISS vectors with ids, a bm25s lexical index, passages and texts on disk.

Layout under the data directory:
    index -> builds/<build>            (a symlink, swapped atomically by each commit)
    index.lock                          (the writer lock, see index/lock.py)
    builds/<build>/manifest.json        (format, generation, embedder, chunking, sources,
                                         documents, size and sha256 of every other file)
    builds/<build>/manifest.sha256      (the manifest's own checksum)
    builds/<build>/passages.jsonl       (one passage per line with its id, in BM25 row order)
    builds/<build>/dense.faiss          (IndexIDMap2: vectors keyed by passage id)
    builds/<build>/bm25/                (bm25s index over the same passages)
    builds/<build>/texts/<doc_id>.txt   (the text each document's offsets refer to)
    builds/<build>/.lease               (readers hold a shared flock on it while they read)

A commit writes a complete new build (unchanged texts are hard links into the previous one),
then switches the link. A writer killed at any point leaves only an unreferenced folder, which
the next commit removes. Old builds are removed only when no reader holds their lease: an OS
lock, so a crashed reader never pins a build, and no grace period has to be guessed.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from .chunking import normalize_for_search
from .ann import MIN_POINTS_PER_LIST, AnnParams, build_ann
from .contracts import Document, Passage
from .errors import IndexDamaged, IndexMissing
from .store_protocol import (REBUILD_HINT, DocumentRecord, StoreConfig, check_embedder,
                             checked_addition, config_fingerprint)

FORMAT_VERSION = 2
LEASE = ".lease"
NO_LEASE = -1  # a build without a lease file (an older format): nothing to hold
# Folders under builds/ that commits create; nothing else there is ever deleted.
_BUILD_NAME = re.compile(r"^(g\d{6,}-[0-9a-f]{8}|\d{8}-\d{6}-[0-9a-f]{8})$")
_TEMP_LINK = re.compile(r"^\.index-[0-9a-f]{8}$")

__all__ = ["DocumentRecord", "FaissStore", "check_embedder", "index_link", "lexical_tokens",
           "open_index", "open_for_writing", "REBUILD_HINT"]


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

    _quiet_bm25s()
    return bm25s.tokenize([normalize_for_search(t) for t in texts], stopwords="en",
                          stemmer=_stemmer(), return_ids=False, show_progress=False)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def index_link(data_dir: Path) -> Path:
    return data_dir / "index"


def current_build(data_dir: Path) -> str | None:
    """The name of the build the index link points at (cheap: one readlink), or None."""
    try:
        return os.readlink(index_link(data_dir))
    except OSError:
        return None


def _damaged(path: Path, what: str) -> IndexDamaged:
    return IndexDamaged(f"The index file {path} is damaged ({what}); {REBUILD_HINT}.")


def _empty_dense(dimension: int):
    import faiss

    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))


class FaissStore:
    """One version of the collection; opened for reading (immutable) or for one writer."""

    def __init__(self, data_dir: Path, path: Path | None, config: StoreConfig, generation: int,
                 records: dict[str, DocumentRecord], passages: dict[int, Passage],
                 order: list[int], dense, bm25, next_id: int, files: dict[str, dict],
                 writable: bool) -> None:
        self.data_dir = data_dir
        self.path = path
        self.config = config
        self.generation = generation
        self._records = records
        self._passages = passages
        self._order = order  # passage ids in BM25 row order
        self._dense = dense
        self._bm25 = bm25
        self._next_id = next_id
        self._files = files
        self._writable = writable
        self._texts: dict[str, str] = {}
        self._new_texts: dict[str, str] = {}  # texts added since the last commit
        self._dirty: set[str] = set()  # parts to write anew: 'dense', 'lexical'
        self._vocabulary: set[str] | None = None
        self._by_doc: dict[str, list[int]] | None = None
        # Which FAISS index holds the vectors ('flat', 'ivf', 'hnsw'), as the manifest says, and
        # what a writer should use: past ann.threshold passages an approximate index.
        self.dense_index: dict = {"kind": "flat", "vectors": dense.ntotal}
        self.ann = AnnParams()

    # -- reading ---------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        return config_fingerprint(self.config, self._records.values())

    def is_latest(self) -> bool:
        latest = current_build(self.data_dir)
        return self.path is not None and latest is not None and Path(latest).name == self.path.name

    def count_documents(self) -> int:
        return len(self._records)

    def count_passages(self) -> int:
        return len(self._passages)

    def list_documents(self) -> list[DocumentRecord]:
        return list(self._records.values())

    def get_document(self, doc_id: str) -> DocumentRecord | None:
        return self._records.get(doc_id)

    def document_text(self, doc_id: str) -> str:
        if doc_id in self._new_texts:
            return self._new_texts[doc_id]
        if doc_id not in self._texts:
            if doc_id not in self._records or self.path is None:
                raise KeyError(doc_id)
            name = f"texts/{doc_id}.txt"
            path = self.path / name
            data = path.read_bytes()
            # Sizes were checked on open; the content is checked here, on first read.
            if hashlib.sha256(data).hexdigest() != self._files.get(name, {}).get("sha256"):
                raise _damaged(path, "checksum mismatch")
            self._texts[doc_id] = data.decode("utf-8")
        return self._texts[doc_id]

    def passage(self, passage_id: int) -> Passage:
        return self._passages[passage_id]

    def passages_of(self, doc_id: str) -> list[tuple[int, Passage]]:
        if self._by_doc is None:
            by_doc: dict[str, list[int]] = {}
            for pid in self._order:
                by_doc.setdefault(self._passages[pid].doc_id, []).append(pid)
            self._by_doc = by_doc
        return sorted(((pid, self._passages[pid]) for pid in self._by_doc.get(doc_id, [])),
                      key=lambda item: (item[1].start, item[1].end))

    def search_dense(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if not self._passages or k < 1:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        scores, ids = self._dense.search(query, min(k, len(self._passages)))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def search_lexical(self, query: str, k: int) -> list[tuple[int, float]]:
        if self._bm25 is None or not self._order or k < 1:
            return []
        tokens = lexical_tokens([query])
        if not tokens[0]:
            return []
        rows, scores = self._bm25.retrieve(tokens, k=min(k, len(self._order)),
                                           show_progress=False)
        return [(self._order[int(r)], float(s)) for r, s in zip(rows[0], scores[0]) if s > 0]

    def lexical_terms(self, text: str) -> list[str]:
        return lexical_tokens([text])[0]

    def known_terms(self, terms: Iterable[str]) -> set[str]:
        if self._vocabulary is None:
            self._vocabulary = set(self._bm25.vocab_dict) if self._bm25 is not None else set()
        return {t for t in terms if t in self._vocabulary}

    def vector(self, passage_id: int) -> np.ndarray:
        """The stored vector of one passage (FAISS-specific: tests and benchmarks)."""
        return self._dense.reconstruct(int(passage_id))

    @property
    def dense_size(self) -> int:
        return int(self._dense.ntotal)

    def check_embedder(self, name: str, dimension: int) -> None:
        check_embedder(self, name, dimension)

    # -- writing ---------------------------------------------------------------------------

    def _writing(self) -> None:
        if not self._writable:
            raise RuntimeError("this store was opened for reading; use open_for_writing")

    def add_documents(self, documents: Sequence[Document], passages: Sequence[Passage],
                      vectors: np.ndarray) -> None:
        self._writing()
        vectors = checked_addition(documents, passages, vectors, self.config.dimension,
                                   self._records)
        ids = np.arange(self._next_id, self._next_id + len(passages), dtype=np.int64)
        self._next_id += len(passages)
        if len(passages):
            # Appended with their ids: the vectors already indexed are not touched.
            self._dense.add_with_ids(vectors, ids)
        counts: dict[str, int] = {}
        for pid, passage in zip(ids.tolist(), passages):
            self._passages[pid] = passage
            self._order.append(pid)
            counts[passage.doc_id] = counts.get(passage.doc_id, 0) + 1
        for document in documents:
            self._records[document.doc_id] = DocumentRecord(
                document.doc_id, document.source, document.title, document.kind,
                document.content_hash, counts.get(document.doc_id, 0), dict(document.meta))
            self._new_texts[document.doc_id] = document.text
        self._changed()

    def delete_documents(self, doc_ids: Iterable[str]) -> int:
        self._writing()
        gone = {d for d in doc_ids if d in self._records}
        if not gone:
            return 0
        removed = [pid for pid in self._order if self._passages[pid].doc_id in gone]
        if removed and self.dense_index["kind"] == "hnsw":
            # HNSW graphs cannot drop nodes: rebuild from the vectors that stay.
            ids, vectors = self._stored_vectors()
            keep = ~np.isin(ids, np.asarray(removed, dtype=np.int64))
            self._dense, choice = build_ann(vectors[keep], ids[keep], self.ann)
            self.dense_index = choice.as_dict()
        elif removed:
            self._dense.remove_ids(np.asarray(removed, dtype=np.int64))
        dropped = set(removed)
        self._order = [pid for pid in self._order if pid not in dropped]
        for pid in removed:
            del self._passages[pid]
        for doc_id in gone:
            del self._records[doc_id]
            self._new_texts.pop(doc_id, None)
            self._texts.pop(doc_id, None)
        self._changed()
        return len(gone)

    def update_record(self, record: DocumentRecord) -> None:
        self._writing()
        old = self._records[record.doc_id]
        if old.content_hash != record.content_hash:
            raise ValueError("a changed text needs its passages re-embedded: delete and add it")
        self._records[record.doc_id] = replace(record, n_passages=old.n_passages)

    def set_config(self, config: StoreConfig) -> None:
        self._writing()
        if (config.embedder, config.dimension) != (self.config.embedder, self.config.dimension):
            raise ValueError("the embedder of a store cannot change; start a new one")
        self.config = config

    def _stored_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every passage in the dense index, in index order."""
        import faiss

        if hasattr(self._dense, "id_map"):  # flat or HNSW behind an id map
            inner = faiss.downcast_index(self._dense.index)
            ids = faiss.vector_to_array(self._dense.id_map).astype(np.int64)
            return ids, inner.reconstruct_n(0, self._dense.ntotal)
        # IVF-Flat keeps ids and raw float vectors in its inverted lists.
        lists = faiss.extract_index_ivf(self._dense).invlists
        ids, vectors = [], []
        for number in range(lists.nlist):
            size = lists.list_size(number)
            if size:
                ids.append(faiss.rev_swig_ptr(lists.get_ids(number), size).copy())
                codes = faiss.rev_swig_ptr(lists.get_codes(number), size * lists.code_size)
                vectors.append(np.frombuffer(codes.copy(), dtype=np.float32).reshape(size, -1))
        dimension = self.config.dimension
        return (np.concatenate(ids).astype(np.int64) if ids else np.zeros(0, np.int64),
                np.concatenate(vectors) if vectors else np.zeros((0, dimension), np.float32))

    def _fit_dense(self) -> None:
        """Exact search below the ANN threshold, IVF or HNSW at or above it (index/ann.py):
        re-made only when the kind the size calls for changes, so adds stay appends."""
        n = self._dense.ntotal
        want = "flat" if n < max(self.ann.threshold, 2 * MIN_POINTS_PER_LIST) else self.ann.kind
        if want == self.dense_index.get("kind", "flat"):
            self.dense_index = dict(self.dense_index, vectors=n)
            return
        ids, vectors = self._stored_vectors()
        self._dense, choice = build_ann(vectors, ids, self.ann)
        self.dense_index = choice.as_dict()

    def _changed(self) -> None:
        self._dirty.update({"dense", "lexical"})
        self._vocabulary = None
        self._by_doc = None

    def commit(self) -> int:
        """Write a complete new build beside the current one, then switch the link to it."""
        self._writing()
        builds = self.data_dir / "builds"
        builds.mkdir(parents=True, exist_ok=True)
        generation = self.generation + 1
        build = builds / f"g{generation:06d}-{uuid.uuid4().hex[:8]}"
        (build / "texts").mkdir(parents=True)
        (build / LEASE).touch()
        previous = self.path
        files: dict[str, dict] = {}
        written: list[Path] = []

        def record(name: str, fresh: bool) -> None:
            path = build / name
            if fresh:
                files[name] = {"size": path.stat().st_size, "sha256": _sha256(path)}
                written.append(path)
            else:
                files[name] = self._files[name]

        def reuse(name: str) -> bool:
            """Hard-link an unchanged file of the previous build (copy across filesystems)."""
            if previous is None or name not in self._files:
                return False
            try:
                os.link(previous / name, build / name)
            except OSError:
                shutil.copy2(previous / name, build / name)
            record(name, fresh=False)
            return True

        self._write_passages(build / "passages.jsonl")
        record("passages.jsonl", fresh=True)
        if "dense" in self._dirty or not reuse("dense.faiss"):
            import faiss

            self._fit_dense()
            faiss.write_index(self._dense, str(build / "dense.faiss"))
            record("dense.faiss", fresh=True)
        old_bm25 = sorted(n for n in self._files if n.startswith("bm25/"))
        if self._order and ("lexical" in self._dirty or not old_bm25):
            self._bm25 = self._index_lexical()
            self._bm25.save(str(build / "bm25"))
            for item in sorted((build / "bm25").iterdir()):
                record(f"bm25/{item.name}", fresh=True)
        elif self._order:
            (build / "bm25").mkdir()
            for name in old_bm25:
                reuse(name)
        for doc_id in self._records:
            name = f"texts/{doc_id}.txt"
            if doc_id in self._new_texts:
                (build / name).write_text(self._new_texts[doc_id], encoding="utf-8")
                record(name, fresh=True)
            elif not reuse(name):
                raise IndexDamaged(f"The text of '{doc_id}' is missing from the index; "
                                   f"{REBUILD_HINT}.")
        manifest = {
            "format_version": FORMAT_VERSION,
            "generation": generation,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "embedder": {"name": self.config.embedder, "dimension": self.config.dimension},
            "chunking": self.config.chunking,
            "sources": list(self.config.sources),
            "excluded": list(self.config.excluded),
            "next_passage_id": self._next_id,
            "dense_index": self.dense_index,
            "documents": [r.to_json() for r in self._records.values()],
            "files": files,
        }
        body = json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8")
        (build / "manifest.json").write_bytes(body)
        (build / "manifest.sha256").write_text(hashlib.sha256(body).hexdigest() + "\n",
                                               encoding="ascii")
        _fsync(written + [build / "manifest.json", build / "manifest.sha256", build / "texts",
                          build])
        _switch_link(self.data_dir, build)
        self.path, self.generation, self._files = build, generation, files
        self._texts.update(self._new_texts)
        self._new_texts.clear()
        self._dirty.clear()
        collect_garbage(self.data_dir)
        return generation

    def _write_passages(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as handle:
            for pid in self._order:
                p = self._passages[pid]
                handle.write(json.dumps({"id": pid, "doc_id": p.doc_id, "start": p.start,
                                         "end": p.end, "heading": p.heading, "text": p.text},
                                        ensure_ascii=False) + "\n")

    def _index_lexical(self):
        """A fresh BM25 index: bm25s cannot add documents, and rebuilding it is cheap (about
        0.4 s for 5,000 passages, next to ~70 s to embed them: bench/bench_add_document.py)."""
        import bm25s

        _quiet_bm25s()
        bm25 = bm25s.BM25()
        texts = [self._passages[pid].heading + " " + self._passages[pid].text
                 for pid in self._order]
        bm25.index(lexical_tokens(texts), show_progress=False)
        return bm25


def _fsync(paths: Iterable[Path]) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _switch_link(data_dir: Path, build: Path) -> None:
    """Point `index` at the new build with one atomic rename."""
    link = index_link(data_dir)
    temp = data_dir / f".index-{uuid.uuid4().hex[:8]}"
    temp.symlink_to(Path("builds") / build.name)
    if link.exists() and not link.is_symlink():  # an index folder from elsewhere: keep it aside
        link.rename(data_dir / f"index.replaced-{int(time.time())}")
    os.replace(temp, link)
    _fsync([data_dir])


def collect_garbage(data_dir: Path) -> list[str]:
    """Remove builds no reader holds and the link does not point at; call with the writer lock.

    Only folders named like our builds are considered, so nothing else is ever deleted.
    Returns the names removed.
    """
    current = current_build(data_dir)
    current_name = Path(current).name if current else None
    builds = data_dir / "builds"
    removed = []
    for entry in sorted(builds.iterdir()) if builds.is_dir() else []:
        if entry.name == current_name or not _BUILD_NAME.match(entry.name) or not entry.is_dir():
            continue
        lease = entry / LEASE
        try:
            fd = os.open(lease, os.O_RDONLY)
        except FileNotFoundError:
            fd = None  # a build killed before its lease existed, or an older format
        try:
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                        continue  # a reader still uses it
                    raise
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
        finally:
            if fd is not None:
                os.close(fd)
    for entry in data_dir.iterdir() if data_dir.is_dir() else []:
        if _TEMP_LINK.match(entry.name) and entry.is_symlink():
            entry.unlink(missing_ok=True)  # left by a writer killed mid-switch
    return removed


def _lease(build: Path) -> int | None:
    """A shared lock on the build's lease file, held while the returned descriptor is open;
    None when the build vanished meanwhile, NO_LEASE when it has no lease file."""
    try:
        fd = os.open(build / LEASE, os.O_RDONLY)
    except FileNotFoundError:
        # No lease file: an index of an older format (opening it says so), or a build gone.
        return NO_LEASE if (build / "manifest.json").exists() else None
    fcntl.flock(fd, fcntl.LOCK_SH)
    if not (build / "manifest.json").exists():  # removed while we waited for the lock
        os.close(fd)
        return None
    return fd


def open_index(data_dir: Path) -> FaissStore:
    """Open the current build for reading; every failure is one line that says how to rebuild."""
    link = index_link(data_dir)
    for _ in range(20):
        if not link.exists():
            raise IndexMissing(f"No index found in {data_dir}: build one with: qa index")
        path = link.resolve()
        fd = _lease(path)
        if fd is None:
            time.sleep(0.01)  # the link moved on while we looked; look again
            continue
        try:
            store = _load(data_dir, path, writable=False, verify_texts=False)
        except BaseException:
            if fd != NO_LEASE:
                os.close(fd)
            raise
        if fd != NO_LEASE:
            # The lease lasts as long as the store: in-flight requests keep the build alive.
            weakref.finalize(store, os.close, fd)
        return store
    raise IndexDamaged(f"The index at {link} keeps pointing at missing builds; {REBUILD_HINT}.")


def open_for_writing(data_dir: Path, config: StoreConfig) -> FaissStore:
    """The current collection, for the writer holding the lock; an empty store if none exists.

    Raises IndexDamaged when the current build cannot be trusted (the caller decides whether
    to start afresh).
    """
    link = index_link(data_dir)
    if not link.exists():
        return empty_store(data_dir, config, generation=last_generation(data_dir))
    return _load(data_dir, link.resolve(), writable=True, verify_texts=True)


def empty_store(data_dir: Path, config: StoreConfig, generation: int = 0) -> FaissStore:
    """A new, empty collection that a writer fills and commits."""
    return FaissStore(data_dir, None, config, generation, {}, {}, [],
                      _empty_dense(config.dimension), None, 0, {}, writable=True)


def last_generation(data_dir: Path) -> int:
    """The highest generation among existing build folders (generations never repeat)."""
    builds = data_dir / "builds"
    found = [int(m.group(1)) for e in (builds.iterdir() if builds.is_dir() else [])
             if (m := re.match(r"^g(\d+)-", e.name))]
    return max(found, default=0)


def read_manifest(path: Path) -> dict:
    """The manifest of a build, verified against its own checksum."""
    body = (path / "manifest.json").read_bytes()
    try:
        version = json.loads(body).get("format_version")
    except (ValueError, AttributeError):
        version = None
    if version is not None and version != FORMAT_VERSION:  # an index from another release
        raise IndexDamaged(f"The index at {path} has format version {version}, this program "
                           f"reads {FORMAT_VERSION}; {REBUILD_HINT}.")
    expected = (path / "manifest.sha256").read_text(encoding="ascii").strip()
    if hashlib.sha256(body).hexdigest() != expected:
        raise _damaged(path / "manifest.json", "checksum mismatch")
    return json.loads(body)


def _load(data_dir: Path, path: Path, writable: bool, verify_texts: bool) -> FaissStore:
    import bm25s
    import faiss

    _quiet_bm25s()
    try:
        manifest = read_manifest(path)
        files: dict[str, dict] = manifest["files"]
        for name, expected in files.items():
            file = path / name
            if not file.is_file() or file.stat().st_size != expected["size"]:
                raise _damaged(file, "missing or truncated")
            if (verify_texts or not name.startswith("texts/")) \
                    and _sha256(file) != expected["sha256"]:
                raise _damaged(file, "checksum mismatch")
        records = {d["doc_id"]: DocumentRecord(**d) for d in manifest["documents"]}
        if missing := [d for d in records if f"texts/{d}.txt" not in files]:
            raise _damaged(path / "texts", f"no text for '{missing[0]}'")
        passages: dict[int, Passage] = {}
        order: list[int] = []
        with (path / "passages.jsonl").open(encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                passages[row["id"]] = Passage(row["doc_id"], row["start"], row["end"],
                                              row["text"], row["heading"])
                order.append(row["id"])
        dense = faiss.read_index(str(path / "dense.faiss"))
        bm25 = bm25s.BM25.load(str(path / "bm25")) if order else None
        if dense.ntotal != len(passages) or len(order) != len(passages) or \
                sum(r.n_passages for r in records.values()) != len(passages):
            raise IndexDamaged(f"The index at {path} is inconsistent; {REBUILD_HINT}.")
        config = StoreConfig(manifest["embedder"]["name"], manifest["embedder"]["dimension"],
                             manifest["chunking"], tuple(manifest.get("sources", ())),
                             tuple(manifest.get("excluded", ())))
    except IndexDamaged:
        raise
    except Exception as exc:
        raise IndexDamaged(f"The index at {path} cannot be read ({type(exc).__name__}); "
                           f"{REBUILD_HINT}.") from exc
    store = FaissStore(data_dir, path, config, manifest["generation"], records, passages, order,
                       dense, bm25, manifest["next_passage_id"], files, writable)
    store.dense_index = manifest.get("dense_index", {"kind": "flat", "vectors": dense.ntotal})
    return store


def manifest_sources(data_dir: Path) -> tuple[str, ...]:
    """The sources recorded by the current build, even if other files of it are damaged."""
    try:
        manifest = json.loads((index_link(data_dir).resolve() / "manifest.json")
                              .read_text(encoding="utf-8"))
        return tuple(manifest.get("sources", ()))
    except (OSError, ValueError, AttributeError):
        return ()
