"""Find the body of a document: drop navigation, page headers, footers and front matter.

Cleaning never rewrites the text. It returns spans (Blocks) of the original text, so that
every passage cut from them keeps exact character offsets into the document as stored.
"""

from __future__ import annotations

import re
from collections import Counter

from .contracts import Block
from .readers import iter_lines

# Lines that are site chrome wherever they appear (kept short so body sentences never match).
_CHROME = re.compile(
    r"^(?:.{0,6}\s)?(?:back to (?:home|top)|about me|continue (?:to )?read(?:ing)?|read more"
    r"|subscribe|sign (?:up|in)|log ?in|share (?:this|on)|follow us|print this|\d+ min read"
    r"|published in|advertisement)\b.{0,12}$",
    re.IGNORECASE,
)
# Identifiers and contact lines of an author block.
_CONTACT = re.compile(r"^(?:e-?mail|orcid|scopus(?: author ?id)?|address|tel|phone|fax|doi)\s*:",
                      re.IGNORECASE)
# Running page headers/footers of PDF-extracted text: "Journal ... Page| 3", "Page 3 of 9", "- 3 -".
_PAGE_HEADER = re.compile(r"\bpage\s*\|?\s*\d+\b|^\s*[-–—]?\s*\d{1,4}\s*[-–—]?\s*$", re.IGNORECASE)
_SEPARATOR = re.compile(r"^[\s\-—–_=*#~.·•]*$")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
# Markers that start the closing furniture of a web article; everything after goes.
_FOOTER_START = re.compile(
    r"^(?:the original source of this article|copyright\b|©|\(c\) ?\d{4}|all rights reserved"
    r"|disclaimer\b|about the author|related (?:articles|posts)|comments?\b|continue (?:to )?read"
    r"|references\s*$|bibliography\s*$|notes\s*$|footnotes\s*$)",
    re.IGNORECASE,
)
# A sentence end: terminal punctuation, optional closing quote, then a capital or the end.
_SENTENCE_END = re.compile(r"(?<!\b[A-Z])[.!?;][\"'”’)\]]*(?:\s+[\"“‘(\[]?[A-Z]|\s*$)|:\s*$")
# "2. BACKGROUND", "8.1 Open questions": a numbered heading, often glued to a paragraph.
_NUMBERED_HEADING = re.compile(r"^\s*\d{1,2}(?:\.\d{1,2})*\.?\s+[A-Z][A-Z0-9 ,’'&/()\-–—]{2,80}$")
_NUMBERING = re.compile(r"^\d{1,2}(?:\.\d{1,2})*\.?\s+")
# Datelines and bylines ("Global Research, March 31, 2017", "3 min readFeb 20, 2018").
_DATELINE = re.compile(r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2},?\s+\d{4}\b"
                       r"|^by\s", re.IGNORECASE)


def _plain(line: str) -> str:
    """A line without markdown emphasis, heading marks or link targets."""
    line = _MD_LINK.sub(r"\1", line)
    return line.strip().lstrip("#>").strip().strip("*_").strip()


def _is_link_line(line: str) -> bool:
    """A line made mostly of markdown links (bylines, tag lists, share buttons)."""
    links = _MD_LINK.findall(line)
    if not links:
        return False
    rest = _MD_LINK.sub("", line)
    rest_words = re.findall(r"[A-Za-z]{2,}", rest)
    return len(rest_words) <= 3


def is_boilerplate_line(line: str) -> bool:
    """True for a line that is never part of an article's body."""
    plain = _plain(line)
    if not plain:
        return True
    if sum(ch.isalnum() for ch in plain) < 3:
        return True  # stray initials, bullets, avatars
    if _SEPARATOR.match(plain) or _is_link_line(line.strip()):
        return True
    if _CONTACT.match(plain) or "[email protected]" in plain:
        return True
    if len(plain) <= 120 and _PAGE_HEADER.search(plain):
        return True
    return len(plain) <= 60 and bool(_CHROME.match(plain))


def _footer_start(text: str, lines: list[tuple[int, int]]) -> int:
    """Offset where the closing furniture begins (in the last 40% of the text), else len(text)."""
    threshold = int(len(text) * 0.6)
    for start, end in lines:
        if start < threshold:
            continue
        if _FOOTER_START.match(_plain(text[start:end])):
            return start
    return len(text)


def _looks_like_heading(block_text: str) -> bool:
    """One short line without a sentence end, or a markdown '#' heading."""
    stripped = block_text.strip()
    if stripped.startswith("#"):
        return True
    if _NUMBERED_HEADING.match(stripped):
        return True
    plain = _NUMBERING.sub("", _plain(stripped))
    if "\n" in stripped or len(plain) > 100 or not re.match(r"[\"“‘A-Z0-9]", plain):
        return False
    if plain.endswith("?") and len(plain.split()) <= 14:
        return not _SENTENCE_END.search(plain[:-1])  # a title phrased as a question
    return not _SENTENCE_END.search(plain)


def _is_body(block_text: str) -> bool:
    """Body text holds sentences; short unpunctuated blocks are front matter (affiliations, dates)."""
    plain = " ".join(_plain(line) for line in block_text.splitlines())
    return bool(_SENTENCE_END.search(plain)) or len(plain.split()) >= 40


def find_blocks(text: str) -> list[Block]:
    """Body paragraphs and headings of `text`, in order, as spans of the original text."""
    lines = list(iter_lines(text))
    stop = _footer_start(text, lines)
    counts = Counter(text[s:e].strip() for s, e in lines if text[s:e].strip())
    seen_repeated: set[str] = set()
    kept: list[tuple[int, int] | None] = []  # None marks a paragraph break
    after_page_header = 0
    for start, end in lines:
        if start >= stop:
            break
        line = text[start:end]
        stripped = line.strip()
        if not stripped:
            kept.append(None)
            continue
        if is_boilerplate_line(line):
            after_page_header = 3 if _PAGE_HEADER.search(_plain(line)) else after_page_header
            kept.append(None)
            continue
        # A short line that repeats (duplicated title, running header) is kept only once.
        if counts[stripped] > 1 and len(stripped) <= 120:
            if stripped in seen_repeated:
                kept.append(None)
                continue
            seen_repeated.add(stripped)
        # The running title printed just under a page header.
        if after_page_header and _looks_like_heading(stripped):
            after_page_header = 0
            kept.append(None)
            continue
        after_page_header = max(0, after_page_header - 1)
        lstrip = len(line) - len(line.lstrip())
        span = (start + lstrip, start + len(line.rstrip()))
        if _NUMBERED_HEADING.match(stripped):  # stands alone even without blank lines around it
            kept.extend([None, span, None])
        else:
            kept.append(span)
    blocks: list[Block] = []
    group: list[tuple[int, int]] = []
    for item in kept + [None]:
        if item is not None:
            group.append(item)
            continue
        if group:
            start, end = group[0][0], group[-1][1]
            chunk = text[start:end]
            if _looks_like_heading(chunk):
                if not _DATELINE.search(_plain(chunk)):
                    blocks.append(Block(start, end, True))
            elif _is_body(chunk):
                blocks.append(Block(start, end, False))
            group = []
    return blocks


def heading_text(text: str, block: Block) -> str:
    """The display text of a heading block."""
    return re.sub(r"\s+", " ", _plain(text[block.start:block.end]))
