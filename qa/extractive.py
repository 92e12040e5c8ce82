"""When the model's text does not hold up: answer with the evidence itself, quoted and cited."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from index.chunking import normalize_for_search

from .citations import SentenceSpan, make_citation, passage_sentences
from .contracts import AnswerSentence, Citation, Hit
from .textmatch import coverage

# Scores (question, sentences) -> similarity per sentence; the embedder provides it.
SentenceScorer = Callable[[str, list[str]], list[float]]


def extractive_answer(question: str, hits: Sequence[Hit], scorer: SentenceScorer | None,
                      max_quotes: int = 2) -> tuple[str, tuple[AnswerSentence, ...], tuple[Citation, ...]]:
    """The passage sentences closest to the question, quoted verbatim with their markers."""
    candidates: list[tuple[int, Hit, SentenceSpan]] = []
    for n, hit in enumerate(hits, start=1):
        for sentence in passage_sentences(hit):
            if len(sentence.text.split()) >= 6:
                candidates.append((n, hit, sentence))
    if not candidates:
        return "", (), ()
    texts = [" ".join(c[2].text.split()) for c in candidates]
    semantic = scorer(question, texts) if scorer else [0.0] * len(texts)
    # Meaning first, shared words second, and a little trust in the retriever's order.
    scored = [(semantic[i] + 0.5 * coverage(question, texts[i]) - 0.02 * candidates[i][0], i)
              for i in range(len(candidates))]
    scored.sort(reverse=True)
    chosen: list[int] = []
    used_passages: set[int] = set()
    for _, i in scored:
        n = candidates[i][0]
        if n in used_passages:
            continue
        chosen.append(i)
        used_passages.add(n)
        if len(chosen) == max_quotes:
            break
    sentences, citations = [], []
    for i in sorted(chosen, key=lambda i: candidates[i][0]):
        n, hit, sentence = candidates[i]
        # Shown without the document's footnote marks ("said[49]"), which would read as
        # citations; the citation itself keeps the exact quote and offsets.
        quoted = normalize_for_search(sentence.text).strip("“”\"")
        text = f"“{quoted}” [{n}]"
        sentences.append(AnswerSentence(text, (n,), True))
        citations.append(make_citation(n, hit, sentence, 1.0))
    answer = "The documents say: " + " ".join(s.text for s in sentences)
    return answer, tuple(sentences), tuple(citations)
