"""One writer at a time, and writers killed with SIGKILL at any point leave a working index.

Writers are real processes (tests/writer_driver.py runs the real indexer and pauses at a named
point); the index is the real FAISS + bm25s store under a real OS lock.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from index.build import add_to_index, build_index
from index.embedding import HashingEmbedder
from index.lock import IndexBusy
from index.store import open_index
from qa.retrieve import make_retriever
from qa.settings import Settings

from conftest import ROOT, SEEDS

DRIVER = Path(__file__).resolve().parent / "writer_driver.py"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    build_index([SEEDS], data, HashingEmbedder())
    return data


@pytest.fixture
def new_doc(tmp_path: Path) -> Path:
    path = tmp_path / "harvest.txt"
    path.write_text("Harvest note\n\nThe sorghum harvest in Kordofan fell by a third after the "
                    "locust swarms of the dry season.\n", encoding="utf-8")
    return path


def start_writer(data: Path, point: str, seconds: float, *paths: Path) -> subprocess.Popen:
    """A writer process paused at `point`; returns once it says so."""
    process = subprocess.Popen([sys.executable, str(DRIVER), str(data), point, str(seconds),
                                *map(str, paths)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert line.strip() == f"PAUSED {point}", (line, process.stderr.read())
    return process


def test_second_writer_waits_for_the_timeout_then_fails_with_one_line(data, new_doc):
    holder = start_writer(data, "lock", 60)
    try:
        env = {**os.environ, "QA_DATA_DIR": str(data), "QA_INDEX_LOCK_TIMEOUT_S": "1.5"}
        result = subprocess.run([sys.executable, "-m", "qa", "add", str(new_doc)], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=300)
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"pid {holder.pid}" in lines[0] and "waited 1.5 s" in lines[0]
    assert "QA_INDEX_LOCK_TIMEOUT_S" in lines[0]
    assert open_index(data).get_document("harvest") is None

    started = time.monotonic()
    with pytest.raises(IndexBusy):
        holder = start_writer(data, "lock", 60)
        try:
            add_to_index([new_doc], data, HashingEmbedder(), lock_timeout_s=1.0)
        finally:
            holder.kill()
            holder.wait()
    assert time.monotonic() - started >= 1.0  # it waited before giving up


def test_second_writer_waits_and_then_goes_ahead(data, new_doc):
    holder = start_writer(data, "lock", 1.5)
    started = time.monotonic()
    report = add_to_index([new_doc], data, HashingEmbedder(), lock_timeout_s=30)
    waited = time.monotonic() - started
    assert holder.wait(timeout=30) == 0
    assert waited >= 1.0 and report.embedded == ("harvest",)
    assert open_index(data).get_document("harvest").title == "Harvest note"


@pytest.mark.parametrize("point", ["lock", "embed", "dense", "switch", "gc"])
def test_a_writer_killed_at_any_point_leaves_a_working_index_and_no_lock(data, new_doc, point):
    before = open_index(data)
    writer = start_writer(data, point, 60, new_doc)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()

    survivor = open_index(data)  # the last good index, or the new one if it was switched in
    switched = point == "gc"
    assert survivor.generation == before.generation + (1 if switched else 0)
    assert (survivor.get_document("harvest") is not None) == switched
    retriever = make_retriever(survivor, HashingEmbedder(), Settings(data_dir=data))
    hits = retriever.search("Where do Moscow and Tehran disagree on Assad?", 5)
    assert len(hits) == 5 and all(
        survivor.document_text(h.doc_id)[h.start:h.end] == h.text for h in hits)

    del before, survivor, retriever, hits  # release the readers' leases on their builds
    gc.collect()
    # No stale lock: the next writer gets it at once, and its commit clears what was left.
    started = time.monotonic()
    report = add_to_index([new_doc], data, HashingEmbedder(), lock_timeout_s=0.5)
    assert time.monotonic() - started < 5
    current = open_index(data)
    assert current.get_document("harvest") is not None and current.count_documents() == 6
    assert report.generation == current.generation
    assert sorted(p.name for p in (data / "builds").iterdir()) == [current.path.name]
    assert not [p for p in data.iterdir() if p.name.startswith(".index-")]
