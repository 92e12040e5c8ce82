"""The whole product on a collection it was not developed on (eval/second_collection/).

`qa index` and `qa ask` in subprocesses, with the real encoder, the real default model and the
real judge. The questions come from eval/second_questions.jsonl, chosen by type (the first of
each), not picked for passing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from eval.questions import Question, load_questions

from conftest import ROOT, run

pytestmark = pytest.mark.slow

COLLECTION = ROOT / "eval" / "second_collection"
QUESTIONS = load_questions(ROOT / "eval" / "second_questions.jsonl")


def first_of(kind: str, answerable: bool = True) -> Question:
    return next(q for q in QUESTIONS if q.type == kind and q.answerable == answerable)


@pytest.fixture(scope="module")
def second_index(tmp_path_factory) -> Path:
    documents = tmp_path_factory.mktemp("second") / "documents"
    shutil.copytree(COLLECTION, documents)
    data = tmp_path_factory.mktemp("second-data")
    result = run(["index", str(documents)], data)
    assert result.returncode == 0, result.stderr
    assert f"Indexed {len(list(COLLECTION.iterdir()))} documents into" in result.stdout
    return data


def ask(question: str, data: Path, *flags: str) -> dict:
    result = run(["ask", "--json", *flags, question], data)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_exact_quotes(citations: list[dict]) -> None:
    for citation in citations:
        text = Path(citation["source"]).read_text(encoding="utf-8")
        assert text[citation["start"]:citation["end"]] == citation["quote"]


def test_a_single_fact_is_answered_from_its_document_with_its_key_fact(second_index: Path):
    question = first_of("single_fact")
    answer = ask(question.question, second_index)
    assert answer["abstained"] is False and answer["citations"], answer["answer"]
    assert_exact_quotes(answer["citations"])
    cited = {Path(c["source"]).name for c in answer["citations"]}
    assert cited & {e.doc for e in question.evidence}, (question.id, cited)
    for fact in question.key_facts:
        assert fact.lower() in answer["answer"].lower(), (question.id, fact, answer["answer"])


def test_an_off_topic_question_gets_the_documents_dont_say(second_index: Path):
    off_topic = [q for q in QUESTIONS if not q.answerable][-1]  # the set ends with off-topic ones
    answer = ask(off_topic.question, second_index)
    assert answer["abstained"] is True, (off_topic.id, answer["answer"])
    assert answer["citations"] == []


def test_a_comparison_shows_several_documents_positions(second_index: Path):
    question = first_of("comparison")
    views = ask(question.question, second_index, "--by-document")["by_document"]
    assert len(views) == len(list(COLLECTION.iterdir()))
    addressed = [v for v in views if v["addressed"]]
    assert len(addressed) >= 2, (question.id, [v["statement"] for v in views])
    assert_exact_quotes([v["citation"] for v in addressed])
