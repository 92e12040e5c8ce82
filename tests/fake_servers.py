"""Real local HTTP servers that speak Ollama's and the OpenAI chat API, replying with a scripted text.

They are small implementations of the documented wire formats, not mocks: the real `ollama` client,
httpx and the `openai` client talk to them over TCP. Each server records the requests it received so
tests can check what a backend sent (for example that `num_ctx` was set).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict | None


class ServerURL(str):
    """The base URL of a running fake server (a plain str) that also carries what it received."""

    requests: list[RecordedRequest]

    def __new__(cls, url: str, requests: list[RecordedRequest]) -> "ServerURL":
        self = super().__new__(cls, url)
        self.requests = requests
        return self

    def bodies(self, path: str) -> list[dict]:
        """JSON bodies of the requests made to `path`, oldest first."""
        return [r.body for r in self.requests if r.path == path and r.body is not None]


@dataclass
class _Script:
    reply: str
    models: Sequence[str]
    delay_s: float
    api_key: str | None = None
    requests: list[RecordedRequest] = field(default_factory=list)


def reply_pieces(reply: str, max_pieces: int | None = None, stop: Sequence[str] = ()) -> tuple[list[str], str]:
    """Split a reply into word-sized stream pieces the way a server would, honouring stop and a limit.

    Returns (pieces, finish reason): "stop" when the reply ended or hit a stop string, "length"
    when the token limit cut it. Concatenating the pieces gives the (possibly cut) reply.
    """
    cut = min((reply.find(s) for s in stop if s and s in reply), default=-1)
    text = reply if cut < 0 else reply[:cut]
    pieces = re.findall(r"\s*\S+|\s+$", text)
    if max_pieces is not None and 0 <= max_pieces < len(pieces):
        return pieces[:max_pieces], "length"
    return pieces, "stop"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming, like the real servers
    script: _Script  # set on the subclass made per server

    def log_message(self, format: str, *args) -> None:  # keep test output clean
        pass

    # -- plumbing shared by both APIs -------------------------------------------------------

    def _record(self, method: str) -> dict | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        self.script.requests.append(
            RecordedRequest(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        if self.script.delay_s:
            time.sleep(self.script.delay_s)
        return body

    def _send_json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _knows(self, model: str) -> bool:
        return any(model in (m, f"{m}:latest") or f"{model}:latest" == m for m in self.script.models)

    def _safely(self, handler) -> None:
        try:
            handler()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to answer


class _OllamaHandler(_Handler):
    """GET /api/tags, POST /api/chat (NDJSON stream or one JSON object), as documented by Ollama."""

    def do_GET(self) -> None:
        self._safely(self._get)

    def do_POST(self) -> None:
        self._safely(self._post)

    def _get(self) -> None:
        self._record("GET")
        if self.path != "/api/tags":
            return self._send_json(404, {"error": "404 page not found"})
        self._send_json(200, {"models": [
            {"name": _tagged(m), "model": _tagged(m), "modified_at": "2025-01-01T00:00:00Z",
             "size": 1000, "digest": "0" * 64,
             "details": {"format": "gguf", "family": "fake", "parameter_size": "1M",
                         "quantization_level": "Q4_0"}}
            for m in self.script.models]})

    def _post(self) -> None:
        body = self._record("POST") or {}
        if self.path != "/api/chat":
            return self._send_json(404, {"error": "404 page not found"})
        model = body.get("model", "")
        if not self._knows(model):
            return self._send_json(404, {"error": f"model '{model}' not found"})
        options = body.get("options") or {}
        limit = options.get("num_predict")
        pieces, reason = reply_pieces(self.script.reply, limit if limit and limit > 0 else None,
                                      options.get("stop") or ())
        created = "2025-01-01T00:00:00.000000Z"
        final = {"model": model, "created_at": created, "done": True, "done_reason": reason,
                 "total_duration": 1000, "load_duration": 10, "prompt_eval_count": 10,
                 "prompt_eval_duration": 100, "eval_count": len(pieces), "eval_duration": 800}
        if body.get("stream", True) is False:
            return self._send_json(200, {**final, "message": {"role": "assistant",
                                                              "content": "".join(pieces)}})
        self._start_chunked("application/x-ndjson")
        for piece in pieces:
            self._chunk(json.dumps({"model": model, "created_at": created, "done": False,
                                    "message": {"role": "assistant", "content": piece}}).encode()
                        + b"\n")
        self._chunk(json.dumps({**final, "message": {"role": "assistant", "content": ""}}).encode()
                    + b"\n")
        self._end_chunked()


class _OpenAIHandler(_Handler):
    """GET /v1/models, POST /v1/chat/completions (server-sent events or one completion object)."""

    def do_GET(self) -> None:
        self._safely(self._get)

    def do_POST(self) -> None:
        self._safely(self._post)

    def _authorized(self) -> bool:
        if not self.script.api_key:
            return True
        if self.headers.get("Authorization") == f"Bearer {self.script.api_key}":
            return True
        self._send_json(401, {"error": {"message": "Incorrect API key provided.",
                                        "type": "invalid_request_error", "param": None,
                                        "code": "invalid_api_key"}})
        return False

    def _get(self) -> None:
        self._record("GET")
        if not self._authorized():
            return
        if self.path != "/v1/models":
            return self._send_json(404, {"error": {"message": "Not found", "type": "not_found"}})
        self._send_json(200, {"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
            for m in self.script.models]})

    def _post(self) -> None:
        body = self._record("POST") or {}
        if not self._authorized():
            return
        if self.path != "/v1/chat/completions":
            return self._send_json(404, {"error": {"message": "Not found", "type": "not_found"}})
        model = body.get("model", "")
        if not self._knows(model):
            return self._send_json(404, {"error": {
                "message": f"The model `{model}` does not exist.",
                "type": "invalid_request_error", "param": "model", "code": "model_not_found"}})
        stop = body.get("stop") or ()
        limit = body.get("max_tokens")
        pieces, reason = reply_pieces(self.script.reply, limit, [stop] if isinstance(stop, str) else stop)
        base = {"id": "chatcmpl-fake", "created": 1735689600, "model": model,
                "system_fingerprint": "fake"}
        if not body.get("stream"):
            text = "".join(pieces)
            return self._send_json(200, {**base, "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text},
                 "logprobs": None, "finish_reason": reason}],
                "usage": {"prompt_tokens": 10, "completion_tokens": len(pieces),
                          "total_tokens": 10 + len(pieces)}})
        self._start_chunked("text/event-stream")

        def event(delta: dict, finish: str | None) -> None:
            chunk = {**base, "object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())

        event({"role": "assistant", "content": ""}, None)
        for piece in pieces:
            event({"content": piece}, None)
        event({}, reason)
        self._chunk(b"data: [DONE]\n\n")
        self._end_chunked()


def _tagged(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


@contextmanager
def _serve(handler: type[_Handler], script: _Script, path: str) -> Iterator[ServerURL]:
    handler_class = type(handler.__name__, (handler,), {"script": script})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    server.daemon_threads = True  # a client that hangs up mid-delay must not block shutdown
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield ServerURL(f"http://{host}:{port}{path}", script.requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def running_ollama_server(reply: str, models: Sequence[str] = ("tiny",),
                          delay_s: float = 0.0) -> Iterator[ServerURL]:
    """Serve Ollama's API on a free port; yields the host URL (http://127.0.0.1:PORT)."""
    with _serve(_OllamaHandler, _Script(reply, tuple(models), delay_s), "") as url:
        yield url


@contextmanager
def running_openai_server(reply: str, models: Sequence[str] = ("tiny",), delay_s: float = 0.0,
                          api_key: str | None = None) -> Iterator[ServerURL]:
    """Serve the OpenAI chat API on a free port; yields the base URL ending in /v1."""
    with _serve(_OpenAIHandler, _Script(reply, tuple(models), delay_s, api_key), "/v1") as url:
        yield url


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused at once)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
