"""`QA_VECTOR_STORE=milvus` end to end: the `qa` command on a real Milvus Lite file, in separate
processes (each opens the file afresh), against the same commands on the FAISS store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from conftest import run  # noqa: E402  (the same subprocess helper as the search tests)

pytestmark = pytest.mark.slow
MILVUS = {"QA_VECTOR_STORE": "milvus", "QA_MILVUS_URI": "", "QA_MILVUS_COLLECTION": "qa"}
FAISS = {"QA_VECTOR_STORE": "faiss"}
QUESTIONS = ["Where do Moscow and Tehran disagree on Assad?", "Tartus naval base"]


@pytest.fixture(scope="module")
def stores(cli_seed_indexes) -> dict[str, Path]:
    """The seed corpus indexed by `qa index` on each store (shared with other CLI tests)."""
    stores = {"faiss": cli_seed_indexes("faiss"), "milvus": cli_seed_indexes("milvus")}
    # The Milvus run wrote a Milvus Lite file and no FAISS build.
    assert (stores["milvus"] / "milvus.db").exists()
    assert not (stores["milvus"] / "index").exists()
    assert not (stores["milvus"] / "builds").exists()
    return stores


def _spans(data: Path, env: dict, question: str) -> list[tuple[str, int, int]]:
    result = run(["search", "--json", question], data, env)
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)["hits"]
    assert len(hits) == 5
    for hit in hits:  # offsets point into the source file on either store
        text = Path(hit["source"]).read_text(encoding="utf-8")
        assert text[hit["start"]:hit["end"]] == hit["text"]
    return [(h["doc_id"], h["start"], h["end"]) for h in hits]


@pytest.mark.parametrize("question", QUESTIONS)
def test_milvus_and_faiss_return_the_same_passages(stores, question):
    assert _spans(stores["milvus"], MILVUS, question) == _spans(stores["faiss"], FAISS, question)


def test_reindexing_unchanged_sources_on_milvus_embeds_nothing(stores):
    result = run(["index"], stores["milvus"], MILVUS)  # the sources recorded in Milvus
    assert result.returncode == 0, result.stderr
    assert "0 embedded, 5 unchanged, 0 removed" in result.stdout


def _listed(data: Path) -> dict:
    result = run(["list", "--json"], data, MILVUS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_add_and_remove_on_milvus_show_in_list(stores, tmp_path):
    data = tmp_path / "data"  # a copy: the shared index stays as it was
    shutil.copytree(stores["milvus"], data)
    note = tmp_path / "zanzibar-cloves.txt"
    note.write_text("Zanzibar cloves were traded for Persian carpets in 1890.\n\n"
                    "The Sultan of Oman ruled the island from Stone Town.\n", encoding="utf-8")
    before = _listed(data)

    added = run(["add", str(note)], data, MILVUS)
    assert added.returncode == 0, added.stderr
    assert "Embedded: zanzibar-cloves" in added.stdout
    listed = _listed(data)
    assert listed["generation"] > before["generation"]
    assert "zanzibar-cloves" in [d["doc_id"] for d in listed["documents"]]
    assert str(note) in listed["sources"]
    # Searchable at once. Dense search ranks it first; its BM25 score is not comparable to the
    # rest yet (Milvus Lite's BM25 uses per-segment statistics: a lone added passage ranks below
    # a weaker match in the bulk-built segment until `qa index --rebuild`), so no rank-1 check
    # in hybrid mode.
    found = run(["search", "--json", "Zanzibar cloves Persian carpets", "--mode", "dense",
                 "-k", "3"], data, MILVUS)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["hits"][0]["doc_id"] == "zanzibar-cloves"

    removed = run(["remove", "zanzibar-cloves"], data, MILVUS)
    assert removed.returncode == 0, removed.stderr
    assert "Removed 1 documents (zanzibar-cloves)" in removed.stdout
    after = _listed(data)
    assert after["generation"] > listed["generation"]
    assert [d["doc_id"] for d in after["documents"]] == \
        [d["doc_id"] for d in before["documents"]]
    assert str(note) not in after["sources"]


def test_unknown_vector_store_is_one_line(stores):
    result = run(["list"], stores["faiss"], {"QA_VECTOR_STORE": "chroma"})
    assert result.returncode != 0
    assert "QA_VECTOR_STORE" in result.stderr and len(result.stderr.strip().splitlines()) == 1
