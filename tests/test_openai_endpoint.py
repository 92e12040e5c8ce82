"""The OpenAI-compatible endpoint, driven by the official `openai` client against a real server."""

from __future__ import annotations

import openai
import pytest
from conftest import live_server

from qa.citations import passage_sentences
from web.app import create_app


QUESTION = "Where do Moscow and Tehran disagree on Assad?"




@pytest.fixture
def served(replay_assistant):
    """A real server whose model replays a sentence of passage 1 plus a made-up sentence. The
    copy is shown as the source's quotation, the made-up sentence not at all."""
    probe = replay_assistant("", abstain_threshold=0.0)
    hit = probe.retriever.search(QUESTION, probe.settings.top_k, probe.settings.retrieval_mode)[0]
    sentence = next(" ".join(s.text.split()) for s in passage_sentences(hit)
                    if len(s.text.split()) >= 8)
    assistant = replay_assistant(f"{sentence.rstrip('.')} [1]. Tehran plans a moon base [2].",
                                 abstain_threshold=0.0)
    with live_server(create_app(assistant.settings, assistant)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0,
                               timeout=60)
        yield client, assistant, sentence.rstrip(".")


def test_non_stream_returns_the_verified_answer_with_sources_and_citations(served):
    client, assistant, sentence = served
    completion = client.chat.completions.create(
        model="qa-cited", messages=[{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": QUESTION}])
    content = completion.choices[0].message.content
    assert completion.object == "chat.completion" and completion.model == "qa-cited"
    assert completion.choices[0].finish_reason == "stop"
    assert content.startswith(f"“{sentence}") and "moon base" not in content
    answer_part, sources = content.split("\n\nSources:\n")
    citations = completion.model_extra["citations"]
    assert citations[0]["n"] == 1 and len(citations) <= 2  # the model's own, plus one quote
    assert all(f'[{c["n"]}]' in answer_part for c in citations)
    store = assistant.retriever.store
    for citation in citations:
        assert citation["quote"] == store.document_text(citation["doc_id"])[
            citation["start"]:citation["end"]]
        quote = " ".join(citation["quote"].split())
        assert f'[{citation["n"]}] {citation["title"]} — "{quote}"' in sources.splitlines()
    assert "[1]" in answer_part


def test_stream_chunks_join_to_the_same_content(served):
    client, _, sentence = served
    messages = [{"role": "user", "content": QUESTION}]
    whole = client.chat.completions.create(model="qa-cited", messages=messages)
    chunks = list(client.chat.completions.create(model="qa-cited", messages=messages,
                                                 stream=True))
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [chunk.choices[0].delta.content or "" for chunk in chunks]
    assert len([p for p in pieces if p]) > 5  # streamed in small pieces, not one blob
    assert "".join(pieces) == whole.choices[0].message.content
    assert "".join(pieces).startswith(f"“{sentence}")
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["citations"] == whole.model_extra["citations"]


def test_models_list_offers_one_model(served):
    client, _, _ = served
    assert [model.id for model in client.models.list()] == ["qa-cited"]


def test_earlier_messages_become_history_for_follow_ups(served):
    client, assistant, _ = served
    client.chat.completions.create(model="qa-cited", messages=[
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "They differ on his future."},
        {"role": "user", "content": "What about Israel?"}])
    prompt = assistant.generator.prompts[-1]
    assert "Where do Moscow and Tehran disagree on Assad — What about Israel?" in prompt.user


def test_empty_question_is_a_bad_request(served):
    client, _, _ = served
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="qa-cited",
                                       messages=[{"role": "user", "content": "  "}])
    assert "question is empty" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="qa-cited",
                                       messages=[{"role": "system", "content": "Hi"}])
    assert "user message" in caught.value.message


def test_abstention_says_so_without_sources(replay_assistant):
    assistant = replay_assistant("Anything [1].", abstain_threshold=2.0)
    with live_server(create_app(assistant.settings, assistant)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        completion = client.chat.completions.create(
            model="qa-cited", messages=[{"role": "user", "content": QUESTION}])
    assert completion.choices[0].message.content.startswith("The documents don't say")
    assert "Sources:" not in completion.choices[0].message.content
    assert completion.model_extra["citations"] == []
