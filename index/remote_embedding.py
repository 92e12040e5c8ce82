"""An embedder that calls an OpenAI-compatible `/v1/embeddings` server (vLLM, TEI, Ollama, us)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from .embedding import DEFAULT_MODEL, _offline, model_folder, model_name, token_counter
from .errors import UserError

# Retried: the server is busy, restarting or briefly unreachable. Anything else is the user's to fix.
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
MAX_BACKOFF_S = 8.0


class EmbeddingServerError(UserError):
    """The embedding server could not be used; the message names the setting to change."""


def load_tokenizer(model: str):
    """The model's own tokenizer and passage limit, read locally: passages are sized here."""
    _offline()
    from transformers import AutoTokenizer

    folder = model_folder(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        raise UserError(f"Cannot load the tokenizer of '{model}' from {folder} ({exc}); set "
                        f"QA_EMBEDDING_MODEL to the local folder of the model the server runs."
                        ) from exc
    config = Path(folder) / "sentence_bert_config.json"
    limit = json.loads(config.read_text()).get("max_seq_length") if config.is_file() else None
    limit = int(limit or min(int(tokenizer.model_max_length), 512))
    # Leave room for the [CLS] and [SEP] tokens the encoder adds, as the local embedder does.
    return tokenizer, limit - 2


def _server_message(response: httpx.Response) -> str:
    """The server's own one-line reason, from OpenAI, FastAPI or TEI error shapes."""
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:200] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", error))[:200]
    if error or (isinstance(body, dict) and "detail" in body):
        return str(error or body["detail"])[:200]
    return json.dumps(body)[:200]


class _TooLarge(Exception):
    """The server refused the request body as too large (413): send smaller batches."""


class RemoteEmbedder:
    """Embeds through `POST {base_url}/embeddings`, several batches in flight, with retries."""

    def __init__(self, base_url: str, model: str = DEFAULT_MODEL, server_model: str = "",
                 api_key: str = "", batch_size: int = 32, concurrency: int = 4,
                 timeout_s: float = 60.0, retries: int = 3, backoff_s: float = 0.5) -> None:
        tokenizer, self.max_tokens = load_tokenizer(model)
        self._count = token_counter(tokenizer)
        self.name = model_name(model)
        self.server_model = server_model or self.name
        self.url = base_url.rstrip("/") + "/embeddings"
        self.batch_size = max(1, batch_size)
        self.concurrency = max(1, concurrency)
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers,
                                    limits=httpx.Limits(max_connections=self.concurrency))
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="embed")
        # Ask once now: a wrong address or model fails here with one line, not mid-build.
        self.dimension = int(self._request(["dimension probe"]).shape[1])

    @classmethod
    def from_settings(cls, settings) -> "RemoteEmbedder":
        return cls(settings.embedding_base_url, settings.embedding_model,
                   settings.embedding_server_model, settings.embedding_api_key,
                   settings.embedding_batch_size, settings.embedding_concurrency,
                   settings.embedding_timeout_s, settings.embedding_retries)

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        batches = [texts[i:i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        if len(batches) == 1:
            return self._embed_batch(batches[0])
        return np.vstack(list(self._pool.map(self._embed_batch, batches)))

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._client.close()

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        """One batch; halved and re-sent when the server finds the body too large."""
        try:
            vectors = self._request(texts)
        except _TooLarge:
            if len(texts) == 1:
                raise EmbeddingServerError(
                    f"The embedding server at {self.url} refused one passage as too large "
                    f"(413); lower QA_CHUNK_MAX_TOKENS or raise the server's body limit.") from None
            half = len(texts) // 2
            return np.vstack([self._embed_batch(texts[:half]), self._embed_batch(texts[half:])])
        if vectors.shape[1] != getattr(self, "dimension", vectors.shape[1]):
            raise EmbeddingServerError(
                f"The embedding server at {self.url} returned {vectors.shape[1]}-d vectors, "
                f"not {self.dimension}-d; point QA_EMBEDDING_BASE_URL at one model only.")
        return vectors

    def _request(self, texts: list[str]) -> np.ndarray:
        """POST one batch, retrying busy or unreachable servers with exponential backoff."""
        payload = {"model": self.server_model, "input": texts, "encoding_format": "float"}
        kind, detail = "", ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(MAX_BACKOFF_S, self.backoff_s * 2 ** (attempt - 1)))
            try:
                response = self._client.post(self.url, json=payload)
            except httpx.TimeoutException:
                kind = "timeout"
                continue
            except httpx.TransportError as exc:
                kind, detail = "unreachable", str(exc) or type(exc).__name__
                continue
            if response.status_code in RETRY_STATUSES:
                kind, detail = "failing", f"{response.status_code}: {_server_message(response)}"
                continue
            return self._parse(response, len(texts))
        attempts = self.retries + 1
        if kind == "timeout":
            raise EmbeddingServerError(
                f"The embedding server at {self.url} did not answer within {self.timeout_s:g} s "
                f"({attempts} attempts); raise QA_EMBEDDING_TIMEOUT_S or lower "
                f"QA_EMBEDDING_BATCH_SIZE.")
        if kind == "unreachable":
            raise EmbeddingServerError(
                f"Cannot reach the embedding server at {self.url} ({detail}, {attempts} "
                f"attempts); start it or set QA_EMBEDDING_BASE_URL.")
        raise EmbeddingServerError(
            f"The embedding server at {self.url} kept failing ({detail}, {attempts} attempts); "
            f"check the server or raise QA_EMBEDDING_RETRIES.")

    def _parse(self, response: httpx.Response, expected: int) -> np.ndarray:
        """Vectors in input order, L2-normalised (not every server normalises)."""
        status = response.status_code
        if status == 413:
            raise _TooLarge()
        if status in (401, 403):
            raise EmbeddingServerError(
                f"The embedding server at {self.url} refused the API key ({status}: "
                f"{_server_message(response)}); set QA_EMBEDDING_API_KEY.")
        if status >= 400:
            raise EmbeddingServerError(
                f"The embedding server at {self.url} refused the request ({status}: "
                f"{_server_message(response)}); check QA_EMBEDDING_BASE_URL and "
                f"QA_EMBEDDING_SERVER_MODEL (sent '{self.server_model}').")
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = np.asarray([item["embedding"] for item in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingServerError(
                f"The server at {self.url} did not answer like an OpenAI embeddings endpoint "
                f"({type(exc).__name__}: {exc}); check QA_EMBEDDING_BASE_URL.") from None
        if vectors.ndim != 2 or len(vectors) != expected:
            raise EmbeddingServerError(
                f"The embedding server at {self.url} returned {len(vectors)} vectors for "
                f"{expected} texts; check QA_EMBEDDING_BASE_URL.")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)
