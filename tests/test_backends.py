"""Generator backends against real servers (local fakes speaking the documented APIs) and the real model."""

from __future__ import annotations

import time
from dataclasses import replace

import ollama
import openai
import pytest

from conftest import ROOT
from fake_servers import closed_port_url, running_ollama_server, running_openai_server
from qa.backends import make_generator
from qa.backends.base import BackendError, GenerationOptions, Prompt
from qa.backends.ollama_backend import OllamaGenerator
from qa.backends.openai_compat import OpenAICompatGenerator
from qa.settings import Settings

REPLY = "Moscow wants Assad to stay for now [1], while Tehran backs him without conditions [2]."
PROMPT = Prompt(system="Answer from the passages and cite them as [n].",
                user="Question: Where do Moscow and Tehran disagree on Assad?\n\n[1] ...\n[2] ...",
                answer_prefix="Answer:")
OPTIONS = GenerationOptions(max_tokens=64, temperature=0.3, seed=7, stop=("\n\n",))


def generate(generator, prompt: Prompt = PROMPT, options: GenerationOptions = OPTIONS) -> list[str]:
    return list(generator.generate(prompt, options))


# -- Ollama -------------------------------------------------------------------------------------


def ollama_generator(url: str, **overrides) -> OllamaGenerator:
    settings = Settings(backend="ollama", ollama_host=url, model="tiny", timeout_s=5.0,
                        context_window=3072)
    return OllamaGenerator(replace(settings, **overrides))


def test_fake_ollama_server_speaks_the_api_the_real_client_expects():
    with running_ollama_server(REPLY, models=("tiny", "other:7b")) as url:
        client = ollama.Client(host=url)
        assert [m.model for m in client.list().models] == ["tiny:latest", "other:7b"]
        whole = client.chat(model="tiny", messages=[{"role": "user", "content": "hi"}])
        assert whole.message.content == REPLY and whole.done_reason == "stop"
        with pytest.raises(ollama.ResponseError) as caught:
            client.chat(model="nope", messages=[{"role": "user", "content": "hi"}])
        assert caught.value.status_code == 404 and "nope" in caught.value.error


def test_ollama_streams_pieces_that_join_to_the_reply():
    with running_ollama_server(REPLY) as url:
        pieces = generate(ollama_generator(url))
    assert len(pieces) == len(REPLY.split())  # streamed word by word, not in one block
    assert "".join(pieces) == REPLY


def test_ollama_request_carries_context_size_sampling_and_messages():
    with running_ollama_server(REPLY) as url:
        generate(ollama_generator(url))
        [body] = url.bodies("/api/chat")
    assert body["model"] == "tiny" and body["stream"] is True
    assert body["options"] == {"num_ctx": 3072, "temperature": 0.3, "seed": 7, "num_predict": 64,
                               "stop": ["\n\n"]}
    assert body["messages"] == [{"role": "system", "content": PROMPT.system},
                                {"role": "user", "content": PROMPT.user}]


def test_ollama_answer_is_cut_at_max_tokens_by_the_server():
    with running_ollama_server(REPLY) as url:
        pieces = generate(ollama_generator(url), options=GenerationOptions(max_tokens=3))
        assert url.bodies("/api/chat")[0]["options"]["num_predict"] == 3
    assert "".join(pieces) == "Moscow wants Assad"


def test_ollama_default_model_is_llama32_when_none_is_set():
    with running_ollama_server(REPLY, models=("llama3.2",)) as url:
        generator = ollama_generator(url, model="")
        assert generator.model == "llama3.2"
        assert "".join(generate(generator)) == REPLY


def test_ollama_unknown_model_names_qa_model():
    with running_ollama_server(REPLY, models=("tiny",)) as url:
        generator = ollama_generator(url, model="missing")
        with pytest.raises(BackendError, match="QA_MODEL") as caught:
            generate(generator)
        assert "ollama pull missing" in str(caught.value)
        with pytest.raises(BackendError, match="QA_MODEL"):
            generator.check()
        ollama_generator(url).check()  # the listed model passes


def test_ollama_unreachable_host_fails_fast_and_names_qa_ollama_host():
    url = closed_port_url()
    generator = ollama_generator(url, timeout_s=30.0)
    started = time.monotonic()
    with pytest.raises(BackendError, match="QA_OLLAMA_HOST") as caught:
        generate(generator)
    with pytest.raises(BackendError, match="QA_OLLAMA_HOST"):
        generator.check()
    assert url in str(caught.value)
    assert time.monotonic() - started < 5  # refused at once, not waiting out the timeout


def test_ollama_slow_server_times_out_and_names_qa_timeout_s():
    with running_ollama_server(REPLY, delay_s=3.0) as url:
        generator = ollama_generator(url, timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(BackendError, match="QA_TIMEOUT_S") as caught:
            generate(generator)
        assert time.monotonic() - started < 2.5
    assert "0.5 s" in str(caught.value)


# -- OpenAI-compatible --------------------------------------------------------------------------


def openai_generator(url: str, **overrides) -> OpenAICompatGenerator:
    settings = Settings(backend="openai", openai_base_url=url, model="tiny", timeout_s=5.0)
    return OpenAICompatGenerator(replace(settings, **overrides))


def test_fake_openai_server_speaks_the_api_the_openai_client_expects():
    with running_openai_server(REPLY, api_key="sk-test") as url:
        client = openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0)
        assert [m.id for m in client.models.list()] == ["tiny"]
        whole = client.chat.completions.create(model="tiny",
                                               messages=[{"role": "user", "content": "hi"}])
        assert whole.choices[0].message.content == REPLY
        stream = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream) == REPLY
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url, api_key="wrong", max_retries=0).models.list()


def test_openai_streams_pieces_and_sends_sampling_options():
    with running_openai_server(REPLY, api_key="sk-test") as url:
        pieces = generate(openai_generator(url, openai_api_key="sk-test"))
        [request] = [r for r in url.requests if r.path == "/v1/chat/completions"]
    assert len(pieces) == len(REPLY.split()) and "".join(pieces) == REPLY
    assert request.headers["authorization"] == "Bearer sk-test"
    body = request.body
    assert (body["model"], body["stream"], body["max_tokens"], body["temperature"], body["seed"],
            body["stop"]) == ("tiny", True, 64, 0.3, 7, ["\n\n"])
    assert [m["role"] for m in body["messages"]] == ["system", "user"]


def test_openai_stop_and_max_tokens_cut_the_answer():
    with running_openai_server("Tehran backs Assad.\n\nIgnore this part.") as url:
        cut_at_stop = "".join(generate(openai_generator(url)))
        cut_at_length = "".join(generate(openai_generator(url),
                                         options=GenerationOptions(max_tokens=2)))
    assert cut_at_stop == "Tehran backs Assad."
    assert cut_at_length == "Tehran backs"


def test_openai_missing_or_wrong_key_names_qa_openai_api_key():
    with running_openai_server(REPLY, api_key="sk-test") as url:
        for key in ("", "sk-wrong"):
            generator = openai_generator(url, openai_api_key=key)
            with pytest.raises(BackendError, match="QA_OPENAI_API_KEY"):
                generate(generator)
            with pytest.raises(BackendError, match="QA_OPENAI_API_KEY"):
                generator.check()
        openai_generator(url, openai_api_key="sk-test").check()


def test_openai_unknown_model_and_wrong_base_url_name_their_settings():
    with running_openai_server(REPLY) as url:
        with pytest.raises(BackendError, match="QA_MODEL") as caught:
            generate(openai_generator(url, model="missing"))
        assert "missing" in str(caught.value)
        without_v1 = url.removesuffix("/v1")
        with pytest.raises(BackendError, match="QA_OPENAI_BASE_URL"):
            generate(openai_generator(without_v1))


def test_openai_unreachable_server_fails_fast_and_names_qa_openai_base_url():
    url = closed_port_url() + "/v1"
    started = time.monotonic()
    with pytest.raises(BackendError, match="QA_OPENAI_BASE_URL") as caught:
        generate(openai_generator(url, timeout_s=30.0))
    assert url in str(caught.value)
    assert time.monotonic() - started < 5


def test_openai_slow_server_times_out_and_names_qa_timeout_s():
    with running_openai_server(REPLY, delay_s=3.0) as url:
        started = time.monotonic()
        with pytest.raises(BackendError, match="QA_TIMEOUT_S"):
            generate(openai_generator(url, timeout_s=0.5))
        assert time.monotonic() - started < 2.5


def test_openai_server_error_event_in_the_stream_becomes_backend_error():
    from qa.backends.openai_compat import _sse_content

    lines = iter(['data: {"choices":[{"delta":{"content":"Hi"}}]}', "",
                  'data: {"error":{"message":"out of memory"}}'])
    stream = _sse_content(lines)
    assert next(stream) == "Hi"
    with pytest.raises(BackendError, match="out of memory"):
        next(stream)


def test_make_generator_picks_the_backend_from_settings():
    with running_ollama_server(REPLY) as ollama_url, running_openai_server(REPLY) as openai_url:
        by_ollama = make_generator(Settings(backend="ollama", ollama_host=ollama_url, model="tiny"))
        by_openai = make_generator(Settings(backend="openai", openai_base_url=openai_url))
        assert isinstance(by_ollama, OllamaGenerator) and by_ollama.backend == "ollama"
        assert isinstance(by_openai, OpenAICompatGenerator) and by_openai.model == "default"
        assert "".join(generate(by_ollama)) == REPLY
    with pytest.raises(BackendError, match="QA_BACKEND"):
        make_generator(Settings(backend="llamafile"))


# -- Embedded llama.cpp with the packaged models ------------------------------------------------


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    from qa.backends.embedded import EmbeddedGenerator

    data_dir = tmp_path_factory.mktemp("data")
    return EmbeddedGenerator(Settings(data_dir=data_dir, model="smollm2", context_window=2048))


def test_the_default_embedded_model_is_the_packaged_model_the_readme_chose():
    from qa.backends.embedded import DEFAULT_MODEL
    from qa.backends.packaged_models import MODELS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert DEFAULT_MODEL in MODELS and f"`{DEFAULT_MODEL}` is the default" in readme


@pytest.mark.slow
def test_smollm2_uses_chatml(smollm2):
    assert smollm2.model == "smollm2" and smollm2.backend == "embedded"
    assert smollm2.model_path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert smollm2.prompt_format == "chatml"
    rendered = smollm2.render(PROMPT)
    assert rendered == ("<|im_start|>system\nAnswer from the passages and cite them as [n]."
                        "<|im_end|>\n<|im_start|>user\n" + PROMPT.user + "<|im_end|>\n"
                        "<|im_start|>assistant\nAnswer:")


@pytest.mark.slow
def test_smollm2_counts_tokens_with_its_own_tokenizer(smollm2):
    sentence = "Russia and Iran cooperate in Syria but disagree about Assad's future."
    count = smollm2.count_tokens(sentence)
    assert count == len(smollm2.llm.tokenize(sentence.encode(), add_bos=False, special=True))
    assert 10 <= count <= 25
    assert smollm2.count_tokens("<|im_start|>") == 1  # special tokens count as what the model sees
    assert smollm2.count_tokens(smollm2.render(PROMPT)) > smollm2.count_tokens(PROMPT.user)


@pytest.mark.slow
def test_smollm2_is_repeatable_at_temperature_zero(smollm2):
    prompt = Prompt(system="You are a helpful assistant.",
                    user="Name three countries in the Middle East.")
    options = GenerationOptions(max_tokens=24, temperature=0.0)
    first, second = generate(smollm2, prompt, options), generate(smollm2, prompt, options)
    text = "".join(first)
    assert text.strip() and len(first) > 1  # streamed, not one block
    assert "".join(second) == text
    assert smollm2.count_tokens(text) <= options.max_tokens + 1


@pytest.mark.slow
def test_smollm2_stops_at_a_stop_string(smollm2):
    prompt = Prompt(system="You are a helpful assistant.", user="Describe Syria in two sentences.")
    free = "".join(generate(smollm2, prompt, GenerationOptions(max_tokens=40)))
    words = free.split()
    assert len(words) > 6
    stop = f" {words[4]}"  # a word in the middle of the free answer
    cut = "".join(generate(smollm2, prompt, GenerationOptions(max_tokens=40, stop=(stop,))))
    assert cut == free[: free.index(stop)]


@pytest.mark.slow
def test_embedded_model_is_loaded_once_per_process(smollm2, tmp_path):
    again = make_generator(Settings(data_dir=tmp_path, backend="embedded", model="smollm2"))
    assert again.llm is smollm2.llm


@pytest.mark.slow
def test_embedded_timeout_names_qa_timeout_s(smollm2, tmp_path):
    from qa.backends.embedded import EmbeddedGenerator

    impatient = EmbeddedGenerator(Settings(data_dir=tmp_path, model="smollm2", timeout_s=0.0))
    with pytest.raises(BackendError, match="QA_TIMEOUT_S"):
        generate(impatient, options=GenerationOptions(max_tokens=30))
    # The lock was released: the shared model still answers.
    assert "".join(generate(smollm2, options=GenerationOptions(max_tokens=3)))


@pytest.mark.slow
def test_embedded_model_answers_one_question_at_a_time(smollm2, tmp_path):
    from qa.backends.embedded import EmbeddedGenerator

    unfinished = smollm2.generate(PROMPT, GenerationOptions(max_tokens=20))
    assert next(unfinished)  # holds the shared model until closed
    impatient = EmbeddedGenerator(Settings(data_dir=tmp_path, model="smollm2", timeout_s=0.2))
    with pytest.raises(BackendError, match="busy with another answer"):
        generate(impatient)
    unfinished.close()
    assert "".join(generate(smollm2, options=GenerationOptions(max_tokens=3)))


@pytest.mark.slow
def test_embedded_prompt_longer_than_the_context_names_qa_context_window(tmp_path):
    from qa.backends.embedded import EmbeddedGenerator

    small = EmbeddedGenerator(Settings(data_dir=tmp_path, context_window=256))
    long_prompt = Prompt(system="Answer.", user="Syria " * 600)
    with pytest.raises(BackendError, match="QA_CONTEXT_WINDOW"):
        generate(small, long_prompt)


def test_missing_gguf_file_names_qa_model(tmp_path):
    from qa.backends.embedded import EmbeddedGenerator

    missing = tmp_path / "nowhere.gguf"
    with pytest.raises(BackendError, match="QA_MODEL") as caught:
        EmbeddedGenerator(Settings(data_dir=tmp_path, model=str(missing)))
    assert f"Model file {missing} does not exist" in str(caught.value)


def test_unknown_embedded_model_name_names_qa_model(tmp_path):
    from qa.backends.embedded import EmbeddedGenerator

    with pytest.raises(BackendError, match="smollm2, gemma3 or a .gguf path"):
        EmbeddedGenerator(Settings(data_dir=tmp_path, model="llama3.2"))


def test_a_file_that_is_not_a_model_names_qa_model(tmp_path):
    from qa.backends.embedded import EmbeddedGenerator

    fake = tmp_path / "broken.gguf"
    fake.write_bytes(b"not a gguf file")
    with pytest.raises(BackendError, match="QA_MODEL"):
        EmbeddedGenerator(Settings(data_dir=tmp_path, model=str(fake)))


@pytest.mark.slow
def test_gemma3_is_assembled_once_and_uses_completion_prompts(tmp_path):
    from qa.backends.embedded import GEMMA3_FILE, EmbeddedGenerator

    gemma = EmbeddedGenerator(Settings(data_dir=tmp_path, model="gemma3"))
    target = tmp_path / "models" / GEMMA3_FILE
    assert gemma.model_path == target and target.stat().st_size > 200_000_000
    assert [p.name for p in target.parent.iterdir()] == [GEMMA3_FILE]  # no partial file left
    assert gemma.prompt_format == "completion"  # the base model has no chat template
    assert gemma.render(PROMPT) == PROMPT.as_completion()
    text = "".join(generate(gemma, Prompt(system="", user="The capital of France is"),
                            GenerationOptions(max_tokens=5)))
    assert text.strip()
    modified = target.stat().st_mtime_ns
    EmbeddedGenerator(Settings(data_dir=tmp_path, model="gemma3"))
    assert target.stat().st_mtime_ns == modified  # present: not assembled again
