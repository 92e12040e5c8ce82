"""Retrieval metrics against gold evidence spans: recall@k, MRR, evidence recall."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from qa.contracts import Hit

from .questions import Question, locate


@dataclass(frozen=True)
class GoldSpan:
    source_name: str  # file name of the document
    start: int
    end: int


def gold_spans(question: Question, texts_by_name: dict[str, str]) -> list[GoldSpan]:
    """Offsets of each gold quote; quotes that are not verbatim in their file are left out."""
    spans = []
    for evidence in question.evidence:
        text = texts_by_name.get(evidence.doc)
        where = locate(evidence, text) if text is not None else None
        if where:
            spans.append(GoldSpan(evidence.doc, *where))
    return spans


def overlaps(hit: Hit, span: GoldSpan) -> bool:
    """A hit counts when its span shares at least one character with a gold quote."""
    return Path(hit.source).name == span.source_name and hit.start < span.end and span.start < hit.end


def first_relevant_rank(hits: Sequence[Hit], spans: Sequence[GoldSpan]) -> int | None:
    for hit in hits:
        if any(overlaps(hit, span) for span in spans):
            return hit.rank
    return None


def retrieval_scores(hits: Sequence[Hit], spans: Sequence[GoldSpan],
                     ks: Sequence[int] = (1, 3, 5, 10)) -> dict:
    """Per-question retrieval metrics."""
    rank = first_relevant_rank(hits, spans)
    scores = {f"recall@{k}": float(rank is not None and rank <= k) for k in ks}
    scores["mrr"] = 1.0 / rank if rank else 0.0
    found = sum(1 for span in spans if any(overlaps(hit, span) for hit in hits))
    scores["evidence_recall"] = found / len(spans) if spans else 0.0
    return scores


def mean_scores(rows: Sequence[dict]) -> dict:
    """Average each metric over questions."""
    if not rows:
        return {}
    return {key: sum(row[key] for row in rows) / len(rows) for key in rows[0]}
