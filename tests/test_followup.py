"""Follow-up questions: a model's standalone rewrite, used only when it keeps the user's words."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.backends.base import ReplayGenerator
from qa.contracts import Turn
from qa.followup import keeps_words, make_rewriter, standalone_question
from qa.settings import Settings

QUESTION = "Where do Moscow and Tehran disagree on Assad?"
HISTORY = [Turn(QUESTION, QUESTION, "They differ on his future [1].")]


@pytest.mark.parametrize("rewrite, accepted", [
    ("Why do Moscow and Tehran disagree on Assad?", True),
    ("Why do they disagree?", False),  # nothing resolved: not standalone
    ("Why do Moscow and Washington disagree on Assad?", False),  # a referent from nowhere
    ("Why do Moscow and Tehran disagree on Assad in 2015?", False),  # a number from nowhere
    ("Where do Moscow and Tehran disagree on Assad?", False),  # the follow-up's "why" is lost
    ("Why do Moscow and Tehran disagree on Assad.", False),  # not a question
])
def test_a_rewrite_must_keep_the_follow_up_and_add_nothing_new(rewrite, accepted):
    assert keeps_words(rewrite, QUESTION, "Why do they disagree?") is accepted


def test_the_models_rewrite_is_searched_and_shown(replay_assistant):
    rewrite = "What do Moscow and Tehran say about Israel?"
    assistant = replay_assistant([rewrite, ""], abstain_threshold=-1, followup_model="generator")
    events = list(assistant.stream("And what about Israel?", HISTORY))
    assert events[0].kind == "rewrite" and events[0].data == rewrite
    asked = assistant.generator.prompts[0]
    assert QUESTION in asked.user and "Follow-up: And what about Israel?" in asked.user
    answer = events[-1].data
    assert answer.standalone_question == rewrite
    assert any("Israel" in h.text for h in answer.passages)


def test_a_rewrite_that_invents_a_referent_falls_back_to_the_literal_join(replay_assistant):
    assistant = replay_assistant(["What did Washington say about Israel?", ""],
                                 abstain_threshold=-1, followup_model="generator")
    answer = assistant.ask("And what about Israel?", HISTORY)
    assert answer.standalone_question == ("Where do Moscow and Tehran disagree on Assad — "
                                          "And what about Israel?")


def test_a_failing_rewriter_leaves_the_literal_join():
    settings = Settings(followup_model="generator")
    failing = ReplayGenerator(fail_with="Cannot reach the model server")
    rewriter = make_rewriter(settings, lambda: failing)
    assert standalone_question("Why do they disagree?", HISTORY, rewriter) == (
        "Where do Moscow and Tehran disagree on Assad — Why do they disagree?")


@pytest.mark.slow
def test_the_packaged_model_resolves_the_pronoun():
    """The default rewriter (qwen-1.5b) puts the actor of the previous question in place of "it"."""
    rewriter = make_rewriter(Settings(data_dir=Path(".qa-data")), lambda: None)
    previous = "What did Russia do when Israel struck Iranian targets in Syria?"
    question = "Did it deliver the S-300 systems?"
    rewrite = standalone_question(question, [Turn(previous, previous, "")], rewriter)
    assert "Russia" in rewrite and "S-300" in rewrite and "—" not in rewrite
    assert keeps_words(rewrite, previous, question)
