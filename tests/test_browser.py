"""The pages in headless Chromium against a real uvicorn server (screenshots in test-artifacts/)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright import sync_api
from conftest import ROOT, make_assistant, live_server, write_corpus

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
    from qa.judge import answer_judge

    settings = Settings(data_dir=real_seed_index)
    # The product's default generator, draft and judges (the helper pins the passage draft and a
    # word judge otherwise); the support judge's model also decides what answers the question.
    assistant = make_assistant(real_seed_index, real_embedder, lambda: make_generator(settings),
                               judge=answer_judge(settings), draft_from=settings.draft_from)
    store = assistant.retriever.store
    with live_server(create_app(settings, assistant)) as url:
        page = page_at()
        page.goto(url + "/")
        box = page.get_by_label(re.compile("Ask a question"))
        box.fill(QUESTION)
        box.press("Enter")
        # While the model writes, the source sentence judged to answer is shown, highlighted.
        early = page.locator("#conversation .turn:first-child .early-evidence")
        early.wait_for(state="visible", timeout=ANSWER_TIMEOUT_MS)
        shot(page, "browser-real-early-evidence")
        link = early.locator(".early-title a")
        doc_id, start, end = re.match(r"/documents/([^?]+)\?start=(\d+)&end=(\d+)",
                                      link.get_attribute("href")).groups()
        assert squash(early.locator("mark").inner_text()) == squash(
            store.document_text(doc_id)[int(start):int(end)])
        page.wait_for_selector("#conversation .turn:first-child[aria-busy=false]",
                               timeout=ANSWER_TIMEOUT_MS)
        turn = latest(page)
        assert early.is_hidden()  # the checked answer took its place
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
    corpus = write_corpus(tmp_path / "corpus", {"grain.txt": XSS_DOC, "metadata.json": json.dumps(
        {"grain.txt": {"title": "<img src=x onerror=\"window.__xss=4\"> Grain <b>report</b>"}})})
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


PIER_DOC = ("Pier report\n\nThe harbour board approved the new pier in March. The weather "
            "was mild that week. The city council paid for the dredging of the channel.\n")


def test_two_sentences_citing_one_passage_open_two_different_quotes(page_at, tmp_path,
                                                                     hashing_embedder):
    corpus = write_corpus(tmp_path / "corpus", {"pier.txt": PIER_DOC})
    data = tmp_path / "data"
    build_index([corpus], data, hashing_embedder)
    reply = ("The harbour board approved the new pier in March [1]. The city council paid for "
             "the dredging of the channel [1].")
    assistant = make_assistant(data, hashing_embedder, ReplayGenerator(reply),
                               abstain_threshold=-1.0)
    with live_server(create_app(assistant.settings, assistant)) as url:
        page = page_at()
        page.goto(url + "/")
        ask(page, "Who approved the pier and who paid for the dredging?")
        turn = latest(page)
        shot(page, "browser-two-quotes-one-passage")
        links = turn.locator(".answer a.cite")
        assert links.count() == 2
        titles = [squash(links.nth(i).get_attribute("title")) for i in range(2)]
        assert titles == ["The harbour board approved the new pier in March.",
                          "The city council paid for the dredging of the channel."]
        assert links.nth(0).get_attribute("href") != links.nth(1).get_attribute("href")
        assert turn.locator(".source-list li").count() == 2
        document = open_citation(page, links.nth(1))
        assert squash(document.locator("mark#quote").inner_text()) == titles[1]
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
        assert turn.locator(".passages-summary").text_content() == f"Related, but not an answer ({shown})"
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


HARBOUR_DOC = ("Harbour note\n\nThe harbour master of Port Veradel logged exactly 412 herring boats "
               "sheltering behind the basalt breakwater during the great gale of 1887.\n")
HARBOUR_SENTENCE = ("The harbour master of Port Veradel logged exactly 412 herring boats "
                    "sheltering behind the basalt breakwater during the great gale of 1887")
HARBOUR_QUESTION = "How many herring boats did the harbour master of Port Veradel log in the gale?"


def drop_files(page, files: dict[str, str]) -> None:
    """Drop text files on the drop zone the way a browser delivers a drag from the desktop."""
    page.evaluate("""(files) => {
        const transfer = new DataTransfer();
        for (const [name, text] of Object.entries(files)) {
            transfer.items.add(new File([text], name, {type: "text/plain"}));
        }
        const zone = document.getElementById("drop-zone");
        for (const type of ["dragenter", "dragover", "drop"]) {
            zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true,
                                                    cancelable: true}));
        }
    }""", files)


def cited_doc_ids(turn) -> list[str]:
    links = turn.locator(".answer a.cite")
    return [re.match(r"/documents/([^?]+)\?", links.nth(i).get_attribute("href")).group(1)
            for i in range(links.count())]


def test_upload_ask_cite_and_delete_through_the_page(page_at, tmp_path, seed_copy,
                                                     hashing_embedder):
    data = tmp_path / "data"  # its own index: the test adds and deletes documents
    build_index([seed_copy], data, hashing_embedder)
    reply = f"{HARBOUR_SENTENCE} [1]."
    assistant = make_assistant(data, hashing_embedder, ReplayGenerator(reply),
                               abstain_threshold=0.0)
    with live_server(create_app(assistant.settings, assistant)) as url:
        page = page_at()
        page.goto(url + "/documents")
        rows = page.locator("#doc-table tbody tr")
        assert rows.count() == 5
        sync_api.expect(page.locator("#drop-zone")).to_be_visible()
        shot(page, "browser-documents-drop-zone")

        drop_files(page, {"harbour.txt": HARBOUR_DOC})
        page.set_input_files("#file-input", files=[
            {"name": "menu.html", "mimeType": "text/html",
             "buffer": b"<html><body><nav><a href='/'>Home</a></nav></body></html>"},
            {"name": "scan.pdf", "mimeType": "application/pdf", "buffer": b"not a pdf at all"},
            {"name": "photo.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\n"}])
        items = page.locator("#upload-list .upload-item")
        sync_api.expect(items).to_have_count(4)
        finished = page.locator('#upload-list .upload-item:is([data-state="done"], '
                                '[data-state="error"])')
        sync_api.expect(finished).to_have_count(4, timeout=60_000)
        lines = {items.nth(i).locator(".upload-name").inner_text():
                 (items.nth(i).get_attribute("data-state"),
                  items.nth(i).locator(".upload-message").inner_text()) for i in range(4)}
        assert lines["harbour.txt"] == ("done", "Added as Harbour note · 1 passage")
        assert lines["menu.html"] == ("error", "Not added: no text left after cleaning (markup "
                                      "and boilerplate removed): nothing to index.")
        assert lines["scan.pdf"][0] == "error" and "not a PDF" in lines["scan.pdf"][1]
        assert lines["photo.png"] == ("error", "Not added: unsupported file type '.png': use "
                                      ".txt, .md, .html, .pdf or .docx.")
        assert all(items.nth(i).locator("progress").is_hidden() for i in range(4))
        new_row = page.locator('#doc-table tbody tr[data-doc-id="harbour"]')
        sync_api.expect(new_row).to_have_count(1)  # listed without a reload
        assert "Harbour note" in new_row.inner_text() and "is-new" in new_row.get_attribute("class")
        assert rows.count() == 6
        assert page.locator("#doc-count").inner_text().startswith("6 documents")
        shot(page, "browser-documents-uploaded")

        page.goto(url + "/")
        ask(page, HARBOUR_QUESTION)
        turn = latest(page)
        assert "412 herring boats" in turn.locator(".answer").inner_text()
        assert cited_doc_ids(turn)[0] == "harbour"
        document = open_citation(page, turn.locator(".answer a.cite").first)
        assert document.url.split("?")[0].endswith("/documents/harbour")
        mark = document.locator("mark#quote")
        sync_api.expect(mark).to_have_count(1)
        assert HARBOUR_SENTENCE in squash(mark.inner_text())
        sync_api.expect(mark).to_be_in_viewport()
        shot(document, "browser-uploaded-document", full_page=False)

        page.goto(url + "/documents")
        dialogs: list[str] = []

        def accept(dialog) -> None:
            dialogs.append(dialog.message)
            dialog.accept()

        page.once("dialog", accept)
        page.locator('tr[data-doc-id="harbour"] .delete-button').click()
        sync_api.expect(page.locator('tr[data-doc-id="harbour"]')).to_have_count(0)
        assert len(dialogs) == 1 and "Delete \u201cHarbour note\u201d?" in dialogs[0]
        sync_api.expect(page.locator("#doc-status")).to_have_text("Deleted \u201cHarbour note\u201d.")
        assert page.locator("#doc-count").inner_text().startswith("5 documents")
        page.reload()
        assert page.locator('tr[data-doc-id="harbour"]').count() == 0
        assert page.locator("#doc-table tbody tr").count() == 5

        page.goto(url + "/")
        ask(page, HARBOUR_QUESTION)
        turn = latest(page)
        assert "harbour" not in cited_doc_ids(turn)
        assert "412 herring boats" not in turn.locator(".answer").inner_text()
        assert js_errors(page) == []


def test_the_page_asks_for_the_token_once_and_keeps_it_for_the_tab(page_at, tmp_path, seed_copy,
                                                                   hashing_embedder):
    data = tmp_path / "data"
    build_index([seed_copy], data, hashing_embedder)
    assistant = make_assistant(data, hashing_embedder, ReplayGenerator(""),
                               api_token="quay-secret-55")
    with live_server(create_app(assistant.settings, assistant)) as url:
        page = page_at()
        page.goto(url + "/documents")
        prompts: list[str] = []

        def answer(dialog) -> None:
            prompts.append(dialog.message)
            dialog.accept("wrong-secret" if len(prompts) == 1 else "quay-secret-55")

        page.on("dialog", answer)
        drop_files(page, {"tide.txt": "Tide note\n\nThe Veradel tide gauge was moved in 1931.\n"})
        done = page.locator('#upload-list .upload-item[data-state="done"]')
        sync_api.expect(done).to_have_count(1, timeout=60_000)
        assert len(prompts) == 2  # the wrong token was refused and asked for again
        assert "Wrong token" in prompts[1] and "QA_API_TOKEN" in prompts[0]
        assert page.evaluate("sessionStorage.getItem('qa-api-token')") == "quay-secret-55"
        drop_files(page, {"mooring.txt": "Mooring note\n\nMoorings cost a shilling in 1902.\n"})
        sync_api.expect(done).to_have_count(2, timeout=60_000)
        page.locator('tr[data-doc-id="mooring"] .delete-button').click()  # confirm: accepted
        sync_api.expect(page.locator('tr[data-doc-id="mooring"]')).to_have_count(0)
        assert len(prompts) == 3 and prompts[2].startswith("Delete")  # no token prompt again
        page.remove_listener("dialog", answer)

        other = page_at()  # another tab has no token: a refused write says so on its line
        other.goto(url + "/documents")
        other.on("dialog", lambda dialog: dialog.dismiss())
        drop_files(other, {"pier.txt": "Pier note\n\nThe pier was lengthened in 1911.\n"})
        refused = other.locator('#upload-list .upload-item[data-state="error"]')
        sync_api.expect(refused).to_have_count(1, timeout=60_000)
        assert "needs its token (QA_API_TOKEN)" in refused.inner_text()
        shot(other, "browser-documents-token-refused", full_page=False)
        assert js_errors(page) == [] and js_errors(other) == []


def test_by_document_view_lists_every_document_and_opens_each_quote(page_at, replay_assistant):
    probe = replay_assistant("", abstain_threshold=0.0)
    assistant = replay_assistant(supported_reply(probe), abstain_threshold=0.0)
    store = assistant.retriever.store
    with live_server(create_app(assistant.settings, assistant)) as url:
        page = page_at()
        page.goto(url + "/")
        n_documents = len(page.request.get(url + "/api/documents").json()["documents"])
        assert n_documents >= 2
        box = page.get_by_label("By document")
        assert not box.is_checked()
        box.check()
        ask(page, QUESTION)
        turn = latest(page)
        section = turn.locator(".by-document")
        sync_api.expect(section).to_be_visible()
        assert section.locator("h3").inner_text().lower() == "by document"
        rows = section.locator(".by-document-list > li")
        assert rows.count() == n_documents
        titles = {d["doc_id"]: d["title"]
                  for d in page.request.get(url + "/api/documents").json()["documents"]}
        assert {rows.nth(i).get_attribute("data-doc-id") for i in range(n_documents)} == \
            set(titles)
        for i in range(n_documents):
            row = rows.nth(i)
            assert titles[row.get_attribute("data-doc-id")] in row.inner_text()
            if "not-addressed" in row.get_attribute("class"):
                statement = row.locator(".doc-view-statement")
                assert statement.inner_text() == "does not address it"
                assert "muted" in statement.get_attribute("class")
                assert row.locator("a").count() == 0
        addressed = section.locator(".doc-view.is-addressed")
        assert addressed.count() >= 2
        links = section.locator(".doc-view.is-addressed a")
        assert links.count() == addressed.count()
        # Sections in order: the view comes after the sources.
        assert page.evaluate("""() => {
            const turn = document.querySelector('#conversation .turn');
            const sources = turn.querySelector('.sources'), view = turn.querySelector('.by-document');
            return !!(sources.compareDocumentPosition(view) & Node.DOCUMENT_POSITION_FOLLOWING);
        }""")
        shot(page, "browser-by-document")
        for i in range(links.count()):
            href = links.nth(i).get_attribute("href")
            doc_id, start, end = re.match(r"/documents/([^?]+)\?start=(\d+)&end=(\d+)",
                                          href).groups()
            quote = store.document_text(doc_id)[int(start):int(end)]
            assert squash(links.nth(i).get_attribute("title")) == squash(quote)
        second = links.nth(1)
        quote = second.get_attribute("title")
        document = open_citation(page, second)
        mark = document.locator("mark#quote")
        sync_api.expect(mark).to_have_count(1)
        assert squash(mark.inner_text()) == squash(quote)
        sync_api.expect(mark).to_be_in_viewport()
        shot(document, "browser-by-document-quote", full_page=False)

        box.uncheck()
        ask(page, QUESTION)
        plain = latest(page)
        assert page.locator("#conversation .turn").count() == 2
        assert plain.locator(".by-document").is_hidden()
        assert plain.locator(".by-document-list > li").count() == 0
        sync_api.expect(plain.locator(".sources")).to_be_visible()
        assert js_errors(page) == []
