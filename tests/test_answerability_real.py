"""The answerability check with the real packaged model: an answer against a same-topic miss."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.judge import make_judge
from qa.judge.answerability import answerability_for
from qa.settings import Settings

pytestmark = pytest.mark.slow


def test_a_sentence_that_answers_outscores_one_on_the_topic_only():
    settings = Settings(data_dir=Path(".qa-data"))
    check = answerability_for(make_judge(settings), settings)
    assert check is not None and check.name == "llm:qwen-1.5b"
    question = "In which year did the observatory on the ridge open?"
    answers, topical = check.answer_scores(question, [
        "The observatory on the ridge opened to astronomers in 1974.",
        "The observatory on the ridge is often closed by fog in the winter months."])
    assert answers >= check.threshold > topical
