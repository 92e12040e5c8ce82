"""Comparison questions need every side: spread the passages shown over the documents.

"How do the documents differ on …", "Where do A and B disagree …": a plain top-k often comes from
one document (or one side), and the answer can then only cover that side. For such questions the
passages are taken round-robin over the documents, each document's best passage first, from a
wider retrieval.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from .contracts import Hit

# English words that ask for a comparison; nothing here is about any particular collection.
_COMPARATIVE = re.compile(
    r"\b(?:differ\w*|disagree\w*|agree\w*|compar\w*|contrast\w*|versus|vs\.?|whereas|"
    r"similar\w*|distinguish\w*)\b",
    re.IGNORECASE)


def is_comparison(question: str) -> bool:
    """True for questions that ask how actors or documents compare, agree or differ."""
    return bool(_COMPARATIVE.search(question))


def round_robin(hits: Sequence[Hit], k: int) -> list[Hit]:
    """Up to k hits: each document's best first (in rank order), then their second best, ..."""
    by_doc: dict[str, list[Hit]] = {}
    for hit in hits:
        by_doc.setdefault(hit.doc_id, []).append(hit)
    chosen: list[Hit] = []
    depth = 0
    while len(chosen) < k and any(len(v) > depth for v in by_doc.values()):
        for group in by_doc.values():
            if len(group) > depth and len(chosen) < k:
                chosen.append(group[depth])
        depth += 1
    chosen.sort(key=lambda h: h.rank)
    return [replace(hit, rank=i) for i, hit in enumerate(chosen, start=1)]
