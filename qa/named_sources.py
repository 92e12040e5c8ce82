"""Documents a question names by their author or publisher: "according to Okafor", "do the
Institute's piece and Smith agree …".

A reader who names a source wants that source's words, and a comparison of named sources needs
evidence from each of them, however the rest of the collection ranks. The names come from each
document's own metadata (`author`, `publisher`, e.g. from a `metadata.json` beside the files), so
nothing here knows any particular collection; documents without such metadata are never named.

A name counts as named when the question holds all of its words in order ("EastWest Institute"),
or, for a name that reads like a person's (two to four capitalised words), its last word written
with a capital ("Okafor" for "Ngozi A. Okafor") and not inside another capitalised name (the
"Brookings Institute" does not name the "Harbour Policy Institute").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
POSSESSIVE = re.compile(r"['’]s$")
NAME_FIELDS = ("author", "publisher")
# English titles and offices written before a name: "Professor Okafor" and "Mayor Ana Okafor"
# name Okafor, not another name.
TITLES = frozenset("""mr mrs ms miss mx dr prof professor sir dame lord lady president vice
prime minister secretary chancellor premier governor mayor senator ambassador general colonel
major captain admiral commander marshal king queen prince princess emperor chairman chairwoman
chair director judge justice saint st pope bishop""".split())


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


# A name's short form in brackets: "Harbour Policy Institute (HPI)".
_BRACKETED = re.compile(r"\(([^()]*)\)")


def source_names(meta: dict) -> list[str]:
    """The author and publisher names a document's metadata gives; a name with a bracketed
    short form also stands as each form alone, as a reader writes it ("the Harbour Policy
    Institute", "HPI")."""
    names: list[str] = []
    for field in NAME_FIELDS:
        value = meta.get(field)
        values = value if isinstance(value, (list, tuple)) else [value]
        for name in (v.strip() for v in values if isinstance(v, str) and v.strip()):
            forms = [name, " ".join(_BRACKETED.sub(" ", name).split()),
                     *(" ".join(short.split()) for short in _BRACKETED.findall(name))]
            names.extend(form for form in dict.fromkeys(forms) if form)
    return names


def _starts(sequence: Sequence[str], part: Sequence[str]) -> list[int]:
    """Where `part` occurs in `sequence`, as start positions."""
    n = len(part)
    return [i for i in range(len(sequence) - n + 1) if n and list(sequence[i:i + n]) == list(part)]


def _name_spans(question_words: Sequence[str], folded: Sequence[str], name: str,
                breaks: frozenset[int]) -> list[tuple[int, int]]:
    """Where the question names `name`, as (first, last + 1) word positions; `folded` is the
    question's words case-folded."""
    # Initials ("A.") are left out: people write "Okafor", not "Ngozi A. Okafor".
    words = [w for w in _words(name) if len(w) > 1]
    if not words or words[-1].casefold() not in folded:
        return []  # every way of naming ends with the name's last word (a fast no)
    spans = [(i, i + len(words))
             for i in _starts(folded, [w.casefold() for w in words])]
    person_like = 2 <= len(words) <= 4 and all(w[0].isupper() for w in words)
    surname = words[-1]
    if person_like and len(surname) >= 4:
        spans += [(i, i + 1) for i, word in enumerate(question_words)
                  if word == surname and _stands_alone(question_words, breaks, i, words)]
    return spans


def _stands_alone(question_words: Sequence[str], breaks: frozenset[int], i: int,
                  name_words: Sequence[str]) -> bool:
    """The surname at position i is not part of another capitalised name: "the Brookings
    Institute" does not name the "Harbour Policy Institute", "Prof Okafor" still names "Ngozi
    A. Okafor" (a title is no name), and so does "Okafor, Russia …" (punctuation ends a name).
    The question's first word is capitalised anyway and proves nothing."""
    neighbours = []
    if i > 1 and i - 1 not in breaks and question_words[i - 1].casefold() not in TITLES:
        neighbours.append(question_words[i - 1])
    if i + 1 < len(question_words) and i not in breaks:
        neighbours.append(question_words[i + 1])
    return not any(n[0].isupper() and n not in name_words for n in neighbours)


def _read(question: str) -> tuple[list[re.Match], list[str], list[str], frozenset[int]]:
    """The question's words (as matches, and without possessive endings, as written and
    case-folded) and its breaks."""
    found = list(_WORD.finditer(question))
    # "Okafor's view", "the EastWest Institute's piece": a possessive names its owner.
    asked = [POSSESSIVE.sub("", m.group()) for m in found]
    # k in breaks: more than spaces stands between word k and word k+1 ("Okafor, Russia").
    breaks = frozenset(k for k in range(len(found) - 1)
                       if question[found[k].end():found[k + 1].start()].strip())
    return found, asked, [w.casefold() for w in asked], breaks


def named_documents(question: str, documents: Iterable[tuple[str, dict]]) -> tuple[str, ...]:
    """The ids of the documents whose author or publisher the question names, in the order
    given. `documents` are (doc_id, metadata) pairs."""
    _, asked, folded, breaks = _read(question)
    return tuple(doc_id for doc_id, meta in documents
                 if any(_name_spans(asked, folded, name, breaks) for name in source_names(meta)))


def without_names(question: str, names: Iterable[str]) -> str:
    """The question with the given source names taken out, possessives included: what passages
    are searched and ranked by once the named documents are chosen. A passage seldom names its
    own author, so a name left in only pulls the question toward passages that mention other
    people; the question stays whole when nothing else would be left."""
    found, asked, folded, breaks = _read(question)
    dropped = {i for name in names for first, end in _name_spans(asked, folded, name, breaks)
               for i in range(first, end)}
    if not dropped or len(dropped) == len(found):
        return question
    text = question
    for i in sorted(dropped, reverse=True):
        text = text[:found[i].start()] + text[found[i].end():]
    return re.sub(r"\s+([?.,;:!])", r"\1", " ".join(text.split()))
