"""A Milvus writer killed with SIGKILL at any point of its commit leaves the index usable.

The writer is a real process (this file run as a script: the real indexer on a real Milvus Lite
file, hashing embedder) that pauses after its Nth call that changes Milvus (insert, upsert,
delete, create or drop a collection or index) and is killed there. For every N until the writer
finishes, the killed index must open and read exactly as the last committed generation did
(records, passages, texts, dense and lexical hits), and the next writer must clean up and
commit with every passage id once.

    python tests/test_milvus_crash.py DATA_DIR SCENARIO PAUSE_AT FOLDER
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

COLLECTION = "qa"
MUTATIONS = ("insert", "upsert", "delete", "create_collection", "create_index",
             "drop_collection")
QUERIES = ["Where did the caravan cross the salt desert?", "copper mines of the northern hills",
           "monsoon harvest of rice", "the lighthouse keeper and the storm"]

DOCS = {
    "caravan": "Caravan routes\n\n" + "The caravan crossed the salt desert in eleven days. "
    "Camels carried copper and dates to the oasis towns. " * 25,
    "copper": "Copper mining\n\n" + "The copper mines of the northern hills employed whole "
    "villages. Smelters burned charcoal from the valley forests. " * 25,
    "monsoon": "Monsoon farming\n\n" + "The monsoon harvest of rice fed the delta for a year. "
    "Floods brought silt to the paddies every summer. " * 25,
}
# The change the killed writer makes: one document replaced, one removed, one added.
CHANGED = {
    "copper": DOCS["copper"] + "In 1902 the last mine closed after a flood. ",
    "lighthouse": "The lighthouse\n\n" + "The lighthouse keeper trimmed the lamp before the "
    "storm. Ships rounded the cape by its light. " * 25,
}
EXTRA = "Salt trade\n\nSalt from the desert pans was cut into slabs and sold by weight. " * 4


def _backend(data: Path):
    from index.milvus_store import MilvusBackend

    return MilvusBackend(str(data / "milvus.db"), COLLECTION)


def _write_corpus(folder: Path, docs: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.glob("*.txt"):
        path.unlink()
    for name, text in docs.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")


# -- the writer process -------------------------------------------------------------------


def _driver() -> None:
    from pymilvus import MilvusClient

    from index.build import build_index
    from index.embedding import HashingEmbedder

    data, scenario, pause_at, folder = (Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]),
                                        Path(sys.argv[4]))
    calls = 0

    def counted(method):
        def call(self, *args, **kwargs):
            nonlocal calls
            result = method(self, *args, **kwargs)
            calls += 1
            if calls == pause_at:
                print(f"PAUSED {calls} {method.__name__} {args[:1]}", flush=True)
                time.sleep(120)  # killed here
            return result
        return call

    for name in MUTATIONS:
        setattr(MilvusClient, name, counted(getattr(MilvusClient, name)))
    build_index([folder], data, HashingEmbedder(), rebuild=scenario == "rebuild",
                backend=_backend(data), lock_timeout_s=10)
    print(f"DONE {calls}", flush=True)


# -- checks -------------------------------------------------------------------------------


def _release(data: Path) -> None:
    """Stop this process's Milvus Lite server for the file (it holds an OS lock on it)."""
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(data / "milvus.db"))


def _snapshot(data: Path) -> dict:
    """What a reader of the index sees: records, passages, texts and search hits."""
    from index.embedding import HashingEmbedder
    from index.milvus_store import open_milvus_index

    store = open_milvus_index(str(data / "milvus.db"), COLLECTION)
    embedder = HashingEmbedder()
    # (Each run reads its own copy of the corpus: the folder differs, not the file name.)
    records = sorted((r.doc_id, r.content_hash, r.n_passages, r.title, Path(r.source).name)
                     for r in store.list_documents())
    passages = {r[0]: [(pid, p.start, p.end, p.text) for pid, p in store.passages_of(r[0])]
                for r in records}
    texts = {r[0]: store.document_text(r[0]) for r in records}
    dense = [[(pid, round(score, 4)) for pid, score in
              store.search_dense(embedder.embed([q])[0], 8)] for q in QUERIES]
    # Milvus Lite's BM25 statistics count every row of a segment, so rows a reader filters out
    # may shift scores a little: the hits and their order are what must not change.
    lexical = [[pid for pid, _ in store.search_lexical(q, 8)] for q in QUERIES]
    got = [store.passage(pid) for hits in dense for pid, _ in hits]
    assert all(texts[p.doc_id][p.start:p.end] == p.text for p in got)
    return {"generation": store.generation, "records": records, "passages": passages,
            "texts": texts, "dense": dense, "lexical": lexical,
            "counts": (store.count_documents(), store.count_passages())}


def _run_writer(data: Path, scenario: str, pause_at: int, folder: Path):
    """The writer paused after its `pause_at`th change to Milvus, or None when it finished
    with fewer changes."""
    process = subprocess.Popen([sys.executable, __file__, str(data), scenario, str(pause_at),
                                str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    line = process.stdout.readline()
    if line.startswith("DONE"):
        assert process.wait(timeout=120) == 0
        return None
    assert line.startswith("PAUSED"), (line, process.stderr.read()[-3000:])
    return process, line.strip()


def _next_writer_succeeds(data: Path, committed: dict, folder: Path, rebuild: bool) -> None:
    """An add (or a rebuild with one more file) after the kill commits, with every passage id
    once and no row left over."""
    from index.build import add_to_index, build_index
    from index.embedding import HashingEmbedder
    from index.milvus_store import open_milvus_index

    extra = folder / "salt.txt"
    extra.write_text(EXTRA, encoding="utf-8")
    if rebuild:  # the corpus is what the killed rebuild committed or would have
        report = build_index([folder], data, HashingEmbedder(), rebuild=True,
                             backend=_backend(data), lock_timeout_s=10)
    else:
        report = add_to_index([extra], data, HashingEmbedder(), backend=_backend(data),
                              lock_timeout_s=10)
    store = open_milvus_index(str(data / "milvus.db"), COLLECTION)
    assert report.generation == store.generation > committed["generation"]
    assert sorted(r.doc_id for r in store.list_documents()) == \
        sorted([r[0] for r in committed["records"]] + ["salt"])
    ids = [pid for r in store.list_documents() for pid, _ in store.passages_of(r.doc_id)]
    assert len(ids) == len(set(ids)) == store.count_passages()
    rows = store.client.query(store.names["passages"], filter="id >= 0",
                              output_fields=["id"], limit=16_000)
    assert sorted(r["id"] for r in rows) == sorted(ids)  # no orphan or duplicate row
    # Only the collections of the committed state are left.
    assert sorted(store.client.list_collections()) == sorted(set(store.names.values()))
    for record in store.list_documents():
        assert len(store.document_text(record.doc_id)) > 0
    for doc_id, passages in committed["passages"].items():  # untouched documents keep theirs
        assert [p[1:] for p in passages] == \
            [(p.start, p.end, p.text) for _, p in store.passages_of(doc_id)]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> tuple[Path, Path]:
    """A committed Milvus Lite index of DOCS (generation 1) and its corpus folder."""
    from index.build import build_index
    from index.embedding import HashingEmbedder

    root = tmp_path_factory.mktemp("milvus-crash")
    folder, data = root / "corpus", root / "data"
    _write_corpus(folder, DOCS)
    build_index([folder], data, HashingEmbedder(), backend=_backend(data))
    _release(data)
    return folder, data


def _copy(baseline: tuple[Path, Path], target: Path) -> tuple[Path, Path]:
    folder, data = target / "corpus", target / "data"
    shutil.copytree(baseline[0], folder)
    shutil.copytree(baseline[1], data)
    return folder, data


@pytest.mark.parametrize("scenario", ["update", "rebuild"])
def test_a_writer_killed_after_any_change_leaves_the_committed_index(baseline, tmp_path,
                                                                     scenario):
    before = _snapshot(baseline[1])
    _release(baseline[1])
    # What the writer commits when it is not killed.
    folder, data = _copy(baseline, tmp_path / "complete")
    docs = {**DOCS, **CHANGED} if scenario == "update" else dict(DOCS)
    if scenario == "update":
        del docs["monsoon"]
    _write_corpus(folder, docs)
    assert _run_writer(data, scenario, 10**6, folder) is None
    after = _snapshot(data)
    _release(data)
    assert after["generation"] == before["generation"] + 1
    assert after["records"] != before["records"] or scenario == "rebuild"

    killed = 0
    for pause_at in range(1, 200):
        folder, data = _copy(baseline, tmp_path / f"kill-{pause_at}")
        _write_corpus(folder, docs)
        paused = _run_writer(data, scenario, pause_at, folder)
        if paused is None:
            break
        process, where = paused
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        killed += 1
        seen = _snapshot(data)
        expected = before if seen["generation"] == before["generation"] else after
        assert seen["generation"] in (before["generation"], after["generation"]), where
        assert seen == expected, where
        _next_writer_succeeds(data, seen, folder, scenario == "rebuild")
        _release(data)
        shutil.rmtree(tmp_path / f"kill-{pause_at}")
    assert killed >= 6  # the commit changes Milvus several times; each was a kill point


def test_a_document_removed_and_added_again_is_served_once_before_its_old_rows_go(
        baseline, tmp_path, monkeypatch):
    """The same text removed and added again in one commit: until the old rows are deleted
    (a writer killed right after its switch; here the deletes fail), readers of the new
    generation skip them, and the next writer deletes them."""
    import index.milvus_store as milvus_store
    from index.chunking import ChunkingParams, chunk_text, embedding_text
    from index.contracts import Document
    from index.embedding import HashingEmbedder
    from index.milvus_store import open_milvus_for_writing, open_milvus_index

    _, data = _copy(baseline, tmp_path)
    uri, embedder = str(data / "milvus.db"), HashingEmbedder()
    before = _snapshot(data)
    writer = open_milvus_for_writing(uri, COLLECTION, open_milvus_index(uri, COLLECTION).config)
    document, text = writer.get_document("caravan"), writer.document_text("caravan")
    passages = chunk_text("caravan", text, embedder.count_tokens, ChunkingParams())
    writer.delete_documents(["caravan"])
    writer.add_documents([Document("caravan", document.source, document.title, text,
                                   document.content_hash, document.kind, document.meta)],
                         passages, embedder.embed([embedding_text(p) for p in passages]))
    tidy, calls = milvus_store._tidy, []

    def tidy_before_the_switch_only(client, name, state):
        calls.append(state)
        if len(calls) == 2:
            raise RuntimeError("killed after the switch")
        return tidy(client, name, state)

    monkeypatch.setattr(milvus_store, "_tidy", tidy_before_the_switch_only)
    with pytest.raises(RuntimeError):
        writer.commit()
    monkeypatch.setattr(milvus_store, "_tidy", tidy)

    seen = _snapshot(data)
    assert seen["generation"] == before["generation"] + 1
    assert len(seen["passages"]["caravan"]) == len(before["passages"]["caravan"])
    assert [p[1:] for p in seen["passages"]["caravan"]] == \
        [p[1:] for p in before["passages"]["caravan"]]
    old_ids = {p[0] for p in before["passages"]["caravan"]}
    assert not old_ids & {pid for hits in seen["dense"] for pid, _ in hits}
    assert not old_ids & {pid for hits in seen["lexical"] for pid in hits}
    assert [len(hits) for hits in seen["dense"]] == [len(hits) for hits in before["dense"]]
    _next_writer_succeeds(data, seen, tmp_path / "corpus", rebuild=False)
    _release(data)


if __name__ == "__main__":
    _driver()
