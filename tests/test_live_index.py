"""A running server follows the index that other processes change, with no failed request.

Real parts throughout: uvicorn on a free port, the MiniLM encoder, the FAISS + bm25s store,
and writers that are separate processes (`qa add`, and a script re-indexing in a loop). The
tests that take `store_kind` run on Milvus too: with writers in other processes, the Milvus
Lite collection is served by Milvus Lite's own server process and reached by URI (a Lite file
is opened by one process at a time).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from index.build import build_index
from qa.compose import store_backend
from qa.settings import Settings
from web.app import create_app

from conftest import ROOT, SEEDS, index_into, live_server, milvus_lite_server

pytestmark = [pytest.mark.slow, pytest.mark.both_stores]
KEPT = ["001_cc0add0a45bd4355", "003_d8c3740e974eafd9"]
HARVEST = ("Harvest note\n\nThe sorghum harvest in Kordofan fell by a third after the locust "
           "swarms of the dry season, the cooperative's ledger says.\n")
REINDEX = """
import sys
import time
from pathlib import Path
from index.build import add_to_index, build_index, remove_from_index
from index.embedding import SentenceTransformerEmbedder
from qa.compose import store_backend
from qa.settings import Settings
data, corpus, harvest, extra = map(Path, sys.argv[1:5])
embedder = SentenceTransformerEmbedder()
backend = store_backend(Settings.from_env(data_dir=data))  # QA_VECTOR_STORE, QA_MILVUS_URI
for cycle in range(int(sys.argv[5])):
    remove_from_index(["harvest"], data, backend=backend)
    add_to_index([extra], data, embedder, backend=backend)
    time.sleep(1.5)  # long enough for the server (which checks every second) to see it
    add_to_index([harvest], data, embedder, backend=backend)
    build_index([corpus, harvest], data, embedder, backend=backend)  # drops `extra` again
    print("cycle", cycle, flush=True)
"""


class Clients:
    """Threads that keep asking the server while it changes under them; they record failures."""

    def __init__(self, url: str, texts: dict[str, str]) -> None:
        self.url, self.texts = url, texts
        self.errors: list[str] = []
        self.requests = 0
        self.seen: list[tuple[float, frozenset[str]]] = []  # (time, document ids listed)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(4)]

    def __enter__(self) -> "Clients":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _check(self, response: httpx.Response) -> dict | str:
        self.requests += 1
        if response.status_code != 200:
            self.errors.append(f"{response.request.url}: {response.status_code} "
                               f"{response.text[:200]}")
            return {}
        is_json = response.headers["content-type"].startswith("application/json")
        return response.json() if is_json else response.text

    def _run(self, worker: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    if worker == 0:
                        body = self._check(client.get("/api/search", params={
                            "q": "Where do Moscow and Tehran disagree on Assad?", "k": 5}))
                        for hit in body.get("hits", []):
                            text = self.texts.get(hit["doc_id"])
                            if text is not None and text[hit["start"]:hit["end"]] != hit["text"]:
                                self.errors.append(f"hit span mismatch in {hit['doc_id']}")
                    elif worker == 1:
                        body = self._check(client.get("/api/documents"))
                        ids = frozenset(d["doc_id"] for d in body.get("documents", []))
                        self.seen.append((time.monotonic(), ids))
                    elif worker == 2:
                        body = self._check(client.get(f"/api/documents/{KEPT[1]}"))
                        if body and body["text"] != self.texts[KEPT[1]]:
                            self.errors.append("document text changed under a reader")
                    else:
                        page = self._check(client.get(f"/documents/{KEPT[0]}",
                                                      params={"start": 100, "end": 160}))
                        if page and 'id="quote"' not in page:
                            self.errors.append("document page lost its highlight")
                except httpx.HTTPError as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.02)


def qa_env(settings: Settings) -> dict:
    return {**os.environ, "QA_DATA_DIR": str(settings.data_dir), "OMP_NUM_THREADS": "1",
            "QA_VECTOR_STORE": settings.vector_store, "QA_MILVUS_URI": settings.milvus_uri}


def test_server_serves_new_documents_added_by_another_process_without_errors(
        tmp_path: Path, real_embedder, store_kind):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for doc_id in KEPT:
        (corpus / f"{doc_id}.txt").write_bytes((SEEDS / f"{doc_id}.txt").read_bytes())
    harvest = tmp_path / "harvest.txt"
    harvest.write_text(HARVEST, encoding="utf-8")
    extra = tmp_path / "extra.txt"
    extra.write_text("Extra note\n\nRice exports from Vietnam to the Philippines grew in the "
                     "first quarter.\n", encoding="utf-8")
    data = tmp_path / "data"
    texts = {d: (corpus / f"{d}.txt").read_text(encoding="utf-8") for d in KEPT}

    with ExitStack() as stack:
        uri = stack.enter_context(milvus_lite_server(tmp_path / "milvus.db")) \
            if store_kind == "milvus" else ""
        settings = Settings(data_dir=data, vector_store=store_kind, milvus_uri=uri)
        build_index([corpus], data, real_embedder, backend=store_backend(settings))
        url = stack.enter_context(live_server(create_app(settings)))
        clients = stack.enter_context(Clients(url, texts))
        time.sleep(1)
        added = subprocess.run([sys.executable, "-m", "qa", "add", str(harvest)], cwd=ROOT,
                               env=qa_env(settings), capture_output=True, text=True, timeout=300)
        assert added.returncode == 0, added.stderr
        assert "Added 1 documents" in added.stdout
        done = time.monotonic()
        while not any("harvest" in ids for _, ids in clients.seen if _ > done):
            assert time.monotonic() - done < 10, "the server did not pick up the new index"
            time.sleep(0.1)
        hits = httpx.get(f"{url}/api/search", params={"q": "sorghum harvest Kordofan locust"},
                         timeout=30).json()["hits"]
        assert hits[0]["doc_id"] == "harvest" and "Kordofan" in hits[0]["text"]
        page = httpx.get(f"{url}/documents/harvest", params={"start": 14, "end": 40},
                         timeout=30)
        assert page.status_code == 200 and "sorghum harvest" in page.text

        cycles = subprocess.run([sys.executable, "-c", REINDEX, str(data), str(corpus),
                                 str(harvest), str(extra), "3"], cwd=ROOT,
                                env=qa_env(settings), capture_output=True, text=True,
                                timeout=600)
        assert cycles.returncode == 0, cycles.stderr
        assert cycles.stdout.split() == ["cycle", "0", "cycle", "1", "cycle", "2"]
        time.sleep(2.5)

    assert clients.errors == [], clients.errors[:5]
    assert clients.requests > 100
    listed = [ids for _, ids in clients.seen]
    # The server went through the versions: with and without `extra`, and ends at the last.
    assert any("extra" in ids for ids in listed)
    assert listed[-1] == frozenset(KEPT + ["harvest"])
    if store_kind == "faiss":
        # Old builds were collected once no request held them (not one folder per re-index).
        assert len(list((data / "builds").iterdir())) <= 3


def test_upload_and_delete_documents_over_http(tmp_path: Path, store_kind):
    from conftest import make_assistant

    from index.embedding import HashingEmbedder
    from qa.backends.base import ReplayGenerator

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "001.txt").write_bytes((SEEDS / f"{KEPT[0]}.txt").read_bytes())
    data = tmp_path / "data"
    embedder = HashingEmbedder()  # shared by the upload's indexing and the searches
    index_into([corpus], data, embedder, store_kind)
    assistant = make_assistant(data, embedder, ReplayGenerator(""), upload_max_bytes=5000)
    with live_server(create_app(assistant.settings, assistant)) as url:
        files = [("files", ("../../my file ünï 日本.txt", HARVEST.encode(), "text/plain")),
                 ("files", ("notes.md", b"# Ferry\n\nThe Bosporus ferry timetable changed "
                            b"in March.\n", "text/markdown")),
                 ("files", ("fake.pdf", b"just text, not a PDF", "application/pdf")),
                 ("files", ("tool.exe", b"MZ\x90\x00", "application/octet-stream")),
                 ("files", ("big.txt", b"word " * 2000, "text/plain"))]
        response = httpx.post(f"{url}/api/documents", files=files, timeout=60)
        assert response.status_code == 200, response.text
        body = response.json()
        assert {d["doc_id"]: d["filename"] for d in body["documents"]} == {
            "my-file-ünï-日本": "my file ünï 日本.txt", "notes": "notes.md"}
        errors = {e["filename"]: e["message"] for e in body["errors"]}
        assert "not a PDF" in errors["fake.pdf"] and "unsupported" in errors["tool.exe"]
        assert "QA_UPLOAD_MAX_BYTES" in errors["big.txt"]
        assert (data / "uploads" / "my file ünï 日本.txt").read_text("utf-8") == HARVEST
        assert not (tmp_path / "my file ünï 日本.txt").exists()  # the name's folders dropped

        # Answerable at once: the server serves the index the upload committed.
        hits = httpx.get(f"{url}/api/search", params={"q": "sorghum Kordofan locust"},
                         timeout=30).json()["hits"]
        assert hits[0]["doc_id"] == "my-file-ünï-日本"
        text = httpx.get(f"{url}/api/documents/my-file-ünï-日本", timeout=30).json()["text"]
        assert text[hits[0]["start"]:hits[0]["end"]] == hits[0]["text"] and text == HARVEST

        deleted = httpx.delete(f"{url}/api/documents/my-file-ünï-日本", timeout=60)
        assert deleted.status_code == 200 and deleted.json() == {
            "removed": "my-file-ünï-日本", "documents": 2}
        assert httpx.get(f"{url}/api/documents/my-file-ünï-日本", timeout=30).status_code == 404
        assert not (data / "uploads" / "my file ünï 日本.txt").exists()
        hits = httpx.get(f"{url}/api/search", params={"q": "sorghum Kordofan locust"},
                         timeout=30).json()["hits"]
        assert all(h["doc_id"] != "my-file-ünï-日本" for h in hits)
        missing = httpx.delete(f"{url}/api/documents/nothing-here", timeout=30)
        assert missing.status_code == 404 and missing.json()["detail"].startswith("No document")


def test_a_text_damaged_under_a_running_server_is_a_clear_503(tmp_path: Path):
    from conftest import make_assistant

    from index.embedding import HashingEmbedder
    from index.store import open_index
    from qa.backends.base import ReplayGenerator

    data = tmp_path / "data"
    build_index([SEEDS], data, HashingEmbedder())
    assistant = make_assistant(data, HashingEmbedder(), ReplayGenerator(""))
    text = open_index(data).path / "texts" / f"{KEPT[1]}.txt"
    body = text.read_bytes()
    text.write_bytes(body[:-10] + b"!" * 10)  # same size: only the checksum can tell
    with live_server(create_app(assistant.settings, assistant)) as url:
        fine = httpx.get(f"{url}/api/documents/{KEPT[0]}", timeout=30)
        assert fine.status_code == 200
        damaged = httpx.get(f"{url}/api/documents/{KEPT[1]}", timeout=30)
        assert damaged.status_code == 503
        assert damaged.json()["detail"].endswith("rebuild it with: qa index --rebuild.")
        page = httpx.get(f"{url}/documents/{KEPT[1]}", params={"start": 0, "end": 10},
                         headers={"accept": "text/html"}, timeout=30)
        assert page.status_code == 503 and "qa index --rebuild" in page.text
