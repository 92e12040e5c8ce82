"""Shared fixtures: small real indexes (hashing embedder) and the real seed index (MiniLM).

Both stores: a test marked `both_stores` (or in a module with `pytestmark =
pytest.mark.both_stores`) that uses `store_kind` (directly, or through `hashing_seed_index`,
`real_seed_index`, `replay_assistant` or `cli_seed_indexes`) runs twice, once on the FAISS store
and once on a Milvus Lite file under the session's temporary folder; every other test runs on
FAISS. Each seed index is built once per session and store, and `settings_for`, `open_store`,
`make_assistant` and `run` reach whichever store a data folder holds.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from index.build import build_index
from index.embedding import HashingEmbedder
from index.store_protocol import DocumentStore
from qa.backends.base import Generator, ReplayGenerator
from qa.compose import Components, store_backend
from qa.pipeline import Assistant
from qa.retrieve import make_retriever
from qa.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
STORES = ("faiss", "milvus")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "both_stores: run the tests that use store_kind on the "
                            "FAISS store and on Milvus Lite")


def pytest_generate_tests(metafunc) -> None:
    if "store_kind" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
            "both_stores"):
        metafunc.parametrize("store_kind", STORES, indirect=True, scope="module")


@pytest.fixture(scope="module")
def store_kind(request) -> str:
    """The store the index fixtures build on: 'faiss', or each of both for tests marked
    both_stores."""
    return getattr(request, "param", "faiss")


def settings_for(data_dir: Path, **overrides) -> Settings:
    """Settings that reach the index built in `data_dir`: the Milvus Lite file
    <data_dir>/milvus.db (QA_VECTOR_STORE=milvus with its default URI) when there is one,
    else the FAISS files."""
    kind = "milvus" if (Path(data_dir) / "milvus.db").exists() else "faiss"
    return Settings(data_dir=data_dir, **{"vector_store": kind, **overrides})


def open_store(data_dir: Path) -> DocumentStore:
    """The index built in `data_dir`, opened through the composition root (either store)."""
    return Components(settings_for(data_dir)).open_store()


def store_env(store: str) -> dict:
    """The environment for `qa` on one store (Milvus: the Lite file <QA_DATA_DIR>/milvus.db)."""
    return {"QA_VECTOR_STORE": store, "QA_MILVUS_URI": ""}


def run(args: list[str], data_dir: Path, env_extra: dict | None = None,
        **kwargs) -> subprocess.CompletedProcess:
    """`qa ARGS` in a subprocess with QA_DATA_DIR=data_dir, on the store whose index is in
    data_dir (the Milvus Lite file data_dir/milvus.db when there is one) unless `env_extra`
    says otherwise."""
    store = store_env("milvus" if (Path(data_dir) / "milvus.db").exists() else "faiss")
    env = {**os.environ, "QA_DATA_DIR": str(data_dir), **store, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "qa", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, **kwargs)


def write_corpus(folder: Path, files: dict[str, str]) -> Path:
    """A folder of documents (name -> text) to index; returns the folder."""
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def index_into(paths: list[Path], data_dir: Path, embedder, store: str, **kwargs):
    """`build_index` on the given store: FAISS files in `data_dir`, or its Milvus Lite file."""
    backend = store_backend(Settings(data_dir=data_dir, vector_store=store))
    return build_index(paths, data_dir, embedder, backend=backend, **kwargs)


def make_assistant(data_dir: Path, embedder, generator: Generator | Callable[[], Generator],
                   judge=None, answerability=None, **overrides) -> Assistant:
    """An Assistant over an index already built in `data_dir`; the strict word judge unless a
    judge is given (the real model judges are exercised in tests/test_judge_real.py), and no
    answerability check unless one is given (only the similarity floor abstains)."""
    from judges import StrictWordJudge

    # Follow-ups are joined literally unless a test asks for a rewriter (see test_followup.py).
    overrides.setdefault("followup_model", "literal")
    # Drafts from the numbered passages (the prompt fitting and the repair step are exercised
    # that way) unless a test asks for the default evidence draft, which has tests of its own.
    overrides.setdefault("draft_from", "passages")
    settings = settings_for(data_dir, **overrides)
    retriever = make_retriever(Components(settings).open_store(), embedder, settings)
    factory = generator if callable(generator) and not hasattr(generator, "generate") else (
        lambda: generator)
    chosen = judge or StrictWordJudge()
    return Assistant(settings, retriever, factory, lambda: chosen, answerability=answerability)


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
def seed_indexes(tmp_path_factory, seed_copy) -> Callable[[str, object, str], Path]:
    """Build the seed corpus index once per session for each (label, store); returns its
    data folder."""
    built: dict[tuple[str, str], Path] = {}

    def get(label: str, embedder, store: str) -> Path:
        if (label, store) not in built:
            data_dir = tmp_path_factory.mktemp(f"{label}-{store}-index")
            index_into([seed_copy], data_dir, embedder, store)
            built[label, store] = data_dir
        return built[label, store]
    return get


@pytest.fixture(scope="session")
def cli_seed_indexes(tmp_path_factory, seed_copy) -> Callable[[str], Path]:
    """`qa index SEEDS` (the real encoder, in a subprocess) run once per session for each
    store; returns its data folder. Tests must not change these indexes."""
    built: dict[str, Path] = {}

    def get(store: str) -> Path:
        if store not in built:
            data = tmp_path_factory.mktemp(f"cli-{store}-data")
            result = run(["index", str(seed_copy)], data, store_env(store))
            assert result.returncode == 0, result.stderr
            assert "Indexed 5 documents into" in result.stdout
            assert (data / "milvus.db").exists() == (store == "milvus")
            built[store] = data
        return built[store]
    return get


@pytest.fixture(scope="module")
def hashing_seed_index(seed_indexes, hashing_embedder, store_kind) -> Path:
    """The seed corpus indexed with the hashing embedder (fast, deterministic)."""
    return seed_indexes("hashing", hashing_embedder, store_kind)


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


@pytest.fixture(scope="module")
def real_seed_index(seed_indexes, real_embedder, store_kind) -> Path:
    """The seed corpus indexed with the real MiniLM encoder."""
    return seed_indexes("real", real_embedder, store_kind)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, log: Path,
                  timeout_s: float = 120) -> None:
    """Wait until `process` (writing its output to `log`) accepts connections on the port."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with {process.returncode}: "
                                   f"{log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on port {port}")
            time.sleep(0.1)


def stop(process: subprocess.Popen) -> None:
    """Stop a process this test started: SIGINT (both Milvus Lite's server and uvicorn shut
    down cleanly on it), then SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@contextmanager
def milvus_lite_server(data_dir: Path):
    """Milvus Lite run as a standalone server on a free loopback port (`python -m milvus_lite
    server`, the package's own command), so that several processes reach one collection by
    URI, as they would a Milvus server; yields the URI."""
    port = free_port()
    log = data_dir.with_name(data_dir.name + ".log")
    with log.open("w") as output:
        process = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir",
                                    str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process, "the Milvus Lite server", log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


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
