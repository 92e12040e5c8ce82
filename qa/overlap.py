"""Neighbouring passages overlap (chunks repeat whole sentences); merge them before anyone sees them.

Two hits from one document whose spans overlap or touch become one passage covering both, so the
model never reads the same sentence twice and an answer never quotes the same span twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from index.store_protocol import DocumentStore

from .contracts import Hit


def _join(first: Hit, second: Hit) -> Hit:
    """One hit spanning both (first.start <= second.start <= first.end); first keeps its rank."""
    if second.end <= first.end:
        return first
    text = first.text + second.text[first.end - second.start:]
    return replace(first, end=second.end, text=text, score=max(first.score, second.score))


def merge_overlapping(hits: Sequence[Hit]) -> list[Hit]:
    """The hits with overlapping spans of one document merged, in the order of their best rank."""
    merged: list[Hit] = []
    for hit in hits:
        for i, kept in enumerate(merged):
            if kept.doc_id != hit.doc_id or hit.start > kept.end or kept.start > hit.end:
                continue
            first, second = (kept, hit) if kept.start <= hit.start else (hit, kept)
            joined = _join(first, second)
            merged[i] = replace(joined, rank=kept.rank, dense_rank=kept.dense_rank,
                                bm25_rank=kept.bm25_rank, heading=first.heading)
            break
        else:
            merged.append(hit)
    # A merge can make a passage reach the next one of the same document: merge until stable.
    return merged if len(merged) == len(hits) else merge_overlapping(merged)


def with_list_bodies(hits: Sequence[Hit], store: DocumentStore) -> list[Hit]:
    """Each passage that ends on a line introducing a list ("… they consist of:") extended by
    the next passage of its document, then merged as above.

    A passage boundary can fall between an introduction and its list; the introduction alone
    answers nothing, and quoting it reads like the answer was cut off.
    """
    extended = []
    for hit in hits:
        if hit.text.rstrip().endswith(":"):
            after = [p for _, p in store.passages_of(hit.doc_id)
                     if p.start > hit.start and p.end > hit.end]
            if after:
                end = min(after, key=lambda p: p.start).end
                hit = replace(hit, end=end, text=store.document_text(hit.doc_id)[hit.start:end])
        extended.append(hit)
    return merge_overlapping(extended)
