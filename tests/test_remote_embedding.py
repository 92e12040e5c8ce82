"""Remote embeddings: our client against our own /v1/embeddings on a real server, and failures."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import openai
import pytest
from conftest import live_server, make_assistant

from index.build import build_index
from index.embedding import HashingEmbedder, make_embedder
from index.remote_embedding import EmbeddingServerError, RemoteEmbedder
from index.store import open_index
from index.store_protocol import all_passages
from qa.backends.base import ReplayGenerator
from qa.settings import Settings
from web.app import create_app

pytestmark = pytest.mark.slow


class CountingApp:
    """ASGI wrapper that records each /v1/embeddings request: inputs sent and overlap in time."""

    def __init__(self, app) -> None:
        self.app = app
        self.batches: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/v1/embeddings":
            return await self.app(scope, receive, send)
        chunks = []

        async def recording_receive():
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                self.batches.append(len(json.loads(b"".join(chunks))["input"]))
            return message

        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.app(scope, recording_receive, send)
        finally:
            self.in_flight -= 1


@pytest.fixture(scope="module")
def embedding_server(real_seed_index, real_embedder):
    """`qa serve`'s app over the real seed index, served by uvicorn, wrapped to count requests."""
    assistant = make_assistant(real_seed_index, real_embedder, ReplayGenerator(""))
    counting = CountingApp(create_app(assistant.settings, assistant))
    with live_server(counting) as url:
        yield url, counting


@pytest.fixture(scope="module")
def seed_texts(real_seed_index) -> list[str]:
    from index.chunking import embedding_text

    return [embedding_text(p) for _, p in all_passages(open_index(real_seed_index))[:40]]


def test_remote_vectors_equal_the_local_encoder_with_batches_in_flight(
        embedding_server, real_embedder, seed_texts):
    url, counting = embedding_server
    remote = RemoteEmbedder(f"{url}/v1", batch_size=8, concurrency=4)
    assert (remote.name, remote.dimension, remote.max_tokens) == (
        real_embedder.name, real_embedder.dimension, real_embedder.max_tokens)
    assert [remote.count_tokens(t) for t in seed_texts[:5]] == [
        real_embedder.count_tokens(t) for t in seed_texts[:5]]
    counting.batches.clear()
    counting.max_in_flight = 0
    vectors = remote.embed(seed_texts)
    expected = real_embedder.embed(seed_texts)
    assert vectors.shape == (40, 384) and vectors.dtype == np.float32
    assert np.abs(vectors - expected).max() < 1e-5
    assert sorted(counting.batches) == [8] * 5  # 40 texts in batches of 8
    assert counting.max_in_flight >= 2  # sent concurrently, not one after another


def test_index_built_through_the_server_matches_the_local_index(
        embedding_server, real_seed_index, seed_copy, tmp_path):
    url, _ = embedding_server
    settings = Settings(data_dir=tmp_path, embedding_backend="openai",
                        embedding_base_url=f"{url}/v1", embedding_concurrency=4)
    embedder = make_embedder(settings)
    assert isinstance(embedder, RemoteEmbedder)
    build_index([seed_copy], tmp_path, embedder)
    remote, local = open_index(tmp_path), open_index(real_seed_index)
    remote_passages, local_passages = all_passages(remote), all_passages(local)
    assert [(p.doc_id, p.start, p.end) for _, p in remote_passages] == [
        (p.doc_id, p.start, p.end) for _, p in local_passages]
    remote_vectors = np.stack([remote.vector(pid) for pid, _ in remote_passages])
    local_vectors = np.stack([local.vector(pid) for pid, _ in local_passages])
    assert np.abs(remote_vectors - local_vectors).max() < 1e-5
    remote.check_embedder(local.config.embedder, 384)  # interchangeable with the local encoder


def test_the_official_openai_client_gets_our_vectors(embedding_server, real_embedder, seed_texts):
    url, _ = embedding_server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
    texts = seed_texts[:3]
    expected = real_embedder.embed(texts)
    # The client asks for base64 by default and decodes it; float is the other format.
    for response in (client.embeddings.create(model="all-MiniLM-L6-v2", input=texts),
                     client.embeddings.create(model="sentence-transformers/all-MiniLM-L6-v2",
                                              input=texts, encoding_format="float")):
        assert response.model == "all-MiniLM-L6-v2" and response.object == "list"
        assert [d.index for d in response.data] == [0, 1, 2]
        got = np.asarray([d.embedding for d in response.data], dtype=np.float32)
        assert np.abs(got - expected).max() < 1e-5
        assert response.usage.prompt_tokens == sum(real_embedder.count_tokens(t) for t in texts)
    single = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts[0])
    assert len(single.data) == 1 and len(single.data[0].embedding) == 384
    with pytest.raises(openai.NotFoundError, match="use 'all-MiniLM-L6-v2'"):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(openai.BadRequestError, match="must not be empty"):
        client.embeddings.create(model="all-MiniLM-L6-v2", input=["fine", " "])


def test_a_wrong_model_name_is_one_line_naming_the_setting(embedding_server):
    url, _ = embedding_server
    with pytest.raises(EmbeddingServerError) as caught:
        RemoteEmbedder(f"{url}/v1", server_model="nomic-embed-text", retries=0)
    message = str(caught.value)
    assert "\n" not in message and "QA_EMBEDDING_SERVER_MODEL" in message
    assert "is not served here" in message


class FlakyEmbeddings(BaseHTTPRequestHandler):
    """A small real OpenAI-style embeddings server: fails or stalls as the test asks."""

    failures_left = 0
    delay_s = 0.0
    requests = 0
    embedder = HashingEmbedder(64)

    def do_POST(self):  # noqa: N802 (http.server's naming)
        cls = type(self)
        cls.requests += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if cls.failures_left > 0:
            cls.failures_left -= 1
            self._send(503, {"error": {"message": "warming up", "type": "server_error"}})
            return
        time.sleep(cls.delay_s)
        vectors = cls.embedder.embed(body["input"]) * 3.0  # unnormalised, as some servers send
        self._send(200, {"object": "list", "model": body["model"],
                         "data": [{"object": "embedding", "index": i, "embedding": v.tolist()}
                                  for i, v in reversed(list(enumerate(vectors)))]})

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout test)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def flaky_server(failures: int = 0, delay_s: float = 0.0):
    handler = type("Handler", (FlakyEmbeddings,), {"failures_left": failures,
                                                   "delay_s": delay_s, "requests": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_failed_request_is_retried_and_vectors_come_back_in_order_normalised():
    with flaky_server(failures=2) as (url, handler):
        remote = RemoteEmbedder(url, batch_size=2, concurrency=2, retries=3, backoff_s=0.05)
        texts = ["Iran and Russia", "disagree on Assad", "in Syria", "since 2015", "oil"]
        vectors = remote.embed(texts)
    assert handler.requests == 2 + 1 + 3  # two 503s, then the probe and three batches
    assert remote.dimension == 64
    assert np.abs(vectors - HashingEmbedder(64).embed(texts)).max() < 1e-6


def test_a_server_that_keeps_failing_gives_one_line_naming_the_setting():
    with flaky_server(failures=10) as (url, handler):
        with pytest.raises(EmbeddingServerError) as caught:
            RemoteEmbedder(url, retries=2, backoff_s=0.01)
    message = str(caught.value)
    assert handler.requests == 3 and "\n" not in message
    assert "503: warming up" in message and "QA_EMBEDDING_RETRIES" in message


def test_a_stalled_server_times_out_with_one_line_naming_the_setting():
    with flaky_server(delay_s=3.0) as (url, handler):
        with pytest.raises(EmbeddingServerError) as caught:
            RemoteEmbedder(url, timeout_s=0.2, retries=1, backoff_s=0.01)
    message = str(caught.value)
    assert handler.requests == 2 and "\n" not in message
    assert "did not answer within 0.2 s (2 attempts)" in message
    assert "QA_EMBEDDING_TIMEOUT_S" in message


def test_an_unreachable_server_names_the_base_url_setting():
    with flaky_server() as (url, _):
        pass  # closed: nothing listens on that port any more
    with pytest.raises(EmbeddingServerError, match="QA_EMBEDDING_BASE_URL") as caught:
        RemoteEmbedder(url, retries=1, backoff_s=0.01)
    assert "Cannot reach the embedding server" in str(caught.value)
