"""The Milvus store: documents, passages, dense vectors and BM25 inside Milvus (Lite or server).

The same code reaches Milvus Lite (a local folder whose name ends in `.db`, embedded in this
process) or a Milvus standalone server / cluster (`http://host:19530`, with a token). Three
collections per index, named after one collection name:

    <name>_passages   id INT64 (passage id), doc_id, content_hash (of the document version),
                      start, end, heading, text, terms (the analysed text, BM25 input),
                      dense FLOAT_VECTOR (IP on normalised vectors, FLAT by default),
                      sparse SPARSE_FLOAT_VECTOR (Milvus's BM25 function output)
    <name>_documents  the full document texts, cut into pieces that fit a VARCHAR (65,535
                      bytes), keyed by doc id, content hash, part and piece number
    <name>_meta       the committed state: generation, next passage id, the StoreConfig, the
                      document records and the names of the two collections above (a rebuild
                      writes new ones, `<name>_passages_g<generation>` when the plain names
                      are in use)

Lexical search is Milvus's own BM25 (sparse inverted index, k1 = 1.5, b = 0.75 as bm25s); the
text it indexes is our own analysis (`index.store.lexical_tokens`: stemmed, stopword-free), so
both stores match a question on the same terms: Milvus Lite's analyzer only lower-cases and
splits words (no stemmer), and a server's analyzers differ by version. `analysis="standard"`
indexes the raw passage text with Milvus's standard analyzer instead.

Versions: a writer keeps every change in memory and applies it at `commit`: it inserts the new
rows, then writes the new state into `<name>_meta` (the one step that makes a generation
visible: readers take the newest complete state), then deletes what the new state no longer
references. Readers see only the rows of their state: passage ids below its next id (a writer's
new rows take ids from there up) of the document versions it records, minus the replaced rows
it lists as garbage. So a writer killed at any point leaves the last committed generation
readable as it was, and the next writer first removes what it left (`_tidy`). Readers of an
older generation may miss passages once the deletes of a newer commit run, and a rebuild drops
the previous collections after its switch; `is_latest()` turns False and the reader is reopened.

Milvus Lite holds an OS lock on its folder: one process at a time opens a `.db` (several
clients in that process share it). Several processes (e.g. `qa serve` and `qa index`, or two
servers) need a Milvus server; Milvus Lite's own (`python -m milvus_lite server --data-dir X
--port P`, then the URI http://127.0.0.1:P) will do on one machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace
from pathlib import PurePosixPath

import numpy as np

from .contracts import Document, Passage
from .errors import IndexDamaged, IndexMissing, UserError
from .store_protocol import (REBUILD_HINT, DocumentRecord, StoreConfig, check_embedder,
                             checked_addition, config_fingerprint)

__all__ = ["MilvusStore", "MilvusBackend", "connect", "open_milvus_index",
           "open_milvus_for_writing", "empty_milvus_store", "collection_names"]

VARCHAR_MAX = 65_535  # bytes
PIECE_CHARS = 16_000  # characters per stored piece: at most 4 UTF-8 bytes each < 65,535
DOC_ID_MAX = 512
BATCH = 256  # rows per insert call
QUERY_PAGE = 4_000  # rows per query page (a server caps offset + limit at 16,384)
BM25_PARAMS = {"bm25_k1": 1.5, "bm25_b": 0.75}
_STOP_WORDS = ("a an and are as at be but by for if in into is it no not of on or such that the "
               "their then there these they this to was will with").split()
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")


def collection_names(name: str) -> dict[str, str]:
    if not _NAME.match(name):
        raise UserError(f"Milvus collection name '{name}' is not valid: use letters, digits and "
                        f"underscores, starting with a letter.")
    return {"passages": f"{name}_passages", "documents": f"{name}_documents",
            "meta": f"{name}_meta"}


def _literal(value: str) -> str:
    """A string literal for a Milvus filter expression."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pieces(text: str) -> list[str]:
    return [text[i:i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)] or [""]


def _bm25_score(distance: float) -> float:
    """Milvus servers return BM25 scores as positive distances, Milvus Lite as negated ones."""
    return abs(float(distance))


# gRPC keepalive pings on an idle connection: Milvus Lite's server (in this process for a `.db`,
# or `python -m milvus_lite server`) keeps gRPC's default policy, which answers them with GOAWAY
# "too_many_pings", and a call or a new client racing that GOAWAY fails. On loopback there is
# no network path for keepalive to watch, so it is off there.
_NO_KEEPALIVE = {"grpc.keepalive_time_ms": 2**31 - 1, "grpc.keepalive_permit_without_calls": 0}
_LOOPBACK = re.compile(r"^(https?|tcp|grpc)://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:|/|$)")


def _unavailable(exc: BaseException | None) -> bool:
    """Whether gRPC or pymilvus reported the server unreachable anywhere in the chain of `exc`
    (the server closed the connection a new client was being set up on, or is down)."""
    import grpc

    from pymilvus.client.types import Status
    from pymilvus.exceptions import ConnectError, MilvusException, MilvusUnavailableException

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, grpc.RpcError) and getattr(exc, "code", None) and \
                exc.code() == grpc.StatusCode.UNAVAILABLE:
            return True
        if isinstance(exc, (ConnectError, MilvusUnavailableException)) or (
                isinstance(exc, MilvusException) and exc.code == Status.CONNECT_FAILED):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def connect(uri: str, token: str = ""):
    """A MilvusClient for a Milvus Lite file (`*.db`) or a server URI."""
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:  # pragma: no cover - installed with the project
        raise UserError("QA_VECTOR_STORE=milvus needs pymilvus and milvus-lite: "
                        "pip install pymilvus==3.0.2 milvus-lite==3.2.2") from exc
    if uri.endswith(".db"):
        from pathlib import Path

        Path(uri).expanduser().absolute().parent.mkdir(parents=True, exist_ok=True)
    options: dict = {"token": token} if token else {}
    if uri.endswith(".db") or _LOOPBACK.match(uri):
        options["grpc_options"] = dict(_NO_KEEPALIVE)
    # Milvus Lite logs a traceback when it cannot start (e.g. another process holds the
    # file); the error below says it in one line instead.
    lite_log = logging.getLogger("milvus_lite")
    level = lite_log.level
    lite_log.setLevel(logging.CRITICAL)
    try:
        for attempt in (1, 2):
            try:
                return MilvusClient(uri=uri, **options)
            except Exception as exc:
                if attempt == 1 and _unavailable(exc):  # a connection closed under us: again
                    time.sleep(0.2)
                    continue
                raise UserError(f"Cannot open Milvus at {uri} ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''}); a Milvus "
                                f"Lite file is opened by one process at a time, use a Milvus "
                                f"server for several.") from exc
    finally:
        lite_log.setLevel(level)


class MilvusStore:
    """One version of a Milvus collection; opened for reading or for one writer."""

    def __init__(self, client, uri: str, name: str, config: StoreConfig, generation: int,
                 records: dict[str, DocumentRecord], next_id: int, writable: bool,
                 committed: bool, fresh: bool = False, analysis: str = "stemmed",
                 dense_index: tuple[str, dict] = ("FLAT", {}), names: dict | None = None,
                 garbage: dict | None = None) -> None:
        if analysis not in ("stemmed", "standard"):
            raise ValueError(f"unknown analysis '{analysis}': stemmed or standard")
        self.client = client
        self.uri = uri
        self.name = name
        self.names = {**collection_names(name), **(names or {})}
        self.config = config
        self.generation = generation
        self.analysis = analysis
        self.dense_index = dense_index
        self._records = records
        self._next_id = next_id
        self._writable = writable
        self._committed = committed  # a committed generation exists in Milvus
        self._fresh = fresh  # commit replaces the whole collection (a rebuild)
        # What the committed generation holds: rows with other ids or versions are not its own.
        self._committed_next = next_id
        self._committed_versions = {(d, r.content_hash) for d, r in records.items()}
        self._set_garbage(garbage or {})
        # Changes since the last commit (writers only).
        self._added: dict[str, tuple[Document, list[tuple[int, Passage]], np.ndarray]] = {}
        self._deleted: set[str] = set()  # committed documents removed or replaced
        self._passages: OrderedDict[int, Passage] = OrderedDict()  # a bounded cache
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._known: dict[str, bool] = {}

    # -- reading ---------------------------------------------------------------------------

    @property
    def path(self) -> PurePosixPath | None:
        """Where the committed collection lives (None before the first commit)."""
        return PurePosixPath(f"milvus:{self.uri}#{self.name}") if self._committed else None

    @property
    def fingerprint(self) -> str:
        return config_fingerprint(self.config, self._records.values())

    def is_latest(self) -> bool:
        try:
            return _meta_generation(self.client, self.names["meta"]) == self.generation
        except Exception:
            return True  # Milvus unreachable: keep serving what is loaded

    def count_documents(self) -> int:
        return len(self._records)

    def count_passages(self) -> int:
        return sum(r.n_passages for r in self._records.values())

    def list_documents(self) -> list[DocumentRecord]:
        return list(self._records.values())

    def get_document(self, doc_id: str) -> DocumentRecord | None:
        return self._records.get(doc_id)

    def document_text(self, doc_id: str) -> str:
        if doc_id in self._added:
            return self._added[doc_id][0].text
        record = self._records.get(doc_id)
        if record is None:
            raise KeyError(doc_id)
        if doc_id in self._texts:
            self._texts.move_to_end(doc_id)
            return self._texts[doc_id]
        rows = self._query(self.names["documents"],
                           f"doc_id == {_literal(doc_id)} and content_hash == "
                           f"{_literal(record.content_hash)} and part == \"text\"",
                           ["piece", "n_pieces", "body"])
        text = _assemble(rows, f"the text of '{doc_id}'")
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != record.content_hash:
            raise IndexDamaged(f"The text of '{doc_id}' in Milvus collection "
                               f"{self.names['documents']} does not match its checksum; "
                               f"{REBUILD_HINT}.")
        self._texts[doc_id] = text
        if len(self._texts) > 64:
            self._texts.popitem(last=False)
        return text

    def _remember(self, pid: int, passage: Passage) -> None:
        self._passages[pid] = passage
        if len(self._passages) > 20_000:
            self._passages.popitem(last=False)

    def _known_version(self, pid: int, row: dict) -> bool:
        """Whether a passage row belongs to this store's version of the collection (not to a
        writer that has not committed, nor to a version the committed state replaced)."""
        record = self._records.get(row["doc_id"])
        below, replaced = self._garbage
        return record is not None and record.content_hash == row["content_hash"] \
            and row["doc_id"] not in self._added and pid < self._committed_next \
            and not (pid < below and row["doc_id"] in replaced)

    def _set_garbage(self, garbage: dict) -> None:
        self._garbage = (int(garbage.get("below", 0)), frozenset(garbage.get("doc_ids", ())))
        # Searches skip the rows in Milvus itself, so that they do not take places among the
        # k hits (`_known_version` is the check for every row).
        self._filter = f"id < {self._committed_next}"
        if replaced := _garbage_rows(garbage):
            self._filter += f" and not ({replaced})"

    def _committed_rows(self) -> str:
        """The filter for the passage rows of this store's generation (see `commit`)."""
        return self._filter

    def passage(self, passage_id: int) -> Passage:
        passage_id = int(passage_id)
        for _, passages, _ in self._added.values():
            for pid, passage in passages:
                if pid == passage_id:
                    return passage
        if passage_id in self._passages:
            return self._passages[passage_id]
        rows = self.client.get(self.names["passages"], ids=[passage_id],
                               output_fields=_PASSAGE_FIELDS)
        rows = [r for r in rows if self._known_version(passage_id, r)]
        if not rows:
            raise KeyError(passage_id)
        passage = _passage(rows[0])
        self._remember(passage_id, passage)
        return passage

    def passages_of(self, doc_id: str) -> list[tuple[int, Passage]]:
        if doc_id in self._added:
            return list(self._added[doc_id][1])
        record = self._records.get(doc_id)
        if record is None or not record.n_passages:
            return []
        rows = self._query(self.names["passages"],
                           f"doc_id == {_literal(doc_id)} and content_hash == "
                           f"{_literal(record.content_hash)} and {self._committed_rows()}",
                           ["id"] + _PASSAGE_FIELDS)
        items = [(int(r["id"]), _passage(r)) for r in rows
                 if self._known_version(int(r["id"]), r)]
        for pid, passage in items:
            self._remember(pid, passage)
        return sorted(items, key=lambda item: (item[1].start, item[1].end))

    def search_dense(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if k < 1 or not self._committed or not self.count_passages():
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(-1).tolist()
        found = self.client.search(self.names["passages"], data=[query], anns_field="dense",
                                   limit=min(k, self.count_passages()),
                                   filter=self._committed_rows(), output_fields=_PASSAGE_FIELDS,
                                   search_params={"metric_type": "IP",
                                                  "params": self.dense_index[1]})
        return self._hits(found[0], float)

    def search_lexical(self, query: str, k: int) -> list[tuple[int, float]]:
        if k < 1 or not self._committed or not self.count_passages():
            return []
        text = self._analysed_query(query)
        if not text:
            return []
        found = self.client.search(self.names["passages"], data=[text], anns_field="sparse",
                                   limit=min(k, self.count_passages()),
                                   filter=self._committed_rows(), output_fields=_PASSAGE_FIELDS,
                                   search_params={"metric_type": "BM25"})
        return [(pid, score) for pid, score in self._hits(found[0], _bm25_score) if score > 0]

    def _hits(self, found, score) -> list[tuple[int, float]]:
        hits = []
        for hit in found:
            entity = hit.get("entity", hit)
            row = {f: entity.get(f) for f in _PASSAGE_FIELDS}
            pid = int(hit["id"])
            if not self._known_version(pid, row):
                continue  # a version committed after this reader opened, or being replaced
            self._remember(pid, _passage(row))
            hits.append((pid, score(hit["distance"])))
        return hits

    def _analysed_query(self, text: str) -> str:
        return " ".join(self.lexical_terms(text))

    def lexical_terms(self, text: str) -> list[str]:
        if self.analysis == "stemmed":
            from .store import lexical_tokens

            return lexical_tokens([text])[0]
        return [t for t in re.findall(r"\w+", text.lower()) if t not in _STOP_WORDS]

    def known_terms(self, terms: Iterable[str]) -> set[str]:
        """A term is known when BM25 finds a passage for it (one batched search)."""
        terms = list(dict.fromkeys(terms))
        unknown = [t for t in terms if t not in self._known]
        if unknown and self._committed and self.count_passages():
            found = self.client.search(self.names["passages"], data=unknown,
                                       anns_field="sparse", limit=1,
                                       filter=self._committed_rows(),
                                       search_params={"metric_type": "BM25"})
            for term, hits in zip(unknown, found):
                self._known[term] = any(_bm25_score(h["distance"]) > 0 for h in hits)
        return {t for t in terms if self._known.get(t)}

    def check_embedder(self, name: str, dimension: int) -> None:
        check_embedder(self, name, dimension)

    def _query(self, collection: str, expr: str, fields: list[str]) -> list[dict]:
        return _query_all(self.client, collection, expr, fields)

    # -- writing ---------------------------------------------------------------------------

    def _writing(self) -> None:
        if not self._writable:
            raise RuntimeError("this store was opened for reading; use open_milvus_for_writing")

    def add_documents(self, documents: Sequence[Document], passages: Sequence[Passage],
                      vectors: np.ndarray) -> None:
        self._writing()
        vectors = checked_addition(documents, passages, vectors, self.config.dimension,
                                   self._records)
        for document in documents:
            if len(document.doc_id.encode("utf-8")) > DOC_ID_MAX:
                raise ValueError(f"document id longer than {DOC_ID_MAX} bytes: "
                                 f"{document.doc_id[:40]}...")
        for passage in passages:
            for value in (passage.text, passage.heading):
                if len(value.encode("utf-8")) > VARCHAR_MAX // 2:
                    raise ValueError(f"a passage of '{passage.doc_id}' is too long for Milvus "
                                     f"({len(value)} characters)")
        rows: dict[str, list[int]] = {}
        for row, passage in enumerate(passages):
            rows.setdefault(passage.doc_id, []).append(row)
        for document in documents:
            picked = rows.get(document.doc_id, [])
            items = []
            for row in picked:
                items.append((self._next_id, passages[row]))
                self._next_id += 1
            self._added[document.doc_id] = (document, items, vectors[picked])
            self._records[document.doc_id] = DocumentRecord(
                document.doc_id, document.source, document.title, document.kind,
                document.content_hash, len(items), dict(document.meta))
        self._known.clear()

    def delete_documents(self, doc_ids: Iterable[str]) -> int:
        self._writing()
        gone = {d for d in doc_ids if d in self._records}
        for doc_id in gone:
            del self._records[doc_id]
            self._texts.pop(doc_id, None)
            self._added.pop(doc_id, None)
            if self._committed and not self._fresh:
                self._deleted.add(doc_id)  # rows in Milvus go after the commit
        if gone:
            self._passages.clear()
            self._known.clear()
        return len(gone)

    def update_record(self, record: DocumentRecord) -> None:
        self._writing()
        old = self._records[record.doc_id]
        if old.content_hash != record.content_hash:
            raise ValueError("a changed text needs its passages re-embedded: delete and add it")
        self._records[record.doc_id] = replace(record, n_passages=old.n_passages)
        if record.doc_id in self._added:
            document, items, vectors = self._added[record.doc_id]
            self._added[record.doc_id] = (replace(document, source=record.source,
                                                  title=record.title, kind=record.kind,
                                                  meta=dict(record.meta)), items, vectors)

    def set_config(self, config: StoreConfig) -> None:
        self._writing()
        if (config.embedder, config.dimension) != (self.config.embedder, self.config.dimension):
            raise ValueError("the embedder of a store cannot change; start a new one")
        self.config = config

    def commit(self) -> int:
        """Write the changes, then record the new generation; a kill at any point leaves the
        last committed one as it was (see the module's docstring)."""
        self._writing()
        client, meta = self.client, self.names["meta"]
        try:
            state = _read_state(client, meta)
        except Exception as exc:
            if not self._fresh or _unavailable(exc):
                raise
            client.drop_collection(meta)  # unreadable, and being replaced: nothing to keep
            state = None
        current = int(state["generation"]) if state else None
        if current is not None and current > self.generation:
            raise UserError(f"Milvus collection '{self.name}' was changed by another writer "
                            f"(generation {current}, this one started from {self.generation}); "
                            f"run the command again.")
        generation = max(self.generation, current or 0) + 1
        # What a writer killed before us left: its rows take the ids and keys ours will.
        _tidy(client, self.name, state)
        names = dict(self.names)
        if self._fresh:  # a rebuild writes new collections; the committed ones stay readable
            names.update(_fresh_names(self.name, state, generation))
        _ensure_collections(client, names, self.config.dimension, self.analysis,
                            self.dense_index)
        for doc_id, (document, items, vectors) in self._added.items():
            _insert(client, names["passages"], [
                {"id": pid, "doc_id": doc_id, "content_hash": document.content_hash,
                 "start": p.start, "end": p.end, "heading": p.heading, "text": p.text,
                 "terms": self._terms(p), "dense": vector.tolist()}
                for (pid, p), vector in zip(items, vectors)])
            if (doc_id, document.content_hash) not in self._committed_versions:
                _insert(client, names["documents"],
                        _text_rows(doc_id, document.content_hash, document.text))
        # Passages of the removed and replaced versions stay until the switch has been made;
        # readers of the new state skip them (their ids are below the old next id).
        garbage = {"below": self._committed_next, "doc_ids": sorted(self._deleted)}
        state = {"generation": generation, "next_id": self._next_id,
                 "config": asdict(self.config), "analysis": self.analysis,
                 "fingerprint": config_fingerprint(self.config, self._records.values()),
                 "records": [r.to_json() for _, r in sorted(self._records.items())],
                 "collections": {k: names[k] for k in ("passages", "documents")},
                 "garbage": garbage}
        _write_state(client, meta, state)  # the switch
        _tidy(client, self.name, state)  # what the new state no longer references
        for doc_id, (document, _, _) in self._added.items():
            self._texts[doc_id] = document.text
        self._added.clear()
        self._deleted.clear()
        self._passages.clear()
        self._known.clear()
        self.names = names
        self._committed_next = self._next_id
        self._committed_versions = {(d, r.content_hash) for d, r in self._records.items()}
        self._set_garbage({})  # `_tidy` deleted it
        self.generation, self._committed, self._fresh = generation, True, False
        return generation

    def _terms(self, passage: Passage) -> str:
        if self.analysis == "stemmed":
            from .store import lexical_tokens

            return " ".join(lexical_tokens([passage.heading + " " + passage.text])[0])
        return passage.heading + " " + passage.text


_PASSAGE_FIELDS = ["doc_id", "content_hash", "start", "end", "heading", "text"]


def _passage(row: dict) -> Passage:
    return Passage(row["doc_id"], int(row["start"]), int(row["end"]), row["text"],
                   row["heading"])


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _insert(client, collection: str, rows: list[dict]) -> None:
    for chunk in _chunks(rows, BATCH):
        client.insert(collection, chunk)


def _text_rows(doc_id: str, content_hash: str, text: str) -> list[dict]:
    return _piece_rows(doc_id, content_hash, "text", text)


def _piece_rows(doc_id: str, content_hash: str, part: str, body: str) -> list[dict]:
    pieces = _pieces(body)
    return [{"key": json.dumps([doc_id, content_hash, part, i], ensure_ascii=False),
             "doc_id": doc_id, "content_hash": content_hash, "part": part, "piece": i,
             "n_pieces": len(pieces), "body": piece, "_v": [1.0, 0.0]}
            for i, piece in enumerate(pieces)]


def _assemble(rows: list[dict], what: str) -> str:
    # One piece twice is the same text (a version's rows are keyed by its content hash), e.g.
    # re-added while a killed writer's copy was still there.
    rows = sorted({int(r["piece"]): r for r in rows}.values(), key=lambda r: int(r["piece"]))
    if not rows or [int(r["piece"]) for r in rows] != list(range(int(rows[0]["n_pieces"]))):
        raise IndexDamaged(f"{what} is incomplete in Milvus; {REBUILD_HINT}.")
    return "".join(r["body"] for r in rows)


def _query_all(client, collection: str, expr: str, fields: list[str]) -> list[dict]:
    """Every row matching `expr`, read in pages (servers cap one query's window)."""
    rows: list[dict] = []
    offset = 0
    while True:
        page = client.query(collection, filter=expr, output_fields=fields, limit=QUERY_PAGE,
                            offset=offset)
        rows.extend(page)
        if len(page) < QUERY_PAGE:
            return rows
        offset += QUERY_PAGE
        if offset + QUERY_PAGE > 16_384:
            return rows + _query_iterate(client, collection, expr, fields, skip=len(rows))


def _query_iterate(client, collection, expr, fields, skip):
    iterator = client.query_iterator(collection, filter=expr, output_fields=fields,
                                     batch_size=QUERY_PAGE)
    rows, seen = [], 0
    try:
        while page := iterator.next():
            for row in page:
                seen += 1
                if seen > skip:
                    rows.append(row)
    finally:
        iterator.close()
    return rows


def _meta_generation(client, meta: str) -> int | None:
    """The newest complete committed generation, or None when there is none (a writer killed
    while writing a state leaves some of its pieces)."""
    if not client.has_collection(meta):
        return None
    from pymilvus.client.types import LoadState

    # A collection another process created may not be loaded here: Milvus Lite releases every
    # collection when the process that loaded it ends, and a query on it fails.
    if client.get_load_state(meta).get("state") != LoadState.Loaded:
        client.load_collection(meta)
    rows = client.query(meta, filter="generation >= 0",
                        output_fields=["generation", "piece", "n_pieces"], limit=QUERY_PAGE)
    pieces: dict[int, set[int]] = {}
    for row in rows:
        pieces.setdefault(int(row["generation"]), set()).add(int(row["piece"]))
    counts = {int(r["generation"]): int(r["n_pieces"]) for r in rows}
    return max((g for g, got in pieces.items() if len(got) == counts[g]), default=None)


def _read_state(client, meta: str) -> dict | None:
    generation = _meta_generation(client, meta)
    if generation is None:
        return None
    rows = client.query(meta, filter=f"generation == {generation}",
                        output_fields=["piece", "n_pieces", "body"], limit=QUERY_PAGE)
    return json.loads(_assemble(rows, f"the state of {meta}"))


def _write_state(client, meta: str, state: dict) -> None:
    pieces = _pieces(json.dumps(state, ensure_ascii=False))
    generation = state["generation"]
    _insert(client, meta, [
        {"key": f"g{generation:012d}:{i:06d}", "generation": generation, "piece": i,
         "n_pieces": len(pieces), "body": piece, "_v": [1.0, 0.0]}
        for i, piece in enumerate(pieces)])


def _data_names(name: str, state: dict | None) -> dict[str, str]:
    """The passages and documents collections a state uses (the plain names before states
    recorded them)."""
    names = collection_names(name)
    return {"passages": names["passages"], "documents": names["documents"],
            **((state or {}).get("collections") or {})}


def _fresh_names(name: str, state: dict | None, generation: int) -> dict[str, str]:
    """New collections for a rebuild: the plain names, or generation-suffixed ones when the
    committed state uses the plain ones."""
    plain = collection_names(name)
    if state is None or plain["passages"] not in _data_names(name, state).values():
        return {"passages": plain["passages"], "documents": plain["documents"]}
    return {"passages": f"{plain['passages']}_g{generation}",
            "documents": f"{plain['documents']}_g{generation}"}


def _garbage_rows(garbage: dict) -> str:
    """The filter for the passage rows a state replaced: those of its removed and replaced
    documents with ids below the next id before it (its new rows have ids from there up)."""
    if not garbage.get("doc_ids"):
        return ""
    return (f"id < {int(garbage['below'])} and doc_id in "
            f"[{', '.join(_literal(d) for d in sorted(garbage['doc_ids']))}]")


def _tidy(client, name: str, state: dict | None) -> list[str]:
    """Remove whatever the committed `state` does not reference, which no reader of it sees:
    what a killed writer left (a partial state, collections of an unfinished rebuild, rows with
    ids from the committed next id up, texts of versions it did not commit) and what the state
    itself replaced (its garbage, the collections and states before it). Each step is safe to
    repeat, so a writer killed here leaves work for the next one, no damage. Returns the
    collections it dropped."""
    meta = collection_names(name)["meta"]
    if client.has_collection(meta):
        client.delete(meta, filter=f"generation != {state['generation']}" if state
                      else "generation >= 0")
    names = _data_names(name, state) if state else {}
    ours = re.compile(re.escape(name) + r"_(passages|documents)(_g\d+)?")
    dropped = [c for c in client.list_collections()
               if ours.fullmatch(c) and c not in names.values()]
    for collection in dropped:
        client.drop_collection(collection)
    if not state or not all(client.has_collection(c) for c in names.values()):
        return dropped
    client.delete(names["passages"], filter=f"id >= {int(state['next_id'])}")
    if replaced := _garbage_rows(state.get("garbage") or {}):
        client.delete(names["passages"], filter=replaced)
    if "records" in state:  # (states before records were kept: nothing known to compare)
        committed = {(r["doc_id"], r["content_hash"]) for r in state["records"]}
        stored = {(r["doc_id"], r["content_hash"]) for r in _query_all(
            client, names["documents"], "piece == 0", ["doc_id", "content_hash"])}
        for chunk in _chunks(sorted(stored - committed), 100):
            client.delete(names["documents"], filter=" or ".join(
                f"(doc_id == {_literal(d)} and content_hash == {_literal(h)})"
                for d, h in chunk))
    return dropped


def _ensure_collections(client, names: dict[str, str], dimension: int, analysis: str,
                        dense_index: tuple[str, dict]) -> None:
    from pymilvus import DataType, Function, FunctionType

    if not client.has_collection(names["passages"]):
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=DOC_ID_MAX)
        schema.add_field("content_hash", DataType.VARCHAR, max_length=64)
        schema.add_field("start", DataType.INT64)
        schema.add_field("end", DataType.INT64)
        schema.add_field("heading", DataType.VARCHAR, max_length=VARCHAR_MAX)
        schema.add_field("text", DataType.VARCHAR, max_length=VARCHAR_MAX)
        analyzer = {"tokenizer": "standard", "filter": ["lowercase"]} if analysis == "stemmed" \
            else {"tokenizer": "standard",
                  "filter": ["lowercase", {"type": "stop", "stop_words": _STOP_WORDS}]}
        schema.add_field("terms", DataType.VARCHAR, max_length=VARCHAR_MAX,
                         enable_analyzer=True, analyzer_params=analyzer)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                     input_field_names=["terms"],
                                     output_field_names=["sparse"]))
        index = client.prepare_index_params()
        index.add_index("dense", index_type=dense_index[0], metric_type="IP",
                        params=dense_index[1])
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                        params=BM25_PARAMS)
        _create(client, names["passages"], schema, index)
    for kind in ("documents", "meta"):
        if client.has_collection(names[kind]):
            continue
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("key", DataType.VARCHAR, max_length=2048, is_primary=True)
        if kind == "documents":
            schema.add_field("doc_id", DataType.VARCHAR, max_length=DOC_ID_MAX)
            schema.add_field("content_hash", DataType.VARCHAR, max_length=64)
            schema.add_field("part", DataType.VARCHAR, max_length=16)
        else:
            schema.add_field("generation", DataType.INT64)
        schema.add_field("piece", DataType.INT64)
        schema.add_field("n_pieces", DataType.INT64)
        schema.add_field("body", DataType.VARCHAR, max_length=VARCHAR_MAX)
        # Milvus wants a vector field in every collection; this one is never searched.
        schema.add_field("_v", DataType.FLOAT_VECTOR, dim=2)
        index = client.prepare_index_params()
        index.add_index("_v", index_type="FLAT", metric_type="IP")
        _create(client, names[kind], schema, index)


def _create(client, name: str, schema, index) -> None:
    """Create and load a collection. The index is created without waiting on its state:
    pymilvus's wait asks for a timestamp that Milvus Lite does not implement (and an index on
    an empty collection has nothing to build)."""
    client.create_collection(name, schema=schema, consistency_level="Strong")
    client.create_index(name, index, sync=False)
    client.load_collection(name)


def _load(client, uri: str, name: str, writable: bool, analysis: str,
          dense_index: tuple[str, dict]) -> MilvusStore | None:
    meta = collection_names(name)["meta"]
    try:
        state = _read_state(client, meta)
        if state is None:
            return None
        names = {**_data_names(name, state), "meta": meta}
        # A collection that is gone is named, not met as a failed call (pymilvus logs every
        # failed call with its traceback).
        if missing := [c for c in names.values() if not client.has_collection(c)]:
            raise IndexDamaged(f"The Milvus collection '{missing[0]}' at {uri} is missing; "
                               f"{REBUILD_HINT}.")
        for collection in names.values():
            client.load_collection(collection)
        if "records" in state:
            records = {r["doc_id"]: DocumentRecord(**r) for r in state["records"]}
        else:  # a state written before records were kept in it: read the record rows
            records = _record_rows_of(client, names["documents"])
        order = state["config"]
        config = StoreConfig(order["embedder"], order["dimension"], order["chunking"],
                             tuple(order.get("sources", ())), tuple(order.get("excluded", ())))
        generation, next_id = int(state["generation"]), int(state["next_id"])
        garbage = state.get("garbage") or {}
        if (replaced := _garbage_rows(garbage)) and not client.query(
                names["passages"], filter=replaced, limit=1):
            garbage = {}  # deleted after the commit, as usual: nothing to filter out
    except IndexDamaged:
        raise
    except Exception as exc:
        if _unavailable(exc):  # an outage is not damage: rebuilding would throw the index away
            raise UserError(f"Milvus at {uri} is unavailable ({type(exc).__name__}); retry "
                            "when it is reachable again (the index is left as it is).") from exc
        raise IndexDamaged(f"The Milvus collection '{name}' at {uri} cannot be read "
                           f"({type(exc).__name__}); {REBUILD_HINT}.") from exc
    store = MilvusStore(client, uri, name, config, generation, records, next_id, writable,
                        committed=True, analysis=state.get("analysis", analysis),
                        dense_index=dense_index, names=names, garbage=garbage)
    # Record rows (older states) may be out of step with the commit that wrote the state:
    # compare with the fingerprint it recorded.
    if store.fingerprint != state.get("fingerprint", store.fingerprint):
        if writable:
            raise IndexDamaged(f"The Milvus collection '{name}' at {uri} is out of step with "
                               f"its last commit (a writer stopped mid-commit?); "
                               f"{REBUILD_HINT}.")
    return store


def _record_rows_of(client, documents: str) -> dict[str, DocumentRecord]:
    rows = _query_all(client, documents, 'part == "record"',
                      ["doc_id", "content_hash", "piece", "n_pieces", "body"])
    grouped: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        grouped.setdefault((row["doc_id"], row["content_hash"]), []).append(row)
    records: dict[str, DocumentRecord] = {}
    for (doc_id, _), parts in sorted(grouped.items()):
        record = DocumentRecord(**json.loads(_assemble(parts, f"the record of '{doc_id}'")))
        records[record.doc_id] = record
    return records


def open_milvus_index(uri: str, name: str, token: str = "", client=None,
                      dense_index: tuple[str, dict] = ("FLAT", {})) -> MilvusStore:
    """The committed collection, for reading."""
    client = client or connect(uri, token)
    store = _load(client, uri, name, False, "stemmed", dense_index)
    if store is None:
        raise IndexMissing(f"No index found in Milvus collection '{name}' at {uri}: build one "
                           f"with: qa index")
    return store


def open_milvus_for_writing(uri: str, name: str, config: StoreConfig, token: str = "",
                            client=None, analysis: str = "stemmed",
                            dense_index: tuple[str, dict] = ("FLAT", {})) -> MilvusStore:
    """The committed collection for the one writer; an empty store when none exists."""
    client = client or connect(uri, token)
    store = _load(client, uri, name, True, analysis, dense_index)
    if store is None:
        generation = _meta_generation(client, collection_names(name)["meta"]) or 0
        return MilvusStore(client, uri, name, config, generation, {}, 0, True, committed=False,
                           fresh=True, analysis=analysis, dense_index=dense_index)
    return store


def empty_milvus_store(uri: str, name: str, config: StoreConfig, generation: int = 0,
                       token: str = "", client=None, analysis: str = "stemmed",
                       dense_index: tuple[str, dict] = ("FLAT", {})) -> MilvusStore:
    """A new, empty collection; its commit replaces whatever the collection held."""
    client = client or connect(uri, token)
    generation = max(generation, _meta_generation(client, collection_names(name)["meta"]) or 0)
    return MilvusStore(client, uri, name, config, generation, {}, 0, True, committed=False,
                       fresh=True, analysis=analysis, dense_index=dense_index)


class MilvusBackend:
    """What index/build.py needs from a store kind, for Milvus (see the report for wiring)."""

    def __init__(self, uri: str, name: str, token: str = "") -> None:
        self.uri, self.name, self.token = uri, name, token
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = connect(self.uri, self.token)
        return self._client

    def exists(self) -> bool:
        return _meta_generation(self.client, collection_names(self.name)["meta"]) is not None

    def open_index(self) -> MilvusStore:
        return open_milvus_index(self.uri, self.name, client=self.client)

    def open_for_writing(self, config: StoreConfig) -> MilvusStore:
        return open_milvus_for_writing(self.uri, self.name, config, client=self.client)

    def empty_store(self, config: StoreConfig, generation: int = 0) -> MilvusStore:
        return empty_milvus_store(self.uri, self.name, config, generation, client=self.client)

    def last_generation(self) -> int:
        return _meta_generation(self.client, collection_names(self.name)["meta"]) or 0

    def manifest_sources(self) -> tuple[str, ...]:
        try:
            state = _read_state(self.client, collection_names(self.name)["meta"])
        except Exception:
            return ()
        return tuple(state["config"].get("sources", ())) if state else ()

    def collect_garbage(self) -> list[str]:
        """What killed writers left (called under the writer lock when nothing is committed)."""
        state = _read_state(self.client, collection_names(self.name)["meta"])
        return _tidy(self.client, self.name, state) if state else []
