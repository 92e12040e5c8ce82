"""Hybrid retrieval must beat both dense-only and BM25-only on the team's question set."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.questions import load_questions
from eval.retrieval import gold_spans, mean_scores, retrieval_scores
from qa.retrieve import make_retriever

from conftest import ROOT, open_store, settings_for

pytestmark = [pytest.mark.slow, pytest.mark.both_stores]


def test_hybrid_beats_dense_and_bm25(real_seed_index, real_embedder):
    store = open_store(real_seed_index)
    retriever = make_retriever(store, real_embedder, settings_for(real_seed_index))
    texts = {Path(r.source).name: store.document_text(r.doc_id) for r in store.list_documents()}
    questions = [q for q in load_questions(ROOT / "eval" / "seed_questions.jsonl") if q.answerable]
    scores = {mode: mean_scores([retrieval_scores(retriever.search(q.question, 10, mode),
                                                  gold_spans(q, texts)) for q in questions])
              for mode in ("dense", "bm25", "hybrid")}
    for metric in ("mrr", "recall@5", "recall@10"):
        assert scores["hybrid"][metric] > max(scores["dense"][metric], scores["bm25"][metric]), (
            metric, scores)
