"""The composition root: Settings in; store, embedder, generator and judge out.

The CLI, the web app and the eval runner all assemble the assistant here, so there is one place
that decides which implementation of each seam runs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from index.ann import AnnParams
from index.chunking import ChunkingParams
from index.embedding import Embedder, make_embedder
from index.store_protocol import DocumentStore

from .settings import Settings

if TYPE_CHECKING:
    from index.milvus_store import MilvusBackend

    from .backends.base import Generator
    from .judge import SupportJudge
    from .pipeline import Assistant
    from .retrieve import Retriever


def store_backend(settings: Settings) -> MilvusBackend | None:
    """Where the index lives: None for the local FAISS store in QA_DATA_DIR, else the Milvus
    backend (a Milvus Lite file, by default <QA_DATA_DIR>/milvus.db, or a server URI)."""
    if settings.vector_store == "faiss":
        return None
    from index.milvus_store import MilvusBackend

    uri = settings.milvus_uri or os.path.abspath(Path(settings.data_dir) / "milvus.db")
    return MilvusBackend(uri, settings.milvus_collection, settings.milvus_token)


class Components:
    """The parts built from one Settings; each is created on first use and then shared.

    Sharing matters for the server: when it swaps to a new index it builds a new Assistant,
    but the embedder, the loaded model and the judge carry over.
    """

    def __init__(self, settings: Settings, embedder: Embedder | None = None,
                 generator_factory: Callable[[], Generator] | None = None,
                 judge_factory: Callable[[], SupportJudge] | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._generator_factory = generator_factory
        self._judge_factory = judge_factory
        self._generator: Generator | None = None
        self._judge: SupportJudge | None = None
        self._lock = threading.RLock()
        self._backend = store_backend(settings)

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = make_embedder(self.settings)
            return self._embedder

    @property
    def ann(self) -> AnnParams:
        """When and how the local store's dense index turns approximate (QA_ANN_*)."""
        return AnnParams.from_settings(self.settings)

    @property
    def chunking(self) -> ChunkingParams:
        return ChunkingParams(self.settings.chunk_max_tokens, self.settings.chunk_overlap_tokens)

    def store_backend(self) -> MilvusBackend | None:
        """The Milvus backend the index lives in (shared by readers and writers of this
        process), or None for the local FAISS store."""
        return self._backend

    def open_store(self) -> DocumentStore:
        """The current version of the collection (FAISS + bm25s files, or Milvus)."""
        if self._backend is not None:
            return self._backend.open_index()
        from index.store import open_index

        return open_index(self.settings.data_dir)

    def generator(self) -> Generator:
        """The answer model, loaded once (on first use, so a broken backend never blocks search)."""
        with self._lock:
            if self._generator is None:
                if self._generator_factory is not None:
                    self._generator = self._generator_factory()
                else:
                    from .backends import make_generator

                    self._generator = make_generator(self.settings)
            return self._generator

    def judge(self) -> SupportJudge:
        """The support judge that verifies answer sentences, loaded once."""
        with self._lock:
            if self._judge is None:
                if self._judge_factory is not None:
                    self._judge = self._judge_factory()
                else:
                    from .judge import answer_judge

                    self._judge = answer_judge(self.settings)
            return self._judge

    def retriever(self, store: DocumentStore | None = None) -> Retriever:
        from .retrieve import make_retriever

        return make_retriever(store if store is not None else self.open_store(), self.embedder,
                              self.settings)

    def assistant(self, store: DocumentStore | None = None) -> Assistant:
        """An Assistant over `store` (default: the current index) sharing this root's parts."""
        from .calibration import calibrated_settings
        from .pipeline import Assistant

        retriever = self.retriever(store)
        # Thresholds measured for this index's embedder and this judge, when stored.
        settings = calibrated_settings(self.settings, retriever.store.config.embedder)
        return Assistant(settings, retriever, self.generator, self.judge)


def load_assistant(settings: Settings, generator_factory: Callable[[], Generator] | None = None
                   ) -> Assistant:
    """Open the index and embedder; the generator and judge are created on first use."""
    return Components(settings, generator_factory=generator_factory).assistant()
