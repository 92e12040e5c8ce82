"""`qa add`, `qa remove`, `qa list` and `qa index PATHS` as a user runs them (real encoder)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SEEDS

pytestmark = pytest.mark.slow
UNICODE_NAME = "my file ünï 日本.txt"


def qa(data: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "QA_DATA_DIR": str(data)}
    return subprocess.run([sys.executable, "-m", "qa", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def listed(data: Path) -> dict:
    result = qa(data, "list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_add_remove_list_and_index_exactly(tmp_path: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("001_cc0add0a45bd4355.txt", "003_d8c3740e974eafd9.txt", "metadata.json"):
        (corpus / name).write_bytes((SEEDS / name).read_bytes())
    mine = tmp_path / UNICODE_NAME
    mine.write_text("Grain report\n\nThe ministry said the grain talks with Ankara failed in "
                    "the spring of 2019 because the tariff on durum wheat was raised twice.\n",
                    encoding="utf-8")
    data = tmp_path / "data"

    built = qa(data, "index", str(corpus))
    assert built.returncode == 0, built.stderr
    assert "Indexed 2 documents" in built.stdout and "Removed" not in built.stdout

    added = qa(data, "add", str(mine))
    assert added.returncode == 0, added.stderr
    assert "Added 1 documents (0 unchanged)" in added.stdout
    assert "the index holds 3 documents" in added.stdout
    state = listed(data)
    by_id = {d["doc_id"]: d for d in state["documents"]}
    assert set(by_id) == {"001_cc0add0a45bd4355", "003_d8c3740e974eafd9", "my-file-ünï-日本"}
    assert by_id["my-file-ünï-日本"]["title"] == "Grain report"
    assert by_id["003_d8c3740e974eafd9"]["title"].startswith("Iran & Russia")
    assert state["sources"] == [str(corpus), str(mine)]

    again = qa(data, "add", str(mine), str(corpus))
    assert again.returncode == 0 and "Added 0 documents (3 unchanged)" in again.stdout
    assert listed(data)["generation"] == state["generation"]  # nothing re-embedded or rewritten

    found = qa(data, "search", "--json", "grain talks Ankara durum wheat")
    hit = json.loads(found.stdout)["hits"][0]
    assert hit["doc_id"] == "my-file-ünï-日本" and hit["source"] == str(mine)
    assert mine.read_text(encoding="utf-8")[hit["start"]:hit["end"]] == hit["text"]

    removed = qa(data, "remove", "001_cc0add0a45bd4355")
    assert removed.returncode == 0, removed.stderr
    assert "Removed 1 documents (001_cc0add0a45bd4355)" in removed.stdout
    state = listed(data)
    assert {d["doc_id"] for d in state["documents"]} == {"003_d8c3740e974eafd9",
                                                         "my-file-ünï-日本"}
    assert state["excluded"] == [str(corpus / "001_cc0add0a45bd4355.txt")]
    refresh = qa(data, "index")  # the recorded sources, without the removed file
    assert refresh.returncode == 0 and "Indexed 2 documents" in refresh.stdout

    missing = qa(data, "remove", "no-such-doc")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "error: No document with id or path 'no-such-doc' in the index; see the ids and "
        "sources with: qa list"]

    exactly = qa(data, "index", str(mine))
    assert exactly.returncode == 0, exactly.stderr
    assert "Indexed 1 documents" in exactly.stdout and "1 removed" in exactly.stdout
    assert "Removed 1 documents that are not under the given paths (003_d8c3740e974eafd9)" \
        in exactly.stdout and "`qa add PATHS` adds without removing" in exactly.stdout
    assert [d["doc_id"] for d in listed(data)["documents"]] == ["my-file-ünï-日本"]
