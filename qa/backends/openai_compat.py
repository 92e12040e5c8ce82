"""Generation through any OpenAI-compatible server (vLLM, llama.cpp server, LM Studio) over httpx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx

from qa.backends.base import BackendError, GenerationOptions, Prompt, estimate_tokens
from qa.settings import Settings

DEFAULT_MODEL = "default"  # single-model servers (llama.cpp server) accept any name


class OpenAICompatGenerator:
    """Streams /v1/chat/completions as server-sent events.

    The prompt's `answer_prefix` is not sent: the chat API starts the assistant turn itself and
    continuing a trailing assistant message is not supported by every server.
    """

    backend = "openai"

    def __init__(self, settings: Settings) -> None:
        self.model = settings.model or DEFAULT_MODEL
        self.context_window = settings.context_window
        self.base_url = settings.openai_base_url.rstrip("/")
        self.timeout_s = settings.timeout_s
        headers = {"Accept": "application/json"}
        if settings.openai_api_key:
            headers["Authorization"] = f"Bearer {settings.openai_api_key}"
        self.client = httpx.Client(timeout=self.timeout_s, headers=headers)

    def count_tokens(self, text: str) -> int:
        """An estimate: the chat API exposes no tokenizer."""
        return estimate_tokens(text)

    def check(self) -> None:
        """Raise BackendError unless the server answers /models with our key."""
        try:
            response = self.client.get(f"{self.base_url}/models")
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code != 200:
            raise self._status_error(response.status_code, response.text)

    def generate(self, prompt: Prompt, options: GenerationOptions) -> Iterator[str]:
        """Yield the answer's text pieces as the server streams them."""
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": prompt.system},
                         {"role": "user", "content": prompt.user}],
            "stream": True,
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "seed": options.seed,
        }
        if options.stop:  # some servers reject an empty stop list
            body["stop"] = list(options.stop)
        deadline = time.monotonic() + self.timeout_s
        try:
            with self.client.stream("POST", f"{self.base_url}/chat/completions",
                                    json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise self._status_error(response.status_code, response.text)
                for piece in _sse_content(response.iter_lines()):
                    yield piece
                    if time.monotonic() > deadline:  # httpx's timeout is per read, not per answer
                        raise self._timeout()
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc

    # -- errors written for the user --------------------------------------------------------

    def _transport_error(self, exc: httpx.HTTPError) -> BackendError:
        if isinstance(exc, httpx.TimeoutException):
            return self._timeout()
        return BackendError(f"No OpenAI-compatible server is reachable at {self.base_url}: "
                            "start it or set QA_OPENAI_BASE_URL")

    def _status_error(self, status: int, text: str) -> BackendError:
        message = _error_message(text)
        if status in (401, 403):
            return BackendError(f"The server at {self.base_url} refused the API key ({message}): "
                                "set QA_OPENAI_API_KEY")
        if status == 404 and "model" in message.lower():
            return BackendError(f"The server at {self.base_url} has no model '{self.model}' "
                                f"({message}): set QA_MODEL")
        if status == 404:
            return BackendError(f"{self.base_url}/chat/completions does not exist: set "
                                "QA_OPENAI_BASE_URL to the API root (it usually ends in /v1)")
        return BackendError(f"The server at {self.base_url} answered HTTP {status}: {message} "
                            "(check QA_OPENAI_BASE_URL and QA_MODEL)")

    def _timeout(self) -> BackendError:
        return BackendError(f"The server at {self.base_url} did not answer within "
                            f"{self.timeout_s:g} s (QA_TIMEOUT_S)")


def _sse_content(lines: Iterator[str]) -> Iterator[str]:
    """The text deltas of an OpenAI chat stream: `data: {json}` events until `data: [DONE]`."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, comments (": keep-alive") and event names
        payload = line[len("data:"):].strip()
        if payload == "[DONE]":
            return
        try:
            event = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise BackendError(f"The OpenAI-compatible server sent an unreadable event: "
                               f"{payload[:80]!r} (check QA_OPENAI_BASE_URL)") from exc
        if event.get("error"):
            raise BackendError(f"The OpenAI-compatible server failed: "
                               f"{_error_message(json.dumps(event))}")
        for choice in event.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                yield piece


def _error_message(text: str) -> str:
    """The human part of an error body: OpenAI nests it as {"error": {"message": ...}}."""
    try:
        error = json.loads(text).get("error", text)
    except (json.JSONDecodeError, AttributeError):
        return text.strip()[:200] or "no details"
    if isinstance(error, dict):
        error = error.get("message", error)
    return str(error).strip()[:200] or "no details"
