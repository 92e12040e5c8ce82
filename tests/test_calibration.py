"""Abstention thresholds measured on labelled questions, stored with the index, used by it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval.questions import load_questions
from index.errors import UserError
from qa.backends.base import ReplayGenerator
from qa.calibration import (calibrate, calibrated_settings, choose, load, save,
                            separating_threshold)
from qa.cli import app
from qa.compose import Components

from conftest import index_into, make_assistant, settings_for
from judges import StrictWordJudge, WordAnswerability

ROOT = Path(__file__).resolve().parent.parent


def test_the_threshold_keeps_every_kept_score_and_rejects_what_lies_below_them():
    assert separating_threshold([0.5, 0.7], [0.1, 0.3, 0.9]) == pytest.approx(0.4)
    # Nothing to reject below the lowest kept score: halfway down to zero.
    assert separating_threshold([0.5, 0.7], [0.6, 0.9]) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        separating_threshold([], [0.2])


def test_the_answer_threshold_is_chosen_among_the_questions_the_floor_lets_through():
    similarity = [(0.5, True), (0.6, True), (0.1, False), (0.55, False)]
    # The unanswerable question under the floor scores 0.99 and must not pull the threshold up.
    answer = [(0.8, True), (0.9, True), (0.99, False), (0.3, False)]
    chosen = choose("enc", "judge", similarity, answer, "q.jsonl", "tune")
    assert chosen.abstain_threshold == pytest.approx(0.3)
    assert chosen.answer_threshold == pytest.approx(0.55)
    assert (chosen.answerable, chosen.unanswerable) == (2, 2)
    assert (chosen.abstained_unanswerable, chosen.refused_answerable) == (2, 0)
    # Without an answerability judge only the floor is stored.
    assert choose("enc", "none", similarity, [(None, ok) for _, ok in similarity], "q", ""
                  ).answer_threshold is None


def test_calibrated_thresholds_are_stored_with_the_index_and_used_for_its_embedder(
        tmp_path, seed_copy, hashing_embedder):
    index_into([seed_copy], tmp_path, hashing_embedder, "faiss")
    questions = [q for q in load_questions(ROOT / "eval" / "seed_questions.jsonl")
                 if q.split == "tune"]
    assistant = make_assistant(tmp_path, hashing_embedder, ReplayGenerator(""),
                               answerability=WordAnswerability(), calibration=False)
    result = calibrate(assistant, questions, "seed_questions.jsonl", "tune")
    assert (result.embedder, result.judge) == (hashing_embedder.name, "word-answerability")
    assert result.answerable + result.unanswerable == len(questions)
    assert result.refused_answerable == 0  # the thresholds keep every answerable question
    save(tmp_path, result)
    assert load(tmp_path) == result

    settings = replace(settings_for(tmp_path), abstain_threshold=0.99)
    applied = calibrated_settings(settings, hashing_embedder.name)
    assert applied.abstain_threshold == result.abstain_threshold
    # Measured with another answerability judge than the configured one: not applied.
    assert applied.answer_threshold == settings.answer_threshold
    # Another embedder, or calibration switched off: the settings as they are.
    assert calibrated_settings(settings, "all-MiniLM-L6-v2") == settings
    off = replace(settings, calibration=False)
    assert calibrated_settings(off, hashing_embedder.name) == off
    # The composition root (CLI, server, eval) hands the assistant the stored floor.
    components = Components(settings, embedder=hashing_embedder,
                            generator_factory=lambda: ReplayGenerator(""),
                            judge_factory=StrictWordJudge)
    assert components.assistant().settings.abstain_threshold == result.abstain_threshold


def test_a_damaged_calibration_file_is_a_one_line_error(tmp_path):
    (tmp_path / "calibration.json").write_text("{", encoding="utf-8")
    with pytest.raises(UserError, match="run qa calibrate again"):
        load(tmp_path)


def test_calibrate_needs_both_kinds_of_question(tmp_path):
    only_answerable = tmp_path / "answerable.jsonl"
    only_answerable.write_text("\n".join(
        line for line in (ROOT / "eval" / "seed_questions.jsonl").read_text().splitlines()
        if json.loads(line)["answerable"]) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["calibrate", str(only_answerable), "--data-dir",
                                      str(tmp_path)])
    assert result.exit_code == 1
    assert "unanswerable" in result.output and "answerable" in result.output
    assert not (tmp_path / "calibration.json").exists()
