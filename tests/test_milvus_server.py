"""Two `qa serve` processes over one Milvus see each other's uploads.

A Milvus Lite *file* is opened by one process at a time (the process that opens it holds a lock
on it), so two servers cannot share one `.db` path. The installed milvus-lite also runs as a
standalone gRPC server (`python -m milvus_lite server --data-dir X --port P`; pymilvus itself
starts the same server inside the process for a `.db` URI), and every process then reaches the
one collection by URI, as it would a Milvus server: QA_MILVUS_URI=http://127.0.0.1:P.

Everything is real and in its own process: the Milvus Lite server, two `qa serve` (MiniLM,
uvicorn) with their own data folders, so that nothing but Milvus connects them, and the uploads
over HTTP with the API token. The uploads here come one at a time; writers that may overlap
must share QA_DATA_DIR, where the writer lock lives (README, "Milvus").
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from index.build import build_index  # noqa: E402
from qa.compose import store_backend  # noqa: E402
from qa.settings import Settings  # noqa: E402

from conftest import (ROOT, SEEDS, free_port, milvus_lite_server, stop,  # noqa: E402
                      wait_for_port)

pytestmark = pytest.mark.slow
TOKEN = "two-servers-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HARVEST = ("Harvest note\n\nThe sorghum harvest in Kordofan fell by a third after the locust "
           "swarms of the dry season, the cooperative's ledger says.\n")
FERRY = ("Ferry note\n\nThe Bosporus ferry timetable changed in March, when the night crossing "
         "to Kadıköy was dropped.\n")


def serve(data: Path, uri: str) -> tuple[subprocess.Popen, str]:
    """`qa serve` on a free port with its own data folder and the index in Milvus at `uri`."""
    port = free_port()
    env = {**os.environ, "QA_DATA_DIR": str(data), "QA_VECTOR_STORE": "milvus",
           "QA_MILVUS_URI": uri, "QA_API_TOKEN": TOKEN, "OMP_NUM_THREADS": "1",
           "QA_WARM_UP": "false"}  # these servers only search and upload
    data.mkdir(parents=True, exist_ok=True)
    log = data / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen([sys.executable, "-m", "qa", "serve", "--host", "127.0.0.1",
                                    "--port", str(port)], cwd=ROOT, env=env, stdout=output,
                                   stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process, f"qa serve in {data}", log, timeout_s=300)
    except BaseException:
        stop(process)
        raise
    return process, f"http://127.0.0.1:{port}"


def upload(url: str, name: str, text: str) -> dict:
    response = httpx.post(f"{url}/api/documents", headers=AUTH, timeout=120,
                          files=[("files", (name, text.encode(), "text/plain"))])
    assert response.status_code == 200, response.text
    return response.json()


def wait_until_found(url: str, question: str, doc_id: str, timeout_s: float = 20) -> dict:
    """The first hit of `question` on the server at `url` once it is `doc_id` (servers check
    for a newer index about once a second)."""
    deadline = time.monotonic() + timeout_s
    while True:
        hits = httpx.get(f"{url}/api/search", params={"q": question, "k": 3},
                         timeout=30).json()["hits"]
        if hits and hits[0]["doc_id"] == doc_id:
            return hits[0]
        assert time.monotonic() < deadline, f"{url} did not find {doc_id}: {hits[:1]}"
        time.sleep(0.25)


def listed(url: str) -> set[str]:
    return {d["doc_id"] for d in httpx.get(f"{url}/api/documents", timeout=30).json()[
        "documents"]}


def test_two_servers_over_one_milvus_see_each_others_uploads(tmp_path: Path, real_embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    kept = "003_d8c3740e974eafd9"
    (corpus / f"{kept}.txt").write_bytes((SEEDS / f"{kept}.txt").read_bytes())
    with milvus_lite_server(tmp_path / "milvus.db") as uri:
        # The first index, built by this process through the same URI.
        settings = Settings(data_dir=tmp_path / "indexer", vector_store="milvus", milvus_uri=uri)
        build_index([corpus], settings.data_dir, real_embedder, backend=store_backend(settings))
        first, url_a = serve(tmp_path / "a", uri)
        try:
            second, url_b = serve(tmp_path / "b", uri)
            try:
                assert listed(url_a) == listed(url_b) == {kept}

                added = upload(url_a, "harvest.txt", HARVEST)
                assert [d["doc_id"] for d in added["documents"]] == ["harvest"]
                hit = wait_until_found(url_b, "sorghum harvest Kordofan locust", "harvest")
                text = httpx.get(f"{url_b}/api/documents/harvest", timeout=30).json()["text"]
                assert text == HARVEST and text[hit["start"]:hit["end"]] == hit["text"]

                upload(url_b, "ferry.txt", FERRY)
                wait_until_found(url_a, "Bosporus ferry night crossing Kadıköy", "ferry")
                assert listed(url_a) == listed(url_b) == {kept, "harvest", "ferry"}

                removed = httpx.delete(f"{url_a}/api/documents/ferry", headers=AUTH,
                                       timeout=60)
                assert removed.status_code == 200, removed.text
                deadline = time.monotonic() + 20
                while "ferry" in listed(url_b):
                    assert time.monotonic() < deadline, "the removal did not reach server b"
                    time.sleep(0.25)
                assert listed(url_a) == listed(url_b) == {kept, "harvest"}
            finally:
                stop(second)
        finally:
            stop(first)


def test_a_milvus_outage_is_an_error_to_retry_not_a_damaged_index(tmp_path: Path,
                                                                   hashing_embedder):
    """A server that goes away between connecting and reading is reported as unavailable: were
    it taken for damage, `qa index` would rebuild and throw the collection away."""
    from index.errors import IndexDamaged, UserError
    from index.milvus_store import MilvusBackend

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "harvest.txt").write_text(HARVEST, encoding="utf-8")
    with milvus_lite_server(tmp_path / "milvus.db") as uri:
        settings = Settings(data_dir=tmp_path / "indexer", vector_store="milvus", milvus_uri=uri)
        build_index([corpus], settings.data_dir, hashing_embedder, backend=store_backend(settings))
        backend = MilvusBackend(uri, settings.milvus_collection)
        assert backend.open_index().list_documents()  # connected and readable
    with pytest.raises(UserError) as caught:  # the server is stopped now
        backend.open_index()
    assert not isinstance(caught.value, IndexDamaged)
    assert "unavailable" in str(caught.value) and "retry" in str(caught.value)
