"""Change the collection: sync it to paths, add or remove documents; re-embed only what changed.

Every change runs under the writer lock and goes through the store protocol: documents whose
text is unchanged keep their vectors, changed ones are deleted and added again, and readers
see the result only when the store commits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .chunking import (CHUNKER_VERSION, ChunkingParams, chunk_ahead, chunk_text,
                       embedding_text)
from .contracts import Document, Passage
from .embedding import Embedder
from .errors import IndexDamaged, IndexMismatch, UserError
from .lock import writer_lock
from .readers import Skipped, find_files, make_doc_id, read_document
from .ann import AnnParams
from .store import (collect_garbage, empty_store, index_link, last_generation,
                    manifest_sources, open_for_writing)
from .store_protocol import REBUILD_HINT, DocumentRecord, StoreConfig, WritableStore

log = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
DEFAULT_LOCK_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class BuildReport:
    """What a change did, for the CLI summary."""

    documents: int  # documents in the index afterwards
    passages: int
    embedded_documents: int  # new or changed documents that were (re-)embedded
    reused_documents: int  # given again, unchanged: nothing embedded
    removed_documents: int
    skipped: tuple[Skipped, ...]
    seconds: float
    path: Path
    removed: tuple[str, ...] = ()  # ids of the removed documents
    embedded: tuple[str, ...] = ()  # ids of the (re-)embedded documents
    generation: int = 0


class _LocalBackend:
    """The local FAISS + bm25s store in `data_dir`, with the methods index/milvus_store.py's
    MilvusBackend has: what building needs from a kind of store."""

    def __init__(self, data_dir: Path, ann: AnnParams | None = None) -> None:
        self.data_dir = data_dir
        self.ann = ann or AnnParams()  # when the dense index turns approximate (index/ann.py)

    def exists(self) -> bool:
        return index_link(self.data_dir).exists()

    def open_for_writing(self, config: StoreConfig) -> WritableStore:
        store = open_for_writing(self.data_dir, config)
        store.ann = self.ann
        return store

    def empty_store(self, config: StoreConfig, generation: int = 0) -> WritableStore:
        store = empty_store(self.data_dir, config, generation)
        store.ann = self.ann
        return store

    def last_generation(self) -> int:
        return last_generation(self.data_dir)

    def manifest_sources(self) -> tuple[str, ...]:
        return manifest_sources(self.data_dir)

    def collect_garbage(self) -> list[str]:
        return collect_garbage(self.data_dir)


def _absolute(path: Path | str) -> str:
    return os.path.abspath(os.path.expanduser(str(path)))


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def chunking_config(params: ChunkingParams, embedder: Embedder) -> dict:
    """What the manifest records about chunking; a difference means re-embedding everything."""
    return {**params.as_dict(), "embedder_max_tokens": embedder.max_tokens,
            "chunker_version": CHUNKER_VERSION}


def _folder_metadata(files: list[Path]) -> dict[str, dict]:
    """Titles, authors and dates from a `metadata.json` beside the files, keyed by file path."""
    metadata: dict[str, dict] = {}
    for folder in dict.fromkeys(f.parent for f in files):
        meta_file = folder / METADATA_FILE
        if meta_file.is_file():
            try:
                entries = json.loads(meta_file.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise UserError(f"{meta_file} is not valid JSON ({exc}); fix or remove it.") from exc
            for name, entry in entries.items():
                metadata[_absolute(folder / name)] = entry
    return metadata


def _with_metadata(document: Document, entry: dict | None) -> Document:
    if not entry:
        return document
    meta = {**document.meta, **{k: v for k, v in entry.items() if k != "title"}}
    return replace(document, title=entry.get("title") or document.title, meta=meta)


def _assign_ids(files: list[Path], store: WritableStore, keep_others: bool) -> dict[str, str]:
    """A unique, stable id per file: a file already indexed keeps its id; a new file gets its
    name's id, or that id plus a hash of its path when another document already has it."""
    by_source = {r.source: r.doc_id for r in store.list_documents()}
    sources = [_absolute(f) for f in files]
    taken = {by_source[s] for s in sources if s in by_source}
    if keep_others:
        taken |= set(by_source.values())
    ids: dict[str, str] = {}
    for file, source in zip(files, sources):
        if source in by_source:
            ids[source] = by_source[source]
            continue
        doc_id = make_doc_id(file)
        if doc_id in taken:
            doc_id = f"{doc_id}-{hashlib.sha1(source.encode()).hexdigest()[:6]}"
        base, n = doc_id, 2
        while doc_id in taken:
            doc_id, n = f"{base}-{n}", n + 1
        taken.add(doc_id)
        ids[source] = doc_id
    return ids


def _open_store(backend, wanted: StoreConfig) -> WritableStore:
    """The collection to add to; refused when it cannot be trusted or was built differently,
    because re-embedding it from scratch is a decision for `qa index --rebuild`."""
    store = backend.open_for_writing(wanted)
    built = store.config
    if store.path is not None and (built.embedder, built.dimension, built.chunking) != \
            (wanted.embedder, wanted.dimension, wanted.chunking):
        what = "embedding model" if built.embedder != wanted.embedder else "chunking settings"
        raise IndexMismatch(f"The index was built with another {what} than this run uses "
                            f"('{built.embedder}'); {REBUILD_HINT}.")
    return store


@dataclass(frozen=True)
class _Applied:
    embedded: list[str]  # ids (re-)embedded
    reused: int  # unchanged texts
    updated: int  # unchanged texts whose title, source or metadata changed
    skipped: list[Skipped]


@dataclass(frozen=True)
class _Prepared:
    """One file read and, when its text is new or changed, cut into passages."""

    document: Document | None = None
    passages: list[Passage] | None = None  # None: the stored text is unchanged, reuse it
    skipped: Skipped | None = None


class _Waiting:
    """A document whose passages are (partly) still to be embedded."""

    def __init__(self, document: Document, passages: list[Passage], dimension: int) -> None:
        self.document, self.passages = document, passages
        self.vectors = np.zeros((len(passages), dimension), np.float32)
        self.missing = len(passages)


class _Batcher:
    """Embeds the passages of consecutive documents together, longest first, in full batches.

    The encoder pads every batch to its longest text. One embed call per document gives each
    document a part-filled batch, and mixes its short last passages of sections with full ones:
    ~6% more padded tokens on the seeds than encoding all passages at once (which sorts them
    all by length). Here a pool of at least 3 batches' worth is kept and its longest passages are
    embedded a whole batch at a time, which leaves padding within 1% of the all-at-once case.
    Documents are written to the store in their order, once all their vectors are there.
    """

    def __init__(self, store: WritableStore, embedder: Embedder) -> None:
        self.store, self.embedder = store, embedder
        # Whole local batches; for a remote encoder, enough to keep its requests in flight.
        self.size = (getattr(embedder, "batch_size", 32) *
                     getattr(embedder, "concurrency", 1))
        self.pool_size = 3 * self.size
        # Passages held for documents not yet written, whatever their state; past this the
        # whole pool is embedded, so that one short passage cannot hold back every document.
        self.max_held = 16 * self.size
        self.waiting: deque[_Waiting] = deque()
        self.pool: list[tuple[str, _Waiting, int]] = []  # (text, document, passage index)
        self.held = 0

    def add(self, document: Document, passages: list[Passage]) -> list[str]:
        """Queue a document; returns the ids of the documents written meanwhile."""
        waiting = _Waiting(document, passages, self.embedder.dimension)
        self.waiting.append(waiting)
        self.held += len(passages)
        self.pool += [(embedding_text(p), waiting, i) for i, p in enumerate(passages)]
        while len(self.pool) >= self.pool_size:
            self.pool.sort(key=lambda entry: len(entry[0]), reverse=True)
            self._embed(self.size)
        if self.held > self.max_held:
            self._embed(len(self.pool))
        return self._write()

    def finish(self) -> list[str]:
        self._embed(len(self.pool))  # the encoder sorts these by length itself
        return self._write()

    def _embed(self, n: int) -> None:
        chosen, self.pool = self.pool[:n], self.pool[n:]
        if not chosen:
            return
        vectors = self.embedder.embed([text for text, _, _ in chosen])
        for (_, waiting, i), vector in zip(chosen, vectors):
            waiting.vectors[i] = vector
            waiting.missing -= 1

    def _write(self) -> list[str]:
        written: list[str] = []
        while self.waiting and not self.waiting[0].missing:
            waiting = self.waiting.popleft()
            self.held -= len(waiting.passages)
            self.store.delete_documents([waiting.document.doc_id])
            self.store.add_documents([waiting.document], waiting.passages, waiting.vectors)
            written.append(waiting.document.doc_id)
        return written


def _apply(store: WritableStore, files: list[Path], ids: dict[str, str], embedder: Embedder,
           params: ChunkingParams, progress: Callable[[int], None] | None) -> _Applied:
    """Read the files and bring their documents in the store up to date."""
    metadata = _folder_metadata(files)
    # Each file has its own id, so the hashes stored before the loop are the ones to compare.
    stored_hashes = {r.doc_id: r.content_hash for r in store.list_documents()}

    def prepare(file: Path) -> _Prepared:
        source = _absolute(file)
        try:
            document = read_document(file, ids[source])
        except ValueError as exc:
            return _Prepared(skipped=Skipped(str(file), str(exc)))
        document = _with_metadata(replace(document, source=source), metadata.get(source))
        if stored_hashes.get(document.doc_id) == document.content_hash:
            return _Prepared(document)
        return _Prepared(document, chunk_text(document.doc_id, document.text,
                                              embedder.count_tokens, params))

    def done(n: int) -> None:
        if progress and n:
            progress(n)

    batcher = _Batcher(store, embedder)
    embedded: list[str] = []
    reused = updated = 0
    skipped: list[Skipped] = []
    # Reading and chunking (pysbd, pure Python) of the next files runs while the encoder
    # (torch, which releases the GIL) embeds the passages before them. On 2 idle cores the
    # encoder already keeps both busy and this gains little; on a shared, busy machine it
    # was ~5-10% faster. Unchanged files are only read and hashed, as before.
    for _, prepared in chunk_ahead(files, prepare):
        document, passages = prepared.document, prepared.passages
        if document is None:
            skipped.append(prepared.skipped)
            done(1)
        elif passages is None:
            old = store.get_document(document.doc_id)
            fresh = DocumentRecord(document.doc_id, document.source, document.title,
                                   document.kind, document.content_hash, old.n_passages,
                                   dict(document.meta))
            if (old.source, old.title, old.kind, old.meta) != \
                    (fresh.source, fresh.title, fresh.kind, fresh.meta):
                store.update_record(fresh)
                updated += 1
            reused += 1
            done(1)
        else:
            written = batcher.add(document, passages)
            embedded += written
            done(len(written))
    written = batcher.finish()
    embedded += written
    done(len(written))
    return _Applied(embedded, reused, updated, skipped)


def _report(store: WritableStore, started: float, applied: _Applied, removed: Iterable[str],
            skipped: list[Skipped], generation: int) -> BuildReport:
    removed = tuple(removed)
    return BuildReport(store.count_documents(), store.count_passages(), len(applied.embedded),
                       applied.reused, len(removed), tuple(skipped),
                       time.perf_counter() - started, store.path, removed,
                       tuple(applied.embedded), generation)


def _collect(backend, generation: int) -> int:
    """Without a commit, still clear what killed writers and finished readers left behind."""
    backend.collect_garbage()
    return generation


def _effective_params(params: ChunkingParams, embedder: Embedder) -> ChunkingParams:
    if params.max_tokens > embedder.max_tokens:
        return replace(params, max_tokens=embedder.max_tokens)
    return params


def _no_documents(skipped: list[Skipped]) -> UserError:
    problems = "; ".join(f"{s.path}: {s.reason}" for s in skipped) or "nothing given"
    return UserError(f"No documents to index ({problems}); give files or folders with .txt, "
                     f".md, .html, .pdf or .docx documents.")


def build_index(paths: list[Path] | None, data_dir: Path, embedder: Embedder,
                params: ChunkingParams = ChunkingParams(), rebuild: bool = False,
                progress: Callable[[int], None] | None = None,
                on_document: Callable[[int], None] | None = None,
                lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S, backend=None,
                ann: AnnParams | None = None) -> BuildReport:
    """Make the index hold exactly the documents under `paths`, reusing unchanged ones.

    With `paths` None, refresh the sources the index records (files removed from a source
    folder stay out). A damaged or differently built index is replaced by a fresh one.
    `backend` is where the index lives (default: the FAISS store in `data_dir`; see
    qa.compose.store_backend); the writer lock is always taken on `data_dir`.
    """
    started = time.perf_counter()
    backend = backend or _LocalBackend(data_dir, ann)
    params = _effective_params(params, embedder)
    with writer_lock(data_dir, lock_timeout_s):
        wanted = StoreConfig(embedder.name, embedder.dimension, chunking_config(params, embedder))
        try:
            current = backend.open_for_writing(wanted)
        except IndexDamaged as exc:
            log.warning("%s -- building a fresh index instead.", exc)
            current = None
        before = {r.doc_id for r in current.list_documents()} if current else set()
        if paths is None:
            sources = list(current.config.sources if current else backend.manifest_sources())
            if not sources:
                raise UserError(f"The index in {data_dir} records no sources: give the files "
                                f"or folders to index.")
            excluded = list(current.config.excluded) if current else []
        else:
            sources, excluded = [_absolute(p) for p in paths], []
        store = current
        if store is None or rebuild or (store.config.embedder, store.config.dimension,
                                        store.config.chunking) != \
                (wanted.embedder, wanted.dimension, wanted.chunking):
            store = backend.empty_store(wanted, max(backend.last_generation(),
                                                    current.generation if current else 0))
        files, skipped = find_files([Path(s) for s in sources])
        files = [f for f in files if not any(_under(_absolute(f), e) for e in excluded)]
        files = list({_absolute(f): f for f in files}.values())
        if not files:
            raise _no_documents(skipped)
        ids = _assign_ids(files, store, keep_others=False)
        store.delete_documents([d.doc_id for d in store.list_documents()
                                if d.doc_id not in set(ids.values())])
        if on_document:
            on_document(len(files))
        applied = _apply(store, files, ids, embedder, params, progress)
        skipped += applied.skipped
        if store.count_documents() == 0:
            raise _no_documents(skipped)
        old = (store.config.sources, store.config.excluded)
        store.set_config(store.config.with_sources(sources, excluded))
        gone = sorted(before - {r.doc_id for r in store.list_documents()})
        changed = (applied.embedded or applied.updated or gone or store is not current
                   or old != (store.config.sources, store.config.excluded))
        # Re-running on unchanged files changes nothing: no new generation for readers to load.
        generation = store.commit() if changed else _collect(backend, store.generation)
        return _report(store, started, applied, gone, skipped, generation)


def add_to_index(paths: list[Path], data_dir: Path, embedder: Embedder,
                 params: ChunkingParams = ChunkingParams(),
                 progress: Callable[[int], None] | None = None,
                 on_document: Callable[[int], None] | None = None,
                 lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S, backend=None,
                 ann: AnnParams | None = None) -> BuildReport:
    """Add files or folders to the collection (or update them); nothing else is removed."""
    started = time.perf_counter()
    backend = backend or _LocalBackend(data_dir, ann)
    params = _effective_params(params, embedder)
    with writer_lock(data_dir, lock_timeout_s):
        wanted = StoreConfig(embedder.name, embedder.dimension, chunking_config(params, embedder))
        store = _open_store(backend, wanted)
        files, skipped = find_files(list(paths))
        files = list({_absolute(f): f for f in files}.values())
        if not files:
            problems = "; ".join(f"{s.path}: {s.reason}" for s in skipped) or "nothing given"
            raise UserError(f"Nothing to add ({problems}); give files or folders with .txt, "
                            f".md, .html, .pdf or .docx documents.")
        ids = _assign_ids(files, store, keep_others=True)
        if on_document:
            on_document(len(files))
        applied = _apply(store, files, ids, embedder, params, progress)
        skipped += applied.skipped
        if store.count_documents() == 0:
            raise _no_documents(skipped)
        given = [_absolute(p) for p in paths if Path(p).exists()]
        old = (store.config.sources, store.config.excluded)
        sources = list(old[0])
        # A path already inside a source folder adds nothing to the list of sources.
        sources += [g for g in given if not any(_under(g, s) for s in sources)]
        excluded = [e for e in old[1] if not any(_under(e, g) for g in given)]
        store.set_config(store.config.with_sources(sources, excluded))
        changed = (applied.embedded or applied.updated or store.path is None
                   or old != (store.config.sources, store.config.excluded))
        # Adding only unchanged files changes nothing: no new generation for readers to load.
        generation = store.commit() if changed else _collect(backend, store.generation)
        return _report(store, started, applied, (), skipped, generation)


def remove_from_index(targets: list[str], data_dir: Path,
                      lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
                      backend=None, ann: AnnParams | None = None) -> BuildReport:
    """Remove documents by id, or every document read from a file or under a folder."""
    started = time.perf_counter()
    backend = backend or _LocalBackend(data_dir, ann)
    with writer_lock(data_dir, lock_timeout_s):
        if not backend.exists():
            raise UserError(f"No index found in {data_dir}: build one with: qa index")
        store = backend.open_for_writing(StoreConfig("", 0, {}))
        records = store.list_documents()
        chosen: list[str] = []
        paths: list[str] = []
        for target in targets:
            if store.get_document(target) is not None:
                chosen.append(target)
                paths.append(store.get_document(target).source)
                continue
            path = _absolute(target)
            matched = [r.doc_id for r in records if _under(r.source, path)]
            if not matched and not any(_under(s, path) for s in store.config.sources):
                raise UserError(f"No document with id or path '{target}' in the index; "
                                f"see the ids and sources with: qa list")
            chosen += matched
            paths.append(path)
        sources = [s for s in store.config.sources if not any(_under(s, p) for p in paths)]
        # Removing a file from inside a source folder must survive the next `qa index`.
        excluded = list(store.config.excluded) + [
            p for p in paths if any(_under(p, s) for s in sources)]
        removed = sorted(set(chosen))
        store.delete_documents(removed)
        store.set_config(store.config.with_sources(sources, excluded))
        generation = store.commit()
        return _report(store, started, _Applied([], 0, 0, []), removed, [], generation)
