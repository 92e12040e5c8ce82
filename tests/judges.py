"""A deterministic support judge for fast tests: a real implementation of the judge seam.

It accepts a claim copied verbatim from the evidence, or one whose every content word occurs in
the evidence when the lexical pre-filter, with every rule on, finds nothing wrong: far stricter
than a model (no paraphrases), never lenient.
"""

from __future__ import annotations

from collections.abc import Sequence

from index.chunking import normalize_for_search
from qa.judge.base import SUPPORTED, UNSUPPORTED, Claim, Verdict
from qa.judge.prefilter import PrefilterRules, rejection
from qa.textmatch import content_stems, coverage


class StrictWordJudge:
    name = "strict-words"

    def judge(self, claims: Sequence[Claim]) -> list[Verdict]:
        verdicts = []
        for claim in claims:
            evidence = normalize_for_search(claim.evidence_text)
            share = coverage(claim.text, evidence)
            # Words copied verbatim are supported; the role-swap rule (on here) misreads a
            # passage whose other sentences name the same actors in another order.
            verbatim = " ".join(normalize_for_search(claim.text).split()) in " ".join(
                evidence.split())
            ok = verbatim or (share == 1.0 and not rejection(claim, PrefilterRules(roles=True)))
            verdicts.append(Verdict(SUPPORTED if ok else UNSUPPORTED, share, self.name))
        return verdicts


class ClaimsOnlyJudge(StrictWordJudge):
    """The strict word judge, except that a phrase of one or two words ("Lindqvist") states
    nothing to check and is unsupported: how the packaged model judges read a bare answer."""

    name = "claims-only"

    def judge(self, claims: Sequence[Claim]) -> list[Verdict]:
        verdicts = super().judge(claims)
        return [Verdict(UNSUPPORTED, 0.0, self.name) if len(claim.text.split()) < 3 else verdict
                for claim, verdict in zip(claims, verdicts)]


class WordAnswerability:
    """A deterministic answerability judge: the share of the question's content words that the
    sentence contains. Crude (it cannot tell a topic from an answer), but a real implementation
    of the seam, so the pipeline's abstention path runs without a model."""

    name = "word-answerability"
    threshold = 0.5

    def answer_scores(self, question: str, texts: Sequence[str]) -> list[float]:
        asked = set(content_stems(question))
        return [len(asked & set(content_stems(text))) / max(1, len(asked)) for text in texts]
