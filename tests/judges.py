"""A deterministic support judge for fast tests: a real implementation of the judge seam.

It accepts a claim only when every content word of it occurs in the evidence and the lexical
pre-filter, with every rule on, finds nothing wrong: far stricter than a model (no paraphrases), never lenient.
"""

from __future__ import annotations

from collections.abc import Sequence

from index.chunking import normalize_for_search
from qa.judge.base import SUPPORTED, UNSUPPORTED, Claim, Verdict
from qa.judge.prefilter import PrefilterRules, rejection
from qa.textmatch import coverage


class StrictWordJudge:
    name = "strict-words"

    def judge(self, claims: Sequence[Claim]) -> list[Verdict]:
        verdicts = []
        for claim in claims:
            share = coverage(claim.text, normalize_for_search(claim.evidence_text))
            ok = share == 1.0 and not rejection(claim, PrefilterRules(roles=True))
            verdicts.append(Verdict(SUPPORTED if ok else UNSUPPORTED, share, self.name))
        return verdicts
