"""Shared fixtures: small real indexes (hashing embedder) and the real seed index (MiniLM)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from index.build import build_index
from index.embedding import HashingEmbedder
from index.store import open_index
from qa.backends.base import Generator, ReplayGenerator
from qa.pipeline import Assistant
from qa.retrieve import make_retriever
from qa.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


def make_assistant(data_dir: Path, embedder, generator: Generator | Callable[[], Generator],
                   judge=None, **overrides) -> Assistant:
    """An Assistant over an index already built in `data_dir`; the strict word judge unless a
    judge is given (the real model judges are exercised in tests/test_judge_real.py)."""
    from judges import StrictWordJudge

    # Follow-ups are joined literally unless a test asks for a rewriter (see test_followup.py).
    overrides.setdefault("followup_model", "literal")
    settings = Settings(data_dir=data_dir, **overrides)
    retriever = make_retriever(open_index(data_dir), embedder, settings)
    factory = generator if callable(generator) and not hasattr(generator, "generate") else (
        lambda: generator)
    chosen = judge or StrictWordJudge()
    return Assistant(settings, retriever, factory, lambda: chosen)


@pytest.fixture(scope="session")
def hashing_embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture(scope="session")
def seed_copy(tmp_path_factory) -> Path:
    """The seed corpus copied to a temp folder (tests may not touch the repo's seeds/)."""
    target = tmp_path_factory.mktemp("seeds") / "seeds"
    shutil.copytree(SEEDS, target)
    return target


@pytest.fixture(scope="session")
def hashing_seed_index(tmp_path_factory, seed_copy, hashing_embedder) -> Path:
    """The seed corpus indexed with the hashing embedder (fast, deterministic)."""
    data_dir = tmp_path_factory.mktemp("hashing-index")
    build_index([seed_copy], data_dir, hashing_embedder)
    return data_dir


@pytest.fixture
def replay_assistant(hashing_seed_index, hashing_embedder) -> Callable[..., Assistant]:
    """Factory: an Assistant over the hashed seed index whose model replays `reply`."""
    def factory(reply: str = "", **overrides) -> Assistant:
        return make_assistant(hashing_seed_index, hashing_embedder, ReplayGenerator(reply),
                              **overrides)
    return factory


@pytest.fixture(scope="session")
def real_embedder():
    from index.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def real_seed_index(tmp_path_factory, seed_copy, real_embedder) -> Path:
    """The seed corpus indexed with the real MiniLM encoder."""
    data_dir = tmp_path_factory.mktemp("real-index")
    build_index([seed_copy], data_dir, real_embedder)
    return data_dir


@contextmanager
def live_server(app):
    """Serve `app` with uvicorn on a free loopback port in a thread; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
