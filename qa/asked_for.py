"""What a question asks for, read from its wording, and whether a sentence can hold it.

Question answering systems have long typed the expected answer from the question's wh-phrase:
"how many" wants a number, "in what year" a year, "who" or "which …" a name. The answerability
judge is told the same thing in words and still passes sentences that only share the question's
topic (a sentence with no year judged to answer "In what year was it founded?"), so the rules a
sentence can be checked against without a model are applied here:

- a question asking for a count or a percentage needs a number in the sentence other than the
  question's own, and one asking "what year" or "what date" a year or a month;
- a question that names a year asks about that time: a sentence whose passage never mentions
  any year the question names does not answer it;
- a question that names someone or something ("What did Mayor Ana Lindqvist say …", "the Harbour
  Trust") asks about them: when no retrieved passage or its document's title, author or
  publisher mentions any word of that name written with a capital, no sentence answers it.
  One word is enough ("the Harbour Navy" is mentioned by a passage on the Harbour's ships), as
  are an acronym spelled out or all of the name's words in lower case, and a title before a name
  ("Mayor", "President") is no name.

A sentence that holds the kind of thing asked for (a number, a year, a name the question does
not already use) is also preferred when evidence is ranked. Nothing here depends on a
collection: it reads English question words only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .judge.prefilter import missing_names, numbers_of
from .named_sources import POSSESSIVE, TITLES
from .textmatch import STOPWORDS, content_stems, tokens, words

# Wh-phrases whose answer is a count or a share, a year or date, or a person or named body.
_COUNT = re.compile(r"\bhow many\b|\bwhat (?:percentage|per ?cent)\b", re.IGNORECASE)
_AMOUNT = re.compile(r"\bhow (?:much|long|far|big|large|tall|high|old|often)\b|"
                     r"\bwhat (?:proportion|share|fraction|amount|number|size)\b", re.IGNORECASE)
_YEAR_ASKED = re.compile(r"\b(?:what|which) (?:year|date)\b", re.IGNORECASE)
# Only at the start: "when" and "who" inside a question are usually conjunction and pronoun.
_WHEN = re.compile(r"^\W*(?:by |since |until )?when\b", re.IGNORECASE)
# "Which commander …", "At which site …": usually a named person, body or place.
_NAME = re.compile(r"^\W*(?:(?:to|by|for|from|with|at|in|on|of) )?(?:who(?:m|se)?|which)\b",
                   re.IGNORECASE)

_YEAR = re.compile(r"(?<!\d)(1[0-9]{3}|20[0-9]{2})(?!\d)")
_MONTH = re.compile(r"\b(?:January|February|March|April|May|June|July|August|September|"
                    r"October|November|December)\b")
NUMBER_WORDS = frozenset("""one two three four five six seven eight nine ten eleven twelve
thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty
seventy eighty ninety hundred hundreds thousand thousands million millions billion billions
trillion dozen dozens half halves third thirds quarter quarters fifth fifths tenth tenths twice
double doubled triple tripled threefold twofold""".split())


# Lower-case words that stay inside a name: "Bank of the North", "Ludwig van Beethoven".
_NAME_JOINS = frozenset({"of", "the", "for", "de", "del", "da", "van", "von", "al", "el", "bin"})
_SENTENCE_BREAK = re.compile(r"[.?!:;]\s+")


def _numbers(text: str) -> set[str]:
    """Numbers in digits (as the support judge's pre-filter reads them) and number words."""
    return numbers_of(text) | {w for w in tokens(text) if w in NUMBER_WORDS}


def _names(text: str, phrase: bool = False) -> set[str]:
    """Capitalised words that are not the sentence's first word (any word of a `phrase`, which
    is no sentence) nor a common word."""
    return {w for w in words(text)[0 if phrase else 1:]
            if w[:1].isupper() and w.lower() not in STOPWORDS}


def _name_parts(word: str) -> list[str]:
    """The capitalised parts of a word, possessive dropped: "Lindqvist's" -> Lindqvist,
    "Harbour-Trust" -> Harbour, Trust."""
    return [p for p in POSSESSIVE.sub("", word).split("-") if p[:1].isupper()]


def names_asked_about(question: str) -> tuple[tuple[str, ...], ...]:
    """The names in a question: runs of capitalised words, each sentence's first word left out
    (it is capitalised anyway), titles and common words dropped."""
    rest = [w for w in words(question)[1:] if w[:1].isalpha()]
    if len(rest) > 2 and all(w[:1].isupper() for w in rest):
        return ()  # "HOW DID THE COUNCIL VOTE?", Title Case: capitals tell no names apart
    names: list[tuple[str, ...]] = []
    for piece in _SENTENCE_BREAK.split(question):
        run: list[str] = []
        for word in words(piece)[1:] + [""]:
            parts = _name_parts(word)
            if parts and word.lower() not in STOPWORDS:
                run += [p for p in parts if p.lower() not in TITLES]
            elif run and word.lower() in _NAME_JOINS:
                continue
            elif run:
                names.append(tuple(run))
                run = []
    return tuple(dict.fromkeys(names))


def capitalised_stems(text: str) -> set[str]:
    """Stems of the words a text writes with a capital (the ways it can mention a name)."""
    return set(content_stems(" ".join(p for w in words(text) for p in _name_parts(w))))


def _abbreviated(name: tuple[str, ...], text: str) -> bool:
    """The text spells out a name written as an acronym ("European Union" for "EU"), or writes
    the acronym of a name of several words ("EU" for "European Union")."""
    if all(len(word) > 1 and word.isupper() for word in name):
        return not missing_names(" ".join(name), text)
    initials = "".join(word[0] for word in name).upper()
    return len(name) > 1 and re.search(rf"\b{initials}\b", text) is not None


@dataclass(frozen=True)
class AskedFor:
    """The kind of answer a question wants, and the years it names."""

    question: str
    kind: str | None  # "count", "amount", "year", "when", "name" or None (anything)
    years: tuple[str, ...] = ()
    names: tuple[tuple[str, ...], ...] = ()
    # Read once per question, not once per sentence checked.
    _numbers: frozenset[str] = field(init=False, repr=False, compare=False)
    _stems: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_numbers", frozenset(_numbers(self.question)))
        object.__setattr__(self, "_stems", frozenset(content_stems(self.question)))

    def excludes(self, sentence: str, passage: str) -> str:
        """Why the sentence cannot answer the question ("" when it may): no number for a count,
        no year for a year, or a passage that never mentions the year the question names."""
        if self.years and not set(_YEAR.findall(passage)) & set(self.years):
            return f"its passage never mentions {' or '.join(self.years)}"
        if self.kind == "count" and not self._new_numbers(sentence):
            return "it states no number"
        # The question's own year counts here: "… in the 1998 storm, and on what date?" is
        # answered by "On 3 March 1998 …".
        if self.kind == "year" and not (_YEAR.search(sentence) or _MONTH.search(sentence)):
            return "it states no date"
        return ""

    def needs(self) -> str:
        """What every sentence lacked when all are excluded, for the abstention note."""
        wants = []
        if self.years:
            wants.append(f"a passage that mentions {' or '.join(self.years)}")
        if self.kind == "count":
            wants.append("a number")
        if self.kind == "year":
            wants.append("a year or date")
        return " and ".join(wants)

    def unmentioned(self, texts: list[str]) -> tuple[str, ...]:
        """The question's names of which the texts mention no word (written with a capital),
        and which they neither spell out nor abbreviate ("EU" for "European Union", and the
        other way round)."""
        mentioned = set().union(*map(capitalised_stems, texts))
        absent = [name for name in self.names
                  if mentioned.isdisjoint(content_stems(" ".join(name)))]
        if absent:
            joined = "\n".join(texts)
            # A name whose every word the texts use, in any case, is a common noun the question
            # capitalised ("the Bridge"); "the Gold Group" stays unmentioned by a text about "a
            # group of miners".
            written = set(content_stems(joined))
            absent = [name for name in absent if not _abbreviated(name, joined)
                      and not set(content_stems(" ".join(name))) <= written]
        return tuple(" ".join(name) for name in absent)

    def supplies(self, sentence: str, phrase: bool = False) -> bool:
        """The sentence (or a bare `phrase`: "Lindqvist", "40 km") holds the kind of thing
        asked for (always False for open questions)."""
        if self.kind in ("count", "amount"):
            return bool(self._new_numbers(sentence))
        if self.kind in ("year", "when"):
            return bool(set(_YEAR.findall(sentence)) - set(self.years) or _MONTH.search(sentence))
        if self.kind == "name":
            return any(self._stems.isdisjoint(content_stems(name))
                       for name in _names(sentence, phrase))
        return False

    def _new_numbers(self, sentence: str) -> set[str]:
        return _numbers(sentence) - self._numbers


def asked_for(question: str) -> AskedFor:
    """Read the question's wh-phrase; the first that matches decides."""
    years = tuple(dict.fromkeys(_YEAR.findall(question)))
    names = names_asked_about(question)
    for kind, pattern in (("count", _COUNT), ("year", _YEAR_ASKED), ("amount", _AMOUNT),
                          ("when", _WHEN), ("name", _NAME)):
        if pattern.search(question):
            return AskedFor(question, kind, years, names)
    return AskedFor(question, None, years, names)
