"""The JSON API: ask (whole or streamed), search, and the indexed documents."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from index.errors import UserError
from qa.contracts import Answer, Hit, Turn
from qa.pipeline import Assistant
from qa.retrieve import check_question

from .documents import document_info, get_document
from .sse import closing_threadpool_stream, sse_stream

router = APIRouter(prefix="/api")

MAX_HISTORY_TURNS = 20


class TurnIn(BaseModel):
    """One earlier exchange, as the page keeps it."""

    question: str = Field(max_length=20_000)
    standalone_question: str = Field("", max_length=20_000)
    answer: str = Field("", max_length=20_000)

    def to_turn(self) -> Turn:
        return Turn(self.question, self.standalone_question or self.question, self.answer)


class AskRequest(BaseModel):
    """A question and, for follow-ups, the conversation so far (oldest first)."""

    question: str = Field(description="The question; at most QA_MAX_QUESTION_CHARS characters.")
    history: list[TurnIn] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS,
                                  description="Earlier turns, used to rewrite follow-ups.")


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
    return request.app.state.assistant


def checked_question(request: Request, question: str) -> str:
    """The stripped question, or 422 with the pipeline's one-line message."""
    try:
        return check_question(question, assistant_of(request).settings.max_question_chars)
    except UserError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc


def parse_history(raw: str | None) -> list[Turn]:
    """The `history` query parameter: a JSON list of {question, standalone_question, answer}."""
    if not raw:
        return []
    try:
        data = json.loads(raw)
        if not isinstance(data, list) or len(data) > MAX_HISTORY_TURNS:
            raise ValueError
        return [TurnIn.model_validate(item).to_turn() for item in data]
    except (ValueError, ValidationError) as exc:
        raise HTTPException(status_code=422, detail=(
            f"history must be a JSON list of at most {MAX_HISTORY_TURNS} objects with "
            f"'question', 'standalone_question' and 'answer' strings.")) from exc


@router.post("/ask", response_model=Answer, tags=["answers"],
             summary="Answer a question with cited quotes")
def ask(request: Request, body: AskRequest) -> dict:
    """The verified answer, its citations (quote == document text[start:end]) and passages."""
    question = checked_question(request, body.question)
    answer = assistant_of(request).ask(question, [t.to_turn() for t in body.history])
    return answer.to_json()


STREAM_DOC = """Server-sent events, each with JSON data:

* `rewrite` — `{"standalone_question": str}` when a follow-up was rewritten
* `passages` — `{"hits": [Hit]}` the retrieved passages
* `token` — `{"text": str}` a piece of the model's draft (may be removed by verification)
* `error` — `{"message": str}` the model backend failed; an answer from the evidence follows
* `done` — the verified `Answer` (same shape as POST /api/ask); always the last event
"""


@router.get("/ask/stream", tags=["answers"],
            summary="Answer a question as server-sent events",
            description=STREAM_DOC, response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
def ask_stream(request: Request,
               question: Annotated[str, Query(description="The question.")],
               history: Annotated[str | None, Query(
                   description="JSON list of earlier turns: "
                               "[{question, standalone_question, answer}]")] = None,
               ) -> StreamingResponse:
    question = checked_question(request, question)
    turns = parse_history(history)
    events = assistant_of(request).stream(question, turns)
    return StreamingResponse(closing_threadpool_stream(sse_stream(events)),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/search", response_model=SearchResponse, tags=["answers"],
            summary="Retrieve passages only")
def search(request: Request,
           q: Annotated[str, Query(description="What to look for.")],
           k: Annotated[int, Query(ge=1, le=50, description="How many passages.")] = 5) -> dict:
    question = checked_question(request, q)
    assistant = assistant_of(request)
    hits = assistant.retriever.search(question, k, assistant.settings.retrieval_mode)
    return {"question": question, "hits": [hit.to_json() for hit in hits]}


@router.get("/documents", response_model=DocumentList, tags=["documents"],
            summary="The indexed documents")
def documents(request: Request) -> dict:
    store = assistant_of(request).retriever.store
    return {"documents": [document_info(r) for r in store.documents.values()]}


@router.get("/documents/{doc_id}", response_model=DocumentWithText, tags=["documents"],
            summary="One document's metadata and text", responses={404: {"description":
                                                                     "Unknown document id"}})
def document(request: Request, doc_id: str) -> dict:
    store = assistant_of(request).retriever.store
    record = get_document(store, doc_id)
    return {**document_info(record), "text": store.document_text(record.doc_id)}


@router.get("/health", tags=["service"], summary="Is the service up, and what does it serve")
def health(request: Request) -> dict:
    assistant = assistant_of(request)
    backend, model = assistant.backend_label()
    return {"status": "ok", "documents": len(assistant.retriever.store.documents),
            "passages": len(assistant.retriever.store.passages), "backend": backend,
            "model": model}
