"""Data contracts of answering, defined once and used by the CLI, the JSON API and the eval runner."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .judge.base import Verdict


@dataclass(frozen=True)
class Hit:
    """A retrieved passage: `text == document text[start:end]` of the file at `source`."""

    rank: int
    score: float
    doc_id: str
    title: str
    source: str
    start: int
    end: int
    text: str
    heading: str = ""
    dense_rank: int | None = None  # rank in the dense list, None when not in it
    bm25_rank: int | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Citation:
    """One citation shown to the user: marker `n` points at passage n of the prompt."""

    n: int
    doc_id: str
    title: str
    source: str
    start: int  # offsets of the supporting quote in the document text
    end: int
    quote: str  # == document text[start:end]
    passage_start: int
    passage_end: int
    support: float = 0.0  # the judge's score for the sentence this quote supports

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AnswerSentence:
    """A sentence of the answer with the markers it kept after verification."""

    text: str
    citations: tuple[int, ...]
    supported: bool
    verdict: Verdict | None = None  # the support judge's decision (None: not judged, e.g. quotes)
    claim: str = ""  # what it asserts, without markers or framing: for a quote, the quoted words
    # The quotes that back this sentence, one per marker: its own words of each cited passage,
    # so two sentences citing one passage open two different quotes.
    quotes: tuple[Citation, ...] = ()


@dataclass(frozen=True)
class DocumentView:
    """One document's answer to the question (`qa ask --by-document`), or that it has none."""

    doc_id: str
    title: str
    addressed: bool
    statement: str  # the document's best statement, or "does not address it"
    citation: Citation | None  # the quote backing the statement (its n is 0: not a marker)
    source: str = "answer"  # "answer": a verified sentence of the answer; "quote": its own words


@dataclass(frozen=True)
class Answer:
    """The result of answering one question; the same object behind `qa ask --json` and the API."""

    question: str
    standalone_question: str  # the question after follow-up rewriting (== question when none)
    answer: str
    abstained: bool
    citations: tuple[Citation, ...]
    passages: tuple[Hit, ...]
    backend: str
    model: str
    timings: dict  # retrieval_ms, first_token_ms, total_ms
    # "model"; "repaired" (the draft failed the judge, a second draft restating the best
    # evidence passed); "extractive" (quotes: no model text held up) or "abstained"
    mode: str = "model"
    sentences: tuple[AnswerSentence, ...] = ()
    notes: tuple[str, ...] = ()  # e.g. passages dropped to fit the context, backend errors
    dropped_passages: int = 0
    error: str | None = None
    # What verification saw and removed, as data (the notes say the same in words).
    draft: str = ""  # the model's raw text
    invalid_markers: int = 0  # markers in the draft that pointed at no passage shown
    removed_sentences: tuple[str, ...] = ()  # draft sentences the judge did not accept
    judge: str = ""  # name of the support judge that checked the draft
    by_document: tuple[DocumentView, ...] = ()  # per-document positions, when asked for

    def to_json(self) -> dict:
        data = asdict(self)
        data["citations"] = [c.to_json() for c in self.citations]
        data["passages"] = [h.to_json() for h in self.passages]
        return data


@dataclass(frozen=True)
class Event:
    """One step of a streamed answer: rewrite, passages, evidence, token, done or error."""

    kind: str
    data: Any = field(default=None)


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a conversation, used to rewrite follow-up questions."""

    question: str
    standalone_question: str
    answer: str = ""
