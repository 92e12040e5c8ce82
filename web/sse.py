"""Server-sent events: one pipeline Event becomes one `event:`/`data:` block with JSON data."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any

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
