"""When the model's text does not hold up: answer with the evidence itself, quoted and cited."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from index.chunking import normalize_for_search

from .asked_for import asked_for
from .citations import (SentenceSpan, describes_a_source, make_citation, passage_sentences,
                        split_answer, strip_markers)
from .contracts import AnswerSentence, Citation, Hit
from .textmatch import STOPWORDS, comparable, content_stems, coverage, words

# Added to the rank of a sentence that holds what the question asks for: small against the
# similarity of on-topic sentences (0.3-0.7), so it reorders close candidates, not meaning.
SUPPLIES_BONUS = 0.1
# A bare answer is a phrase of at most this many words ("Lindqvist", "in May 2019"), at most
# one of them a lower-case content word ("40 km"): a name, number or date, not a clause.
BARE_ANSWER_WORDS = 5
# Scores (question, sentences) -> similarity per sentence; the embedder provides it.
SentenceScorer = Callable[[str, list[str]], list[float]]


@dataclass(frozen=True)
class Evidence:
    """A passage sentence ranked as evidence for a question."""

    score: float
    n: int  # number of the passage in the list shown to the model
    hit: Hit
    sentence: SentenceSpan

    def as_citation(self) -> Citation:
        """The sentence as a citation: its exact quote and offsets in its passage."""
        return make_citation(self.n, self.hit, self.sentence, 1.0)

    def as_answer(self) -> tuple[AnswerSentence, Citation]:
        # Shown without the document's footnote marks ("said[49]"), which would read as
        # citations; the citation itself keeps the exact quote and offsets.
        quoted = nested_quotation(normalize_for_search(self.sentence.text))
        citation = self.as_citation()
        return (AnswerSentence(f"“{quoted}” [{self.n}]", (self.n,), True, claim=quoted,
                               quotes=(citation,)), citation)


def as_quotation(sentence: AnswerSentence) -> AnswerSentence:
    """A verified sentence shown as its quote in quotation marks: for a model sentence in its
    source's voice ("Our survey finds …"), which unquoted would read as the assistant's own
    survey. Of several quotes, the one holding most of the sentence's words (the voice is
    that source's)."""
    if not sentence.quotes:
        return sentence
    words_of = sentence.claim or sentence.text
    citation = max(sentence.quotes, key=lambda c: coverage(words_of, c.quote))
    quoted = nested_quotation(normalize_for_search(citation.quote))
    return replace(sentence, text=f"“{quoted}” [{citation.n}]", citations=(citation.n,),
                   claim=quoted)


_DOUBLE_QUOTES = "“”\""


def nested_quotation(text: str) -> str:
    """The text ready to go inside “…”: a sentence that is one quotation loses its own marks,
    and quotation marks inside become single ones, so the marks shown always pair up
    (“‘The bridge can wait,’ the mayor said.” rather than “The bridge can wait,” the mayor said.”)."""
    text = text.strip()
    if (len(text) > 1 and text[0] in _DOUBLE_QUOTES and text[-1] in _DOUBLE_QUOTES
            and not any(mark in text[1:-1] for mark in _DOUBLE_QUOTES)):
        text = text[1:-1]
    return text.replace("“", "‘").replace("”", "’").replace('"', "'")


def weighted_overlap(question: str, texts: Sequence[str]) -> list[float]:
    """Share of the question's words in each text, each word weighted by how rare it is among
    the texts: a name every candidate sentence mentions tells them apart less than "disagree"."""
    asked = set(content_stems(question))
    if not asked:
        return [0.0] * len(texts)
    present = [asked & set(content_stems(text)) for text in texts]
    df = {stem: sum(1 for p in present if stem in p) for stem in asked}
    weight = {stem: math.log(1 + len(texts) / (1 + df[stem])) for stem in asked}
    total = sum(weight.values())
    return [sum(weight[stem] for stem in p) / total for p in present]


def rank_evidence(question: str, hits: Sequence[Hit], scorer: SentenceScorer | None
                  ) -> list[Evidence]:
    """The sentences of the passages that could answer the question, best evidence first.

    A sentence the question's wording rules out (no number for "how many", a passage that never
    mentions the year asked about: see qa/asked_for.py) is not evidence."""
    asked = asked_for(question)
    # A sentence about what its document covers ("This article explores …") is evidence of
    # nothing; it is dropped from model drafts for the same reason (citations.describes_a_source).
    candidates = [(n, hit, sentence) for n, hit in enumerate(hits, start=1)
                  for sentence in passage_sentences(hit) if len(sentence.text.split()) >= 6
                  and not describes_a_source(normalize_for_search(sentence.text))
                  and not asked.excludes(sentence.text, hit.text)]
    if not candidates:
        return []
    texts = [normalize_for_search(c[2].text) for c in candidates]
    semantic = scorer(question, texts) if scorer else [0.0] * len(texts)
    overlap = weighted_overlap(question, texts)
    # Meaning first, shared words second, a little trust in the retriever's order, and a
    # little for holding the kind of thing asked for (a number for "how many", a name for "who").
    ranked = [Evidence(semantic[i] + 0.5 * overlap[i] - 0.02 * n
                       + (SUPPLIES_BONUS if asked.supplies(texts[i]) else 0.0), n, hit, s)
              for i, (n, hit, s) in enumerate(candidates)]
    return sorted(ranked, key=lambda e: (-e.score, e.n, e.sentence.start))


def select_evidence(ranked: Sequence[Evidence], count: int, spread: bool = False,
                    one_per_passage: bool = False) -> list[Evidence]:
    """The best `count` of the ranked evidence; with `spread` each document's best sentence
    comes first (in rank order), so every document that speaks is heard before any twice."""
    chosen: list[Evidence] = []

    def take(evidence: Evidence) -> None:
        if len(chosen) < count and evidence not in chosen and not (
                one_per_passage and any(evidence.n == other.n for other in chosen)):
            chosen.append(evidence)

    if spread:
        for evidence in ranked:
            if all(evidence.hit.doc_id != other.hit.doc_id for other in chosen):
                take(evidence)
    for evidence in ranked:
        take(evidence)
    return chosen


def bare_answer(draft: str, question: str) -> str:
    """The phrase a draft opens with when that phrase is a bare answer ("Lindqvist [2].", "40 km"):
    at most BARE_ANSWER_WORDS words, holding the kind of thing the question asks for (a name
    the question does not use for "who", a number for "how many", a date for "when"); "" when
    the draft opens otherwise. Small models often answer so, and no judge can read a phrase as a
    claim; it is shown only as the lead of the quote that contains it (see extractive_answer)."""
    sentences = split_answer(draft)
    phrase = strip_markers(sentences[0]).rstrip(".") if sentences else ""
    common = [w for w in words(phrase) if w.islower() and w not in STOPWORDS]
    if not phrase or len(phrase.split()) > BARE_ANSWER_WORDS or len(common) > 1:
        return ""
    return phrase if asked_for(question).supplies(phrase, phrase=True) else ""


# Words that make a figure approximate or a bound; a lead keeps the one its source puts before it
# ("approximately 40 km", not "40 km").
_QUALIFIERS = re.compile(r"\b(?:approximately|about|around|roughly|nearly|almost|some|over|under|"
                         r"up to|more than|less than|fewer than|at least|at most|"
                         r"an estimated|estimated)$")


def _qualified_phrase(sentence: str, phrase: str) -> str:
    """The phrase, with the qualifier the sentence writes just before it if any, when the
    sentence holds it as whole words (spacing, case and quote marks aside); "" when it does not."""
    text, part = f" {comparable(sentence)} ", comparable(phrase)
    for before in " (‘'\"":
        for after in " ,.;:)’'\"":
            found = text.find(f"{before}{part}{after}")
            if found >= 0:
                qualifier = _QUALIFIERS.search(text[:found + 1].rstrip())
                return f"{qualifier.group()} {phrase}" if qualifier and before == " " else phrase
    return ""


# Scores (question, texts) -> does each text answer the question; the answerability judge.
AnswerScorer = Callable[[str, list[str]], list[float]]


def extractive_answer(question: str, hits: Sequence[Hit], scorer: SentenceScorer | None,
                      max_quotes: int = 3, spread: bool = False,
                      answers: tuple[AnswerScorer, float] | None = None, lead: str = "",
                      named: frozenset[str] = frozenset()
                      ) -> tuple[str, tuple[AnswerSentence, ...], tuple[Citation, ...]]:
    """The passage sentences closest to the question (one per passage), quoted with markers.

    Three quotes, not two: on the tune half of the team set the third raised key-fact coverage
    of the quotes alone from 0.514 to 0.569, most on questions whose answer spans passages.
    `spread` (comparison questions) takes each document's best sentence first, so every side
    that speaks is quoted before any document is quoted twice. With `answers` (a scorer and
    its threshold), the quotes after the best one are kept only when judged to answer the
    question: related sentences that answer nothing are padding a reader has to wade through.
    The best sentence of each document the question `named` (by doc_id) is kept all the same:
    the reader asked for that source's words, and a judge's miss would silence one side.

    A `lead` (the model's bare answer, see bare_answer) opens the answer, cited to the best
    evidence sentence that contains it word for word, which then comes first among the quotes;
    a lead no evidence sentence contains is not shown.
    """
    ranked = rank_evidence(question, hits, scorer)
    # The best sentence holding the lead, and the lead as shown (with its source's qualifier).
    holds_lead, lead = next(((e, shown) for e in ranked
                             if (shown := _qualified_phrase(e.sentence.text, lead))),
                            (None, "")) if lead else (None, "")
    chosen = select_evidence(([holds_lead] if holds_lead else []) + ranked, max_quotes, spread,
                             one_per_passage=True)
    if answers is not None and len(chosen) > 1:
        score, threshold = answers
        scores = score(question, [e.sentence.text for e in chosen[1:]])
        best_of_named: dict[str, Evidence] = {}
        for evidence in chosen:
            if evidence.hit.doc_id in named:
                best_of_named.setdefault(evidence.hit.doc_id, evidence)
        chosen = chosen[:1] + [e for e, s in zip(chosen[1:], scores)
                               if s >= threshold or best_of_named.get(e.hit.doc_id) is e]
    pairs = [e.as_answer() for e in sorted(chosen, key=lambda e: e.n)]
    sentences = tuple(p[0] for p in pairs)
    citations = tuple(p[1] for p in pairs)
    answer = "The documents say: " + " ".join(s.text for s in sentences) if sentences else ""
    if holds_lead is not None:  # chosen first, so shown
        citation = holds_lead.as_citation()
        opening = AnswerSentence(f"{lead[:1].upper()}{lead[1:]} [{citation.n}].", (citation.n,),
                                 True, claim=lead, quotes=(citation,))
        sentences = (opening,) + sentences
        answer = f"{opening.text} {answer}"
    return answer, sentences, citations
