"""Decide whether the retrieved evidence can answer the question at all."""

from __future__ import annotations

import re
from dataclasses import dataclass

from index.store import lexical_tokens

from .retrieve import Retriever

_NAME_OR_NUMBER = re.compile(r"(?<!^)(?<![.?!]\s)\b[A-Z][\w’'-]+|\b\d{2,}\b")


@dataclass(frozen=True)
class EvidenceSignal:
    """What abstention looks at; kept in the answer's metadata and the eval results."""

    best_similarity: float  # cosine similarity of the nearest passage to the question
    unknown_names: tuple[str, ...]  # names and numbers of the question found nowhere in the corpus

    def should_abstain(self, threshold: float) -> bool:
        """Far from every passage, or asking about a name or number the corpus never mentions."""
        return self.best_similarity < threshold or bool(self.unknown_names)

    def to_json(self) -> dict:
        return {"best_similarity": round(self.best_similarity, 4),
                "unknown_names": list(self.unknown_names)}


def corpus_vocabulary(retriever: Retriever) -> set[str]:
    """Every lexical term of the passages plus the titles, authors and publishers."""
    bm25 = retriever.store.bm25
    vocabulary = set(bm25.vocab_dict) if bm25 is not None else set()
    for record in retriever.store.documents.values():
        described = " ".join([record.title, *(str(record.meta.get(k, ""))
                                              for k in ("author", "publisher"))])
        vocabulary.update(lexical_tokens([described])[0])
    return vocabulary


def evidence_signal(question: str, retriever: Retriever, vocabulary: set[str]) -> EvidenceSignal:
    """Measure how close the corpus comes to the question."""
    names = _NAME_OR_NUMBER.findall(question.strip())
    unknown = []
    for name in names:
        stems = lexical_tokens([name])[0]
        if stems and not any(stem in vocabulary for stem in stems):
            unknown.append(name)
    return EvidenceSignal(retriever.best_similarity(question), tuple(dict.fromkeys(unknown)))
