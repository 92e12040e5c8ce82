"""Benchmark: /api/search under concurrent clients, against the real server and index.

Starts `qa serve` (uvicorn, the real MiniLM encoder and index) in a subprocess, then drives it
from this process with asyncio + httpx: first ONE client for `--seconds` (the baseline), then
`--clients` concurrent clients for `--seconds`. Each client sends its next question as soon as
the previous answer arrives. Questions cycle through eval/seed_questions.jsonl so the encoder
never sees the same text twice in a row.

Reports requests/s, p50/p95/p99 latency and errors per phase, the ratios of the concurrent phase
to the baseline (taken in the same run, so a busy machine affects both), and what else was using
the CPU while it ran (this machine has 2 cores and is shared).

    .venv/bin/python bench/bench_search_load.py [--seconds 10] [--clients 20] [--data-dir DIR]
                                                 [--json OUT.json]

Without --data-dir the seed corpus is indexed into a temporary folder first (~30 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TARGET_RPS = 100.0
TARGET_P95_MS = 200.0


def questions() -> list[str]:
    lines = (ROOT / "eval" / "seed_questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_index(data_dir: Path) -> None:
    if (data_dir / "index").exists():
        return
    print(f"indexing the seed corpus into {data_dir} ...", flush=True)
    subprocess.run([sys.executable, "-m", "qa", "index", str(ROOT / "seeds")], cwd=ROOT,
                   env={**os.environ, "QA_DATA_DIR": str(data_dir)}, check=True,
                   stdout=subprocess.DEVNULL)


def start_server(data_dir: Path, port: int, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "QA_DATA_DIR": str(data_dir), "QA_PORT": str(port),
           "QA_HOST": "127.0.0.1"}
    log = open(log_path, "w")
    server = subprocess.Popen([sys.executable, "-m", "qa", "serve"], cwd=ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}: see {log_path}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.terminate()
    raise SystemExit(f"the server did not answer /api/health within 180 s: see {log_path}")


def cpu_ticks(pid: int) -> int:
    """utime + stime of one process, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def busy_processes(exclude: set[int], seconds: float = 1.0) -> list[str]:
    """Other processes using more than 5% of a core right now, as 'name pid: 37%'."""
    def snapshot() -> dict[int, tuple[str, int]]:
        out = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in exclude:
                continue
            try:
                name = (entry / "comm").read_text().strip()
                out[int(entry.name)] = (name, cpu_ticks(int(entry.name)))
            except (OSError, IndexError, ValueError):
                continue
        return out

    first = snapshot()
    time.sleep(seconds)
    second = snapshot()
    hz = os.sysconf("SC_CLK_TCK")
    busy = []
    for pid, (name, ticks) in second.items():
        if pid in first:
            share = (ticks - first[pid][1]) / hz / seconds
            if share > 0.05:
                busy.append((share, f"{name} {pid}: {share:.0%}"))
    return [text for _, text in sorted(busy, reverse=True)]


async def run_phase(base: str, clients: int, seconds: float, texts: list[str], k: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    counter = 0
    stop_at = time.perf_counter() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal counter
        while time.perf_counter() < stop_at:
            question = texts[counter % len(texts)]
            counter += 1
            started = time.perf_counter()
            try:
                response = await http.get("/api/search", params={"q": question, "k": k})
                ok = response.status_code == 200 and response.json()["hits"]
                if not ok:
                    errors.append(f"{response.status_code}: {response.text[:100]}")
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
                continue
            latencies.append((time.perf_counter() - started) * 1000)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        began = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1)

    return {"clients": clients, "seconds": round(elapsed, 2), "requests": len(latencies),
            "errors": len(errors), "first_errors": errors[:3],
            "rps": round(len(latencies) / elapsed, 1),
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            "mean_ms": round(statistics.fmean(latencies), 1) if latencies else None}


async def measure(base: str, clients: int, seconds: float, k: int) -> dict:
    texts = questions()
    await run_phase(base, 2, min(3.0, seconds), texts, k)  # warm-up: first-call costs
    single = await run_phase(base, 1, seconds, texts, k)
    loaded = await run_phase(base, clients, seconds, texts, k)
    return {"single": single, "loaded": loaded,
            "ratios": {"rps_loaded_over_single": round(loaded["rps"] / single["rps"], 2),
                       "p95_loaded_over_single": round(loaded["p95_ms"] / single["p95_ms"], 2),
                       "p50_loaded_over_single": round(loaded["p50_ms"] / single["p50_ms"], 2)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--k", type=int, default=5, help="passages per search")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="a data folder with a built index (default: index seeds/ afresh)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        ensure_index(data_dir)
        port = free_port()
        server = start_server(data_dir, port, Path(tmp) / "server.log")
        try:
            others_before = busy_processes({os.getpid(), server.pid})
            load_before = os.getloadavg()
            server_ticks = cpu_ticks(server.pid)
            began = time.perf_counter()
            result = asyncio.run(measure(f"http://127.0.0.1:{port}", args.clients, args.seconds,
                                         args.k))
            wall = time.perf_counter() - began
            server_cpu = (cpu_ticks(server.pid) - server_ticks) / os.sysconf("SC_CLK_TCK")
            others_after = busy_processes({os.getpid(), server.pid})
        finally:
            server.terminate()
            server.wait(timeout=30)
        log_tail = (Path(tmp) / "server.log").read_text(errors="replace").splitlines()[-3:]

    result["machine"] = {
        "cores": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
        "server_cpu_cores_used": round(server_cpu / wall, 2),
        "other_busy_processes_before": others_before,
        "other_busy_processes_after": others_after}
    result["targets"] = {"rps": TARGET_RPS, "p95_ms": TARGET_P95_MS,
                         "met": result["loaded"]["rps"] >= TARGET_RPS
                         and result["loaded"]["p95_ms"] <= TARGET_P95_MS}
    for name in ("single", "loaded"):
        phase = result[name]
        print(f"{phase['clients']:>3} client(s): {phase['rps']:7.1f} req/s  "
              f"p50 {phase['p50_ms']:6.1f} ms  p95 {phase['p95_ms']:6.1f} ms  "
              f"p99 {phase['p99_ms']:6.1f} ms  ({phase['requests']} requests, "
              f"{phase['errors']} errors)")
    ratios = result["ratios"]
    print(f"ratios {args.clients} clients / 1 client: throughput x{ratios['rps_loaded_over_single']}"
          f", p50 x{ratios['p50_loaded_over_single']}, p95 x{ratios['p95_loaded_over_single']}")
    print(f"target (>= {TARGET_RPS:.0f} req/s and p95 <= {TARGET_P95_MS:.0f} ms with "
          f"{args.clients} clients): {'met' if result['targets']['met'] else 'NOT met'}")
    machine = result["machine"]
    print(f"server used {machine['server_cpu_cores_used']} of {machine['cores']} cores; "
          f"load average before {machine['loadavg_before']}")
    print("other busy processes before:", ", ".join(others_before) or "none",
          "| after:", ", ".join(others_after) or "none")
    if any(result[name]["errors"] for name in ("single", "loaded")):
        print("server log tail:", *log_tail, sep="\n  ")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
