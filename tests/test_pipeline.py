"""Question -> answer with a replayed model: verification, fallback, abstention, follow-ups."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from index.errors import UserError
from qa.backends.base import BackendError, ReplayGenerator
from index.chunking import normalize_for_search
from qa.citations import speaks_for_the_source
from qa.contracts import Turn
from qa.abstain import SENTENCES_CHECKED
from qa.extractive import nested_quotation, rank_evidence
from qa.prompt import fit_prompt

from conftest import make_assistant
from judges import ClaimsOnlyJudge, WordAnswerability

pytestmark = pytest.mark.both_stores  # each test over the index runs on FAISS and Milvus Lite
QUESTION = "Where do Moscow and Tehran disagree on Assad?"


def quotes_resolve(answer) -> None:
    for citation in answer.citations:
        text = Path(citation.source).read_text(encoding="utf-8")
        assert text[citation.start:citation.end] == citation.quote
        assert citation.passage_start <= citation.start < citation.end <= citation.passage_end
        assert 1 <= citation.n <= len(answer.passages)


def distinct_spans(passages) -> bool:
    """No two passages of one document overlap (neighbours are merged before the model)."""
    spans = sorted((h.doc_id, h.start, h.end) for h in passages)
    return all(a[0] != b[0] or a[2] < b[1] for a, b in zip(spans, spans[1:]))


def passage_number(answer, needle: str) -> int:
    return next(i for i, h in enumerate(answer.passages, 1) if needle in " ".join(h.text.split()))


def status_quo_passage(replay_assistant) -> int:
    """Number of the shown passage that says Iran stands for the status quo."""
    probe = replay_assistant("", abstain_threshold=-1).ask(QUESTION)
    return passage_number(probe, "Iran stands for maintaining the current status quo")


def test_supported_sentence_is_kept_with_its_quote(replay_assistant):
    n = status_quo_passage(replay_assistant)
    reply = (f"Iran stands for maintaining the current status quo while Russia does not rule out "
             f"a coalition government [{n}].")
    answer = replay_assistant(reply, abstain_threshold=-1).ask(QUESTION)
    assert answer.mode == "model" and not answer.abstained
    assert answer.sentences[0].text == reply and answer.answer.startswith(reply)
    assert n in [c.n for c in answer.citations]
    own = next(c for c in answer.citations if c.n == n)
    assert "Iran stands for maintaining the current status quo" in own.quote
    # The model's sentence is followed by at most one quote from another passage.
    assert len(answer.sentences) <= 2
    if len(answer.sentences) == 2:
        assert answer.sentences[1].text.startswith("The documents say: “")
    quotes_resolve(answer)


def test_a_sentence_copied_from_its_source_is_shown_as_its_quote(replay_assistant):
    """The source's whole sentence restated word for word is the source speaking, not the
    assistant; the partial restatement above stays the model's own sentence."""
    n = status_quo_passage(replay_assistant)
    source = ("Iran stands for maintaining the current status quo while Russia does not rule out "
              "a creation of a coalition government representing the interests of different "
              "Syrian ethnic and religious groups.")
    for copy in (source, source.replace(" different", "")):  # a word or two aside
        answer = replay_assistant(f"{copy[:-1]} [{n}].", abstain_threshold=-1).ask(QUESTION)
        assert answer.mode == "model", answer.notes
        assert answer.sentences[0].text == f"“{source}” [{n}]"
        quotes_resolve(answer)


def test_swapped_actors_and_invalid_markers_never_reach_the_user(replay_assistant):
    n = status_quo_passage(replay_assistant)
    reply = (f"Russia stands for maintaining the current status quo while Iran supports a "
             f"coalition government [{n}]. Assad will win the war [42].")
    answer = replay_assistant(reply, abstain_threshold=-1).ask(QUESTION)
    assert "Russia stands for" not in answer.answer
    assert "[42]" not in answer.answer
    assert answer.mode == "extractive"  # nothing the model wrote held up
    # Each quote is shown as quoted evidence: its words, footnote marks dropped, inner
    # quotation marks made single.
    assert answer.citations and all(
        nested_quotation(normalize_for_search(c.quote)) in answer.answer
        for c in answer.citations)
    assert any("pointed at no passage" in note for note in answer.notes)
    quotes_resolve(answer)


def test_a_failed_draft_is_repaired_from_the_best_evidence_before_quotes(replay_assistant):
    probe = replay_assistant("", abstain_threshold=-1)
    best = rank_evidence(QUESTION, probe.passages_for(QUESTION), probe.score_sentences)[0]
    restated = f"{normalize_for_search(best.sentence.text).rstrip('.')} [{best.n}]."
    assistant = replay_assistant(["Assad will win the war [1].", restated], abstain_threshold=-1)
    answer = assistant.ask(QUESTION)
    assert answer.mode == "repaired" and not answer.abstained
    second = assistant.generator.prompts[1]
    assert f"[{best.n}] {normalize_for_search(best.sentence.text)}" in second.user
    assert answer.sentences[0].supported and answer.sentences[0].citations == (best.n,)
    assert "Assad will win the war" not in answer.answer
    assert any(note.startswith("second draft:") for note in answer.notes)
    quotes_resolve(answer)


def test_a_draft_from_the_evidence_sees_only_the_best_sentences_and_is_not_repaired(
        replay_assistant):
    probe = replay_assistant("", abstain_threshold=-1)
    hits = probe.passages_for(QUESTION)
    ranked = rank_evidence(QUESTION, hits, probe.score_sentences)
    best = ranked[0]
    restated = f"{normalize_for_search(best.sentence.text).rstrip('.')} [{best.n}]."
    assistant = replay_assistant(restated, abstain_threshold=-1, draft_from="evidence")
    answer = assistant.ask(QUESTION)
    assert answer.mode == "model" and answer.sentences[0].citations == (best.n,)
    [prompt] = assistant.generator.prompts
    assert f"[{best.n}] {normalize_for_search(best.sentence.text)}" in prompt.user
    # Only the best few sentences, not the passages: a sentence ranked lower is not shown.
    assert normalize_for_search(ranked[-1].sentence.text) not in prompt.user
    assert len(prompt.user) < sum(len(h.text) for h in hits) / 2
    quotes_resolve(answer)

    failing = replay_assistant("Assad will win the war [1].", abstain_threshold=-1,
                               draft_from="evidence")
    fallback = failing.ask(QUESTION)
    assert fallback.mode == "extractive" and len(failing.generator.prompts) == 1


def test_a_comparison_drafted_from_the_evidence_hears_each_document(replay_assistant):
    question = "How do the documents differ on the future of Assad?"
    assistant = replay_assistant("Nothing here holds up [1].", abstain_threshold=-1,
                                 draft_from="evidence")
    answer = assistant.ask(question)
    [prompt] = assistant.generator.prompts
    numbers = [int(n) for n in re.findall(r"^\[(\d+)\]", prompt.user, re.MULTILINE)]
    shown = {hit.doc_id for hit in answer.passages}
    assert len(numbers) == 3
    assert len({answer.passages[n - 1].doc_id for n in numbers}) == min(3, len(shown))


def test_uncited_but_supported_sentence_gets_a_citation(replay_assistant):
    reply = "Iran stands for maintaining the current status quo."
    answer = replay_assistant(reply, abstain_threshold=-1).ask(QUESTION)
    assert answer.mode == "model"
    assert answer.sentences[0].citations and len(answer.sentences[0].citations) == 1
    own = next(c for c in answer.citations if c.n == answer.sentences[0].citations[0])
    assert "Iran stands for maintaining" in own.quote


def test_a_bare_answer_leads_the_quote_that_holds_it(replay_assistant):
    """A draft that is only a name ("Lavrov [4].") is no claim a judge can check; shown as the
    lead of the evidence sentence that contains it word for word, that sentence quoted first."""
    question = "Who said 'Assad is not our ally'?"
    answer = replay_assistant("Lavrov [4].", abstain_threshold=-1,
                              judge=ClaimsOnlyJudge()).ask(question)
    assert answer.mode == "extractive" and answer.sentences[0].claim == "Lavrov"
    [quote] = answer.sentences[0].quotes
    assert answer.answer.startswith(f"Lavrov [{quote.n}]. The documents say: “")
    assert "Lavrov" in quote.quote and quote in answer.citations
    assert sum(quote.quote in c.quote for c in answer.citations) == 1  # shown once
    quotes_resolve(answer)
    # A name no evidence sentence holds, or one the question already gives, leads nothing.
    for draft in ("Medvedev [4].", "Assad [4]."):
        other = replay_assistant(draft, abstain_threshold=-1,
                                 judge=ClaimsOnlyJudge()).ask(question)
        assert other.mode == "extractive" and other.answer.startswith("The documents say: “")


def test_bare_answers_are_names_numbers_or_dates_the_question_asks_for():
    from qa.extractive import bare_answer

    assert bare_answer("Ana Lindqvist [2].", "Who opened the bridge?") == "Ana Lindqvist"
    assert bare_answer("40 km [1]. It is long.", "How long is the bridge?") == "40 km"
    assert bare_answer("[3] 12 May 2019.", "When did the bridge open?") == "12 May 2019"
    assert bare_answer("Lindqvist [2].", "Why did Lindqvist open the bridge?") == ""  # open
    assert bare_answer("Lindqvist [2].", "Who did Lindqvist thank?") == ""  # the question's name
    assert bare_answer("The mayor opened it [1].", "Who opened the bridge?") == ""  # no name
    assert bare_answer("Lindqvist opened the new bridge [1].", "Who opened it?") == ""  # a clause


def test_a_bare_figure_keeps_the_qualifier_its_source_puts_before_it(replay_assistant):
    question = "How far is the Middle Eastern battleground from the Russian borders?"
    answer = replay_assistant("700 km [2].", abstain_threshold=-1,
                              judge=ClaimsOnlyJudge()).ask(question)
    assert answer.sentences[0].claim == "approximately 700 km"
    assert answer.answer.startswith("Approximately 700 km [")  # the answer's first word
    assert "approximately 700 km" in answer.sentences[0].quotes[0].quote
    assert any("bare answer “approximately 700 km”" in note for note in answer.notes)
    from qa.extractive import _qualified_phrase

    assert _qualified_phrase("It took more than 40 days.", "40 days") == "more than 40 days"
    assert _qualified_phrase("Moreover 40 days passed.", "40 days") == "40 days"
    assert _qualified_phrase("It took 140 days.", "40 days") == ""


def test_abstains_with_closest_passages(replay_assistant):
    answer = replay_assistant("Paris.", abstain_threshold=2.0).ask(QUESTION)
    assert answer.abstained and answer.mode == "abstained"
    assert "don't say" in answer.answer
    assert 1 <= len(answer.passages) <= 5 and distinct_spans(answer.passages)
    assert not answer.citations


def test_abstains_when_no_evidence_sentence_answers(replay_assistant):
    answer = replay_assistant("Mercenaries fought [1].", abstain_threshold=-1,
                              answerability=WordAnswerability()).ask(
        "Who commanded the mercenary battalions hired by Moscow?")
    assert answer.abstained and answer.mode == "abstained" and not answer.citations
    assert any("no retrieved sentence answers the question" in note for note in answer.notes)


def test_a_word_missing_from_the_corpus_is_no_reason_to_refuse(replay_assistant):
    """A name missing from the corpus never refuses: without an answerability judge only the
    similarity floor can, and the answer is then verified as usual."""
    assistant = replay_assistant("", abstain_threshold=-1)
    question = "What does the Russian Navy gain from the Tartus facility in Syria?"
    assert "navy" not in assistant.retriever.store.known_terms(["navy"])
    assert not assistant.ask(question).abstained


def test_backend_failure_returns_passages_and_a_one_line_error(hashing_seed_index,
                                                              hashing_embedder):
    broken = ReplayGenerator(fail_with="Ollama is not reachable at http://127.0.0.1:9: start it "
                                       "or set QA_OLLAMA_HOST")
    assistant = make_assistant(hashing_seed_index, hashing_embedder, broken, abstain_threshold=-1)
    events = list(assistant.stream(QUESTION))
    kinds = [e.kind for e in events]
    assert kinds[0] == "passages" and "error" in kinds and kinds[-1] == "done"
    answer = events[-1].data
    assert "QA_OLLAMA_HOST" in answer.error and "\n" not in answer.error
    assert 1 <= len(answer.passages) <= 5 and distinct_spans(answer.passages)
    quotes_resolve(answer)


def test_stream_order_and_tokens(replay_assistant):
    events = list(replay_assistant("Iran wants Assad to stay [1].", abstain_threshold=-1)
                  .stream(QUESTION))
    kinds = [e.kind for e in events]
    assert kinds[0] == "passages" and kinds[-1] == "done"
    tokens = "".join(e.data for e in events if e.kind == "token")
    assert tokens == "Iran wants Assad to stay [1]."
    assert events[-1].data.timings["first_token_ms"] is not None


def test_follow_up_is_rewritten_and_shown(replay_assistant):
    assistant = replay_assistant("", abstain_threshold=-1)
    history = [Turn(QUESTION, QUESTION, "Iran insists on Assad [1].")]
    events = list(assistant.stream("And what about Israel?", history))
    assert events[0].kind == "rewrite"
    assert events[0].data == "Where do Moscow and Tehran disagree on Assad — And what about Israel?"
    answer = events[-1].data
    assert answer.standalone_question == events[0].data
    assert any("Israel" in h.text for h in answer.passages)
    # A self-contained question is left alone.
    assert assistant.ask("Why does the Tartus facility matter to Russia?", history
                         ).standalone_question == "Why does the Tartus facility matter to Russia?"


def test_context_budget_drops_lowest_ranked_passages(replay_assistant):
    assistant = replay_assistant("", abstain_threshold=-1)
    hits = assistant.retriever.search(QUESTION, 5)
    small = ReplayGenerator("", context_window=700)
    fitted = fit_prompt(QUESTION, hits, small, max_answer_tokens=200)
    assert 0 < fitted.dropped < 5
    assert fitted.hits == tuple(hits[: 5 - fitted.dropped])
    assert fitted.prompt_tokens + 200 <= 700
    with pytest.raises(BackendError, match="QA_CONTEXT_WINDOW"):
        fit_prompt(QUESTION, hits, ReplayGenerator("", context_window=150), 200)


def replay_like_passages(assistant):
    return tuple(assistant.passages_for(QUESTION))


def test_dropped_passages_are_reported_in_the_answer(hashing_seed_index, hashing_embedder):
    assistant = make_assistant(hashing_seed_index, hashing_embedder,
                               ReplayGenerator("", context_window=700), abstain_threshold=-1)
    answer = assistant.ask(QUESTION)
    assert answer.dropped_passages > 0
    merged = replay_like_passages(assistant)
    assert answer.passages == merged[:len(merged) - answer.dropped_passages]
    assert any("left out to fit" in note for note in answer.notes)


@pytest.mark.parametrize("question", ["", "   ", "x" * 3000])
def test_bad_questions_raise_user_errors(replay_assistant, question):
    with pytest.raises(UserError):
        replay_assistant("").ask(question)


def test_sentence_leaning_on_a_removed_one_goes_too(replay_assistant):
    n = status_quo_passage(replay_assistant)
    reply = (f"The moon base decided everything in 1999 [{n}]. This shows that Iran stands for "
             f"maintaining the current status quo [{n}].")
    answer = replay_assistant(reply, abstain_threshold=-1).ask(QUESTION)
    assert "moon base" not in answer.answer and "This shows" not in answer.answer
    assert any("2 sentences not supported" in note for note in answer.notes)


def test_overlapping_passages_are_merged_into_one_span():
    from qa.contracts import Hit
    from qa.overlap import merge_overlapping

    doc = "Alpha one. Beta two. Gamma three. Delta four. Epsilon five."

    def hit(rank, start, end, doc_id="d"):
        return Hit(rank, 1.0 / rank, doc_id, "T", "d.txt", start, end, doc[start:end])

    merged = merge_overlapping([hit(1, 11, 33), hit(2, 0, 20), hit(3, 46, 59), hit(4, 30, 47),
                                hit(5, 0, 10, "other")])
    assert [(h.rank, h.start, h.end) for h in merged] == [(1, 0, 59), (5, 0, 10)]
    assert merged[0].text == doc and merged[0].score == 1.0
    apart = merge_overlapping([hit(1, 0, 10), hit(2, 21, 33)])
    assert [(h.start, h.end) for h in apart] == [(0, 10), (21, 33)]


def test_by_document_view_gives_each_document_a_quote_or_says_it_does_not_address_it(
        replay_assistant):
    from qa.by_document import NOT_ADDRESSED

    n = status_quo_passage(replay_assistant)
    assistant = replay_assistant(f"Iran stands for maintaining the current status quo [{n}].",
                                 abstain_threshold=-1)
    answer = assistant.ask(QUESTION)
    views = assistant.by_document(answer, depth=3)
    documents = {r.doc_id for r in assistant.retriever.store.list_documents()}
    assert {v.doc_id for v in views} == documents and len(views) == len(documents)
    addressed = [v for v in views if v.addressed]
    assert 1 <= len(addressed) <= 3  # only documents with a passage among the 3 best
    assert all(not v.addressed for v in views[len(addressed):])  # unaddressed ones come last
    for view in views:
        if not view.addressed:
            assert view.statement == NOT_ADDRESSED and view.citation is None
            continue
        text = Path(view.citation.source).read_text(encoding="utf-8")
        assert text[view.citation.start:view.citation.end] == view.citation.quote
    from_answer = [v for v in views if v.source == "answer"]
    assert [v.statement for v in from_answer] == [
        "Iran stands for maintaining the current status quo."]


def test_by_document_with_a_judge_asks_each_document_whatever_its_rank(replay_assistant):
    from qa.by_document import NOT_ADDRESSED

    probe = replay_assistant("", abstain_threshold=-1)
    pool = probe.retriever.search(QUESTION, probe.settings.candidates,
                                  probe.settings.retrieval_mode)
    last = list(dict.fromkeys(h.doc_id for h in pool))[-1]
    own = [h for h in pool if h.doc_id == last][:2]
    assert pool.index(own[0]) >= 3  # far below the depth the rank rule would accept
    sentence = rank_evidence(QUESTION, own, probe.score_sentences)[1].sentence.text
    # The judge finds only that one sentence of that one document answers the question.
    assistant = replay_assistant("Nothing here holds up [1].", abstain_threshold=-1,
                                 repair=False, answerability=ListedAnswers(sentence))
    views = {v.doc_id: v for v in assistant.by_document(assistant.ask(QUESTION), depth=3)}
    assert views[last].addressed and views[last].source == "quote"
    assert " ".join(views[last].citation.quote.split()) == " ".join(sentence.split())
    others = [v for doc_id, v in views.items() if doc_id != last]
    assert others and all(not v.addressed and v.statement == NOT_ADDRESSED for v in others)


def test_comparison_questions_get_passages_from_several_documents(replay_assistant):
    from qa.diversify import is_comparison, round_robin

    assert is_comparison(QUESTION) and is_comparison("How do the documents differ on this?")
    assert not is_comparison("Who said 'Assad is not our ally'?")
    assistant = replay_assistant("", abstain_threshold=-1)
    pool = assistant.retriever.search(QUESTION, 15)
    spread = round_robin(pool, 5)
    docs_in_pool = list(dict.fromkeys(h.doc_id for h in pool))
    assert {h.doc_id for h in spread} == set(docs_in_pool[:5])  # one per document first
    assert [h.rank for h in spread] == [1, 2, 3, 4, 5]
    answer = assistant.ask(QUESTION)
    assert len({h.doc_id for h in answer.passages}) >= min(3, len(docs_in_pool))


def test_quotes_for_a_comparison_question_come_from_each_document_first(replay_assistant):
    assistant = replay_assistant("Nothing here holds up [1].", abstain_threshold=-1, repair=False)
    answer = assistant.ask("How do the documents differ on the future of Assad?")
    assert answer.mode == "extractive"
    quoted = [answer.passages[c.n - 1].doc_id for c in answer.citations]
    shown = {hit.doc_id for hit in answer.passages}
    assert len(quoted) == 3 and len(set(c.n for c in answer.citations)) == 3
    assert len(set(quoted)) == min(3, len(shown))  # no document twice while another is unquoted
    quotes_resolve(answer)


def test_a_model_answer_is_its_supported_sentences_only(replay_assistant):
    """No quote is appended to the model's own sentences (they were padding, see _verified)."""
    probe = replay_assistant("", abstain_threshold=-1)
    ranked = rank_evidence(QUESTION, probe.passages_for(QUESTION), probe.score_sentences)
    best = ranked[0]
    reply = f"{' '.join(best.sentence.text.split())} [{best.n}]"
    answer = replay_assistant(reply, abstain_threshold=-1,
                              answerability=WordAnswerability()).ask(QUESTION)
    assert answer.mode == "model" and len(answer.sentences) == 1
    assert answer.sentences[0].citations == (best.n,) and "The documents say" not in answer.answer
    assert [c.n for c in answer.citations] == [best.n]
    quotes_resolve(answer)


class ListedAnswers:
    """An answerability judge that says yes to the listed sentences only."""

    name = "listed"
    threshold = 0.5

    def __init__(self, *texts: str) -> None:
        self.texts = {" ".join(t.split()) for t in texts}

    def answer_scores(self, question: str, texts) -> list[float]:
        return [1.0 if " ".join(t.split()) in self.texts else 0.0 for t in texts]


def test_each_named_source_keeps_its_best_quote_whatever_the_judge(replay_assistant):
    """Asked to compare two named sources, the reader gets a quote from each, even when the
    answerability judge accepts only one document's sentence."""
    question = "Do South Front and Kozhanov agree on the future of Assad?"
    probe = replay_assistant("", abstain_threshold=-1)
    hits = probe.passages_for(question)
    best = rank_evidence(question, hits, probe.score_sentences)[0]
    check = ListedAnswers(best.sentence.text)  # the judge accepts the best sentence only
    answer = replay_assistant("Nothing here holds up [1].", abstain_threshold=-1,
                              answerability=check).ask(question)
    assert answer.mode == "extractive"
    named = {h.doc_id for h in hits}
    assert len(named) == 2 and {c.doc_id for c in answer.citations} == named
    assert len(answer.citations) == 2  # one quote each: the rest still has to answer
    quotes_resolve(answer)


def test_quotes_after_the_best_one_are_kept_only_when_they_answer(replay_assistant):
    question = "Which side insists on maintaining Assad, and which is more flexible?"
    plain = replay_assistant("Nothing here holds up [1].", abstain_threshold=-1,
                             repair=False).ask(question)
    quotes = {c.n: c.quote for c in plain.citations}
    check = WordAnswerability()
    scores = dict(zip(quotes, check.answer_scores(question, list(quotes.values()))))
    # Only the quotes sharing the most question words count as answering here.
    check.threshold = max(scores.values())
    assert min(scores.values()) < check.threshold
    checked = replay_assistant("Nothing here holds up [1].", abstain_threshold=-1, repair=False,
                               answerability=check).ask(question)
    assert plain.mode == checked.mode == "extractive"
    kept = [c.n for c in checked.citations]
    assert set(kept) <= set(quotes) and len(kept) < len(quotes)  # padding was dropped
    # The best quote stays whatever its score (the judge misses answers a reader sees, and the
    # answer needs one quote); every other kept quote answers, none that does goes.
    assert len([n for n in kept if scores[n] < check.threshold]) <= 1
    assert all(n in kept for n in quotes if scores[n] >= check.threshold)
    quotes_resolve(checked)


def test_a_question_naming_its_sources_gets_passages_from_them_only(replay_assistant):
    assistant = replay_assistant("", abstain_threshold=-1)
    by_author = {r.meta.get("author"): r.doc_id
                 for r in assistant.retriever.store.list_documents()}
    kozhanov, front = by_author["Nikolay A. Kozhanov"], by_author["South Front"]

    answer = assistant.ask("What does Kozhanov say about the future of Assad?")
    assert answer.passages and {h.doc_id for h in answer.passages} == {kozhanov}
    assert any(note.startswith("passages only from the documents the question names")
               for note in answer.notes)

    both = assistant.passages_for("Do South Front and Kozhanov agree on the future of Assad?")
    assert {h.doc_id for h in both} == {kozhanov, front}
    assert [h.rank for h in both] == list(range(1, len(both) + 1))

    unnamed = assistant.passages_for("What is the future of Assad?")
    assert len({h.doc_id for h in unnamed}) > 1  # no name, no filter


def test_a_named_source_is_searched_for_its_topic_not_its_name(replay_assistant):
    # A passage seldom names its own author: the name chooses the documents, and the rest of
    # the question ranks their passages and sentences.
    assistant = replay_assistant("", abstain_threshold=-1)
    question = "Do South Front and Kozhanov agree on the future of Assad?"
    assert assistant.topic(question) == "Do and agree on the future of Assad?"
    sentences = ["Kozhanov writes about many things.", "The future of Assad is open."]
    assert (assistant.score_sentences(question, sentences)
            == assistant.score_sentences(assistant.topic(question), sentences))
    assert (assistant.score_sentences(question, sentences)
            != assistant.score_sentences(question.replace("Kozhanov", "Kozhanova"), sentences))


PLAN = """Harbour plan

The harbour board met on Monday to review the year. Members discussed the budget, the state of the \
old quay and the complaints of the fishermen about the narrow channel. The chair thanked the staff \
for a difficult season.

For the coming year the board set the following goals:

- dredging the northern channel to a depth of six metres before the autumn storms arrive;
- rebuilding the old quay with stone from the local quarry and new iron mooring rings;
- opening a covered fish market beside the ferry terminal for the winter months.

The board will meet again in spring to review progress on each of these goals.
"""


def test_a_passage_ending_on_a_list_introduction_comes_with_its_list(tmp_path, hashing_embedder,
                                                                      store_kind):
    from conftest import index_into, write_corpus
    from index.chunking import ChunkingParams
    from qa.overlap import with_list_bodies

    corpus = write_corpus(tmp_path / "corpus", {"plan.txt": PLAN})
    data = tmp_path / "data"
    # Small passages, so one boundary falls between the introduction and its list.
    index_into([corpus], data, hashing_embedder, store_kind, params=ChunkingParams(60, 0))
    assistant = make_assistant(data, hashing_embedder, ReplayGenerator(""),
                               abstain_threshold=-1, top_k=1, vector_store=store_kind)
    store = assistant.retriever.store
    [record] = store.list_documents()
    passages = [p for _, p in store.passages_of(record.doc_id)]
    intro = next(p for p in passages if p.text.rstrip().endswith("following goals:"))
    assert "dredging" not in intro.text

    hits = assistant.passages_for("What goals did the harbour board set for the coming year?")
    assert len(hits) == 1 and hits[0].start <= intro.start
    text = store.document_text(record.doc_id)
    assert hits[0].text == text[hits[0].start:hits[0].end]
    assert "dredging the northern channel" in hits[0].text
    assert "fish market" in hits[0].text  # the whole list, not its first line
    # A passage that does not end on an introduction is left as it is.
    last = assistant.retriever.search("meet again in spring to review progress", 1, "bm25")
    assert not last[0].text.rstrip().endswith(":") and with_list_bodies(last, store) == last


def test_a_sentence_about_what_its_document_covers_is_not_evidence():
    from qa.contracts import Hit

    about = "This article explores the harbour budget and the state of the old quay."
    doc = about + " The board spent most of the harbour budget on dredging the northern channel."
    hit = Hit(1, 1.0, "d", "Harbour report", "d.txt", 0, len(doc), doc)
    ranked = rank_evidence("What does the article say about the harbour budget?", [hit], None)
    assert [e.sentence.text.split()[0] for e in ranked] == ["The"]
    only_about = Hit(1, 1.0, "d", "Harbour report", "d.txt", 0, len(about), about)
    assert rank_evidence("What about the harbour budget?", [only_about], None) == []


def test_quoted_evidence_shows_quotation_marks_that_pair_up():
    said = "“The bridge is not our priority, frankly,” the mayor said."
    assert nested_quotation(said) == "‘The bridge is not our priority, frankly,’ the mayor said."
    assert nested_quotation("“The whole sentence is one quotation.”") == (
        "The whole sentence is one quotation.")
    assert nested_quotation('He called it a "temporary" measure.') == (
        "He called it a 'temporary' measure.")
    assert nested_quotation("No marks at all.") == "No marks at all."


class AskedAnswers(ListedAnswers):
    """ListedAnswers that records every sentence it is asked about."""

    def __init__(self, *texts: str) -> None:
        super().__init__(*texts)
        self.asked: list[str] = []

    def answer_scores(self, question: str, texts) -> list[float]:
        self.asked.extend(" ".join(t.split()) for t in texts)
        return super().answer_scores(question, texts)


def test_abstention_stops_asking_once_a_sentence_answers(replay_assistant):
    """Before the model writes, the judge is asked about the best sentences one at a time and no
    further than the first that answers; calibration still asks about all of them."""
    probe = replay_assistant("", abstain_threshold=-1)
    ranked = rank_evidence(QUESTION, probe.passages_for(QUESTION), probe.score_sentences)
    checked = [" ".join(e.sentence.text.split()) for e in ranked[:SENTENCES_CHECKED]]
    assert len(checked) == SENTENCES_CHECKED

    first_answers = AskedAnswers(checked[0])
    assistant = replay_assistant("", abstain_threshold=-1, answerability=first_answers)
    events = assistant.stream(QUESTION)
    assert next(events).kind == "passages"  # the decision is made before the model runs
    assert first_answers.asked == checked[:1]

    second_answers = AskedAnswers(checked[1])
    events = replay_assistant("", abstain_threshold=-1, answerability=second_answers).stream(
        QUESTION)
    assert next(events).kind == "passages" and second_answers.asked == checked[:2]

    none_answers = AskedAnswers()
    answer = replay_assistant("", abstain_threshold=-1, answerability=none_answers).ask(QUESTION)
    assert answer.abstained and none_answers.asked == checked

    measured = AskedAnswers(checked[0])
    signal = replay_assistant("", abstain_threshold=-1,
                              answerability=measured).measure_evidence(QUESTION)
    assert measured.asked == checked and signal.best_answer_score == 1.0


def test_the_sentence_judged_to_answer_is_sent_before_the_draft(replay_assistant):
    """While the model writes, the reader gets verified words: the evidence sentence the
    abstention check judged to answer, as a citation that opens the exact source span."""
    probe = replay_assistant("", abstain_threshold=-1)
    ranked = rank_evidence(QUESTION, probe.passages_for(QUESTION), probe.score_sentences)
    answering = ranked[1].sentence.text  # the best sentence is judged not to answer
    events = list(replay_assistant("Iran wants Assad to stay [1].", abstain_threshold=-1,
                                   answerability=ListedAnswers(answering)).stream(QUESTION))
    kinds = [e.kind for e in events]
    assert kinds[:3] == ["passages", "evidence", "token"] and kinds.count("evidence") == 1
    early = events[1].data
    answer = events[-1].data
    assert " ".join(early.quote.split()) == " ".join(answering.split())
    assert answer.passages[early.n - 1].doc_id == early.doc_id
    quotes_resolve(replace(answer, citations=(early,)))
    timings = answer.timings
    assert timings["retrieval_ms"] <= timings["first_verified_ms"] < timings["total_ms"]

    # Nothing judged to answer: no early quote (here the assistant abstains), and without an
    # answerability judge there is no judged sentence to send; the answer's time is then the
    # first verified text's.
    refused = list(replay_assistant("", abstain_threshold=-1,
                                    answerability=ListedAnswers()).stream(QUESTION))
    unjudged = list(replay_assistant("Iran wants Assad to stay [1].", abstain_threshold=-1)
                    .stream(QUESTION))
    for stream in (refused, unjudged):
        assert "evidence" not in [e.kind for e in stream]
        timings = stream[-1].data.timings
        assert timings["first_verified_ms"] == timings["total_ms"]


def test_warm_up_loads_the_model_and_asks_each_judge_once(hashing_seed_index, hashing_embedder):
    from judges import StrictWordJudge

    class RecordingJudge(StrictWordJudge):
        def __init__(self) -> None:
            self.asked = []

        def judge(self, claims):
            self.asked.extend(claims)
            return super().judge(claims)

    made, judge, answers = [], RecordingJudge(), AskedAnswers()

    def generator():
        made.append(1)
        return ReplayGenerator("")

    assistant = make_assistant(hashing_seed_index, hashing_embedder, generator, judge=judge,
                               answerability=answers, abstain_threshold=-1)
    assert not made and not judge.asked and not answers.asked  # nothing loads until asked
    assistant.warm_up()
    assert made == [1] and len(judge.asked) == 1 and len(answers.asked) == 1

    def broken():
        raise BackendError("the model server is down")

    failing = make_assistant(hashing_seed_index, hashing_embedder, broken, abstain_threshold=-1)
    failing.warm_up()  # a broken backend is left for the first question to report
    with pytest.raises(BackendError):
        failing.generator  # noqa: B018


def test_a_sentence_in_its_sources_voice_is_shown_as_its_quote(replay_assistant):
    """The model copying "We try to …" would otherwise speak as the assistant."""
    question = "What did Zarif tell The New Yorker about coordinating with Russia?"
    probe = replay_assistant("", abstain_threshold=-1).ask(question)
    n = passage_number(probe, "We try to coordinate regularly with Russia")
    reply = f"We try to coordinate regularly with Russia, as well as with others [{n}]."
    answer = replay_assistant(reply, abstain_threshold=-1).ask(question)
    assert answer.mode == "model"
    first = answer.sentences[0]
    # The source's sentence in quotation marks (here with the minister it quotes), not the
    # model's unquoted copy.
    assert first.text.startswith("“") and first.text.endswith(f"” [{n}]")
    assert "We try to coordinate regularly with Russia" in first.text
    assert first.citations == (n,) and "We try to coordinate" in first.quotes[0].quote
    quotes_resolve(answer)
    # Citing a second passage as well, it is still shown as the quote that holds its words.
    other = 1 if n != 1 else 2
    both = replay_assistant(reply.replace(f"[{n}]", f"[{other}] [{n}]"),
                            abstain_threshold=-1).ask(question).sentences[0]
    assert both.text.startswith("“") and both.citations == (n,)


def test_first_person_words_the_model_quotes_and_attributes_are_its_own():
    assert speaks_for_the_source("Our modelling shows the risk fell.")
    assert speaks_for_the_source("The levy would cost us more.")
    assert not speaks_for_the_source('Zarif said: "We try to coordinate with Russia."')
    assert not speaks_for_the_source("Zarif said: “We try to coordinate with Russia.”")
    assert not speaks_for_the_source("Lavrov said Assad is not our ally.")
    assert speaks_for_the_source("We support the Syrian state.")
    assert not speaks_for_the_source("The US and Iran disagree.")
