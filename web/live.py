"""The assistant over the newest index: the server follows re-indexes by other processes.

Each request takes one Assistant (`current()`) and uses only it, so it sees the old index or
the new one, never a mix. At most once a second a request checks whether a newer index was
committed (one readlink); if so a background thread opens it and swaps the reference when it is
loaded, so no request waits for the load. The old Assistant lives on while requests still hold
it, and its store keeps its build folder leased until then (see index/store.py).
"""

from __future__ import annotations

import logging
import threading
import time

from fastapi import Request

from qa.compose import Components
from qa.pipeline import Assistant

log = logging.getLogger("web")


class LiveAssistant:
    """Holds the current Assistant and swaps it for one over a newer index when one appears."""

    def __init__(self, components: Components, assistant: Assistant,
                 interval_s: float = 1.0) -> None:
        self.components = components
        self.interval_s = interval_s
        self._assistant = assistant
        self._checked = time.monotonic()
        self._loading = threading.Lock()
        self._failed: str | None = None  # the version that failed to load (logged once)

    def current(self) -> Assistant:
        """The Assistant to use for one whole request."""
        now = time.monotonic()
        if now - self._checked >= self.interval_s:
            self._checked = now
            if not self._assistant.retriever.store.is_latest() and self._loading.acquire(False):
                threading.Thread(target=self._reload, name="index-reload", daemon=True).start()
        return self._assistant

    def reload_now(self) -> Assistant:
        """Load the newest index in this thread (after this server changed it itself)."""
        with self._loading:
            self._swap()
        return self._assistant

    def _reload(self) -> None:
        try:
            self._swap()
        finally:
            self._loading.release()

    def _swap(self) -> None:
        try:
            store = self.components.open_store()
            if store.generation == self._assistant.retriever.store.generation:
                return
            fresh = self.components.assistant(store)
        except Exception as exc:  # keep serving the index we have; say why once
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if message != self._failed:
                log.warning("A new index could not be loaded (%s); still serving generation %d.",
                            message, self._assistant.retriever.store.generation)
                self._failed = message
            return
        self._failed = None
        self._assistant = fresh  # one reference assignment: atomic for every reader
        log.info("Now serving index generation %d: %d documents, %d passages.",
                 store.generation, store.count_documents(), store.count_passages())


def assistant_of(request: Request) -> Assistant:
    """The Assistant this request uses from start to end."""
    return request.app.state.live.current()
