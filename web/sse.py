"""Server-sent events: one pipeline Event becomes one `event:`/`data:` block with JSON data."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import anyio
from starlette.concurrency import iterate_in_threadpool

from qa.contracts import Answer, Event

log = logging.getLogger(__name__)


def event_payload(event: Event) -> Any:
    """The JSON-ready data of an event (the shapes are documented on GET /api/ask/stream)."""
    if event.kind == "passages":
        return {"hits": [hit.to_json() for hit in event.data]}
    if event.kind == "rewrite":
        return {"standalone_question": event.data}
    if event.kind == "token":
        return {"text": event.data}
    if event.kind == "evidence":
        return event.data.to_json()
    if event.kind == "error":
        return {"message": str(event.data)}
    if event.kind == "done":
        answer: Answer = event.data
        return answer.to_json()
    return event.data


def format_sse(name: str, data: Any) -> str:
    """One SSE message; JSON never contains a raw newline, so one `data:` line is enough."""
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def sse_stream(events: Iterable[Event]) -> Iterator[str]:
    """Serialise pipeline events; an unexpected failure mid-stream becomes a final error event."""
    try:
        for event in events:
            yield format_sse(event.kind, event_payload(event))
    except Exception:  # the response has started: the status code can no longer change
        log.exception("answer stream failed")
        yield format_sse("error", {"message": "The answer failed on the server; "
                                              "try again or check the server log.",
                                   "fatal": True})
    finally:
        _close(events)


def _close(iterator) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


async def closing_threadpool_stream(chunks: Iterator[str]) -> AsyncIterator[str]:
    """Run a blocking iterator in worker threads and close it as soon as the client goes away.

    Without the explicit close, a half-read answer stays suspended inside the model backend
    (holding its one-request-at-a-time lock) until the garbage collector happens to run.
    """
    try:
        async for chunk in iterate_in_threadpool(chunks):
            yield chunk
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await anyio.to_thread.run_sync(_close, chunks)
            except ValueError:  # still running in a worker: it ends when that step returns
                log.warning("could not close an abandoned answer stream")
