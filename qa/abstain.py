"""Decide whether the retrieved evidence can answer the question at all."""

from __future__ import annotations

import re
from dataclasses import dataclass

from index.store_protocol import DocumentStore

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


class Vocabulary:
    """The corpus's lexical terms: those of the passages (asked of the store) plus the terms
    of the titles, authors and publishers. `term in vocabulary` works as for a set."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store
        self.described: set[str] = set()
        for record in store.list_documents():
            described = " ".join([record.title, *(str(record.meta.get(k, ""))
                                                  for k in ("author", "publisher"))])
            self.described.update(store.lexical_terms(described))

    def terms(self, text: str) -> list[str]:
        """`text` analysed the way the store analyses passages."""
        return self.store.lexical_terms(text)

    def __contains__(self, term: str) -> bool:
        return term in self.described or bool(self.store.known_terms([term]))


def corpus_vocabulary(retriever: Retriever) -> Vocabulary:
    """Every lexical term of the passages plus the titles, authors and publishers."""
    return Vocabulary(retriever.store)


def evidence_signal(question: str, retriever: Retriever, vocabulary: Vocabulary
                    ) -> EvidenceSignal:
    """Measure how close the corpus comes to the question."""
    names = _NAME_OR_NUMBER.findall(question.strip())
    unknown = []
    for name in names:
        stems = vocabulary.terms(name)
        if stems and not any(stem in vocabulary for stem in stems):
            unknown.append(name)
    return EvidenceSignal(retriever.best_similarity(question), tuple(dict.fromkeys(unknown)))
