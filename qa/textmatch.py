"""Word-level text comparison shared by citation checking and extractive answers."""

from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]*|\d+(?:[.,]\d+)*")

# Function words carry no claim; leaving them out keeps support scores about content.
STOPWORDS = frozenset("""
a an the and or but if then else of to in on at by for with from as into onto over under about
than that this these those there here it its it's is are was were be been being has have had do
does did doing not no nor so such very can could may might must shall should will would also
which who whom whose what when where why how all any both each few more most other some own same
only just too again further once their theirs them they he him his she her hers we us our ours you
your yours i me my mine one ones between during before after above below up down out off while
because until against through per via according said says say even however whereas although
yet still much many
""".split())


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens in order, apostrophes normalised."""
    return [w.lower().replace("’", "'").strip("'-") for w in _WORD.findall(text)]


def content_stems(text: str) -> list[str]:
    """Stems of the words that carry content, in order."""
    words = []
    for word in tokens(text):
        word = word[:-2] if word.endswith("'s") else word
        if word and word not in STOPWORDS:
            words.append(word)
    return _stemmer().stemWords(words)


def coverage(claim: str, source: str, min_matched: int = 1) -> float:
    """Share of the claim's content stems that occur in the source.

    Returns 0 when fewer than `min_matched` distinct stems match, so a two-word claim cannot
    be "half supported" by a passage that merely names the same country.
    """
    claim_stems = content_stems(claim)
    if not claim_stems:
        return 0.0
    source_stems = set(content_stems(source))
    matched = [s for s in claim_stems if s in source_stems]
    if len(set(matched)) < min(min_matched, len(set(claim_stems))):
        return 0.0
    return len(matched) / len(claim_stems)


def _entities(text: str) -> list[tuple[int, str]]:
    """(word position, stem) of capitalised words: the actors a claim is about."""
    out = []
    words = _WORD.findall(text)
    for i, word in enumerate(words):
        if word[:1].isupper() and word.lower() not in STOPWORDS:
            out.append((i, _stemmer().stemWord(word.lower().replace("’", "'").strip("'-"))))
    return out


def role_swaps(claim: str, source: str, window: int = 6) -> list[str]:
    """Content words the claim attaches to a different actor than the source does.

    "Russia stands for the status quo" against "Iran stands for maintaining the status quo
    while Russia ..." reports 'stand': the claim pins it on Russia, the source on Iran.
    """
    def attachments(text: str, nearest_only: bool) -> dict[str, set[str]]:
        """Content word -> the actor(s) named shortly before it."""
        words = _WORD.findall(text)
        entity_at = dict(_entities(text))
        result: dict[str, set[str]] = {}
        for i, word in enumerate(words):
            low = word.lower()
            if i in entity_at or low in STOPWORDS:
                continue
            stem = _stemmer().stemWord(low.replace("’", "'").strip("'-"))
            for j in range(i - 1, max(-1, i - window - 1), -1):
                if j in entity_at:
                    result.setdefault(stem, set()).add(entity_at[j])
                    if nearest_only:
                        break
        return result

    source_entities = {stem for _, stem in _entities(source)}
    # The claim's nearest actor must be among the actors near the same word in the source
    # (all of them: "arrived in Moscow on Monday for negotiations" is not a swap).
    claim_links = attachments(claim, nearest_only=True)
    source_links = attachments(source, nearest_only=False)
    swaps = []
    for stem, actors in claim_links.items():
        known = source_links.get(stem)
        if not known:
            continue
        for actor in actors:
            if actor in source_entities and actor not in known:
                swaps.append(stem)
    return swaps
