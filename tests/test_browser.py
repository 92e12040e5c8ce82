"""The pages in headless Chromium against a real uvicorn server (screenshots in test-artifacts/)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright import sync_api
from conftest import ROOT, make_assistant, live_server

from index.build import build_index
from qa.backends.base import ReplayGenerator
from qa.citations import passage_sentences
from qa.settings import Settings
from web.app import create_app


pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
ARTIFACTS = ROOT / "test-artifacts"
QUESTION = "Where do Moscow and Tehran disagree on Assad?"
ANSWER_TIMEOUT_MS = 300_000  # the real model on 2 busy cores can take minutes


def squash(text: str) -> str:
    return " ".join(text.split())




@pytest.fixture(scope="module")
def chromium_browser():
    if not Path(CHROMIUM).exists():
        # Never skipped: the browser tests are part of the suite; scripts/setup.sh installs it.
        pytest.fail(f"{CHROMIUM} is not installed: run bash scripts/setup.sh "
                    f"(it installs Debian's chromium)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


JS_ERRORS: dict[int, list[str]] = {}  # uncaught script errors, per browser context


def js_errors(page) -> list[str]:
    return JS_ERRORS[id(page.context)]


@pytest.fixture
def page_at(chromium_browser):
    """Factory: a fresh page (own context) with a given viewport; closed after the test."""
    contexts = []

    def open_page(width: int = 1280, height: int = 900, **options):
        context = chromium_browser.new_context(viewport={"width": width, "height": height},
                                               **options)
        contexts.append(context)
        errors = JS_ERRORS.setdefault(id(context), [])
        context.on("weberror", lambda error: errors.append(str(error.error)))
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def shot(page, name: str, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def ask(page, question: str) -> None:
    """Type a question, press Enter, and wait until its turn has finished."""
    box = page.get_by_label(re.compile("Ask a question"))
    box.fill(question)
    box.press("Enter")
    page.wait_for_selector("#conversation .turn:first-child[aria-busy=false]",
                           timeout=ANSWER_TIMEOUT_MS)


def latest(page):
    return page.locator("#conversation .turn").first


def supported_reply(assistant, question: str = QUESTION) -> str:
    hit = assistant.retriever.search(question, assistant.settings.top_k,
                                     assistant.settings.retrieval_mode)[0]
    sentence = next(" ".join(s.text.split()) for s in passage_sentences(hit)
                    if len(s.text.split()) >= 8)
    return f"{sentence.rstrip('.')} [1]. The moon is made of green cheese [2]."


def open_citation(page, link):
    """Click a citation link (it opens a new tab) and return the document page."""
    with page.context.expect_page() as opened:
        link.click()
    document = opened.value
    document.wait_for_load_state("load")
    return document


@pytest.mark.slow
def test_real_pipeline_answer_cites_and_opens_the_highlighted_quote(
        page_at, real_seed_index, real_embedder):
    from qa.backends import make_generator

    settings = Settings(data_dir=real_seed_index)
    assistant = make_assistant(real_seed_index, real_embedder, lambda: make_generator(settings))
    store = assistant.retriever.store
    with live_server(create_app(settings, assistant)) as url:
        page = page_at()
        page.goto(url + "/")
        ask(page, QUESTION)
        turn = latest(page)
        shot(page, "browser-real-answer")
        assert turn.locator(".turn-error").is_hidden(), turn.locator(".turn-error").inner_text()
        answer = turn.locator(".answer").inner_text()
        assert len(answer.split()) >= 5
        citations = turn.locator(".answer a.cite")
        assert citations.count() >= 1
        assert turn.locator(".source-list li").count() >= 1
        first = citations.first
        href = first.get_attribute("href")
        doc_id, start, end = re.match(r"/documents/([^?]+)\?start=(\d+)&end=(\d+)", href).groups()
        quote = store.document_text(doc_id)[int(start):int(end)]
        assert squash(first.get_attribute("title")) == squash(quote)
        document = open_citation(page, first)
        mark = document.locator("mark#quote")
        sync_api.expect(mark).to_have_count(1)
        assert squash(mark.inner_text()) == squash(quote)
        sync_api.expect(mark).to_be_in_viewport()
        shot(document, "browser-real-document", full_page=False)
        assert js_errors(page) == []


XSS_DOC = ("Grain report\n\nThe ministry said <script>window.__xss=1</script> the grain export "
           "talks failed in spring.\nOfficials added <img src=x onerror=\"window.__xss=2\"> that "
           "grain exports would resume in summer.\n")
XSS_QUESTION = "When did <script>window.__xss=3</script> the grain export talks fail?"


def assert_no_injection(page) -> None:
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.locator("main img").count() == 0
    assert page.locator("main script").count() == 0


def test_markup_in_documents_questions_and_answers_stays_text(page_at, tmp_path,
                                                              hashing_embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "grain.txt").write_text(XSS_DOC, encoding="utf-8")
    (corpus / "metadata.json").write_text(json.dumps(
        {"grain.txt": {"title": "<img src=x onerror=\"window.__xss=4\"> Grain <b>report</b>"}}),
        encoding="utf-8")
    data = tmp_path / "data"
    build_index([corpus], data, hashing_embedder)
    reply = ("The ministry said <script>window.__xss=1</script> the grain export talks failed "
             "in spring [1].")
    assistant = make_assistant(data, hashing_embedder, ReplayGenerator(reply),
                               abstain_threshold=-1.0)
    with live_server(create_app(assistant.settings, assistant)) as url:
        page = page_at()
        page.goto(url + "/")
        ask(page, XSS_QUESTION)
        turn = latest(page)
        shot(page, "browser-xss-answer")
        assert_no_injection(page)
        assert turn.locator(".turn-question").inner_text() == XSS_QUESTION
        assert "<script>window.__xss=1</script>" in turn.locator(".answer").inner_text()
        assert "<script>window.__xss=1</script>" in turn.locator(".source-quote").first.inner_text()
        assert "Grain <b>report</b>" in turn.locator(".source-head a").first.inner_text()
        document = open_citation(page, turn.locator(".answer a.cite").first)
        assert_no_injection(document)
        text = document.locator("#doc-text").inner_text()
        assert "<script>window.__xss=1</script>" in text
        assert '<img src=x onerror="window.__xss=2">' in text
        assert "window.__xss=4" in document.locator("h1").inner_text()
        shot(document, "browser-xss-document")
        document.goto(url + "/documents")
        assert_no_injection(document)
        assert "Grain <b>report</b>" in document.locator("table").inner_text()
        assert js_errors(page) == []


def test_abstention_is_clear_and_shows_the_closest_passages(page_at, replay_assistant):
    assistant = replay_assistant("Anything at all [1].", abstain_threshold=2.0)
    with live_server(create_app(assistant.settings, assistant)) as url:
        page = page_at()
        page.goto(url + "/")
        ask(page, "What is the airspeed of an unladen swallow?")
        turn = latest(page)
        shot(page, "browser-abstained")
        abstain = turn.locator(".abstain")
        sync_api.expect(abstain).to_be_visible()
        assert "The documents don't say" in abstain.inner_text()
        passages = turn.locator(".passage-list li")
        sync_api.expect(passages.first).to_be_visible()
        shown = passages.count()  # up to 5; overlapping neighbours are merged into one
        assert 1 <= shown <= 5
        assert turn.locator(".passages-summary").text_content() == f"Closest passages ({shown})"
        assert turn.locator(".answer a.cite").count() == 0
        assert turn.locator(".answer-block").is_hidden()


def test_backend_failure_shows_the_error_and_the_passages(page_at, hashing_seed_index,
                                                          hashing_embedder):
    failing = ReplayGenerator(fail_with="Cannot reach Ollama at 127.0.0.1:11434: is it running?")
    assistant = make_assistant(hashing_seed_index, hashing_embedder, failing,
                               abstain_threshold=0.0)
    with live_server(create_app(assistant.settings, assistant)) as url:
        page = page_at()
        page.goto(url + "/")
        ask(page, QUESTION)
        turn = latest(page)
        shot(page, "browser-backend-error")
        error = turn.locator(".turn-error")
        sync_api.expect(error).to_be_visible()
        assert "Cannot reach Ollama" in error.inner_text()
        sync_api.expect(turn.locator(".passage-list li").first).to_be_visible()
        assert 1 <= turn.locator(".passage-list li").count() <= 5
        assert turn.locator(".answer a.cite").count() >= 1  # answered from the passages
        ask(page, "Who said Assad is not our ally?")  # the page and server keep working
        assert page.locator("#conversation .turn").count() == 2
        assert "Cannot reach Ollama" in latest(page).locator(".turn-error").inner_text()


def test_follow_up_shows_the_rewritten_question_and_copy_includes_sources(
        page_at, replay_assistant):
    probe = replay_assistant("", abstain_threshold=0.0)
    assistant = replay_assistant(supported_reply(probe), abstain_threshold=0.0)
    with live_server(create_app(assistant.settings, assistant)) as url:
        page = page_at(permissions=["clipboard-read", "clipboard-write"])
        page.goto(url + "/")
        ask(page, QUESTION)
        first = latest(page)
        assert first.locator(".rewrite").is_hidden()
        assert "green cheese" not in first.locator(".answer").inner_text()
        assert "removed" in first.locator(".notes").inner_text()
        first.locator(".copy-button").click()
        sync_api.expect(first.locator(".copy-status")).to_have_text("Copied answer and sources.")
        copied = page.evaluate("navigator.clipboard.readText()")
        answer = first.locator(".answer").inner_text()
        assert copied.startswith(squash(answer)[:40])
        assert "\n\nSources:\n[1] " in copied and "\u201c" in copied
        ask(page, "What about Israel?")
        rewrite = latest(page).locator(".rewrite")
        sync_api.expect(rewrite).to_be_visible()
        assert "Where do Moscow and Tehran disagree on Assad — What about Israel?" in \
            rewrite.inner_text()
        shot(page, "browser-follow-up")


def test_phone_width_has_no_horizontal_overflow(page_at, replay_assistant):
    probe = replay_assistant("", abstain_threshold=0.0)
    assistant = replay_assistant(supported_reply(probe), abstain_threshold=0.0)
    overflow = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    with live_server(create_app(assistant.settings, assistant)) as url:
        page = page_at(390, 844, is_mobile=True, has_touch=True, device_scale_factor=2)
        page.goto(url + "/")
        assert page.evaluate(overflow) == 0
        ask(page, QUESTION)
        latest(page).locator(".passages-details summary").click()  # widest content open
        assert page.evaluate("window.innerWidth") == 390
        assert page.evaluate(overflow) == 0
        shot(page, "browser-phone-answer")
        document = open_citation(page, latest(page).locator(".answer a.cite").first)
        assert document.evaluate(overflow) == 0
        sync_api.expect(document.locator("mark#quote")).to_be_in_viewport()
        shot(document, "browser-phone-document", full_page=False)
        document.goto(url + "/documents")
        assert document.evaluate(overflow) == 0
        shot(document, "browser-phone-documents")
        for selector in ("#question", "#ask-button"):
            box = page.locator(selector).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390


def test_keyboard_focus_is_visible(page_at, replay_assistant):
    assistant = replay_assistant("", abstain_threshold=0.0)
    with live_server(create_app(assistant.settings, assistant)) as url:
        page = page_at()
        page.goto(url + "/")
        page.keyboard.press("Tab")  # skip link
        assert page.evaluate("document.activeElement.className") == "skip-link"
        for _ in range(8):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "question":
                break
        assert page.evaluate("document.activeElement.id") == "question"
        ring = page.evaluate("getComputedStyle(document.activeElement).boxShadow")
        assert ring and ring != "none"
        page.keyboard.press("Enter")  # an empty question is refused on the page itself
        sync_api.expect(page.locator("#form-error")).to_have_text("Type a question first.")
        assert page.locator("#conversation .turn").count() == 0




def test_a_question_in_the_address_is_asked_on_load(page_at, replay_assistant):
    assistant = replay_assistant("", abstain_threshold=2.0)
    with live_server(create_app(assistant.settings, assistant)) as url:
        page = page_at()
        page.goto(url + "/?q=" + "What%20is%20the%20capital%20of%20Peru%3F")
        page.wait_for_selector("#conversation .turn[aria-busy=false]")
        assert latest(page).locator(".turn-question").inner_text() == \
            "What is the capital of Peru?"
        sync_api.expect(latest(page).locator(".abstain")).to_be_visible()


def test_server_down_is_a_clear_message(page_at, replay_assistant):
    assistant = replay_assistant("", abstain_threshold=0.0)
    page = page_at()
    with live_server(create_app(assistant.settings, assistant)) as url:
        page.goto(url + "/")
    ask(page, QUESTION)  # the server has stopped
    error = latest(page).locator(".turn-error")
    sync_api.expect(error).to_be_visible()
    assert "The server did not answer" in error.inner_text()
    shot(page, "browser-server-down", full_page=False)
    sync_api.expect(page.locator("#ask-button")).to_be_enabled()
