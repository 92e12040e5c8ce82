"""Rewrite a follow-up question into a standalone one using the conversation so far."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .contracts import Turn

# Openings and words that only make sense with what was said before.
_CONTINUATION = re.compile(r"^(?:and|but|also|so|what about|how about|what else|"
                           r"is that|are they|does it|do they|is it|was it)\b", re.IGNORECASE)
_PRONOUN = re.compile(r"\b(?:they|them|their|it|its|this|that|these|those|he|she|his|her|"
                      r"the two|both|either)\b", re.IGNORECASE)
_NAME = re.compile(r"\b[A-Z][a-z]{2,}")


def needs_history(question: str) -> bool:
    """A short question that continues the previous one or leans on its pronouns."""
    words = question.split()
    if _CONTINUATION.match(question.strip()):
        return True
    names = [w for w in _NAME.findall(question) if w.lower() not in ("what", "who", "where",
                                                                       "when", "why", "how",
                                                                       "which", "does", "do",
                                                                       "is", "are", "and")]
    return len(words) <= 10 and bool(_PRONOUN.search(question)) and not names


def standalone_question(question: str, history: Sequence[Turn]) -> str:
    """The question itself, or joined to the previous standalone question when it is a follow-up.

    The join is deliberately literal ("<previous question> — <follow-up>"): tiny local models
    rewrite unreliably, and the user sees exactly what was searched for.
    """
    if not history or not needs_history(question):
        return question
    previous = history[-1].standalone_question.strip().rstrip("?").strip()
    return f"{previous} — {question.strip()}"
