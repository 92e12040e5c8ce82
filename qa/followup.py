"""Rewrite a follow-up question into a standalone one using the conversation so far.

A model rewrites the follow-up ("Did it deliver them?" -> "Did the supplier deliver the
pumps?") when one is configured, and its rewrite is only used when it passes `keeps_words`:
it must keep every content word the user typed, take something from the previous question, and
add nothing from outside the conversation. Otherwise the follow-up is joined literally to the
previous question, so the user always sees exactly what was searched for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from .backends.base import BackendError, GenerationOptions, Generator, Prompt
from .contracts import Turn
from .settings import Settings
from .textmatch import content_stems

# Openings and words that only make sense with what was said before.
_CONTINUATION = re.compile(r"^(?:and|but|also|so|what about|how about|what else|"
                           r"is that|are they|does it|do they|is it|was it)\b", re.IGNORECASE)
_PRONOUN = re.compile(r"\b(?:they|them|their|it|its|this|that|these|those|he|she|his|her|"
                      r"him|the two|both|either)\b", re.IGNORECASE)
_NAME = re.compile(r"\b[A-Z][a-z]{2,}")
# Content words a rewrite may drop from the follow-up: fillers of a continuation ("what else").
_REFERENCE_STEMS = frozenset(content_stems("else"))
# Words a rewrite may add from outside the conversation, when none names anything: "decision"
# for "decide", "does" for "do".
_MAX_NEW_WORDS = 2
_WORD = re.compile(r"[\w’'-]+")
# What the follow-up asks ("why", "when") must survive; "what about X" may be rephrased.
_ASKS = re.compile(r"\b(?:who|whom|whose|what|when|where|why|how|which)\b(?! about)",
                   re.IGNORECASE)

# (previous question, follow-up, standalone rewrite): invented, about no collection.
REWRITE_EXAMPLES = (
    ("Who paid for the new bridge over the river?", "And when did it open?",
     "When did the new bridge over the river open?"),
    ("What did the council decide about the school budget?", "Why did the mayor oppose it?",
     "Why did the mayor oppose the council's decision about the school budget?"),
    ("Which company built the dam on the lake?", "Did they also build the power station?",
     "Did the company that built the dam on the lake also build the power station?"),
)
REWRITE_SYSTEM = ("You rewrite a follow-up question so that it can be understood on its own, "
                  "without the conversation. Replace pronouns and vague references with what they "
                  "refer to in the previous question. Keep every other word of the follow-up. "
                  "Write only the rewritten question.")

Rewriter = Callable[[str, str], str]  # (previous standalone question, follow-up) -> rewrite


def needs_history(question: str) -> bool:
    """A short question that continues the previous one or leans on its pronouns."""
    words = question.split()
    if _CONTINUATION.match(question.strip()):
        return True
    # Capitalised words after the first name something, so the question stands on its own.
    names = _NAME.findall(question.strip().split(" ", 1)[1] if " " in question.strip() else "")
    return len(words) <= 10 and bool(_PRONOUN.search(question)) and not names


def literal_join(previous: str, question: str) -> str:
    """"<previous question> — <follow-up>": what is searched for when no rewrite is trusted."""
    return f"{previous.strip().rstrip('?').strip()} — {question.strip()}"


def keeps_words(rewrite: str, previous: str, question: str) -> bool:
    """Whether a model's rewrite is safe to search for instead of the literal join.

    It must be one question, keep every content word and question word of the follow-up, bring in at least one
    content word of the previous question, and add no name or number from outside the two (a
    model that invents a referent is caught here) and at most two other new words.
    """
    if (not rewrite.endswith("?") or "\n" in rewrite
            or len(rewrite) > 2 * len(previous) + len(question)):
        return False
    written, earlier = set(content_stems(rewrite)), set(content_stems(previous))
    typed = set(content_stems(question))
    asks = {w.lower() for w in _ASKS.findall(question)}
    kept = typed - _REFERENCE_STEMS <= written and asks <= set(re.findall(r"\w+", rewrite.lower()))
    resolved = bool((written & earlier) - typed)
    new_words = [w for w in _WORD.findall(rewrite)
                 if (stems := content_stems(w)) and stems[0] not in earlier | typed]
    names = [w for w in new_words if any(c.isdigit() for c in w) or w[:1].isupper()]
    return kept and resolved and not names and len(new_words) <= _MAX_NEW_WORDS


def rewrite_prompt(previous: str, question: str) -> Prompt:
    shots = "".join(f"Previous question: {p}\nFollow-up: {f}\nRewritten: {r}\n\n"
                    for p, f, r in REWRITE_EXAMPLES)
    return Prompt(system=REWRITE_SYSTEM,
                  user=f"{shots}Previous question: {previous}\nFollow-up: {question}",
                  answer_prefix="Rewritten:")


def model_rewriter(generator: Generator, seed: int = 0) -> Rewriter:
    """A Rewriter that asks `generator` (greedy, one line) for the standalone question."""
    def rewrite(previous: str, question: str) -> str:
        options = GenerationOptions(max_tokens=64, temperature=0.0, seed=seed, stop=("\n",))
        return " ".join("".join(generator.generate(rewrite_prompt(previous, question),
                                                   options)).split())
    return rewrite


def make_rewriter(settings: Settings, generator: Callable[[], Generator]) -> Rewriter | None:
    """The rewriter QA_FOLLOWUP_MODEL names: None for 'literal', the answer model for
    'generator', else a packaged model (or .gguf) in its own llama.cpp context, loaded on the
    first follow-up. A model that fails to load leaves follow-ups to the literal join."""
    name = settings.followup_model
    if name == "literal":
        return None
    if name == "generator":
        return lambda previous, question: model_rewriter(generator(), settings.seed)(
            previous, question)
    loaded: list[Rewriter] = []

    def rewrite(previous: str, question: str) -> str:
        if not loaded:
            from .backends.embedded import EmbeddedGenerator

            loaded.append(model_rewriter(EmbeddedGenerator(replace(settings, model=name),
                                                           role="rewrite"), settings.seed))
        return loaded[0](previous, question)
    return rewrite


def standalone_question(question: str, history: Sequence[Turn],
                        rewriter: Rewriter | None = None) -> str:
    """The question itself, or a standalone version of it when it is a follow-up.

    With a rewriter, its rewrite is used when `keeps_words` accepts it; otherwise (or when the
    model fails) the follow-up is joined literally to the previous standalone question.
    """
    if not history or not needs_history(question):
        return question
    previous = history[-1].standalone_question.strip()
    if rewriter is not None:
        try:
            rewrite = rewriter(previous, question.strip())
        except BackendError:
            rewrite = ""
        if keeps_words(rewrite, previous, question):
            return rewrite
    return literal_join(previous, question)
