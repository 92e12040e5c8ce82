"""Each evaluation metric on hand-made Answers and Hits, against values worked out by hand."""

from __future__ import annotations

import pytest

from eval.metrics import (Entailment, abstention_scores, citation_scores, draft_markers,
                          judge_key_facts, key_fact_hits, latency_summary, normalise, percentile,
                          question_metrics, share, shown_invalid_markers, summarise)
from eval.questions import Evidence, Question
from eval.retrieval import GoldSpan
from qa.backends.base import ReplayGenerator
from qa.citations import verify
from qa.contracts import Answer, AnswerSentence, Citation, Hit

from judges import StrictWordJudge

AIR = "Russia supplied air power while Iran provided ground forces in Syria."
WEATHER = "In Moscow the weather was cold during the winter months."


def hit(n: int, text: str, source: str = "doc.txt", start: int = 0) -> Hit:
    return Hit(rank=n, score=1.0 / n, doc_id=f"d{n}", title="T", source=source, start=start,
               end=start + len(text), text=text)


def entails() -> Entailment:
    return Entailment(StrictWordJudge())


def answer(sentences=(), passages=(), text="", notes=(), citations=(), abstained=False,
           timings=None, draft="", invalid=0) -> Answer:
    return Answer(question="q", standalone_question="q", answer=text, abstained=abstained,
                  citations=tuple(citations), passages=tuple(passages), backend="replay",
                  model="replay", timings=timings or {"retrieval_ms": 1.0, "first_token_ms": 2.0,
                                                      "total_ms": 3.0},
                  mode="abstained" if abstained else "model", sentences=tuple(sentences),
                  notes=tuple(notes), draft=draft, invalid_markers=invalid)


def cite(n: int, passage: Hit) -> Citation:
    return Citation(n=n, doc_id=passage.doc_id, title="T", source=passage.source,
                    start=passage.start, end=passage.end, quote=passage.text,
                    passage_start=passage.start, passage_end=passage.end)


# --- key facts -------------------------------------------------------------------------------

def test_normalise_folds_case_quotes_dashes_and_whitespace():
    text = "  “Assad’s\u00a0ALLY”\n—  Lavrov – ok "
    assert normalise(text) == "\"assad's ally\"-lavrov-ok"


def test_key_facts_match_across_curly_quotes_dashes_case_and_markers():
    facts = ["“Assad is not our ally”", "marriage of convenience",
             "Sergei Lavrov—Foreign Minister", "Tartus"]
    text = ('Lavrov said "Assad is [2] not our ally" [1]. It is a Marriage  of\nconvenience. '
            "Sergei Lavrov – foreign minister.")
    assert key_fact_hits(facts, text) == [True, True, True, False]
    assert share(key_fact_hits(facts, text)) == 0.75


def test_key_fact_is_a_substring_not_a_word_match():
    # "Kurd" counts inside "Kurds"; "Assad" does not count for "al-Assad regime" when absent.
    assert key_fact_hits(["Kurd", "Assad regime"], "The Kurds want a federation.") == [True, False]


def test_abstention_scores_zero_key_facts_even_when_the_text_names_them():
    question = Question("q", "What do the documents say?", True, key_facts=("documents",))
    abstained = answer(text="The documents don't say.", abstained=True)
    values = question_metrics(question, abstained, [], [], entails())
    assert values["key_facts_found"] == [False]
    assert values["key_fact_coverage"] == 0.0


def test_judge_asks_once_per_fact_and_reads_yes():
    generator = ReplayGenerator(["Yes.", "no", " yes, it does"])
    verdicts = judge_key_facts(generator, "Who said it?", ["Lavrov", "Putin", "Russia"],
                               "Lavrov said it [1].")
    assert verdicts == [True, False, True]
    assert len(generator.prompts) == 3
    assert "Fact: Putin" in generator.prompts[1].user
    assert "[1]" not in generator.prompts[0].user


# --- citations (ALCE) ----------------------------------------------------------------------

def test_entailment_judge_uses_the_concatenation_of_passages():
    claim = "Russia supplied air power and Moscow weather was cold."
    # 4 of 7 content stems in the first passage, 3 of 7 in the second, all 7 in both.
    judge = entails()
    assert not judge([hit(1, AIR)], claim)
    assert not judge([hit(2, WEATHER)], claim)
    assert judge([hit(1, AIR), hit(2, WEATHER)], claim)
    assert not judge([], claim)


def test_citation_precision_when_one_of_two_citations_is_irrelevant():
    passages = [hit(1, AIR), hit(2, WEATHER)]
    sentences = [AnswerSentence("Russia supplied air power in Syria [1][2].", (1, 2), True)]
    scores = citation_scores(answer(sentences, passages), entails())
    assert (scores.statements, scores.entailed, scores.citations, scores.relevant) == (1, 1, 2, 1)
    assert scores.recall == 1.0
    assert scores.precision == 0.5
    assert scores.unsupported == 0


def test_citations_needed_jointly_are_both_relevant():
    passages = [hit(1, AIR), hit(2, WEATHER)]
    sentences = [AnswerSentence("Russia supplied air power and Moscow weather was cold [1][2].",
                                (1, 2), True)]
    scores = citation_scores(answer(sentences, passages), entails())
    assert (scores.entailed, scores.relevant, scores.citations) == (1, 2, 2)
    # Jointly supported, but no single citation supports it on its own.
    assert scores.unsupported == 1


def test_unentailed_and_uncited_sentences_lower_recall_and_precision():
    passages = [hit(1, AIR), hit(2, WEATHER)]
    sentences = [AnswerSentence("Russia supplied air power in Syria [1][2].", (1, 2), True),
                 AnswerSentence("Iran provided ground forces in Syria [2].", (2,), True),
                 AnswerSentence("Iran provided ground forces.", (), True)]
    scores = citation_scores(answer(sentences, passages), entails())
    assert scores.statements == 3
    assert scores.entailed == 1
    assert scores.recall == pytest.approx(1 / 3)
    assert scores.citations == 3
    assert scores.relevant == 1
    assert scores.precision == pytest.approx(1 / 3)
    assert scores.unsupported == 2


def test_answer_without_citations_has_precision_zero_and_abstention_none():
    passages = [hit(1, AIR)]
    uncited = citation_scores(answer([AnswerSentence("Russia supplied air power.", (), True)],
                                     passages), entails())
    assert (uncited.recall, uncited.precision) == (0.0, 0.0)
    empty = citation_scores(answer(abstained=True), entails())
    assert (empty.recall, empty.precision) == (None, None)


def test_swapped_actor_is_not_entailed():
    sentences = [AnswerSentence("Iran supplied air power [1].", (1,), True)]
    scores = citation_scores(answer(sentences, [hit(1, AIR)]), entails())
    assert scores.entailed == 0 and scores.precision == 0.0


# --- citation markers -----------------------------------------------------------------------

def test_invalid_marker_rate_counts_draft_markers_and_reads_the_pipeline_note():
    draft = "Russia supplied air power [1]. Iran sent ground forces [4][5]. Both fought [1, 2]."
    passages = [hit(1, AIR), hit(2, WEATHER), hit(3, AIR)]
    pipeline_count = verify(draft, passages, StrictWordJudge()).invalid_markers
    assert pipeline_count == 2
    assert draft_markers(answer(passages=passages, draft=draft, invalid=pipeline_count)) == (5, 2)
    assert draft_markers(answer(passages=passages)) is None  # the model was not asked
    assert draft_markers(answer(passages=passages, draft=draft)) == (5, 0)


def test_shown_invalid_markers_counts_markers_that_open_no_citation():
    passages = [hit(1, AIR), hit(2, WEATHER)]
    good = answer(passages=passages, text="Russia supplied air power [1]. Cold [2].",
                  citations=[cite(1, passages[0]), cite(2, passages[1])])
    bad = answer(passages=passages, text="Russia supplied air power [1]. Cold [2]. More [7].",
                 citations=[cite(1, passages[0])])
    assert shown_invalid_markers(good) == 0
    assert shown_invalid_markers(bad) == 2


# --- abstention and latency -----------------------------------------------------------------

def test_abstention_precision_recall_on_a_toy_set():
    # (answerable, abstained): two right abstentions, one wrong refusal, one answered.
    items = [(False, True), (False, True), (True, True), (True, False)]
    scores = abstention_scores(items)
    assert scores["abstention_precision"] == pytest.approx(2 / 3)
    assert scores["abstention_recall"] == 1.0
    assert scores["wrong_refusal_rate"] == 0.5
    assert (scores["abstained"], scores["unanswerable"], scores["answerable"]) == (3, 2, 2)
    missed = abstention_scores([(False, False), (True, False)])
    assert missed["abstention_precision"] is None
    assert missed["abstention_recall"] == 0.0


def test_percentiles_interpolate_linearly():
    values = [40.0, 10.0, 30.0, 20.0]
    assert percentile(values, 50) == 25.0
    assert percentile(values, 95) == pytest.approx(38.5)
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None


def test_latency_skips_missing_first_token():
    timings = [{"retrieval_ms": 10.0, "first_token_ms": None, "total_ms": 12.0},
               {"retrieval_ms": 20.0, "first_token_ms": 100.0, "total_ms": 500.0},
               {"retrieval_ms": 30.0, "first_token_ms": 300.0, "total_ms": 900.0}]
    summary = latency_summary(timings)
    assert summary["retrieval_p50"] == 20.0
    assert summary["retrieval_p95"] == pytest.approx(29.0)
    assert summary["first_token_p50"] == 200.0
    assert summary["first_token_p95"] == pytest.approx(290.0)
    assert summary["total_p50"] == 500.0


# --- per question and run summary -----------------------------------------------------------

def test_question_metrics_and_summary_aggregate_by_definition():
    gold = GoldSpan("doc.txt", 100, 100 + len(AIR))
    far = hit(1, WEATHER, start=0)  # offsets 0..56: does not reach the gold span
    near = hit(2, AIR, start=100)  # covers the gold span exactly
    question = Question("q1", "Who supplied air power?", True, key_facts=("Russia", "Tartus"),
                        evidence=(Evidence("doc.txt", AIR),), type="single_fact")
    passages = [near]
    sentences = [AnswerSentence("Russia supplied air power [1].", (1,), True),
                 AnswerSentence("Moscow was cold.", (), True)]
    first = answer(sentences, passages, text="Russia supplied air power [1]. Moscow was cold.",
                   citations=[cite(1, near)],
                   draft="Russia supplied air power [1][3]. Moscow was cold.", invalid=1)
    values = question_metrics(question, first, [far, near], [gold], entails())
    assert values["recall@1"] == 0.0 and values["recall@3"] == 1.0
    assert values["mrr"] == 0.5
    assert values["evidence_recall"] == 1.0
    assert values["key_fact_coverage"] == 0.5
    assert values["citation_recall"] == 0.5 and values["citation_precision"] == 1.0
    assert (values["draft_markers"], values["draft_invalid_markers"]) == (2, 1)
    assert values["invalid_markers_shown"] == 0

    unanswerable = Question("q2", "Who won the World Cup?", False, type="unanswerable")
    refused = answer(text="The documents don't say.", abstained=True,
                     timings={"retrieval_ms": 5.0, "first_token_ms": None, "total_ms": 6.0})
    values2 = question_metrics(unanswerable, refused, [far], [], entails())
    assert values2["recall@5"] is None and values2["citation_recall"] is None
    rows = [{"id": "q1", "type": "single_fact", "answerable": True, "metrics": values},
            {"id": "q2", "type": "unanswerable", "answerable": False, "metrics": values2}]
    summary = summarise(rows)
    assert summary["retrieval"]["mrr"] == 0.5 and summary["retrieval"]["questions"] == 1
    assert summary["answers"]["key_fact_coverage"] == 0.5
    assert summary["answers"]["unsupported_sentence_share"] == 0.5  # 1 of 2 statements
    assert summary["answers"]["invalid_marker_rate"] == 0.5  # 1 of 2 draft markers
    assert summary["abstention"]["abstention_precision"] == 1.0
    assert summary["abstention"]["wrong_refusal_rate"] == 0.0
    assert summary["latency_ms"]["first_token_p50"] == 2.0  # the abstention has none
    assert summary["latency_ms"]["total_p50"] == 4.5
    assert summary["by_type"] == {
        "single_fact": {"questions": 1, "key_fact_coverage": 0.5, "recall@5": 1.0,
                        "abstention_rate": 0.0},
        "unanswerable": {"questions": 1, "key_fact_coverage": None, "recall@5": None,
                         "abstention_rate": 1.0}}
