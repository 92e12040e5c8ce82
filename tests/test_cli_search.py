"""The `qa` command as a user runs it: real encoder, real index, real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run

pytestmark = [pytest.mark.slow, pytest.mark.both_stores]
ASSAD = ("The fate of Bashar al-Assad is a long-term conflicting goal for Iran and Russia, where "
         "the former insists on maintaining Assad as the legitimate Syrian president")


@pytest.fixture(scope="module")
def cli_index(cli_seed_indexes, store_kind) -> Path:
    return cli_seed_indexes(store_kind)


def test_search_json_finds_the_assad_disagreement(cli_index: Path):
    result = run(["search", "--json", "Where do Moscow and Tehran disagree on Assad?"], cli_index)
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)["hits"]
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    for hit in hits:
        assert set(hit) >= {"rank", "score", "doc_id", "title", "source", "start", "end", "text"}
        file_text = Path(hit["source"]).read_text(encoding="utf-8")
        assert file_text[hit["start"]:hit["end"]] == hit["text"]
    assert any(ASSAD in " ".join(h["text"].split()) for h in hits
               if Path(h["source"]).name == "002_f97a6adf81882357.txt")


def test_second_index_run_reuses_everything(cli_index: Path, seed_copy: Path):
    result = run(["index", str(seed_copy)], cli_index)
    assert result.returncode == 0
    assert "0 embedded, 5 unchanged, 0 removed" in result.stdout


def test_search_k_and_text_output(cli_index: Path):
    result = run(["search", "Tartus naval base", "-k", "2"], cli_index)
    assert result.returncode == 0
    assert result.stdout.startswith("1. ") and "\n2. " in result.stdout and "\n3. " not in result.stdout
    assert "Tartus" in result.stdout


@pytest.mark.parametrize("question, expected", [
    ("", "question is empty"),
    ("   \n\t ", "question is empty"),
    ("why " * 25_000, "limit is 2,000"),
])
def test_bad_questions_get_one_line_errors(cli_index: Path, question: str, expected: str):
    result = run(["search", question], cli_index)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_bad_paths_and_missing_index(tmp_path: Path):
    missing = run(["index", str(tmp_path / "does-not-exist")], tmp_path / "d1")
    assert missing.returncode != 0 and "No such file or folder" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = run(["index", str(tmp_path / "empty")], tmp_path / "d2")
    assert empty.returncode != 0 and "No documents to index" in empty.stderr
    no_index = run(["search", "Assad"], tmp_path / "d3")
    assert no_index.returncode != 0 and "qa index" in no_index.stderr


# Drops one collection of a Milvus Lite index (in its own process: the file allows one).
DROP_COLLECTION = """
import sys
from pymilvus import MilvusClient
MilvusClient(uri=sys.argv[1]).drop_collection(sys.argv[2])
"""


def test_damaged_index_is_one_line_with_the_rebuild_command(tmp_path: Path, cli_index: Path,
                                                            store_kind: str):
    import shutil

    damaged = tmp_path / "damaged"
    if store_kind == "faiss":  # a FAISS file overwritten
        (damaged / "builds").mkdir(parents=True)
        build = (cli_index / "index").resolve()
        copy = damaged / "builds" / build.name
        shutil.copytree(build, copy)
        (damaged / "index").symlink_to(Path("builds") / build.name)
        (copy / "dense.faiss").write_bytes(b"garbage")
    else:  # the collection of document records and texts gone
        shutil.copytree(cli_index / "milvus.db", damaged / "milvus.db")
        dropped = subprocess.run([sys.executable, "-c", DROP_COLLECTION,
                                  str(damaged / "milvus.db"), "qa_documents"], cwd=ROOT,
                                 capture_output=True, text=True, timeout=120)
        assert dropped.returncode == 0, dropped.stderr
    result = run(["search", "Assad"], damaged)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert "qa index --rebuild" in result.stderr and "Traceback" not in result.stderr


def test_binary_file_is_skipped_with_a_warning(tmp_path: Path, seed_copy: Path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "ok.txt").write_text((seed_copy / "001_cc0add0a45bd4355.txt").read_text(
        encoding="utf-8"), encoding="utf-8")
    (folder / "blob.txt").write_bytes(bytes(range(256)) * 10)
    result = run(["index", str(folder)], tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "skipped" in result.stderr and "blob.txt" in result.stderr
    assert "Indexed 1 documents" in result.stdout
