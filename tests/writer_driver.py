"""A writer process for tests: runs a real index change and stops at a chosen point.

    python tests/writer_driver.py DATA_DIR POINT SECONDS PATH...

POINT is where it pauses, announcing `PAUSED <point>` on stdout: 'lock' (holding the writer
lock), 'embed' (embedding), 'dense' (the new build's vectors written), 'switch' (the new build
complete, the link not yet switched) or 'gc' (switched, old builds not yet collected). It then
sleeps SECONDS (for the test to kill it with SIGKILL) and carries on.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import faiss  # noqa: E402

import index.store as store_module  # noqa: E402
from index.build import add_to_index  # noqa: E402
from index.embedding import HashingEmbedder  # noqa: E402
from index.lock import writer_lock  # noqa: E402


def pause(point: str, seconds: float) -> None:
    print(f"PAUSED {point}", flush=True)
    time.sleep(seconds)


def main() -> None:
    data_dir, point, seconds, paths = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), \
        [Path(p) for p in sys.argv[4:]]
    if point == "lock":
        with writer_lock(data_dir, 10):
            pause(point, seconds)
        return

    class PausingEmbedder(HashingEmbedder):
        def embed(self, texts):
            if point == "embed":
                pause(point, seconds)
            return super().embed(texts)

    write_index, switch_link, collect = (faiss.write_index, store_module._switch_link,
                                         store_module.collect_garbage)

    def paused_write(index, path):
        write_index(index, path)
        if point == "dense":
            pause(point, seconds)

    def paused_switch(*args):
        if point == "switch":
            pause(point, seconds)
        return switch_link(*args)

    def paused_collect(*args):
        if point == "gc":
            pause(point, seconds)
        return collect(*args)

    faiss.write_index = paused_write
    store_module._switch_link = paused_switch
    store_module.collect_garbage = paused_collect
    report = add_to_index(paths, data_dir, PausingEmbedder(), lock_timeout_s=10)
    print(f"DONE generation {report.generation}", flush=True)


if __name__ == "__main__":
    main()
