"""Data contracts of ingestion, defined once and shared by every later stage."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Document:
    """A readable document: `text` is what every character offset refers to."""

    doc_id: str
    source: str  # path of the file as the user gave it
    title: str
    text: str  # the file's own text for .txt/.md; the extracted text for .html/.pdf
    content_hash: str  # sha256 of `text`; decides whether re-indexing is needed
    kind: str  # "text", "markdown", "html" or "pdf"
    meta: dict = field(default_factory=dict, compare=False)  # author, date, url, page_starts ...


@dataclass(frozen=True)
class Block:
    """A span of a document's text kept by cleaning: a heading or a body paragraph."""

    start: int
    end: int
    is_heading: bool


@dataclass(frozen=True)
class Passage:
    """A retrievable span of one document; `text == document.text[start:end]` always holds."""

    doc_id: str
    start: int
    end: int
    text: str
    heading: str  # nearest section heading above the passage, "" when the text has none

    @property
    def passage_id(self) -> str:
        return f"{self.doc_id}:{self.start}-{self.end}"
