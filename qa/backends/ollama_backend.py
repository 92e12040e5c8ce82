"""Generation through an Ollama server with the official `ollama` client."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import ollama

from qa.backends.base import BackendError, GenerationOptions, Prompt, estimate_tokens
from qa.settings import Settings

DEFAULT_MODEL = "llama3.2"


class OllamaGenerator:
    """Streams a chat answer from Ollama's /api/chat.

    The prompt's `answer_prefix` is not sent: a chat API starts the assistant turn itself, and not
    every Ollama model template continues a trailing assistant message. Callers must not rely on
    the answer beginning with the prefix.
    """

    backend = "ollama"

    def __init__(self, settings: Settings) -> None:
        self.model = settings.model or DEFAULT_MODEL
        self.context_window = settings.context_window
        self.host = settings.ollama_host
        self.timeout_s = settings.timeout_s
        self.client = ollama.Client(host=self.host, timeout=self.timeout_s)

    def count_tokens(self, text: str) -> int:
        """An estimate: Ollama exposes no tokenizer endpoint."""
        return estimate_tokens(text)

    def check(self) -> None:
        """Raise BackendError unless the server answers and has the model."""
        try:
            listed = self.client.list()
        except Exception as exc:  # noqa: BLE001 - every failure becomes one user-facing line
            raise self._error(exc) from exc
        names = {m.model for m in listed.models if m.model}
        if self.model not in names and f"{self.model}:latest" not in names:
            raise self._missing_model()

    def generate(self, prompt: Prompt, options: GenerationOptions) -> Iterator[str]:
        """Yield the answer's text pieces as Ollama streams them."""
        messages = [{"role": "system", "content": prompt.system},
                    {"role": "user", "content": prompt.user}]
        request_options = {
            # Always sent: Ollama's default context (2048 or less) silently drops the start of
            # longer prompts, which would remove the passages the answer must cite.
            "num_ctx": self.context_window,
            "temperature": options.temperature,
            "seed": options.seed,
            "num_predict": options.max_tokens,
            "stop": list(options.stop),
        }
        deadline = time.monotonic() + self.timeout_s
        try:
            stream = self.client.chat(model=self.model, messages=messages, stream=True,
                                      options=request_options)
            for chunk in stream:
                piece = chunk.message.content if chunk.message else ""
                if piece:
                    yield piece
                if time.monotonic() > deadline:  # httpx's timeout is per read, not per answer
                    raise self._timeout()
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc) from exc

    # -- errors written for the user --------------------------------------------------------

    def _error(self, exc: Exception) -> BackendError:
        if isinstance(exc, ollama.ResponseError):
            if exc.status_code == 404 or "not found" in str(exc.error).lower():
                return self._missing_model()
            return BackendError(f"Ollama at {self.host} failed: {exc.error} "
                                f"(HTTP {exc.status_code})")
        if isinstance(exc, httpx.TimeoutException):
            return self._timeout()
        if isinstance(exc, (ConnectionError, httpx.TransportError)):
            return BackendError(f"Ollama is not reachable at {self.host}: start it or set "
                                "QA_OLLAMA_HOST")
        return BackendError(f"Ollama at {self.host} failed: {type(exc).__name__}: {exc}")

    def _missing_model(self) -> BackendError:
        return BackendError(f"Ollama has no model '{self.model}': run `ollama pull {self.model}` "
                            "or set QA_MODEL")

    def _timeout(self) -> BackendError:
        return BackendError(f"Ollama did not answer within {self.timeout_s:g} s (QA_TIMEOUT_S)")
