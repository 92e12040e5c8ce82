"""The JSON API: ask (whole or streamed), search, and the indexed documents."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from index.errors import UserError
from qa.contracts import Answer, Event, Hit, Turn
from qa.pipeline import Assistant
from qa.retrieve import check_question

from .documents import document_info, get_document
from .limits import QUESTION_SCHEMA, UnicodeText
from .sse import closing_threadpool_stream, sse_stream

router = APIRouter(prefix="/api")

MAX_HISTORY_TURNS = 20


class TurnIn(BaseModel):
    """One earlier exchange, as the page keeps it."""

    question: UnicodeText = Field(max_length=20_000)
    standalone_question: UnicodeText = Field("", max_length=20_000)
    answer: UnicodeText = Field("", max_length=20_000)

    def to_turn(self) -> Turn:
        return Turn(self.question, self.standalone_question or self.question, self.answer)


class AskRequest(BaseModel):
    """A question and, for follow-ups, the conversation so far (oldest first)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"question": "Where do the council and the mayor disagree on the budget?"},
        {"question": "And what does Russia want?", "history": [
            {"question": "Where do the council and the mayor disagree on the budget?",
             "answer": "The council wants cuts [1]."}]}]})

    question: str = Field(description="The question: not blank, at most QA_MAX_QUESTION_CHARS "
                                      "characters, valid Unicode.",
                          json_schema_extra=QUESTION_SCHEMA)
    history: list[TurnIn] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS,
                                  description="Earlier turns, used to rewrite follow-ups.")
    by_document: bool = Field(False, strict=True, description="Also return, per document, its "
                              "position on the question with its quote (`by_document`).")


class HealthResponse(BaseModel):
    status: str = Field(description="'ok' when the service answers.")
    documents: int
    passages: int
    backend: str
    model: str


class SearchResponse(BaseModel):
    question: str
    hits: list[Hit]


class DocumentInfo(BaseModel):
    doc_id: str
    title: str
    source: str
    kind: str
    n_passages: int
    author: str = ""
    publisher: str = ""
    date: str = ""
    date_as_stated: str = ""
    note: str = ""
    meta: dict = Field(default_factory=dict)


class DocumentList(BaseModel):
    documents: list[DocumentInfo]


class DocumentWithText(DocumentInfo):
    text: str = Field(description="The text every character offset (start/end) refers to.")


def assistant_of(request: Request) -> Assistant:
    return request.app.state.live.current()


def checked_question(request: Request, question: str) -> str:
    """The stripped question, or 422 with the pipeline's one-line message."""
    try:
        return check_question(question, assistant_of(request).settings.max_question_chars)
    except UserError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc


HISTORY_SHAPE = (f"history must be a JSON list of at most {MAX_HISTORY_TURNS} objects with "
                 f"'question', 'standalone_question' and 'answer' strings")

# `history` is JSON inside a query parameter; FastAPI cannot describe that, so it is read from
# the query string and documented here.
HISTORY_PARAMETER = {
    "name": "history", "in": "query", "required": False,
    "description": "Earlier turns (oldest first), as JSON: "
                   "[{question, standalone_question, answer}].",
    "content": {"application/json": {"schema": {
        "type": "array", "maxItems": MAX_HISTORY_TURNS,
        "items": {"$ref": "#/components/schemas/TurnIn"}}}},
}


def parse_history(raw: str | None) -> list[Turn]:
    """The `history` query parameter: a JSON list of {question, standalone_question, answer}."""
    if not raw:
        return []
    try:
        data = json.loads(raw)
    except RecursionError:  # "[[[[..." nests deeper than the parser's stack
        raise HTTPException(status_code=422, detail=f"{HISTORY_SHAPE}; this one nests too "
                                                    f"deeply.") from None
    except ValueError:
        raise HTTPException(status_code=422, detail=f"{HISTORY_SHAPE}; this one is not valid "
                                                    f"JSON.") from None
    if not isinstance(data, list) or len(data) > MAX_HISTORY_TURNS:
        raise HTTPException(status_code=422, detail=f"{HISTORY_SHAPE}.")
    turns = []
    for i, item in enumerate(data):
        try:
            turns.append(TurnIn.model_validate(item).to_turn())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ()))
            problem = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
            raise HTTPException(status_code=422, detail=(
                f"{HISTORY_SHAPE}; turn {i}{': ' + where if where else ''}: "
                f"{problem.rstrip('.')}.")) from None
    return turns


@router.post("/ask", response_model=Answer, tags=["answers"],
             summary="Answer a question with cited quotes")
def ask(request: Request, body: AskRequest) -> dict:
    """The verified answer, its citations (quote == document text[start:end]) and passages."""
    question = checked_question(request, body.question)
    assistant = assistant_of(request)
    answer = assistant.ask(question, [t.to_turn() for t in body.history])
    if body.by_document:
        answer = replace(answer, by_document=assistant.by_document(answer))
    return answer.to_json()


STREAM_DOC = """Server-sent events, each with JSON data:

* `rewrite` — `{"standalone_question": str}` when a follow-up was rewritten
* `passages` — `{"hits": [Hit]}` the retrieved passages
* `evidence` — a `Citation`: the source sentence judged to answer the question, sent before the
  draft when there is one (verified words to show while the model writes)
* `token` — `{"text": str}` a piece of the model's draft (may be removed by verification)
* `error` — `{"message": str}` the model backend failed; an answer from the evidence follows
* `done` — the verified `Answer` (same shape as POST /api/ask); always the last event. With
  `by_document=true` its `by_document` lists each document's position on the question.
"""


def _event(name: str, data: dict) -> dict:
    """JSON Schema of one server-sent event `name` whose data is JSON matching `data`."""
    return {"type": "object", "required": ["event", "data"],
            "properties": {"event": {"const": name},
                           "data": {"type": "string", "contentMediaType": "application/json",
                                    "contentSchema": data}}}


def _object(**properties: dict) -> dict:
    return {"type": "object", "required": list(properties), "properties": properties,
            "additionalProperties": False}


# Each event of the stream (OpenAPI 3.1: the schema of a text/event-stream describes one event).
STREAM_EVENT_SCHEMA = {"oneOf": [
    _event("rewrite", _object(standalone_question={"type": "string"})),
    _event("passages", _object(hits={"type": "array",
                                     "items": {"$ref": "#/components/schemas/Hit"}})),
    _event("evidence", {"$ref": "#/components/schemas/Citation"}),
    _event("token", _object(text={"type": "string"})),
    _event("error", {**_object(message={"type": "string"}),
                     "properties": {"message": {"type": "string"},
                                    "fatal": {"type": "boolean"}}}),
    _event("done", {"$ref": "#/components/schemas/Answer"}),
]}


def _with_by_document(events: Iterator[Event], assistant: Assistant) -> Iterator[Event]:
    """The events, with the per-document view added to the final Answer."""
    try:
        for event in events:
            if event.kind == "done":
                answer: Answer = event.data
                event = replace(event, data=replace(answer,
                                                    by_document=assistant.by_document(answer)))
            yield event
    finally:
        close = getattr(events, "close", None)  # a client gone mid-answer ends the model's run
        if close is not None:
            close()


@router.get("/ask/stream", tags=["answers"],
            summary="Answer a question as server-sent events",
            description=STREAM_DOC, response_class=StreamingResponse,
            responses={200: {"description": "Server-sent events, `done` last.",
                             "content": {"text/event-stream": {"schema": STREAM_EVENT_SCHEMA}}}},
            openapi_extra={"parameters": [HISTORY_PARAMETER]})
def ask_stream(request: Request,
               question: Annotated[str, Query(description="The question.",
                                              json_schema_extra=QUESTION_SCHEMA)],
               by_document: Annotated[bool, Query(
                   description="Also give the `done` Answer, per document, its position on the "
                               "question with its quote (`by_document`).")] = False,
               ) -> StreamingResponse:
    question = checked_question(request, question)
    turns = parse_history(request.query_params.get("history"))
    assistant = assistant_of(request)
    events = assistant.stream(question, turns)
    if by_document:
        events = _with_by_document(events, assistant)
    return StreamingResponse(closing_threadpool_stream(sse_stream(events)),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/search", response_model=SearchResponse, tags=["answers"],
            summary="Retrieve passages only")
def search(request: Request,
           q: Annotated[str, Query(description="What to look for.",
                                   json_schema_extra=QUESTION_SCHEMA)],
           k: Annotated[int, Query(ge=1, le=50, description="How many passages.")] = 5) -> dict:
    question = checked_question(request, q)
    assistant = assistant_of(request)
    hits = assistant.retriever.search(question, k, assistant.settings.retrieval_mode)
    return {"question": question, "hits": [hit.to_json() for hit in hits]}


@router.get("/documents", response_model=DocumentList, tags=["documents"],
            summary="The indexed documents")
def documents(request: Request) -> dict:
    store = assistant_of(request).retriever.store
    return {"documents": [document_info(r) for r in store.list_documents()]}


@router.get("/documents/{doc_id}", response_model=DocumentWithText, tags=["documents"],
            summary="One document's metadata and text", responses={404: {"description":
                                                                     "Unknown document id"}})
def document(request: Request, doc_id: str) -> dict:
    store = assistant_of(request).retriever.store
    record = get_document(store, doc_id)
    return {**document_info(record), "text": store.document_text(record.doc_id)}


@router.get("/health", response_model=HealthResponse, tags=["service"],
            summary="Is the service up, and what does it serve")
def health(request: Request) -> dict:
    assistant = assistant_of(request)
    backend, model = assistant.backend_label()
    return {"status": "ok", "documents": assistant.retriever.store.count_documents(),
            "passages": assistant.retriever.store.count_passages(), "backend": backend,
            "model": model}
