"""Word documents (read with python-docx, sniffed on upload) and who may change the collection:
QA_API_TOKEN as a bearer token, QA_UPLOADS, and a server that will not open its writing endpoints
to the network without a token. Real parts: the FAISS + bm25s store (and Milvus Lite for the
tests marked both_stores, which add to and delete from the index), the hashing embedder, the
FastAPI app, and `qa serve` as a process."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import docx
import pytest
from fastapi.testclient import TestClient

from conftest import ROOT, SEEDS, index_into, make_assistant
from index.embedding import HashingEmbedder
from index.errors import UserError
from index.readers import read_document
from qa.backends.base import ReplayGenerator
from qa.settings import Settings
from web.app import create_app
from web.uploads import is_loopback_host

TOKEN = "harbour-token-7f3a91c2"
NOTE = b"Tide note\n\nThe tide gauge at Port Veradel was recalibrated in 1931.\n"


def word_file(path: Path) -> Path:
    """A real .docx written by python-docx: title, headings, paragraphs, a table, a blank line."""
    document = docx.Document()
    document.core_properties.title = "The Quays of Port Veradel"
    document.add_heading("Port Veradel harbour", level=1)
    document.add_paragraph("The lighthouse keeper of Port Veradel counted 412 herring boats "
                           "in the winter of 1887.")
    document.add_paragraph("")
    paragraph = document.add_paragraph("Its breakwater was built of ")
    paragraph.add_run("basalt").bold = True
    paragraph.add_run(" from the Carrow quarry.")
    document.add_heading("Tolls", level=2)
    table = document.add_table(rows=2, cols=2)
    for row, (what, toll) in enumerate([("Herring boat", "2 pence"), ("Schooner", "9 pence")]):
        table.cell(row, 0).text = what
        table.cell(row, 1).text = toll
    document.add_paragraph("Tolls were collected at the north quay.")
    document.save(str(path))
    return path


@pytest.fixture
def small_index(tmp_path: Path, store_kind: str) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "001.txt").write_bytes((SEEDS / "001_cc0add0a45bd4355.txt").read_bytes())
    data = tmp_path / "data"
    index_into([corpus], data, HashingEmbedder(), store_kind)
    return data


def client_for(data: Path, **settings) -> TestClient:
    assistant = make_assistant(data, HashingEmbedder(), ReplayGenerator(""), **settings)
    return TestClient(create_app(assistant.settings, assistant))


# --- .docx ------------------------------------------------------------------------------------

def test_docx_reader_keeps_paragraphs_headings_and_tables_in_order(tmp_path: Path):
    document = read_document(word_file(tmp_path / "port veradel.docx"))
    assert document.kind == "docx"
    assert document.title == "The Quays of Port Veradel"
    assert document.text == (
        "Port Veradel harbour\n\n"
        "The lighthouse keeper of Port Veradel counted 412 herring boats in the winter of 1887."
        "\n\nIts breakwater was built of basalt from the Carrow quarry.\n\n"
        "Tolls\n\n"
        "Herring boat | 2 pence\n\nSchooner | 9 pence\n\n"
        "Tolls were collected at the north quay.")


def test_docx_without_a_title_takes_its_first_heading(tmp_path: Path):
    document = docx.Document()
    document.add_paragraph("A short preface line.")
    document.add_heading("Sounding the channel", level=1)
    document.add_paragraph("The channel was sounded every spring.")
    document.save(str(tmp_path / "channel.docx"))
    read = read_document(tmp_path / "channel.docx")
    assert read.title == "Sounding the channel"
    assert read.text.startswith("A short preface line.\n\nSounding the channel\n\n")


def test_damaged_and_empty_docx_are_refused_with_a_reason(tmp_path: Path):
    broken = tmp_path / "broken.docx"
    broken.write_bytes(b"PK\x03\x04 not really a zip archive")
    with pytest.raises(ValueError, match="cannot be read"):
        read_document(broken)
    empty = tmp_path / "empty.docx"
    docx.Document().save(str(empty))
    with pytest.raises(ValueError, match="contains no text"):
        read_document(empty)


@pytest.mark.both_stores
def test_docx_upload_is_sniffed_indexed_and_cited_from_its_extracted_text(tmp_path: Path,
                                                                         small_index: Path):
    data = word_file(tmp_path / "veradel.docx").read_bytes()
    other_zip = io.BytesIO()
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("content.xml", "<office/>")  # an OpenDocument-like zip, not Word
    client = client_for(small_index)
    response = client.post("/api/documents", files=[
        ("files", ("Port Veradel.docx", data, "application/octet-stream")),
        ("files", ("renamed.docx", other_zip.getvalue(), docx_type())),
        ("files", ("notes.docx", b"plain text pretending to be Word", docx_type())),
        ("files", ("zip.txt", data, "text/plain"))])
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(d["doc_id"], d["title"]) for d in body["documents"]] == [
        ("Port-Veradel", "The Quays of Port Veradel")]
    errors = {e["filename"]: e["message"] for e in body["errors"]}
    assert set(errors) == {"renamed.docx", "notes.docx", "zip.txt"}
    assert "not a Word document" in errors["renamed.docx"]
    assert "not a Word document" in errors["notes.docx"]
    assert "binary content" in errors["zip.txt"]

    hits = client.get("/api/search", params={"q": "lighthouse keeper herring boats 1887"}
                      ).json()["hits"]
    assert hits[0]["doc_id"] == "Port-Veradel"
    text = client.get("/api/documents/Port-Veradel").json()["text"]
    assert text[hits[0]["start"]:hits[0]["end"]] == hits[0]["text"]
    assert "412 herring boats" in hits[0]["text"]
    page = client.get("/documents/Port-Veradel", headers={"accept": "text/html"})
    assert page.status_code == 200 and "basalt from the Carrow quarry" in page.text


def docx_type() -> str:
    return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


# --- who may write ------------------------------------------------------------------------------

@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.8.0.1", True), ("localhost", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("::", False), ("192.168.1.20", False),
    ("myhost.example", False), ("", False)])
def test_loopback_hosts(host, loopback):
    assert is_loopback_host(host) is loopback


@pytest.mark.both_stores
def test_a_network_server_needs_the_token_to_upload_and_delete(small_index: Path):
    client = client_for(small_index, host="0.0.0.0", api_token=TOKEN)
    upload = [("files", ("tide.txt", NOTE, "text/plain"))]
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}):
        refused = client.post("/api/documents", files=upload, headers=headers)
        assert refused.status_code == 401, (headers, refused.text)
        detail = refused.json()["detail"]
        assert "\n" not in detail and ("Authorization: Bearer" in detail), detail
        assert refused.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/api/documents/tide").status_code == 404  # nothing was added

    good = {"Authorization": f"Bearer {TOKEN}"}
    added = client.post("/api/documents", files=upload, headers=good)
    assert added.status_code == 200, added.text
    assert [d["doc_id"] for d in added.json()["documents"]] == ["tide"]
    assert "Port Veradel" in client.get("/api/documents/tide").json()["text"]  # reading is open

    for headers in ({}, {"Authorization": "Bearer nope"}):
        refused = client.delete("/api/documents/tide", headers=headers)
        assert refused.status_code == 401 and "token" in refused.json()["detail"].lower()
    assert client.get("/api/documents/tide").status_code == 200
    deleted = client.delete("/api/documents/tide", headers={"Authorization": f"bearer {TOKEN}"})
    assert deleted.status_code == 200 and deleted.json()["removed"] == "tide"
    assert client.get("/api/documents/tide").status_code == 404


def test_the_token_is_checked_before_a_large_body_is_read(small_index: Path):
    client = client_for(small_index, host="0.0.0.0", api_token=TOKEN, upload_max_bytes=1000,
                        upload_max_files=1)
    huge = [("files", ("big.txt", b"word " * 100_000, "text/plain"))]
    assert client.post("/api/documents", files=huge).status_code == 401
    too_big = client.post("/api/documents", files=huge,
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert too_big.status_code == 413


def test_loopback_without_a_token_stays_open_and_a_set_token_is_always_required(
        small_index: Path):
    open_client = client_for(small_index)
    added = open_client.post("/api/documents", files=[("files", ("tide.txt", NOTE, "text/plain"))])
    assert added.status_code == 200 and added.json()["documents"][0]["doc_id"] == "tide"
    assert open_client.delete("/api/documents/tide").status_code == 200

    guarded = client_for(small_index, api_token=TOKEN)  # loopback, but a token is configured
    assert guarded.delete("/api/documents/001").status_code == 401
    assert guarded.get("/api/documents/001").status_code == 200


def test_uploads_can_be_turned_off(small_index: Path):
    client = client_for(small_index, host="0.0.0.0", uploads=False)  # starts: nothing to guard
    refused = client.post("/api/documents", files=[("files", ("tide.txt", NOTE, "text/plain"))])
    assert refused.status_code == 403 and "QA_UPLOADS=false" in refused.json()["detail"]
    assert client.delete("/api/documents/001").status_code == 403
    assert client.get("/api/documents/001").status_code == 200
    page = client.get("/documents", headers={"accept": "text/html"})
    assert page.status_code == 200 and "drop-zone" not in page.text
    assert "delete-button" not in page.text and "documents.js" not in page.text


def test_the_page_offers_upload_and_delete_when_writes_are_allowed(small_index: Path):
    page = client_for(small_index, upload_max_bytes=5_000_000).get(
        "/documents", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert 'id="drop-zone"' in page.text and 'type="file"' in page.text and "multiple" in page.text
    assert "up to 5 MB each" in page.text and ".docx" in page.text
    assert 'class="button delete-button" data-doc-id="001"' in page.text


def test_the_schema_documents_the_401_of_both_writes(small_index: Path):
    schema = client_for(small_index).get("/openapi.json").json()
    for path, method in (("/api/documents", "post"), ("/api/documents/{doc_id}", "delete")):
        operation = schema["paths"][path][method]
        assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"}
        assert "Bearer" in operation["description"]
    assert "401" not in schema["paths"]["/api/search"]["get"]["responses"]


def test_no_app_and_no_server_on_a_network_address_without_a_token(small_index: Path):
    with pytest.raises(UserError, match="QA_API_TOKEN"):
        create_app(Settings(data_dir=small_index, host="0.0.0.0"))
    env = {**os.environ, "QA_DATA_DIR": str(small_index), "QA_API_TOKEN": ""}
    env.pop("QA_UPLOADS", None)
    served = subprocess.run([sys.executable, "-m", "qa", "serve", "--host", "0.0.0.0",
                             "--port", "9"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert served.returncode != 0
    message = served.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "Refusing to serve on 0.0.0.0" in message
    assert "QA_API_TOKEN" in message and "QA_UPLOADS=false" in message
