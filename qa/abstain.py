"""Decide whether the retrieved evidence can answer the question at all.

Two signals, both measured: how close the nearest passage is (a floor for questions far from
every document, calibrated for the default embedder), and whether any of the best evidence
sentences answers the question, as the answerability judge sees it (qa/judge/answerability.py).
Before either, the question's wording can rule sentences out: "how many" needs a number, a
question naming a year needs a passage that mentions it, and one naming someone needs a passage
(or the document's title, author or publisher) that mentions any word of that name
(qa/asked_for.py). Only the whole name counts: a question about "the Harbour Navy" is not refused
for the word "Navy" when the passages mention the Harbour.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .asked_for import asked_for
from .citations import passage_sentences
from .contracts import Hit
from .extractive import Evidence, rank_evidence
from .judge.base import AnswerabilityJudge
from .named_sources import source_names
from .retrieve import Retriever

# Evidence sentences put to the answerability judge: the best few by rank_evidence. On the tune
# half the best 3 separated answerable from unanswerable questions as well as the best 6.
SENTENCES_CHECKED = 3


@dataclass(frozen=True)
class EvidenceSignal:
    """What abstention looks at; kept in the answer's notes and the eval results."""

    best_similarity: float  # cosine similarity of the nearest passage to the question
    # Answerability of the best evidence sentence; with `until_answered`, of the first one
    # judged to answer (enough for the decision) or the best of all when none does.
    best_answer_score: float | None = None
    answer_threshold: float | None = None  # the judge's calibrated threshold for that score
    # The first evidence sentence judged to answer the question: a verified quote the reader can
    # see while the model writes (never in to_json: the notes keep the scores only).
    answering: Evidence | None = None
    # What the question asks for that no passage sentence holds ("a number"), when its wording
    # rules every sentence out (qa/asked_for.py); "" otherwise.
    missing: str = ""

    def should_abstain(self, floor: float) -> bool:
        """Far from every passage, no sentence that could hold what is asked, or none judged to
        answer the question."""
        if self.best_similarity < floor or self.missing:
            return True
        return (self.best_answer_score is not None and self.answer_threshold is not None
                and self.best_answer_score < self.answer_threshold)

    def to_json(self) -> dict:
        score = self.best_answer_score
        data = {"best_similarity": round(self.best_similarity, 4),
                "best_answer_score": None if score is None else round(score, 4),
                "answer_threshold": self.answer_threshold}
        return data | ({"missing": self.missing} if self.missing else {})


def evidence_signal(question: str, retriever: Retriever, hits: Sequence[Hit], floor: float,
                    scorer: Callable[[str, list[str]], list[float]],
                    answerability: AnswerabilityJudge | None,
                    until_answered: bool = False) -> EvidenceSignal:
    """Measure how close the corpus comes to the question; the judge is only asked when the
    nearest passage clears the floor (below it the answer is already no).

    `until_answered` asks about the sentences one at a time, best first, and stops at the first
    judged to answer: the decision is the same, and each sentence not asked saves a judge call
    (~1.7 s with qwen-1.5b on 2 cores) before the model starts writing. Calibration asks about
    all of them, to measure the best score."""
    similarity = retriever.best_similarity(question)
    if similarity < floor or not hits:
        return EvidenceSignal(similarity)
    asked = asked_for(question)
    absent = asked.unmentioned(_mentions(retriever, hits)) if asked.names else ()
    if absent:
        return EvidenceSignal(similarity, missing="a passage that mentions "
                              + " or ".join(absent))
    ranked = rank_evidence(question, hits, scorer)
    if not ranked:
        # Every sentence lacks what the question asks for, or none is long enough to be evidence.
        ruled_out = any(asked.excludes(s.text, h.text) for h in hits for s in passage_sentences(h))
        missing = asked.needs() if ruled_out else ""
        return EvidenceSignal(similarity, missing=missing)
    if answerability is None:
        return EvidenceSignal(similarity)
    best = ranked[:SENTENCES_CHECKED]
    scores: list[float] = []
    answering = None
    for evidence in best:
        scores += answerability.answer_scores(question, [evidence.sentence.text])
        if scores[-1] >= answerability.threshold and answering is None:
            answering = evidence
            if until_answered:
                break  # every earlier score was below it, so this one is the best so far
    return EvidenceSignal(similarity, max(scores), answerability.threshold, answering)


def _mentions(retriever: Retriever, hits: Sequence[Hit]) -> list[str]:
    """The texts that may mention a name the question asks about: the passages, and their
    documents' titles, authors and publishers ("according to Okafor" of Okafor's report)."""
    records = {r.doc_id: r for r in retriever.store.list_documents()}
    texts = [hit.text for hit in hits]
    for doc_id in dict.fromkeys(hit.doc_id for hit in hits):
        record = records.get(doc_id)
        if record is not None:
            texts += [record.title, *source_names(record.meta)]
    return texts
