"""Question-set files: one JSON object per line, validated with line numbers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from index.errors import UserError

REQUIRED = ("id", "question", "answerable")


@dataclass(frozen=True)
class Evidence:
    """A gold quote: exact text of a corpus file, located by `start`/`end` once resolved."""

    doc: str  # file name, e.g. 002_f97a6adf81882357.txt
    quote: str


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answerable: bool
    gold_answer: str = ""
    key_facts: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    type: str = "unspecified"
    split: str = ""  # "tune" or "test": tune settings on one half, report on the other


def parse_line(line: str, number: int) -> Question:
    """One question from one line; ValueError names the line and the problem."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {number}: not valid JSON ({exc.msg})") from exc
    if not isinstance(row, dict):
        raise ValueError(f"line {number}: expected a JSON object")
    missing = [key for key in REQUIRED if key not in row]
    if missing:
        raise ValueError(f"line {number}: missing {', '.join(missing)}")
    if not isinstance(row["question"], str) or not row["question"].strip():
        raise ValueError(f"line {number}: 'question' must be a non-empty string")
    if not isinstance(row["answerable"], bool):
        raise ValueError(f"line {number}: 'answerable' must be true or false")
    evidence = row.get("evidence") or []
    if not isinstance(evidence, list) or not all(
            isinstance(e, dict) and isinstance(e.get("doc"), str) and isinstance(e.get("quote"), str)
            for e in evidence):
        raise ValueError(f"line {number}: 'evidence' must be a list of {{\"doc\", \"quote\"}}")
    facts = row.get("key_facts") or []
    if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
        raise ValueError(f"line {number}: 'key_facts' must be a list of strings")
    return Question(id=str(row["id"]), question=row["question"].strip(),
                    answerable=row["answerable"], gold_answer=str(row.get("gold_answer") or ""),
                    key_facts=tuple(facts),
                    evidence=tuple(Evidence(e["doc"], e["quote"]) for e in evidence),
                    type=str(row.get("type") or "unspecified"),
                    split=str(row.get("split") or ""))


def load_questions(path: Path) -> list[Question]:
    """All questions of a file; one UserError listing every bad line."""
    if not path.is_file():
        raise UserError(f"Question file {path} does not exist; give a .jsonl file "
                        f"(see eval/seed_questions.jsonl).")
    questions: list[Question] = []
    problems: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            question = parse_line(line, number)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if question.id in seen:
            problems.append(f"line {number}: duplicate id '{question.id}'")
        seen.add(question.id)
        questions.append(question)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise UserError(f"{path} has bad lines: {shown}. Fix them and run again.")
    if not questions:
        raise UserError(f"{path} holds no questions.")
    return questions


def locate(evidence: Evidence, text: str) -> tuple[int, int] | None:
    """Offsets of a gold quote in its document's text, or None when it is not there verbatim."""
    found = text.find(evidence.quote)
    return (found, found + len(evidence.quote)) if found >= 0 else None
