"""Abstention thresholds calibrated on labelled questions and stored with the index.

The two numbers that decide "the documents don't say" only mean something for one embedder (the
similarity floor) and one judge model (the answerability threshold). `qa calibrate QUESTIONS`
measures both signals on questions whose answerability is known (use the tuning half, report on
the other), picks each threshold between the two classes, and writes them to
`<QA_DATA_DIR>/calibration.json` together with the embedder and judge they were measured with.
The assistant then uses them for every index built with that embedder and judged by that model,
and ignores them otherwise (a rebuilt index with another embedder falls back to the settings).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .settings import Settings

FILE_NAME = "calibration.json"


@dataclass(frozen=True)
class Calibration:
    """Thresholds and where they come from (what `qa calibrate` measured them on)."""

    embedder: str  # the index's embedder the similarity floor was measured with
    judge: str  # the answerability judge the answer threshold was measured with ("none")
    abstain_threshold: float  # QA_ABSTAIN_THRESHOLD: similarity floor of the nearest passage
    answer_threshold: float | None  # QA_ANSWER_THRESHOLD (None: no answerability judge)
    questions: str  # the question file
    split: str  # the part of it used ("" for all)
    answerable: int
    unanswerable: int
    abstained_unanswerable: int  # on those questions, with these thresholds
    refused_answerable: int

    def summary(self) -> str:
        answer = ("none" if self.answer_threshold is None else f"{self.answer_threshold:.3f}")
        return (f"similarity floor {self.abstain_threshold:.3f} ({self.embedder}), answer "
                f"threshold {answer} ({self.judge}); on the {self.answerable} answerable and "
                f"{self.unanswerable} unanswerable questions it abstains on "
                f"{self.abstained_unanswerable} unanswerable and refuses "
                f"{self.refused_answerable} answerable")


def judge_key(settings: Settings) -> str:
    """The answerability judge the settings choose, named without loading it (as the local
    model's answerability judge names itself)."""
    from .judge import DEFAULT_JUDGE_MODEL

    return f"{settings.judge}:{settings.judge_model or DEFAULT_JUDGE_MODEL}"


def separating_threshold(keep: Sequence[float], reject: Sequence[float]) -> float:
    """A threshold that keeps every `keep` score: halfway between the lowest of them and the
    highest `reject` score below it (or 0, when none is below). Rejected scores above the lowest
    kept one cannot be separated without refusing a kept one, and are left to other signals."""
    if not keep:
        raise ValueError("no answerable questions to calibrate on")
    lowest = min(keep)
    below = [score for score in reject if score < lowest]
    return round((lowest + max(below, default=0.0)) / 2, 4)


def choose(embedder: str, judge: str, similarity: Sequence[tuple[float, bool]],
           answer: Sequence[tuple[float | None, bool]], questions: str, split: str
           ) -> Calibration:
    """Thresholds from (score, answerable) per question: the floor first, then the answer
    threshold among the questions the floor lets through (the pipeline's order)."""
    floor = separating_threshold([s for s, ok in similarity if ok],
                                 [s for s, ok in similarity if not ok])
    through = [(a, ok) for (s, ok), (a, _) in zip(similarity, answer) if s >= floor]
    threshold = None
    if through and all(a is not None for a, _ in through):
        threshold = separating_threshold([a for a, ok in through if ok],
                                         [a for a, ok in through if not ok])

    def abstains(s: float, a: float | None) -> bool:
        return s < floor or (threshold is not None and a is not None and a < threshold)

    decided = [(abstains(s, a), ok) for (s, ok), (a, _) in zip(similarity, answer)]
    return Calibration(embedder, judge, floor, threshold, questions, split,
                       answerable=sum(ok for _, ok in decided),
                       unanswerable=sum(not ok for _, ok in decided),
                       abstained_unanswerable=sum(a and not ok for a, ok in decided),
                       refused_answerable=sum(a and ok for a, ok in decided))


def save(data_dir: Path, calibration: Calibration) -> Path:
    """Write atomically: a reader never sees half a file."""
    path = Path(data_dir) / FILE_NAME
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(calibration), indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def load(data_dir: Path) -> Calibration | None:
    path = Path(data_dir) / FILE_NAME
    if not path.is_file():
        return None
    try:
        return Calibration(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        from index.errors import UserError

        raise UserError(f"{path} is not a calibration file ({exc}); run qa calibrate again "
                        f"or delete it") from exc


def calibrated_settings(settings: Settings, embedder: str) -> Settings:
    """The settings with the stored thresholds (QA_CALIBRATION on): the similarity floor when it
    was measured with this embedder, the answer threshold when also with the configured judge."""
    if not settings.calibration:
        return settings
    stored = load(settings.data_dir)
    if stored is None or stored.embedder != embedder:
        return settings
    settings = replace(settings, abstain_threshold=stored.abstain_threshold)
    if stored.answer_threshold is not None and stored.judge == judge_key(settings):
        settings = replace(settings, answer_threshold=stored.answer_threshold)
    return settings


def calibrate(assistant, questions: Sequence, questions_name: str, split: str,
              progress=lambda done, total: None) -> Calibration:
    """Measure both signals on each question (`eval.questions.Question`s) and choose."""
    similarity, answer = [], []
    for done, question in enumerate(questions, start=1):
        signal = assistant.measure_evidence(question.question)
        similarity.append((signal.best_similarity, question.answerable))
        # Ruled out by its wording (no sentence holds what it asks for): refused at any threshold.
        answer.append((0.0 if signal.missing else signal.best_answer_score, question.answerable))
        progress(done, len(questions))
    return choose(assistant.retriever.store.config.embedder, assistant.answerability_name,
                  similarity, answer, questions_name, split)
