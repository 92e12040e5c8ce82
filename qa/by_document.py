"""The per-document view: what each document says about the question, with its quote.

Analysts comparing sources want to see each document's position side by side, not one blended
answer. For every indexed document: its statement that best answers the question — a verified
sentence of the answer that cites it, or else its closest sentence, quoted — or "does not
address it". With an answerability judge, a document addresses the question when one of the
best sentences of its closest passages is judged to answer it, wherever those passages rank
overall (a document may use other words than the question); without one, when one of its
passages is among the best matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .citations import strip_markers
from .contracts import Answer, DocumentView, Hit
from .extractive import AnswerScorer, SentenceScorer, rank_evidence

NOT_ADDRESSED = "does not address it"
# Documents put to the answerability judge per question (2 sentences each, ~1 s a sentence on
# 2 cores): the first ones of the wide retrieval, in its order.
DOCUMENTS_CHECKED = 8


def by_document(question: str, answer: Answer, pool: Sequence[Hit],
                documents: Sequence[tuple[str, str]], scorer: SentenceScorer | None,
                depth: int = 10, answers: tuple[AnswerScorer, float] | None = None,
                documents_checked: int = DOCUMENTS_CHECKED) -> tuple[DocumentView, ...]:
    """Views in the order of each document's best rank; unaddressed documents last.

    `pool` is a wide retrieval for the question (best first); `documents` are (doc_id, title).
    Without `answers` (a scorer and its threshold), a document addresses the question when one
    of its passages is among the first `depth` of the pool; with it, the first
    `documents_checked` documents of the whole pool are asked about (2 sentences each).
    """
    near = [hit for hit in pool[:depth]] if answers is None else list(pool)
    views: dict[str, DocumentView] = {}
    for sentence in answer.sentences if not answer.abstained else ():
        for n in sentence.citations:
            # Only the model's verified sentences: quoted evidence gets the document's own quote.
            if sentence.verdict is None or not sentence.supported \
                    or not 1 <= n <= len(answer.passages):
                continue
            doc_id = answer.passages[n - 1].doc_id
            # The sentence's own quote of that passage (another sentence may quote it too).
            citation = next((c for c in sentence.quotes if c.n == n), None)
            if doc_id not in views and citation is not None:
                views[doc_id] = DocumentView(doc_id, citation.title, True,
                                             strip_markers(sentence.text), citation, "answer")
    candidates = list(dict.fromkeys(hit.doc_id for hit in near))
    if answers is not None:
        candidates = candidates[:documents_checked]
    for doc_id in candidates:
        if doc_id in views:
            continue
        own = [hit for hit in near if hit.doc_id == doc_id][:2]
        ranked = rank_evidence(question, own, scorer)
        if answers is not None:
            score, threshold = answers
            top = ranked[:2]
            scores = score(question, [e.sentence.text for e in top]) if top else []
            ranked = [e for e, s in zip(top, scores) if s >= threshold]
        if not ranked:
            continue
        best = ranked[0]
        sentence, citation = best.as_answer()
        # n = 0: the quote belongs to this view, not to a numbered passage of the answer.
        views[doc_id] = DocumentView(doc_id, best.hit.title, True,
                                     sentence.text.rsplit(" [", 1)[0], replace(citation, n=0),
                                     "quote")
    order = {hit.doc_id: i for i, hit in reversed(list(enumerate(pool)))}
    addressed = sorted(views.values(), key=lambda v: order.get(v.doc_id, len(pool)))
    missing = [DocumentView(doc_id, title, False, NOT_ADDRESSED, None, "")
               for doc_id, title in documents if doc_id not in views]
    return tuple(addressed) + tuple(missing)
