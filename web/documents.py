"""Looking up indexed documents by id and slicing their text into highlighted segments."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import HTTPException

from index.store_protocol import DocumentRecord, DocumentStore


def get_document(store: DocumentStore, doc_id: str) -> DocumentRecord:
    """The indexed document with this id; 404 for anything that is not one (never a path)."""
    record = store.get_document(doc_id) if _plausible(doc_id) else None
    if record is None:
        raise HTTPException(status_code=404, detail="No document with this id in the index.")
    return record


def _plausible(doc_id: str) -> bool:
    """Ids are made from file names (letters, marks and digits of any script, `_`, `.`, `-`);
    anything path-like is refused before any lookup, so an id is never read as a path."""
    return bool(doc_id) and len(doc_id) <= 200 and "/" not in doc_id and "\\" not in doc_id \
        and doc_id not in (".", "..") and "\x00" not in doc_id


def document_info(record: DocumentRecord) -> dict:
    """What the API and the pages show about a document (its text excluded)."""
    meta = record.meta or {}
    return {
        "doc_id": record.doc_id,
        "title": record.title,
        "source": record.source,
        "kind": record.kind,
        "n_passages": record.n_passages,
        "author": meta.get("author", ""),
        "publisher": meta.get("publisher", ""),
        "date": meta.get("date", ""),
        "date_as_stated": meta.get("date_as_stated", ""),
        "note": meta.get("note", ""),
        "meta": meta,
    }


@dataclass(frozen=True)
class Segment:
    """A slice of a document's text; the template escapes `text` and styles it by `kind`."""

    kind: str  # "plain", "passage" (the cited passage) or "quote" (the supporting words)
    text: str


def valid_span(start: int | None, end: int | None, length: int) -> tuple[int, int] | None:
    """(start, end) when it is a non-empty span inside the text, else None."""
    if start is None or end is None or not 0 <= start < end <= length:
        return None
    return start, end


def containing_passage(store: DocumentStore, doc_id: str, span: tuple[int, int]
                       ) -> tuple[int, int] | None:
    """The first passage of the document that holds the whole span (for the light highlight)."""
    for _, passage in store.passages_of(doc_id):
        if passage.start <= span[0] and span[1] <= passage.end:
            return passage.start, passage.end
    return None


def segments(text: str, quote: tuple[int, int] | None,
             passage: tuple[int, int] | None = None) -> list[Segment]:
    """The text cut at the quote and passage bounds; the quote is always exactly one segment."""
    if quote is None:
        if passage is None:
            return [Segment("plain", text)]
        quote_start = quote_end = None
    else:
        quote_start, quote_end = quote
    cuts = {0, len(text)}
    if passage is not None:
        cuts.update(passage)
    if quote is not None:
        cuts.update(quote)
    bounds = sorted(c for c in cuts if 0 <= c <= len(text))
    out: list[Segment] = []
    for left, right in zip(bounds, bounds[1:]):
        if quote is not None and left == quote_start:
            out.append(Segment("quote", text[quote_start:quote_end]))
            continue
        if quote is not None and quote_start < right <= quote_end:
            continue  # inside the quote, already emitted whole
        inside = passage is not None and passage[0] <= left and right <= passage[1]
        out.append(Segment("passage" if inside else "plain", text[left:right]))
    return [s for s in out if s.text]


# A line break after 50+ characters, unless a numbered or upper-case heading line follows.
_WRAPPED_LINE_END = re.compile(r"(?<=[^\n]{50})\n(?![\n\s]*(?:\d+(?:\.\d+)*\.?\s+[A-Z]"
                               r"|[A-Z][A-Z0-9 ,:&'’()-]{6,}\n))")


def reflow(text: str) -> str:
    """Hard-wrapped lines joined for reading: a line break after a long line becomes a space.

    Same length as `text`, so every offset still points at the same character; blank lines
    (paragraphs) and breaks before heading-like lines stay.
    """
    return _WRAPPED_LINE_END.sub(" ", text)
