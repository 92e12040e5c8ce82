"""Citations are data: parse [n] markers, drop invalid ones, check each sentence against its sources."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from index.chunking import normalize_for_search, split_sentences

from .contracts import AnswerSentence, Citation, Hit
from .textmatch import content_stems, coverage, polarity_flips, role_swaps

_LEANS_BACK = re.compile(r"^(?:this|these|that|those|it|its|they|their|he|his|she|her|such)\b",
                        re.IGNORECASE)
MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")


@dataclass(frozen=True)
class SentenceSpan:
    """A sentence of a passage, with offsets into the document text."""

    start: int
    end: int
    text: str


def passage_sentences(hit: Hit) -> list[SentenceSpan]:
    """The passage's sentences with document offsets (hit.text is the document slice)."""
    return [SentenceSpan(hit.start + s.start, hit.start + s.end, hit.text[s.start:s.end])
            for s in split_sentences(hit.text, 0, len(hit.text))]


def split_answer(text: str) -> list[str]:
    """Sentences of a model answer, markers kept with the sentence they close."""
    flat = " ".join(text.split())
    if not flat:
        return []
    spans = split_sentences(flat, 0, len(flat))
    sentences = [flat[s.start:s.end] for s in spans]
    # A marker the splitter left at the start of the next sentence belongs to the previous one.
    merged: list[str] = []
    for sentence in sentences:
        lead = re.match(r"^((?:\s*\[[\d,\s]+\])+)\s*(.*)$", sentence)
        if lead and merged:
            merged[-1] += " " + lead.group(1).strip()
            sentence = lead.group(2)
        if sentence:
            merged.append(sentence)
    return merged


def markers(sentence: str) -> list[int]:
    """All citation numbers in a sentence, in order, without repeats."""
    numbers: list[int] = []
    for group in MARKER.findall(sentence):
        for part in group.split(","):
            n = int(part)
            if n not in numbers:
                numbers.append(n)
    return numbers


def strip_markers(sentence: str) -> str:
    return " ".join(MARKER.sub("", sentence).split()).replace(" .", ".").replace(" ,", ",")


def with_markers(claim: str, numbers: Sequence[int]) -> str:
    """The claim with its markers placed before the closing punctuation: "... flexible [2]." """
    body = claim.rstrip()
    end = ""
    if body and body[-1] in ".!?":
        body, end = body[:-1].rstrip(), body[-1]
    return f"{body} {' '.join(f'[{n}]' for n in numbers)}{end}"


@dataclass(frozen=True)
class Support:
    """How well one passage backs one claim, and the passage sentence that backs it best."""

    score: float
    swapped: tuple[str, ...]
    quote: SentenceSpan | None
    anchored: bool = True  # the window also names what the question asked about

    def holds(self, threshold: float) -> bool:
        return (self.quote is not None and self.score >= threshold and not self.swapped
                and self.anchored)


def support(claim: str, hit: Hit, question: str = "") -> Support:
    """How well the best one or two consecutive sentences of the passage back the claim.

    Scoring against a short window rather than the whole passage matters: a passage that names
    the question's actors in one sentence and some other official in another would otherwise
    "support" a claim that pairs them wrongly. The window is also the quote the user sees.
    When the claim restates the question ("the delegation that arrived in Moscow was X"), the
    window must name that subject too, not just X.
    """
    sentences = passage_sentences(hit)
    if not sentences:
        return Support(0.0, (), None)
    windows = list(sentences)
    for first, second in zip(sentences, sentences[1:]):
        windows.append(SentenceSpan(first.start, second.end,
                                    hit.text[first.start - hit.start:second.end - hit.start]))
    scored = [(coverage(claim, normalize_for_search(w.text), min_matched=2), -len(w.text), w)
              for w in windows]
    score, _, best = max(scored, key=lambda item: (item[0], item[1]))
    window_text = normalize_for_search(best.text)
    swaps = role_swaps(claim, window_text) + polarity_flips(claim, window_text)
    asked = set(content_stems(question))
    claim_stems = content_stems(claim)
    present = set(content_stems(window_text))
    echoed = [stem for stem in claim_stems if stem in asked]
    novel = [stem for stem in claim_stems if stem not in asked]
    anchored = True
    if len(set(echoed)) >= 2:
        anchored = sum(1 for stem in echoed if stem in present) / len(echoed) >= 0.5
    if novel:  # what the claim adds to the question must be in the window too
        score = min(score, sum(1 for stem in novel if stem in present) / len(novel))
    return Support(score, tuple(swaps), best, anchored)


def make_citation(n: int, hit: Hit, quote: SentenceSpan, score: float) -> Citation:
    return Citation(n=n, doc_id=hit.doc_id, title=hit.title, source=hit.source,
                    start=quote.start, end=quote.end, quote=quote.text,
                    passage_start=hit.start, passage_end=hit.end, support=round(score, 3))


@dataclass(frozen=True)
class Verified:
    """The answer after checking: kept sentences, their citations, and what was removed."""

    sentences: tuple[AnswerSentence, ...]
    citations: tuple[Citation, ...]
    invalid_markers: int
    unsupported: int

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences if s.supported)


def verify(answer: str, hits: Sequence[Hit], min_support: float, question: str = "") -> Verified:
    """Keep each sentence only if a passage it cites supports it.

    A sentence whose cited passage does not back it, or that cites nothing valid, is checked
    against every passage shown to the model and re-cited to the one that backs it best.
    """
    kept: list[AnswerSentence] = []
    citations: dict[int, Citation] = {}
    invalid = unsupported = 0
    for raw in split_answer(answer):
        claim = strip_markers(raw)
        if len(claim.split()) < 3 and not markers(raw):
            continue  # stray fragments ("Answer:", "1.")
        if kept and not kept[-1].supported and _LEANS_BACK.match(claim):
            # "This link also ..." after a removed sentence: its subject is gone with it.
            unsupported += 1
            kept.append(AnswerSentence(claim, (), False))
            continue
        cited = markers(raw)
        valid = [n for n in cited if 1 <= n <= len(hits)]
        invalid += len(cited) - len(valid)
        verdicts = {n: support(claim, hits[n - 1], question) for n in range(1, len(hits) + 1)}
        backing = [(n, verdicts[n]) for n in valid if verdicts[n].holds(min_support)]
        if not backing:  # wrong or missing marker: cite the passage that does back it, if any
            others = [(n, v) for n, v in verdicts.items() if v.holds(min_support)]
            backing = [max(others, key=lambda b: b[1].score)] if others else []
        if not backing:
            unsupported += 1
            kept.append(AnswerSentence(claim, (), False))
            continue
        numbers = []
        for n, verdict in backing:
            numbers.append(n)
            previous = citations.get(n)
            if previous is None or verdict.score > previous.support:
                citations[n] = make_citation(n, hits[n - 1], verdict.quote, verdict.score)
        text = with_markers(claim, numbers)
        kept.append(AnswerSentence(text, tuple(numbers), True))
    ordered = tuple(citations[n] for n in sorted(citations))
    return Verified(tuple(kept), ordered, invalid, unsupported)
