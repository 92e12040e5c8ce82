"""Fuzz the server's own OpenAPI schema with schemathesis, against a real uvicorn server with the
real MiniLM encoder and seed index; /api/ask and /v1/chat/completions answer with a generator
that replays a fixed reply (the generator seam), so a few hundred cases take about a minute.

Every case must get a documented status code (never a 5xx), the documented content type and
headers, and a body that validates against the documented schema, errors included; requests that
violate the schema must be refused with a 4xx. schemathesis runs as its own CLI (`st run`), the
way it is used by hand: its pytest plugin does not support this pytest version.
"""

from __future__ import annotations

import collections
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from conftest import make_assistant

from qa.backends.base import ReplayGenerator
from web.app import create_app

pytest.importorskip("schemathesis", reason="the test extra installs it: pip install -e '.[test]'")

pytestmark = pytest.mark.slow

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance,negative_data_rejection")
EXAMPLES_PER_OPERATION = 25
REPLY = "Iran insists on keeping Assad in power [1]. Russia is more flexible [2]."

# A refusal for a too-large body (413) is a right answer to schema-violating data too.
CONFIG = """[checks.negative_data_rejection]
expected-statuses = [400, 404, 405, 406, 413, 415, 422]
"""
# GET /api/ask/stream carries `history` (JSON) in the URL, and the schema lets it be long; uvicorn
# refuses request lines over 16 KB before the app sees them (plain text, not the API's shape).
# That transport limit is not the app's, so the fuzzed server takes request heads up to 8 MB.
MAX_REQUEST_HEAD = 8 * 1024 * 1024


@contextmanager
def fuzz_server(app):
    """uvicorn serving `app` on a free loopback port in a thread, with large request heads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on",
                                           h11_max_incomplete_event_size=MAX_REQUEST_HEAD))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the fuzzed server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def st_command() -> list[str]:
    st = Path(sys.executable).with_name("st")
    return [str(st)] if st.exists() else [shutil.which("st") or "st"]


@pytest.fixture(scope="module")
def fuzz_run(real_seed_index, real_embedder, tmp_path_factory) -> dict:
    """One schemathesis run over every operation: exit code, console output and the status of
    every case sent (from its NDJSON report)."""
    work = tmp_path_factory.mktemp("schemathesis")
    (work / "schemathesis.toml").write_text(CONFIG)
    # A copy of the index: the fuzzer may upload and delete documents.
    data_dir = work / "data"
    shutil.copytree(real_seed_index, data_dir)
    assistant = make_assistant(data_dir, real_embedder, ReplayGenerator(REPLY))
    with fuzz_server(create_app(assistant.settings, assistant)) as base:
        done = subprocess.run(
            [*st_command(), "--config-file", str(work / "schemathesis.toml"), "--no-color",
             "run", f"{base}/openapi.json", "--checks", CHECKS,
             "--phases", "examples,coverage,fuzzing", "--mode", "all",
             "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", "20240610",
             "--workers", "1", "--request-timeout", "60", "--suppress-health-check", "all",
             "--report", "ndjson", "--report-dir", str(work / "report")],
            capture_output=True, text=True, timeout=900, cwd=work)
    statuses: collections.Counter = collections.Counter()
    for report in (work / "report").glob("*.ndjson"):
        for line in report.read_text().splitlines():
            finished = json.loads(line).get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished["recorder"]
            for interaction in recorder.get("interactions", {}).values():
                response = interaction.get("response") or {}
                statuses[(recorder["label"], response.get("status_code"))] += 1
    return {"returncode": done.returncode, "output": done.stdout + done.stderr,
            "statuses": statuses}


def test_every_operation_conforms_to_the_schema(fuzz_run):
    output, statuses = fuzz_run["output"], fuzz_run["statuses"]
    cases = sum(statuses.values())
    server_errors = {key: n for key, n in statuses.items() if key[1] is None or key[1] >= 500}
    print(f"\nschemathesis: {cases} cases, 5xx or no response: {sum(server_errors.values())}")
    for (operation, status), count in sorted(statuses.items(), key=str):
        print(f"  {operation} -> {status}: {count}")
    assert fuzz_run["returncode"] == 0, output[-8000:]
    assert re.search(r"(\d+) generated, \1 passed", output), output[-3000:]
    assert cases >= 300
    assert not server_errors
    answered = {operation for (operation, status) in statuses if status == 200}
    assert {"POST /api/ask", "GET /api/ask/stream", "GET /api/search",
            "POST /v1/chat/completions", "GET /api/documents/{doc_id}"} <= answered
    refused = {operation for (operation, status) in statuses if status == 422}
    assert {"POST /api/ask", "GET /api/search", "POST /v1/chat/completions"} <= refused
