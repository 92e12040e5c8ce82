"""An OpenAI-compatible chat endpoint, so any OpenAI client can ask the cited assistant."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from index.errors import UserError
from qa.contracts import Answer, Citation, Turn
from qa.followup import standalone_question
from qa.pipeline import Assistant
from qa.retrieve import check_question

from .limits import UnicodeText
from .sse import closing_threadpool_stream

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

MODEL_ID = "qa-cited"
CHUNK_WORDS = 3  # words per streamed chunk of the verified answer


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = "text"
    text: UnicodeText = ""


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: UnicodeText | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content if part.type == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    """The fields this server reads; other OpenAI parameters are accepted and ignored."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"messages": [{"role": "user",
                       "content": "Where do the council and the mayor disagree on the budget?"}]},
        {"stream": True, "messages": [
            {"role": "user",
             "content": "Where do the council and the mayor disagree on the budget?"},
            {"role": "assistant", "content": "The council wants cuts [1]."},
            {"role": "user", "content": "And what does the mayor want?"}]}]})
    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(
        min_length=1, max_length=200,
        description="The conversation; the last user message is the question (not blank, at "
                    "most QA_MAX_QUESTION_CHARS characters), earlier user/assistant pairs are "
                    "the history.",
        json_schema_extra={"contains": {"type": "object", "required": ["role"],
                                        "properties": {"role": {"const": "user"}}}})
    stream: bool = Field(False, strict=True)  # the schema says boolean: 0 or "true" is refused


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class ChatChoice(BaseModel):
    index: int
    finish_reason: Literal["stop"]
    logprobs: None = None
    message: AssistantMessage


class ChatCompletion(BaseModel):
    """OpenAI's chat.completion object, plus the answer's citations and whether it abstained."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    citations: list[Citation] = Field(description="One per source in the reply's `Sources:`.")
    abstained: bool


CHUNK_SCHEMA = {
    "type": "object", "required": ["id", "object", "created", "model", "choices"],
    "properties": {
        "id": {"type": "string"}, "object": {"const": "chat.completion.chunk"},
        "created": {"type": "integer"}, "model": {"type": "string"},
        "choices": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
            "type": "object", "required": ["index", "delta", "finish_reason"],
            "properties": {
                "index": {"type": "integer"},
                "delta": {"type": "object", "additionalProperties": False,
                          "properties": {"role": {"const": "assistant"},
                                         "content": {"type": "string"}}},
                "finish_reason": {"enum": [None, "stop"]}}}},
        "citations": {"type": "array", "items": {"$ref": "#/components/schemas/Citation"}}}}

# One server-sent event of a streamed completion (OpenAPI 3.1: the schema describes one event):
# a chunk, an in-band error once the stream has started, or the final [DONE].
STREAM_EVENT_SCHEMA = {
    "type": "object", "required": ["data"],
    "properties": {"data": {"anyOf": [
        {"const": "[DONE]"},
        {"type": "string", "contentMediaType": "application/json",
         "contentSchema": {"anyOf": [CHUNK_SCHEMA,
                                     {"$ref": "#/components/schemas/OpenAIErrorResponse"}]}}]}}}

STREAM_RESPONSE = {"description": "With `stream: true`: chat.completion.chunk objects as "
                                  "server-sent `data:` lines, then `data: [DONE]`.",
                   "content": {"text/event-stream": {"schema": STREAM_EVENT_SCHEMA}}}


def conversation(messages: list[ChatMessage]) -> tuple[str, list[Turn]]:
    """The last user message as the question; earlier user/assistant pairs as history."""
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    if not users:
        raise HTTPException(status_code=400, detail="messages must contain a user message.")
    last = users[-1]
    turns: list[Turn] = []
    for i, following in zip(users, users[1:]):
        reply = next((m.text() for m in messages[i + 1:following] if m.role == "assistant"), "")
        question = messages[i].text()
        # Rebuild each earlier standalone question the way the pipeline made it.
        turns.append(Turn(question, standalone_question(question, turns), reply))
    return messages[last].text(), turns


def answer_content(answer: Answer) -> str:
    """The verified answer followed by its numbered sources with their quotes."""
    if not answer.citations:
        return answer.answer
    lines = [f'[{c.n}] {c.title} — "{" ".join(c.quote.split())}"' for c in answer.citations]
    return answer.answer + "\n\nSources:\n" + "\n".join(lines)


def split_chunks(text: str, words: int = CHUNK_WORDS) -> list[str]:
    """Small pieces of `text` that join back to exactly `text`."""
    pieces = re.findall(r"\s*\S+", text)
    pieces[-1:] = [pieces[-1] + text[len("".join(pieces)):]] if pieces else [text]
    return ["".join(pieces[i:i + words]) for i in range(0, len(pieces), words)]


def _base(kind: str, completion_id: str, created: int) -> dict:
    return {"id": completion_id, "object": kind, "created": created, "model": MODEL_ID}


def _chunk(completion_id: str, created: int, delta: dict, finish: str | None = None,
           **extra) -> str:
    data = {**_base("chat.completion.chunk", completion_id, created),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _stream(assistant: Assistant, question: str, turns: list[Turn], completion_id: str,
            created: int) -> Iterator[str]:
    """The role at once; the verified answer in small chunks once it is checked; [DONE]."""
    yield _chunk(completion_id, created, {"role": "assistant", "content": ""})
    try:
        answer = assistant.ask(question, turns)
    except Exception:  # the response has started: report in-band, the way OpenAI does
        import logging

        logging.getLogger(__name__).exception("chat completion failed")
        error = {"error": {"message": "The answer failed on the server.",
                           "type": "server_error", "param": None, "code": None}}
        yield f"data: {json.dumps(error)}\n\n"
        return
    for piece in split_chunks(answer_content(answer)):
        yield _chunk(completion_id, created, {"content": piece})
    yield _chunk(completion_id, created, {}, "stop",
                 citations=[c.to_json() for c in answer.citations])
    yield "data: [DONE]\n\n"


@router.post("/chat/completions", summary="OpenAI-compatible chat completion (cited answer)",
             response_model=ChatCompletion, responses={200: STREAM_RESPONSE})
def chat_completions(request: Request, body: ChatRequest):
    """The last user message is answered; the reply text ends with a `Sources:` list and the
    response carries a top-level `citations` list (one Citation object per source)."""
    assistant: Assistant = request.app.state.live.current()
    question, turns = conversation(body.messages)
    try:
        question = check_question(question, assistant.settings.max_question_chars)
    except UserError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if body.stream:
        chunks = _stream(assistant, question, turns, completion_id, created)
        return StreamingResponse(closing_threadpool_stream(chunks),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    answer = assistant.ask(question, turns)
    return {**_base("chat.completion", completion_id, created),
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": answer_content(answer)}}],
            "citations": [c.to_json() for c in answer.citations],
            "abstained": answer.abstained}


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


@router.get("/models", summary="The one model this server offers", response_model=ModelList)
def models(request: Request) -> dict:
    assistant: Assistant = request.app.state.live.current()
    backend, model = assistant.backend_label()
    card = ModelCard(id=MODEL_ID, created=0, owned_by=f"local ({backend}: {model})")
    return {"object": "list", "data": [card.model_dump()]}
