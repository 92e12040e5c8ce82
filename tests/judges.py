"""A deterministic support judge for fast tests: a real implementation of the judge seam.

It accepts a claim only when every content word of it occurs in the evidence and the lexical
pre-filter, with every rule on, finds nothing wrong: far stricter than a model (no paraphrases), never lenient.
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
            share = coverage(claim.text, normalize_for_search(claim.evidence_text))
            ok = share == 1.0 and not rejection(claim, PrefilterRules(roles=True))
            verdicts.append(Verdict(SUPPORTED if ok else UNSUPPORTED, share, self.name))
        return verdicts


class WordAnswerability:
    """A deterministic answerability judge: the share of the question's content words that the
    sentence contains. Crude (it cannot tell a topic from an answer), but a real implementation
    of the seam, so the pipeline's abstention path runs without a model."""

    name = "word-answerability"
    threshold = 0.5

    def answer_scores(self, question: str, texts: Sequence[str]) -> list[float]:
        asked = set(content_stems(question))
        return [len(asked & set(content_stems(text))) / max(1, len(asked)) for text in texts]
