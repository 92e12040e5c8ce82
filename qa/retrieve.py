"""Hybrid retrieval: BM25 and dense search fused by reciprocal rank."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from index.chunking import normalize_for_search
from index.embedding import Embedder
from index.errors import UserError
from index.store_protocol import DocumentStore, check_embedder

from .contracts import Hit


_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(text: str, what: str = "The question") -> None:
    """A one-line error when `text` is not valid Unicode (an unpaired UTF-16 surrogate, which
    JSON's \\uD800 escapes can carry in but no encoder or tokenizer accepts)."""
    bad = _SURROGATE.search(text)
    if bad:
        raise UserError(f"{what} contains an unpaired UTF-16 surrogate "
                        f"(U+{ord(bad.group()):04X}) at character {bad.start() + 1}: "
                        f"send valid Unicode text.")


def check_question(question: str, max_chars: int) -> str:
    """The question, stripped; a one-line error for empty, oversized or invalid input."""
    if question is None or not question.strip():
        raise UserError("The question is empty: type a question about the documents.")
    if len(question) > max_chars:
        raise UserError(f"The question is {len(question):,} characters long; the limit is "
                        f"{max_chars:,} (QA_MAX_QUESTION_CHARS). Shorten it.")
    check_text(question)
    return question.strip()


@dataclass(frozen=True)
class Ranked:
    """A passage (by its store id) with its rank in each list and the fused score."""

    row: int  # the passage id in the store
    score: float
    dense_rank: int | None
    bm25_rank: int | None
    dense_score: float | None


def _min_max(scored: list[tuple[int, float]]) -> dict[int, float]:
    """Scores rescaled to [0, 1] within one result list (0 for rows not in it)."""
    if not scored:
        return {}
    values = [score for _, score in scored]
    low, high = min(values), max(values)
    span = high - low or 1.0
    return {row: (score - low) / span for row, score in scored}


def _convex(dense: list[tuple[int, float]], lexical: list[tuple[int, float]],
            dense_weight: float) -> dict[int, float]:
    """Convex combination of min-max normalised scores.

    Unlike rank fusion it keeps how far ahead a passage is: a passage that BM25 ranks first by
    a wide margin is not outvoted by passages that are merely middling in both lists.
    """
    dense_norm, lexical_norm = _min_max(dense), _min_max(lexical)
    rows = set(dense_norm) | set(lexical_norm)
    return {row: dense_weight * dense_norm.get(row, 0.0)
            + (1 - dense_weight) * lexical_norm.get(row, 0.0) for row in rows}


def make_retriever(store: DocumentStore, embedder: Embedder, settings) -> "Retriever":
    """A Retriever configured from Settings."""
    return Retriever(store, embedder, rrf_k=settings.rrf_k, candidates=settings.candidates,
                     fusion=settings.fusion, dense_weight=settings.dense_weight)


class Retriever:
    """Searches one loaded index with one embedder."""

    def __init__(self, store: DocumentStore, embedder: Embedder, rrf_k: int = 60,
                 candidates: int = 50, fusion: str = "convex", dense_weight: float = 0.5) -> None:
        check_embedder(store, embedder.name, embedder.dimension)
        self.store = store
        self.embedder = embedder
        self.rrf_k = rrf_k
        self.candidates = candidates
        self.fusion = fusion
        self.dense_weight = dense_weight

    def dense(self, question: str, n: int) -> list[tuple[int, float]]:
        """(passage id, cosine similarity) of the nearest passages."""
        if not self.store.count_passages():
            return []
        vector = self.embedder.embed([normalize_for_search(question)])
        return self.store.search_dense(vector[0], n)

    def bm25(self, question: str, n: int) -> list[tuple[int, float]]:
        """(passage id, BM25 score) of passages sharing at least one term with the question."""
        return self.store.search_lexical(question, n)

    def rank(self, question: str, k: int, mode: str = "hybrid") -> list[Ranked]:
        """The top `k` passage rows for `mode` ('hybrid', 'dense' or 'bm25')."""
        n = max(self.candidates, k)
        dense = self.dense(question, n) if mode in ("hybrid", "dense") else []
        lexical = self.bm25(question, n) if mode in ("hybrid", "bm25") else []
        dense_rank = {row: i + 1 for i, (row, _) in enumerate(dense)}
        dense_score = dict(dense)
        bm25_rank = {row: i + 1 for i, (row, _) in enumerate(lexical)}
        if mode == "dense":
            fused = {row: score for row, score in dense}
        elif mode == "bm25":
            fused = {row: score for row, score in lexical}
        elif self.fusion == "rrf":
            fused = {}
            for ranks in (dense_rank, bm25_rank):
                for row, rank in ranks.items():
                    fused[row] = fused.get(row, 0.0) + 1.0 / (self.rrf_k + rank)
        else:
            fused = _convex(dense, lexical, self.dense_weight)
        order = sorted(fused, key=lambda row: (-fused[row], row))[:k]
        return [Ranked(row, fused[row], dense_rank.get(row), bm25_rank.get(row),
                       dense_score.get(row)) for row in order]

    def search(self, question: str, k: int = 5, mode: str = "hybrid") -> list[Hit]:
        """The top `k` passages as Hits with title, source and exact span."""
        hits = []
        for rank, ranked in enumerate(self.rank(question, k, mode), start=1):
            passage = self.store.passage(ranked.row)
            document = self.store.get_document(passage.doc_id)
            hits.append(Hit(rank=rank, score=round(ranked.score, 6), doc_id=passage.doc_id,
                            title=document.title, source=document.source, start=passage.start,
                            end=passage.end, text=passage.text, heading=passage.heading,
                            dense_rank=ranked.dense_rank, bm25_rank=ranked.bm25_rank))
        return hits

    def best_similarity(self, question: str) -> float:
        """Cosine similarity of the single nearest passage (the abstention signal)."""
        best = self.dense(question, 1)
        return float(np.clip(best[0][1], -1, 1)) if best else 0.0
