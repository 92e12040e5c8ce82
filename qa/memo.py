"""A bounded, thread-safe memory of values computed in batches (model scores, embeddings).

One question asks about the same texts several times (abstention, the prompt, the
quotes); each ask is a model call, so the answers are kept, the oldest dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BatchMemo(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self._values: OrderedDict[K, V] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[K], compute: Callable[[list[K]], Sequence[V]]) -> list[V]:
        """The value of each key, computing the unknown ones in one call (keys in order)."""
        with self._lock:
            known = {k: self._values[k] for k in keys if k in self._values}
        missing = [k for k in dict.fromkeys(keys) if k not in known]
        if missing:
            known.update(zip(missing, compute(missing)))
            with self._lock:
                for key in missing:
                    self._values[key] = known[key]
                while len(self._values) > self._size:
                    self._values.popitem(last=False)
        return [known[k] for k in keys]
