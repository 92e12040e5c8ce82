"""The team's question set is well-formed and every expected span is exact text of its file."""

from __future__ import annotations

from collections import Counter

from eval.questions import load_questions

from conftest import ROOT, SEEDS

QUESTIONS = ROOT / "eval" / "seed_questions.jsonl"


def test_every_evidence_quote_is_an_exact_substring_of_its_file():
    for question in load_questions(QUESTIONS):
        for evidence in question.evidence:
            text = (SEEDS / evidence.doc).read_text(encoding="utf-8")
            assert evidence.quote in text, (question.id, evidence.doc, evidence.quote[:60])


def test_size_and_mix():
    questions = load_questions(QUESTIONS)
    kinds = Counter(q.type for q in questions)
    assert len(questions) >= 40
    assert sum(1 for q in questions if not q.answerable) >= 8
    for kind in ("single_fact", "multi_passage", "comparison", "paraphrase", "number_date"):
        assert kinds[kind] >= 3, kind
    for question in questions:
        assert bool(question.evidence) == question.answerable, question.id
        assert bool(question.key_facts) == question.answerable, question.id
