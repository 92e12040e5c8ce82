"""The generator seam: every backend streams text for a Prompt and counts its tokens."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from index.errors import UserError


class BackendError(UserError):
    """The model backend failed; the message names the setting to fix."""


@dataclass(frozen=True)
class Prompt:
    """What the model is asked: instructions, the user turn, and where the answer starts."""

    system: str
    user: str
    # Text the answer continues from. Chat backends send it as the start of the assistant turn
    # when they can, completion-style backends append it to the prompt.
    answer_prefix: str = ""

    def as_completion(self) -> str:
        """One plain text for base models without a chat template."""
        return f"{self.system}\n\n{self.user}\n\n{self.answer_prefix}"


@dataclass(frozen=True)
class GenerationOptions:
    max_tokens: int = 200
    temperature: float = 0.0
    seed: int = 0
    stop: tuple[str, ...] = ()


class Generator(Protocol):
    """A text generator. `generate` yields text pieces as they are produced."""

    backend: str  # "embedded", "ollama", "openai" ...
    model: str
    context_window: int  # tokens the model attends to; prompts are fitted below it

    def count_tokens(self, text: str) -> int: ...

    def generate(self, prompt: Prompt, options: GenerationOptions) -> Iterator[str]: ...


def estimate_tokens(text: str) -> int:
    """A conservative token estimate for backends that expose no tokenizer (~3 chars a token)."""
    return len(text) // 3 + 1


class ReplayGenerator:
    """A deterministic generator that streams a fixed reply word by word (tests, demos)."""

    backend = "replay"

    def __init__(self, reply: str | Sequence[str] = "", model: str = "replay",
                 context_window: int = 4096, fail_with: str | None = None) -> None:
        self.replies = [reply] if isinstance(reply, str) else list(reply)
        self.model = model
        self.context_window = context_window
        self.fail_with = fail_with
        self.prompts: list[Prompt] = []  # what it was asked, for tests to read

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, prompt: Prompt, options: GenerationOptions) -> Iterator[str]:
        self.prompts.append(prompt)
        if self.fail_with:
            raise BackendError(self.fail_with)
        reply = self.replies[min(len(self.prompts) - 1, len(self.replies) - 1)] if self.replies else ""
        words = reply.split(" ")
        for i, word in enumerate(words[: options.max_tokens]):
            yield word if i == 0 else " " + word
