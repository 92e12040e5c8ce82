"""Build the model's prompt from numbered passages, fitted to the model's context window.

The answer format is shown with placeholders, not an invented example: the smallest models
copied an example's facts into real answers ("opened in 1932").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from index.chunking import normalize_for_search

from .backends.base import BackendError, Generator, Prompt
from .contracts import Hit

NOT_IN_DOCUMENTS = "The documents do not say."

SYSTEM = f"""You answer questions using only the numbered passages.
Rules:
- Answer in one to three short sentences, in your own words, true to the passages.
- End each sentence with the number of the passage that supports it in square brackets, like [2].
- Cite only passage numbers that are listed. Never invent a number. Never write [n] or [0].
- Say what the passages say about the question; do not repeat the question.
- If the passages do not answer the question, write only: {NOT_IN_DOCUMENTS}
Format of an answer: <what passage 2 says that answers the question> [2]. <what passage 1
adds> [1]."""


def format_passages(hits: Sequence[Hit]) -> str:
    """Passages as the model sees them; footnote marks removed so they never look like citations."""
    blocks = []
    for n, hit in enumerate(hits, start=1):
        source = hit.title + (f" — {hit.heading}" if hit.heading and hit.heading != hit.title else "")
        blocks.append(f"[{n}] ({source})\n{normalize_for_search(hit.text)}")
    return "\n\n".join(blocks)


REPAIR_SYSTEM = """You restate evidence to answer a question.
Rules:
- For each numbered evidence sentence that helps answer the question, write one short sentence
  in your own words that keeps its meaning exactly: the same people, numbers and certainty.
- End each sentence with the evidence number in square brackets, like [2].
- Add nothing the evidence does not say.
Format: <evidence 2 in your own words> [2]. <evidence 1 in your own words> [1]."""


def make_repair_prompt(question: str, evidence: Sequence[tuple[int, str]]) -> Prompt:
    """Ask for the evidence sentences (numbered by their passage) restated as an answer."""
    listed = "\n".join(f"[{n}] {normalize_for_search(text)}" for n, text in evidence)
    return Prompt(system=REPAIR_SYSTEM, user=f"Evidence:\n{listed}\n\nQuestion: {question}",
                  answer_prefix="Answer:")


def make_prompt(question: str, hits: Sequence[Hit]) -> Prompt:
    user = f"Passages:\n\n{format_passages(hits)}\n\nQuestion: {question}"
    return Prompt(system=SYSTEM, user=user, answer_prefix="Answer:")


@dataclass(frozen=True)
class FittedPrompt:
    prompt: Prompt
    hits: tuple[Hit, ...]  # the passages the model is shown, numbered from 1
    dropped: int  # lowest-ranked passages left out to fit the context
    prompt_tokens: int


def fit_prompt(question: str, hits: Sequence[Hit], generator: Generator,
               max_answer_tokens: int) -> FittedPrompt:
    """Drop the lowest-ranked passages until prompt and answer fit the context window."""
    shown = list(hits)
    render = getattr(generator, "render", None)
    while True:
        prompt = make_prompt(question, shown)
        text = render(prompt) if render else prompt.as_completion()
        used = generator.count_tokens(text)
        if used + max_answer_tokens <= generator.context_window:
            return FittedPrompt(prompt, tuple(shown), len(hits) - len(shown), used)
        if len(shown) <= 1:
            raise BackendError(
                f"The prompt needs {used} tokens plus {max_answer_tokens} for the answer but the "
                f"model's context is {generator.context_window}: raise QA_CONTEXT_WINDOW or "
                f"lower QA_MAX_ANSWER_TOKENS.")
        shown.pop()
