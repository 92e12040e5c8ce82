"""Cut cleaned blocks into sentence-aligned, token-sized, overlapping passages (pure functions)."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TypeVar

from .clean import find_blocks, heading_text
from .contracts import Block, Passage

TokenCounter = Callable[[str], int]
Item = TypeVar("Item")
Result = TypeVar("Result")

# Bumped whenever cleaning or chunking changes what passages come out, so that existing
# indexes are re-chunked instead of silently reusing passages cut by older rules.
CHUNKER_VERSION = 2

_FOOTNOTE_MARK = re.compile(r"\[\d{1,3}(?:\s*[,–-]\s*\d{1,3})*\]")


@dataclass(frozen=True)
class ChunkingParams:
    """How passages are cut; stored in the index manifest so a change forces re-chunking."""

    # The encoder truncates at 256 word pieces, so anything up to ~250 is safe; 160 scored
    # best on the team's question set (eval/retrieval_report.py: 100/128/160/200/256 tried).
    max_tokens: int = 160
    # Sentences repeated from the end of the previous passage, so a fact split across a
    # boundary is still whole in one passage.
    overlap_tokens: int = 40

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Sentence:
    start: int
    end: int


def normalize_for_search(text: str) -> str:
    """Text as the encoder and BM25 see it: footnote marks gone, whitespace collapsed."""
    return re.sub(r"\s+", " ", _FOOTNOTE_MARK.sub("", text)).strip()


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


_TRAILING_SPACE = re.compile(r"\s*")


def _pysbd_segments(flat: str) -> list[str]:
    """What `pysbd.Segmenter.segment(flat)` returns, without its per-sentence regexes.

    segment() finds each sentence in the original text with a freshly compiled regex (the
    escaped sentence plus trailing whitespace): one compilation per sentence, never reused,
    which also evicts pysbd's own abbreviation patterns from re's 512-entry cache, so those are
    compiled again for every block -- together about 40% of chunking time. Here the same search
    runs with str.find: the first occurrence (scanning as re.finditer does) that ends after the
    previous sentence. Calling the processor directly also leaves no state on the shared
    segmenter (segment() stores the text on it), so two threads may split sentences at once.
    """
    segments: list[str] = []
    prior_end = 0
    for sentence in _segmenter().processor(flat).process():
        pos = 0
        while (found := flat.find(sentence, pos)) >= 0:
            end = _TRAILING_SPACE.match(flat, found + len(sentence)).end()
            if end > prior_end:
                segments.append(flat[found:end])
                prior_end = end
                break
            pos = end if end > found else found + 1
    return segments


def split_sentences(text: str, start: int, end: int) -> list[Sentence]:
    """Sentence spans of text[start:end], found with pysbd and located by search (exact offsets)."""
    # Hard line wraps confuse the segmenter; spaces keep every offset unchanged.
    flat = re.sub(r"[\r\n]", " ", text[start:end])
    if not flat:
        return []
    sentences: list[Sentence] = []
    cursor = 0
    for segment in _pysbd_segments(flat):
        piece = segment.strip()
        if not piece:
            continue
        found = flat.find(piece, cursor)
        if found < 0:  # the segmenter altered the text: fall back to the rest as one sentence
            rest = flat[cursor:].strip()
            if rest:
                found = flat.find(rest, cursor)
                sentences.append(Sentence(start + found, start + found + len(rest)))
            return sentences
        sentences.append(Sentence(start + found, start + found + len(piece)))
        cursor = found + len(piece)
    return sentences


def _split_long(text: str, sentence: Sentence, budget: int, count: TokenCounter) -> list[Sentence]:
    """Cut a sentence longer than the budget at word boundaries."""
    words = [(m.start() + sentence.start, m.end() + sentence.start)
             for m in re.finditer(r"\S+", text[sentence.start:sentence.end])]
    pieces: list[Sentence] = []
    first = 0
    used = 0
    for i, (ws, we) in enumerate(words):
        cost = count(normalize_for_search(text[ws:we])) or 1
        if used and used + cost > budget:
            pieces.append(Sentence(words[first][0], words[i - 1][1]))
            first, used = i, 0
        used += cost
    pieces.append(Sentence(words[first][0], words[-1][1]))
    return pieces


def _sections(text: str, blocks: Sequence[Block]) -> list[tuple[str, list[Block]]]:
    """Group body blocks under their heading; a run of headings is named by its longest line.

    A section also ends where cleaning removed text between two blocks (a page header, a
    byline), so that no passage span ever contains removed boilerplate.
    """
    sections: list[tuple[str, list[Block]]] = []
    heading_run: list[str] = []
    current = ""
    body: list[Block] = []
    for block in blocks:
        if body and not block.is_heading and text[body[-1].end:block.start].strip():
            sections.append((current, body))
            body = []
        if block.is_heading:
            if body:
                sections.append((current, body))
                body = []
            heading_run.append(heading_text(text, block))
            continue
        if heading_run:
            current = max(heading_run, key=len)
            heading_run = []
        body.append(block)
    if body:
        sections.append((current, body))
    return sections


def embedding_text(passage: Passage) -> str:
    """What the encoder embeds: the section heading for context, then the passage."""
    body = normalize_for_search(passage.text)
    return f"{passage.heading}\n{body}" if passage.heading else body


def chunk_blocks(doc_id: str, text: str, blocks: Sequence[Block], count_tokens: TokenCounter,
                 params: ChunkingParams = ChunkingParams()) -> list[Passage]:
    """Pack the sentences of each section into passages of at most `params.max_tokens` tokens."""
    passages: list[Passage] = []
    for heading, section_blocks in _sections(text, blocks):
        heading_cost = count_tokens(heading) + 1 if heading else 0
        budget = max(16, params.max_tokens - heading_cost)
        units: list[tuple[Sentence, int]] = []
        for block in section_blocks:
            for sentence in split_sentences(text, block.start, block.end):
                cost = count_tokens(normalize_for_search(text[sentence.start:sentence.end]))
                if cost > budget:
                    for piece in _split_long(text, sentence, budget, count_tokens):
                        units.append((piece, count_tokens(
                            normalize_for_search(text[piece.start:piece.end]))))
                elif cost:
                    units.append((sentence, cost))
        i = 0
        while i < len(units):
            j, used = i, 0
            while j < len(units) and used + units[j][1] <= budget:
                used += units[j][1]
                j += 1
            j = max(j, i + 1)
            start, end = units[i][0].start, units[j - 1][0].end
            passages.append(Passage(doc_id, start, end, text[start:end], heading))
            if j >= len(units):
                break
            # Step back over trailing sentences that fit the overlap, but always move forward.
            k, back = j, 0
            while k - 1 > i and back + units[k - 1][1] <= params.overlap_tokens:
                k -= 1
                back += units[k][1]
            i = k
    return passages


def chunk_text(doc_id: str, text: str, count_tokens: TokenCounter,
               params: ChunkingParams = ChunkingParams()) -> list[Passage]:
    """Clean `text` and chunk its body into passages with exact offsets."""
    return chunk_blocks(doc_id, text, find_blocks(text), count_tokens, params)


def chunk_ahead(items: Iterable[Item], work: Callable[[Item], Result], ahead: int = 2
                ) -> Iterator[tuple[Item, Result]]:
    """(item, work(item)) in order, with `work` running up to `ahead` items in advance.

    For ingestion: reading and chunking the next documents (pysbd and the tokenizer, mostly
    pure Python) overlaps with the encoder embedding this one (torch, which releases the GIL),
    instead of the encoder idling while sentences are split.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="chunk") as pool:
        pending: deque = deque()
        for item in items:
            pending.append((item, pool.submit(work, item)))
            if len(pending) > ahead:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
