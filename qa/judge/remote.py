"""A judge through a generator backend (Ollama or an OpenAI-compatible server).

For users with a stronger model on a server. These APIs stream text, so the verdict is read
from the reply's first word; the score is 1 or 0 (no probabilities to calibrate).
"""

from __future__ import annotations

from collections.abc import Sequence

from qa.backends.base import GenerationOptions, Generator, Prompt

from .base import SUPPORTED, UNSUPPORTED, Claim, Verdict
from .llm import QUESTION, SYSTEM


class GeneratorJudge:
    """Asks any `Generator` the judge's yes/no question, one claim at a time."""

    def __init__(self, generator: Generator, seed: int = 0) -> None:
        self.generator = generator
        self.seed = seed
        self.name = f"{generator.backend}:{generator.model}"

    def judge(self, claims: Sequence[Claim]) -> list[Verdict]:
        verdicts = []
        for claim in claims:
            prompt = Prompt(system=SYSTEM,
                            user=(f"Evidence:\n{claim.evidence_text}\n\n"
                                  f"Claim: {' '.join(claim.text.split())}\n\n{QUESTION}"))
            reply = "".join(self.generator.generate(prompt, GenerationOptions(
                max_tokens=3, temperature=0.0, seed=self.seed, stop=("\n",))))
            supported = reply.strip().lower().lstrip("*\"'").startswith("yes")
            verdicts.append(Verdict(SUPPORTED if supported else UNSUPPORTED,
                                    1.0 if supported else 0.0, self.name))
        return verdicts
