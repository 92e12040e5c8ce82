"""Accept, without a model call, a claim that is one or more whole sentences of its evidence.

A small model asked to restate evidence sentences copies most of them word for word (17 of the
22 supported model sentences in the stop-19 eval runs). Evidence entails its own sentences, so
asking a model about them only costs time (~1.5 s a claim on 2 cores) and adds the judge's noise.
Only whole sentences count: a fragment can drop a negation, a hedge or an attribution
("X denied that Y happened" -> "Y happened"), so fragments still go to the inner judge.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..textmatch import comparable
from .base import SUPPORTED, Claim, SupportJudge, Verdict

_END = ".!?"


def is_copied(claim: str, evidence: str) -> bool:
    """True when the claim is a run of whole sentences of the evidence (case, spacing,
    footnote marks and typographic quotes aside)."""
    said, source = comparable(claim).rstrip(_END + " "), comparable(evidence)
    if len(said.split()) < 3:
        return False
    for found in re.finditer(re.escape(said), source):
        before = source[:found.start()].rstrip(" \"'")
        after = source[found.end():].lstrip(" \"'")
        starts = not before or before[-1] in _END or before.endswith(":")
        ends = not after or after[0] in _END
        if starts and ends:
            return True
    return False


class CopyAcceptingJudge:
    """The inner judge, asked only about the claims that are not copies of their evidence."""

    def __init__(self, inner: SupportJudge) -> None:
        self.inner = inner
        self.name = inner.name

    def judge(self, claims: Sequence[Claim]) -> list[Verdict]:
        copied = [any(is_copied(claim.text, excerpt) for excerpt in claim.evidence)
                  for claim in claims]
        asked = [claim for claim, copy in zip(claims, copied) if not copy]
        inner = iter(self.inner.judge(asked) if asked else [])
        return [Verdict(SUPPORTED, 1.0, "copy") if copy else next(inner) for copy in copied]
