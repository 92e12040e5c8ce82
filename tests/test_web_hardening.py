"""Hostile input against a real server (uvicorn, MiniLM, the seed index): every bad request gets
one clear 4xx line in the shape the OpenAPI schema documents, never a 500."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import live_server, make_assistant

from qa.backends.base import ReplayGenerator
from web.app import create_app

pytestmark = pytest.mark.slow

MAX_CHARS = 300  # not the default, so the schema's maxLength must come from settings
REPLY = "Iran insists on keeping Assad in power [1]."
ERROR_CODES = ("400", "404", "413", "422", "500", "503")


@pytest.fixture(scope="module")
def server(real_seed_index, real_embedder):
    assistant = make_assistant(real_seed_index, real_embedder, ReplayGenerator(REPLY),
                               max_question_chars=MAX_CHARS)
    with live_server(create_app(assistant.settings, assistant)) as base:
        with httpx.Client(base_url=base, timeout=60) as client:
            yield client


def post_raw(client: httpx.Client, path: str, raw: str) -> httpx.Response:
    """POST `raw` as the JSON body, byte for byte (so escapes like \\ud800 arrive as sent)."""
    return client.post(path, content=raw.encode("ascii"),
                       headers={"content-type": "application/json"})


def one_line_detail(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["detail"] and isinstance(body["detail"], str)
    assert "\n" not in body["detail"]
    return body["detail"]


def openai_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and "\n" not in error["message"]
    return error["message"]


# --- a lone surrogate (JSON escape) in every endpoint that takes text ----------------------------

def test_ask_refuses_a_lone_surrogate_with_one_line(server):
    detail = one_line_detail(post_raw(server, "/api/ask", '{"question": "\\ud800 Assad?"}'), 422)
    assert "unpaired UTF-16 surrogate (U+D800) at character 1" in detail
    assert "send valid Unicode text" in detail


def test_ask_refuses_a_lone_surrogate_in_the_history(server):
    raw = ('{"question": "And Russia?", "history": [{"question": "Where is \\udfff Assad?", '
           '"answer": "In Syria."}]}')
    detail = one_line_detail(post_raw(server, "/api/ask", raw), 422)
    assert detail.startswith("Invalid request: history.0.question:")
    assert "U+DFFF" in detail and "at character 10" in detail


def test_stream_refuses_a_lone_surrogate_in_the_history(server):
    history = '[{"question": "Where is \\ud800 Assad?", "answer": "In Syria."}]'
    response = server.get("/api/ask/stream", params={"question": "And Russia?",
                                                     "history": history})
    detail = one_line_detail(response, 422)
    assert "turn 0: question:" in detail and "U+D800" in detail


def test_a_surrogate_cannot_arrive_through_the_query_string(server):
    # %ED%A0%80 is how U+D800 would be UTF-8-encoded; it is not valid UTF-8, so the server
    # decodes each byte as U+FFFD and searches for the rest.
    response = server.get("/api/search?q=%ED%A0%80%20Assad&k=2")
    assert response.status_code == 200
    body = response.json()
    assert body["question"] == "\ufffd\ufffd\ufffd Assad"
    assert len(body["hits"]) == 2 and all("Assad" in hit["text"] for hit in body["hits"])


@pytest.mark.parametrize("message", [
    '{"role": "user", "content": "\\ud800 Assad?"}',
    '{"role": "user", "content": [{"type": "text", "text": "Assad \\udbff"}]}',
])
def test_chat_completions_refuses_a_lone_surrogate(server, message):
    response = post_raw(server, "/v1/chat/completions", f'{{"messages": [{message}]}}')
    message_text = openai_error(response, 422)
    assert "unpaired UTF-16 surrogate" in message_text
    assert message_text.startswith("Invalid request: messages.0.content")


def test_chat_completions_refuses_a_surrogate_in_an_earlier_turn(server):
    raw = ('{"messages": [{"role": "user", "content": "Where is Assad?"}, '
           '{"role": "assistant", "content": "In \\ud800 Syria."}, '
           '{"role": "user", "content": "And Putin?"}]}')
    assert "U+D800" in openai_error(post_raw(server, "/v1/chat/completions", raw), 422)


# --- deep nesting ---------------------------------------------------------------------------------

def test_stream_history_nested_3000_deep_is_a_clear_422(server):
    response = server.get("/api/ask/stream", params={"question": "Assad?", "history": "[" * 3000})
    detail = one_line_detail(response, 422)
    assert detail == ("history must be a JSON list of at most 20 objects with 'question', "
                      "'standalone_question' and 'answer' strings; this one nests too deeply.")


def test_stream_history_that_is_not_json_or_not_a_list(server):
    not_json = server.get("/api/ask/stream", params={"question": "Assad?", "history": "{oops"})
    assert one_line_detail(not_json, 422).endswith("this one is not valid JSON.")
    too_many = json.dumps([{"question": "q"}] * 21)
    response = server.get("/api/ask/stream", params={"question": "Assad?", "history": too_many})
    assert one_line_detail(response, 422).startswith("history must be a JSON list of at most 20")


def test_a_body_nested_3000_deep_is_a_clear_400(server):
    detail = one_line_detail(post_raw(server, "/api/ask", "[" * 3000), 400)
    assert detail.startswith("The request body could not be read as JSON")
    message = openai_error(post_raw(server, "/v1/chat/completions", "[" * 3000), 400)
    assert "send a JSON object" in message


def test_a_body_that_is_not_json_says_where(server):
    detail = one_line_detail(post_raw(server, "/api/ask", '{"question": '), 422)
    assert detail == ("Invalid request: the body is not valid JSON (Expecting value at "
                      "character 13): send a JSON object.")


# --- the limits the schema states are the ones the server enforces --------------------------------

@pytest.mark.parametrize("question, expected", [
    ("", "The question is empty"),
    ("  \n\t ", "The question is empty"),
    ("x" * (MAX_CHARS + 1), f"the limit is {MAX_CHARS:,} (QA_MAX_QUESTION_CHARS)"),
])
def test_question_limits_on_every_route(server, question, expected):
    assert expected in one_line_detail(server.post("/api/ask", json={"question": question}), 422)
    assert expected in one_line_detail(server.get("/api/search", params={"q": question}), 422)
    stream = server.get("/api/ask/stream", params={"question": question})
    assert expected in one_line_detail(stream, 422)
    chat = server.post("/v1/chat/completions",
                       json={"messages": [{"role": "user", "content": question}]})
    assert expected in openai_error(chat, 400)


def test_the_longest_question_allowed_is_answered(server):
    question = ("Where do Moscow and Tehran disagree on Assad? " * 10)[:MAX_CHARS]
    response = server.get("/api/search", params={"q": question, "k": 1})
    assert response.status_code == 200 and len(response.json()["hits"]) == 1


def test_body_too_large_in_both_shapes(server):
    big = json.dumps({"question": "x" * 70_000})
    detail = one_line_detail(post_raw(server, "/api/ask", big), 413)
    assert detail == "Request body too large: the limit is 64 KB."
    chat = json.dumps({"messages": [{"role": "user", "content": "x" * 70_000}]})
    response = post_raw(server, "/v1/chat/completions", chat)
    assert response.status_code == 413
    assert response.json()["error"]["message"].startswith("Request body too large")


# --- the OpenAPI schema describes those responses ----------------------------------------------

@pytest.fixture(scope="module")
def schema(server) -> dict:
    response = server.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_schema_documents_one_line_errors_on_every_route(schema):
    components = schema["components"]["schemas"]
    assert components["ErrorResponse"]["properties"] == {"detail": {"type": "string",
                                                                    "title": "Detail"}}
    assert "HTTPValidationError" not in components and "ValidationError" not in components
    operations = [(path, op) for path, ops in schema["paths"].items() for op in ops.values()]
    assert len(operations) >= 8
    for path, operation in operations:
        expected = ("#/components/schemas/OpenAIErrorResponse" if path.startswith("/v1/")
                    else "#/components/schemas/ErrorResponse")
        for code in ERROR_CODES:
            response = operation["responses"][code]
            assert response["content"]["application/json"]["schema"] == {"$ref": expected}, (
                path, code)
            assert response["description"]


def test_schema_states_the_question_limits_from_settings(schema):
    ask = schema["components"]["schemas"]["AskRequest"]["properties"]["question"]
    assert (ask["minLength"], ask["maxLength"], ask["pattern"]) == (1, MAX_CHARS, r"\S")
    for path, name in (("/api/search", "q"), ("/api/ask/stream", "question")):
        parameter = next(p for p in schema["paths"][path]["get"]["parameters"]
                         if p["name"] == name)
        assert parameter["required"] is True
        assert (parameter["schema"]["minLength"], parameter["schema"]["maxLength"]) == (
            1, MAX_CHARS)
    history = next(p for p in schema["paths"]["/api/ask/stream"]["get"]["parameters"]
                   if p["name"] == "history")
    assert history["content"]["application/json"]["schema"] == {
        "type": "array", "maxItems": 20, "items": {"$ref": "#/components/schemas/TurnIn"}}


def test_schema_describes_the_openai_responses(schema):
    chat = schema["paths"]["/v1/chat/completions"]["post"]
    content = chat["responses"]["200"]["content"]
    assert content["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChatCompletion"}
    assert "text/event-stream" in content
    messages = schema["components"]["schemas"]["ChatRequest"]["properties"]["messages"]
    assert messages["contains"]["properties"]["role"] == {"const": "user"}
    models = schema["paths"]["/v1/models"]["get"]["responses"]["200"]["content"]
    assert models["application/json"]["schema"] == {"$ref": "#/components/schemas/ModelList"}


def test_a_real_chat_completion_matches_its_schema(server, schema):
    response = server.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "Where do Moscow and Tehran disagree on Assad?"}]})
    assert response.status_code == 200
    body = response.json()
    required = schema["components"]["schemas"]["ChatCompletion"]["required"]
    assert set(required) <= set(body)
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    content = body["choices"][0]["message"]["content"]
    assert body["citations"] and "\n\nSources:\n" in content
    for citation in body["citations"]:
        assert set(citation) >= {"n", "doc_id", "quote", "start", "end"}
        assert " ".join(citation["quote"].split()) in content
