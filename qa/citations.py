"""Citations are data: parse [n] markers, drop invalid ones, check each sentence against its sources."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from index.chunking import normalize_for_search, split_sentences

from .contracts import AnswerSentence, Citation, Hit
from .judge.base import Claim, SupportJudge
from .textmatch import content_stems, coverage, word_for_word

_LEANS_BACK = re.compile(r"^(?:this|these|that|those|it|its|they|their|he|his|she|her|such)\b",
                        re.IGNORECASE)
# The source's own voice ("Our survey finds …", "I estimate …"): in the assistant's words it
# would read as the assistant speaking. Lower-case "us" only: "US" is a country.
_FIRST_PERSON = re.compile(r"\b(?:I|[Ww]e|[Oo]urs?|[Oo]urselves|us|[Mm]y|[Mm]yself|me)\b")
_DOUBLE_QUOTED = re.compile(r"“[^”]*”|\"[^\"]*\"")
# Reported speech ("The mayor said the bridge is our priority"): the words are already someone's.
# Third-person and past forms only: "state" is also a noun, and "we say" is the source talking.
_REPORTS = re.compile(r"\b(?:says|said|tells|told|stated|writes|wrote|adds|added|according to)\b",
                      re.IGNORECASE)
# "The passage also discusses the importance of ...": the model describing its sources' topics
# instead of saying what they say. A verb followed by "that/how/why ..." carries content and stays.
_ABOUT_THE_SOURCE = re.compile(
    r"^(?:the|this|that|these|those|each|both|another|one)\s+(?:(?:first|second|third|other|"
    r"last|same|given|above)\s+)?(?:passage|text|document|source|article|excerpt|quote)s?\s+"
    r"(?:(?:also|further|mainly|mostly|then)\s+)?(?:discuss|highlight|mention|focus|emphasi[sz]|"
    r"talk|address|touch|cover|deal|explore)\w*\b(?!\s+(?:that|how|why|what|whether|"
    r"when|where|who)\b)", re.IGNORECASE)
MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")


@dataclass(frozen=True)
class SentenceSpan:
    """A sentence of a passage, with offsets into the document text."""

    start: int
    end: int
    text: str


# A paragraph that ends a sentence ends it: split as one text, a paragraph closing on a
# quotation ('… again."') ran on into the next paragraph's first sentence, quoted as one. A
# blank line after no full stop (a page break in text taken from a PDF, a list after its colon)
# stays inside its sentence.
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_ENDS_A_SENTENCE = re.compile(r"[.!?…][\"”’'»)\]]*\s*$")


def passage_sentences(hit: Hit) -> list[SentenceSpan]:
    """The passage's sentences with document offsets (hit.text is the document slice)."""
    text = hit.text
    ends = [(m.start(), m.end()) for m in _PARAGRAPH_BREAK.finditer(text)
            if _ENDS_A_SENTENCE.search(text, 0, m.start())]
    spans = []
    start = 0
    for end, following in ends + [(len(text), len(text))]:
        spans += split_sentences(text, start, end)
        start = following
    return [SentenceSpan(hit.start + s.start, hit.start + s.end, text[s.start:s.end])
            for s in spans]


def split_answer(text: str) -> list[str]:
    """Sentences of a model answer, markers kept with the sentence they close."""
    flat = " ".join(text.split())
    if not flat:
        return []
    spans = split_sentences(flat, 0, len(flat))
    sentences = [flat[s.start:s.end] for s in spans]
    # A marker the splitter left at the start of the next sentence belongs to the previous one
    # ("… the bridge. [1] The mayor …"). Markers standing alone as a sentence ("[1]. The
    # council … [2]. The mayor …", the way a small model copies numbered evidence) belong to
    # the sentence that follows them; after the last sentence, to that one ("… in May. [1].").
    merged: list[str] = []
    opening = ""
    for sentence in sentences:
        lead = re.match(r"^((?:\s*\[[\d,\s]+\])+)\s*(.*)$", sentence)
        if lead and not re.search(r"\w", lead.group(2)):
            opening += " " + lead.group(1).strip()
            continue
        if lead and merged:
            merged[-1] += " " + lead.group(1).strip()
            sentence = lead.group(2)
        if sentence:
            merged.append(f"{sentence} {opening.strip()}" if opening else sentence)
            opening = ""
    if opening and merged:
        merged[-1] += opening
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


def best_window(claim: str, hit: Hit) -> tuple[float, SentenceSpan | None]:
    """The one or two consecutive passage sentences sharing most content words with the claim.

    This window is what the judge reads and what the user sees as the quote, so the quote is
    exactly the text that was found to support the sentence.
    """
    sentences = passage_sentences(hit)
    if not sentences:
        return 0.0, None
    windows = list(sentences)
    for first, second in zip(sentences, sentences[1:]):
        windows.append(SentenceSpan(first.start, second.end,
                                    hit.text[first.start - hit.start:second.end - hit.start]))
    scored = [(coverage(claim, normalize_for_search(w.text)), -len(w.text), w) for w in windows]
    score, _, best = max(scored, key=lambda item: (item[0], item[1]))
    return score, best


def restates(claim: str, question: str) -> bool:
    """True when the claim adds no content word to the question it answers."""
    stems = set(content_stems(claim))
    return bool(stems) and stems <= set(content_stems(question))


def speaks_for_the_source(claim: str) -> bool:
    """The sentence says "I", "we" or "our" outside quotation marks and reports no one's speech:
    words only its source can say in its own voice (The mayor said: "We will rebuild …" and "The
    mayor said the bridge is our priority" are already attributed)."""
    unquoted = _DOUBLE_QUOTED.sub(" ", claim)
    return bool(_FIRST_PERSON.search(unquoted)) and not _REPORTS.search(unquoted)


# A model sentence at least this much its quote's own words in order is a copy of it.
COPIED = 0.9


def copies_its_quote(sentence: AnswerSentence) -> bool:
    """The model's sentence is one of its quoted source sentences word for word, a word or two
    aside. Shown unquoted, the source's words, hedges and all ("It is widely held that …"),
    would read as the assistant's own. Looser than `judge.copies.is_copied`, which accepts only
    exact copies unjudged: a changed word matters to whether a claim is true, not to whose
    words the reader sees."""
    return any(word_for_word(sentence.claim or sentence.text, quote.quote) >= COPIED
               for quote in sentence.quotes)


def describes_a_source(claim: str) -> bool:
    """True for a sentence about what a passage covers rather than what it says."""
    return bool(_ABOUT_THE_SOURCE.match(claim))


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

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(s.text for s in self.sentences if not s.supported)


@dataclass(frozen=True)
class _Draft:
    """One sentence of the model's draft, with the quotes it will be judged against."""

    claim: str
    cited: tuple[int, ...]  # valid markers the model wrote
    windows: dict[int, SentenceSpan]  # passage number -> best window for this claim
    ranked: tuple[int, ...]  # passage numbers by word overlap with the claim, best first


def _claim_for(draft: _Draft, numbers: Sequence[int]) -> Claim:
    return Claim(draft.claim, tuple(draft.windows[n].text for n in numbers))


def verify(answer: str, hits: Sequence[Hit], judge: SupportJudge, question: str = "") -> Verified:
    """Keep each sentence only if the judge finds it supported by the quotes of its citations.

    A sentence whose cited quotes do not back it, or that cites nothing valid, is judged once
    more against the best-matching quote of the passage it shares most words with, and re-cited
    to it when that holds. Judging happens in two batches so the judge can reuse its cache.
    """
    drafts: list[_Draft | None] = []  # None: a sentence leaning on a removed one
    invalid = 0
    seen: set[str] = set()  # small models loop and write the same sentence again
    for raw in split_answer(answer):
        claim = strip_markers(raw)
        if len(claim.split()) < 3 and not markers(raw):
            continue  # stray fragments ("Answer:", "1.")
        if question and restates(claim, question):
            continue  # "The two councils disagree on the budget." answers nothing asked
        if describes_a_source(claim):
            continue  # names a topic, claims nothing a reader could check
        said = " ".join(normalize_for_search(claim).casefold().split())
        if said in seen:
            continue  # a repeat adds nothing and would show its quote twice
        seen.add(said)
        cited = markers(raw)
        valid = tuple(n for n in cited if 1 <= n <= len(hits))
        invalid += len(cited) - len(valid)
        windows, overlap = {}, {}
        for n, hit in enumerate(hits, start=1):
            score, window = best_window(claim, hit)
            if window is not None:
                windows[n], overlap[n] = window, score
        ranked = tuple(sorted(windows, key=lambda n: -overlap[n]))
        drafts.append(_Draft(claim, tuple(n for n in valid if n in windows), windows, ranked))

    first = {i: _claim_for(d, d.cited) for i, d in enumerate(drafts) if d and d.cited}
    verdicts = dict(zip(first, judge.judge(list(first.values())))) if first else {}
    retry: dict[int, int] = {}
    for i, d in enumerate(drafts):
        if d is None or (i in verdicts and verdicts[i].supported):
            continue
        others = [n for n in d.ranked if n not in d.cited]
        if others:
            retry[i] = others[0]
    if retry:
        second = judge.judge([_claim_for(drafts[i], (n,)) for i, n in retry.items()])
        for (i, n), verdict in zip(retry.items(), second):
            if verdict.supported:
                verdicts[i] = verdict
                drafts[i] = _Draft(drafts[i].claim, (n,), drafts[i].windows, drafts[i].ranked)

    kept: list[AnswerSentence] = []
    unsupported = 0
    for i, d in enumerate(drafts):
        verdict = verdicts.get(i)
        leans_back = kept and not kept[-1].supported and _LEANS_BACK.match(d.claim)
        if verdict is None or not verdict.supported or leans_back:
            # "This link also ..." after a removed sentence: its subject is gone with it.
            unsupported += 1
            kept.append(AnswerSentence(d.claim, (), False, verdict, d.claim))
            continue
        # Each sentence opens its own words of each passage it cites: the window judged.
        quotes = tuple(make_citation(n, hits[n - 1], d.windows[n], verdict.score)
                       for n in d.cited)
        kept.append(AnswerSentence(with_markers(d.claim, d.cited), d.cited, True, verdict,
                                   d.claim, quotes))
    return Verified(tuple(kept), citations_of(kept), invalid, unsupported)


def citations_of(sentences: Sequence[AnswerSentence]) -> tuple[Citation, ...]:
    """The distinct quotes of the shown sentences, by passage number then position: a span two
    sentences share is listed once (with the higher support)."""
    quotes: dict[tuple[int, int, int], Citation] = {}
    for sentence in sentences:
        if not sentence.supported:
            continue
        for quote in sentence.quotes:
            key = (quote.n, quote.start, quote.end)
            if key not in quotes or quote.support > quotes[key].support:
                quotes[key] = quote
    return tuple(sorted(quotes.values(), key=lambda c: (c.n, c.start, c.end)))
