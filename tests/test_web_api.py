"""The JSON API and pages through FastAPI's TestClient, over the hashed seed index."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import SEEDS, index_into, live_server, make_assistant, settings_for
from fastapi import HTTPException
from fastapi.testclient import TestClient

from index.embedding import HashingEmbedder
from index.errors import UserError
from qa.backends.base import BackendError, ReplayGenerator
from qa.citations import passage_sentences
from qa.contracts import Event
from qa.settings import Settings
from web.app import create_app
from web.documents import get_document, reflow, segments
from web.sse import sse_stream

pytestmark = pytest.mark.both_stores  # each test over an index runs on FAISS and Milvus Lite
QUESTION = "Where do Moscow and Tehran disagree on Assad?"
UNSUPPORTED = "The moon is made of green cheese [2]."


def parse_sse(body: str) -> list[tuple[str, object]]:
    """(event name, decoded JSON data) for each server-sent event in a response body."""
    events = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        name = re.search(r"^event: (.+)$", block, re.M).group(1)
        data = re.search(r"^data: (.+)$", block, re.M).group(1)
        events.append((name, json.loads(data)))
    return events


def first_sentence(hit) -> str:
    """A real sentence of the passage, long enough to be checked against it."""
    return next(s.text for s in passage_sentences(hit) if len(s.text.split()) >= 8)


@pytest.fixture
def supported_reply(replay_assistant) -> str:
    """A reply whose first sentence is copied from passage 1 (so it is shown as the source's
    quotation) and whose second is made up."""
    probe = replay_assistant("", abstain_threshold=0.0)
    hit = probe.retriever.search(QUESTION, probe.settings.top_k, probe.settings.retrieval_mode)[0]
    sentence = " ".join(first_sentence(hit).split()).rstrip(".")
    return f"{sentence} [1]. {UNSUPPORTED}"


@pytest.fixture
def client(replay_assistant, supported_reply):
    assistant = replay_assistant(supported_reply, abstain_threshold=0.0)
    with TestClient(create_app(assistant.settings, assistant)) as test_client:
        test_client.assistant = assistant
        yield test_client


def doc_text(client, doc_id: str) -> str:
    response = client.get(f"/api/documents/{doc_id}")
    assert response.status_code == 200
    return response.json()["text"]


def test_ask_returns_the_verified_answer_with_exact_quotes(client, supported_reply):
    response = client.post("/api/ask", json={"question": QUESTION})
    assert response.status_code == 200
    answer = response.json()
    assert answer["question"] == QUESTION
    assert answer["standalone_question"] == QUESTION
    assert answer["abstained"] is False and answer["mode"] == "model"
    kept = supported_reply.split(" [1].")[0]
    assert answer["answer"].startswith(f"“{kept}") and "[1]" in answer["answer"]
    assert "green cheese" not in answer["answer"]
    assert any("not supported" in note for note in answer["notes"])
    assert answer["backend"] == "replay" and answer["model"] == "replay"
    assert set(answer["timings"]) >= {"retrieval_ms", "first_token_ms", "total_ms"}
    assert answer["citations"][0]["n"] == 1 and len(answer["citations"]) <= 2
    for citation in answer["citations"]:
        text = doc_text(client, citation["doc_id"])
        assert citation["quote"] == text[citation["start"]:citation["end"]]
        assert citation["passage_start"] <= citation["start"] < citation["end"] \
            <= citation["passage_end"]
    assert 1 <= len(answer["passages"]) <= 5  # overlapping neighbours are merged
    for hit in answer["passages"]:
        assert hit["text"] == doc_text(client, hit["doc_id"])[hit["start"]:hit["end"]]


def test_stream_yields_passages_tokens_then_the_verified_answer(client, supported_reply):
    response = client.get("/api/ask/stream", params={"question": QUESTION})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names[0] == "passages" and names[-1] == "done"
    assert set(names[1:-1]) == {"token"} and len(names) > 10
    hits = events[0][1]["hits"]
    assert 1 <= len(hits) <= 5 and all(hit["text"] for hit in hits)
    draft = "".join(data["text"] for name, data in events if name == "token")
    assert draft == supported_reply  # the model's draft, unverified, as it was streamed
    done = events[-1][1]
    assert "green cheese" not in done["answer"]  # the verified answer replaces the draft
    assert done["citations"][0]["quote"] == doc_text(client, done["citations"][0]["doc_id"])[
        done["citations"][0]["start"]:done["citations"][0]["end"]]
    assert [h["doc_id"] for h in done["passages"]] == [h["doc_id"] for h in hits]


def test_stream_sends_the_sentence_judged_to_answer_before_the_draft(replay_assistant,
                                                                      supported_reply):
    from judges import WordAnswerability

    assistant = replay_assistant(supported_reply, abstain_threshold=0.0,
                                 answerability=WordAnswerability())
    with TestClient(create_app(assistant.settings, assistant)) as client:
        events = parse_sse(client.get("/api/ask/stream", params={"question": QUESTION}).text)
        names = [name for name, _ in events]
        assert names[:3] == ["passages", "evidence", "token"] and names[-1] == "done"
        early = events[1][1]  # a Citation, like the answer's: it opens the exact source span
        assert early["quote"] == doc_text(client, early["doc_id"])[early["start"]:early["end"]]
        hit = events[0][1]["hits"][early["n"] - 1]
        assert hit["doc_id"] == early["doc_id"] and early["quote"] in hit["text"]
        assert events[-1][1]["timings"]["first_verified_ms"] < events[-1][1]["timings"][
            "total_ms"]


def test_follow_up_is_rewritten_with_the_history(client):
    history = [{"question": QUESTION, "standalone_question": QUESTION, "answer": "They differ."}]
    response = client.get("/api/ask/stream", params={
        "question": "What about Israel?", "history": json.dumps(history)})
    events = parse_sse(response.text)
    assert events[0][0] == "rewrite"
    standalone = events[0][1]["standalone_question"]
    assert standalone.startswith("Where do Moscow and Tehran disagree on Assad")
    assert standalone.endswith("What about Israel?")
    posted = client.post("/api/ask", json={"question": "What about Israel?",
                                           "history": history}).json()
    assert posted["standalone_question"] == standalone
    assert posted["question"] == "What about Israel?"


def test_bad_history_is_a_clear_422(client):
    for raw in ("not json", json.dumps({"question": "x"}), json.dumps([{"answer": "no q"}])):
        response = client.get("/api/ask/stream", params={"question": QUESTION, "history": raw})
        assert response.status_code == 422
        assert "history must be a JSON list" in response.json()["detail"]


def test_abstention(replay_assistant):
    assistant = replay_assistant("Anything [1].", abstain_threshold=2.0)
    with TestClient(create_app(assistant.settings, assistant)) as client:
        answer = client.post("/api/ask", json={"question": QUESTION}).json()
        assert answer["abstained"] is True and answer["mode"] == "abstained"
        assert answer["answer"].startswith("The documents don't say")
        assert answer["citations"] == [] and 1 <= len(answer["passages"]) <= 5
        events = parse_sse(client.get("/api/ask/stream", params={"question": QUESTION}).text)
        assert [name for name, _ in events] == ["passages", "done"]
        assert events[-1][1]["abstained"] is True


def test_backend_failure_streams_an_error_and_still_answers_from_the_passages(
        hashing_seed_index, hashing_embedder):
    failing = ReplayGenerator(fail_with="The model server at 127.0.0.1:9 refused the connection")
    assistant = make_assistant(hashing_seed_index, hashing_embedder, failing,
                               abstain_threshold=0.0)
    with TestClient(create_app(assistant.settings, assistant)) as client:
        events = parse_sse(client.get("/api/ask/stream", params={"question": QUESTION}).text)
        names = [name for name, _ in events]
        assert names == ["passages", "error", "done"]
        assert "refused the connection" in events[1][1]["message"]
        done = events[2][1]
        assert done["error"].startswith("The model server")
        assert done["mode"] == "extractive" and 1 <= len(done["passages"]) <= 5
        assert done["citations"] and done["answer"]
        # The server is still up and answers the next requests.
        again = client.post("/api/ask", json={"question": QUESTION})
        assert again.status_code == 200 and again.json()["error"]
        assert client.get("/api/search", params={"q": "Assad"}).status_code == 200
        assert len(failing.prompts) == 2


def test_invalid_questions_get_one_line_422s(client):
    limit = client.assistant.settings.max_question_chars
    cases = [
        client.post("/api/ask", json={"question": ""}),
        client.post("/api/ask", json={"question": "   \n "}),
        client.post("/api/ask", json={"question": "x" * (limit + 1)}),
        client.post("/api/ask", json={}),
        client.post("/api/ask", json={"question": 42}),
        client.get("/api/ask/stream", params={"question": ""}),
        client.get("/api/ask/stream", params={"question": "y" * (limit + 1)}),
        client.get("/api/ask/stream"),
        client.get("/api/search", params={"q": " "}),
        client.get("/api/search", params={"q": "Assad", "k": 0}),
    ]
    for response in cases:
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert isinstance(detail, str) and "\n" not in detail and len(detail) < 300
    assert "empty" in cases[0].json()["detail"]
    assert f"{limit:,}" in cases[2].json()["detail"]
    assert "question" in cases[3].json()["detail"]


def test_request_bodies_over_64_kb_are_refused(client):
    response = client.post("/api/ask", json={"question": QUESTION, "history": [
        {"question": "q", "standalone_question": "q", "answer": "a" * 70_000}]})
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body too large: the limit is 64 KB."}

    def chunked():  # no Content-Length: the limit is counted while reading
        for _ in range(20):
            yield b" " * 8192

    response = client.post("/api/ask", content=chunked(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "64 KB" in response.json()["detail"]


@pytest.mark.parametrize("doc_id", [
    "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "...",
    "000_039ca47dc707ee83.txt", "no_such_document", "..%5C..%5Cwindows", "%00"])
def test_document_ids_outside_the_index_are_404(client, doc_id):
    for prefix in ("/api/documents/", "/documents/"):
        response = client.get(prefix + doc_id)
        assert response.status_code == 404
        assert "root:" not in response.text and "Traceback" not in response.text


def test_get_document_checks_the_id_before_any_lookup(client):
    store = client.assistant.retriever.store
    # ("." and ".." never reach the route over HTTP: clients resolve them in the URL.)
    for doc_id in ("../../etc/passwd", "/etc/passwd", "..", ".", "a/b", "", "seeds\\x"):
        with pytest.raises(HTTPException) as caught:
            get_document(store, doc_id)
        assert caught.value.status_code == 404
    assert get_document(store, "000_039ca47dc707ee83").title.startswith("Video:")


def test_unexpected_errors_are_one_line_without_a_stack_trace(replay_assistant):
    assistant = replay_assistant("x", abstain_threshold=0.0)

    def broken(*args, **kwargs):
        raise RuntimeError("secret detail at /home/analyst/private.txt")

    assistant.stream = broken
    app = create_app(assistant.settings, assistant)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/api/ask", json={"question": QUESTION})
        assert response.status_code == 500
        assert response.json() == {"detail": "Internal error: the server log has the details."}
        assert client.get("/api/documents").status_code == 200  # still serving


def test_a_failure_mid_stream_ends_with_a_fatal_error_event():
    def events():
        yield Event("passages", [])
        raise RuntimeError("boom at /secret/path")

    chunks = list(sse_stream(events()))
    parsed = parse_sse("".join(chunks))
    assert [name for name, _ in parsed] == ["passages", "error"]
    assert parsed[1][1]["fatal"] is True and "secret" not in parsed[1][1]["message"]


def test_documents_list_the_seed_corpus_with_its_metadata(client):
    metadata = json.loads((SEEDS / "metadata.json").read_text(encoding="utf-8"))
    documents = client.get("/api/documents").json()["documents"]
    assert len(documents) == 5
    by_file = {Path(d["source"]).name: d for d in documents}
    assert {name: d["title"] for name, d in by_file.items()} == {
        name: entry["title"] for name, entry in metadata.items()}
    assert by_file["004_a0ef8930b097d28c.txt"]["author"] == "Nikolay A. Kozhanov"
    assert by_file["000_039ca47dc707ee83.txt"]["publisher"] == "Global Research"
    store = client.assistant.retriever.store
    assert sum(d["n_passages"] for d in documents) == store.count_passages()
    one = client.get("/api/documents/001_cc0add0a45bd4355").json()
    assert one["text"] == (SEEDS / "001_cc0add0a45bd4355.txt").read_text(encoding="utf-8")
    assert one["date"] == "2018-02-20"


def test_search_returns_exact_spans(client):
    response = client.get("/api/search", params={"q": "Assad is not our ally", "k": 3})
    hits = response.json()["hits"]
    assert len(hits) == 3 and [h["rank"] for h in hits] == [1, 2, 3]
    for hit in hits:
        assert hit["text"] == doc_text(client, hit["doc_id"])[hit["start"]:hit["end"]]
    assert any("Assad is not our ally" in hit["text"] for hit in hits)


def test_openapi_docs_are_served_without_a_cdn(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert "cdn.jsdelivr" not in docs.text
    bundle = re.search(r'src="(/docs-assets/[^"]+\.js)"', docs.text).group(1)
    assert client.get(bundle).status_code == 200
    spec = client.get("/openapi.json").json()
    for path in ("/api/ask", "/api/ask/stream", "/api/search", "/api/documents",
                 "/api/documents/{doc_id}", "/v1/chat/completions", "/v1/models"):
        assert path in spec["paths"], path
    assert "citations" in json.dumps(spec["components"]["schemas"]["Answer"])


def test_question_page_is_labelled_and_loads_only_local_assets(client):
    page = client.get("/")
    assert page.status_code == 200
    assert '<label for="question"' in page.text and 'id="question"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert any("ask.js" in a for a in assets) and any("style.css" in a for a in assets)
    for asset in assets:
        assert client.get(asset).status_code == 200
    assert "http://" not in page.text and "https://" not in page.text


def test_document_page_highlights_exactly_the_quote(client):
    answer = client.post("/api/ask", json={"question": QUESTION}).json()
    citation = answer["citations"][0]
    page = client.get(f"/documents/{citation['doc_id']}",
                      params={"start": citation["start"], "end": citation["end"]})
    assert page.status_code == 200
    marks = re.findall(r'<mark id="quote"[^>]*>(.*?)</mark>', page.text, re.S)
    assert len(marks) == 1
    assert " ".join(marks[0].split()) == " ".join(citation["quote"].split())
    assert 'class="passage-span"' in page.text
    outside = client.get(f"/documents/{citation['doc_id']}", params={"start": 5, "end": 10**7})
    assert outside.status_code == 200 and 'id="quote"' not in outside.text
    assert "not inside this document" in outside.text


def test_segments_keep_every_character_and_one_quote():
    text = "Alpha beta.\nGamma delta epsilon.\n\nZeta eta theta."
    for quote, passage in [((6, 10), (0, 33)), ((0, 5), None), ((12, 40), (6, 20)),
                           (None, (3, 9)), (None, None)]:
        parts = segments(text, quote, passage)
        assert "".join(p.text for p in parts) == text
        quotes = [p for p in parts if p.kind == "quote"]
        assert quotes == ([] if quote is None else [type(quotes[0])("quote", text[slice(*quote)])])
    wrapped = "x" * 60 + "\nnext line\n\nNew paragraph\n 8. HEADING\n"
    assert len(reflow(wrapped)) == len(wrapped)
    assert reflow(wrapped).startswith("x" * 60 + " next line\n\n")


def test_html_is_escaped_everywhere(tmp_path, hashing_embedder, store_kind):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "evil.txt").write_text(
        "Grain report\n\nThe ministry said <script>window.__xss=1</script> the grain talks "
        "failed in spring.\n", encoding="utf-8")
    (corpus / "metadata.json").write_text(json.dumps(
        {"evil.txt": {"title": "<b>Bold</b> <script>alert(1)</script> report"}}), encoding="utf-8")
    index_into([corpus], tmp_path / "data", hashing_embedder, store_kind)
    assistant = make_assistant(tmp_path / "data", hashing_embedder, ReplayGenerator("x"))
    with TestClient(create_app(settings_for(tmp_path / "data"), assistant)) as client:
        listing = client.get("/documents").text
        text = client.get("/api/documents/evil").json()["text"]
        start = text.index("The ministry")
        page = client.get("/documents/evil", params={"start": start, "end": start + 60}).text
        for html in (listing, page):
            assert "<script>alert(1)</script>" not in html and "<b>Bold</b>" not in html
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<script>window.__xss=1</script>" not in page
        assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page




class OneAtATimeGenerator(ReplayGenerator):
    """Like the embedded backend: one answer at a time, the lock held while tokens stream."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.lock = threading.Lock()

    def generate(self, prompt, options):
        if not self.lock.acquire(timeout=5):
            raise BackendError("The model was busy with another answer")
        try:
            for piece in super().generate(prompt, options):
                time.sleep(0.05)
                yield piece
        finally:
            self.lock.release()


def test_a_client_that_leaves_mid_answer_frees_the_model(hashing_seed_index, hashing_embedder):
    generator = OneAtATimeGenerator(" ".join(["word"] * 150))
    assistant = make_assistant(hashing_seed_index, hashing_embedder, generator,
                               abstain_threshold=0.0)
    with live_server(create_app(assistant.settings, assistant)) as url:
        with httpx.stream("GET", f"{url}/api/ask/stream", params={"question": QUESTION},
                          timeout=30) as response:
            for line in response.iter_lines():
                if line == "event: token":
                    break  # leave after the first token, ~7 s before the answer would end
        assert generator.lock.locked() or generator.prompts  # it was generating
        deadline = time.monotonic() + 3
        while generator.lock.locked() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not generator.lock.locked(), "the abandoned answer still holds the model"
        generator.replies = [UNSUPPORTED]
        answer = httpx.post(f"{url}/api/ask", json={"question": QUESTION}, timeout=30).json()
        assert answer["error"] is None


def test_app_opens_the_index_through_the_composition_root(tmp_path, seed_copy, monkeypatch,
                                                          store_kind):
    # The hashing embedder stands in for MiniLM in both the build and the load.
    monkeypatch.setattr("index.embedding.SentenceTransformerEmbedder",
                        lambda *args, **kwargs: HashingEmbedder())
    index_into([seed_copy], tmp_path / "data", HashingEmbedder(), store_kind)
    settings = Settings(data_dir=tmp_path / "data", seeds_dir=seed_copy, vector_store=store_kind)
    with TestClient(create_app(settings)) as client:
        documents = client.get("/api/documents").json()["documents"]
        assert len(documents) == 5
        assert client.get("/api/health").json()["documents"] == 5
        assert client.get("/api/search", params={"q": "Assad"}).json()["hits"]


def test_start_without_an_index_says_to_run_qa_index_and_builds_nothing(tmp_path, seed_copy,
                                                                        store_kind):
    settings = Settings(data_dir=tmp_path / "data", seeds_dir=seed_copy, vector_store=store_kind)
    with pytest.raises(UserError) as error:
        with TestClient(create_app(settings)):
            pass
    message = str(error.value)
    assert "\n" not in message and "qa index" in message and str(tmp_path / "data") in message
    assert not (tmp_path / "data" / "index").exists()  # the web app never builds an index
    if store_kind == "milvus":  # nor a Milvus collection
        from index.milvus_store import connect

        assert connect(str(tmp_path / "data" / "milvus.db")).list_collections() == []


def test_ask_by_document_returns_each_documents_position(client):
    answer = client.post("/api/ask", json={"question": QUESTION, "by_document": True}).json()
    views = answer["by_document"]
    documents = client.get("/api/documents").json()["documents"]
    assert sorted(v["doc_id"] for v in views) == sorted(d["doc_id"] for d in documents)
    for view in views:
        if view["addressed"]:
            quote = view["citation"]["quote"]
            assert quote == doc_text(client, view["doc_id"])[
                view["citation"]["start"]:view["citation"]["end"]]
        else:
            assert view["statement"] == "does not address it" and view["citation"] is None
    assert any(v["addressed"] for v in views)
    plain = client.post("/api/ask", json={"question": QUESTION}).json()
    assert plain["by_document"] == []
