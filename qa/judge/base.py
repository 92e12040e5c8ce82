"""The support-judge seam: does this evidence say what this claim says?

Every decision about support — keeping a model sentence, choosing a quote, grading an eval
answer — goes through one `SupportJudge`. Judges differ in how they decide (a local LLM's
yes/no probabilities, an NLI cross-encoder, a model behind a server); they share the contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

SUPPORTED = "supported"
UNSUPPORTED = "unsupported"
CONTRADICTED = "contradicted"  # only from judges that can tell a contradiction from silence
LABELS = (SUPPORTED, UNSUPPORTED, CONTRADICTED)


@dataclass(frozen=True)
class Claim:
    """A statement to check and the evidence it is checked against (one or more excerpts)."""

    text: str
    evidence: tuple[str, ...]

    @property
    def evidence_text(self) -> str:
        """The excerpts as one text, in order, separated by blank lines, with "the former" and
        "the latter" spelled out (judges read this; users see the verbatim quotes)."""
        from .coref import spell_out_former_latter

        return "\n\n".join(spell_out_former_latter(" ".join(e.split())) for e in self.evidence)


@dataclass(frozen=True)
class Verdict:
    """A judge's decision on one claim: the label, a score in [0, 1] and who decided."""

    label: str
    score: float  # how strongly the judge holds the evidence to support the claim
    judge: str  # name of the judge (or pre-filter) that decided
    reason: str = ""  # why a pre-filter rejected, when one did

    @property
    def supported(self) -> bool:
        return self.label == SUPPORTED

    def to_json(self) -> dict:
        return {"label": self.label, "score": round(self.score, 4), "judge": self.judge,
                "reason": self.reason}


class SupportJudge(Protocol):
    """Decides, for a batch of claims, whether each one's evidence supports it."""

    name: str

    def judge(self, claims: Sequence[Claim]) -> list[Verdict]: ...


class AnswerabilityJudge(Protocol):
    """Decides whether a text answers a question: states what is asked, not merely its topic.

    Scores are in [0, 1]; `threshold` is the score below which the best evidence sentence does
    not answer (calibrated per judge model on the tune half of the team's question set).
    """

    name: str
    threshold: float

    def answer_scores(self, question: str, texts: Sequence[str]) -> list[float]: ...


def judge_one(judge: SupportJudge, claim: str, evidence: Sequence[str] | str) -> Verdict:
    """Convenience for a single claim."""
    excerpts = (evidence,) if isinstance(evidence, str) else tuple(evidence)
    return judge.judge([Claim(claim, excerpts)])[0]


def verdict_from_probability(p_yes: float, threshold: float, judge: str,
                             p_contradiction: float | None = None) -> Verdict:
    """Map a probability of support to a label; contradiction only when the judge measured it."""
    if p_yes >= threshold:
        return Verdict(SUPPORTED, p_yes, judge)
    if p_contradiction is not None and p_contradiction > max(p_yes, 0.5):
        return Verdict(CONTRADICTED, p_yes, judge)
    return Verdict(UNSUPPORTED, p_yes, judge)
