"""Word-level text comparison shared by citation checking and extractive answers."""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from functools import lru_cache

from index.chunking import normalize_for_search

_WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]*|\d+(?:[.,]\d+)*")

# Typographic variants one text copied from another may differ in: curly quotes, dashes.
_VARIANTS = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "–": "-", "—": "-"})


def comparable(text: str) -> str:
    """The text as two copies of one sentence compare equal: footnote marks, spacing, case and
    typographic variants aside."""
    return " ".join(normalize_for_search(text).translate(_VARIANTS).casefold().split())


NEGATIONS = frozenset({"not", "no", "never", "nor", "neither", "without", "cannot", "n't",
                       "none", "nobody", "nothing"})
# Verbs that negate the verb they govern: "refused to deliver" says it was not delivered.
NEGATING_VERBS = frozenset("""refuse refuses refused refusing fail fails failed failing deny denies
denied denying decline declines declined declining reject rejects rejected rejecting halt halts
suspend suspends suspended suspending
halted halting stop stops stopped stopping cease ceases ceased ceasing avoid avoids avoided avoiding
refrain refrains refrained refraining""".split())

# Function words carry no claim; leaving them out keeps overlap scores about content.
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


def words(text: str) -> list[str]:
    """Word and number tokens in order, as written."""
    return _WORD.findall(text)


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens in order, apostrophes normalised."""
    return [w.lower().replace("’", "'").strip("'-") for w in words(text)]


def _is_acronym(word: str) -> bool:
    """"US", "UN", "EU": an all-capitals word names something even when it spells a stopword."""
    return len(word) >= 2 and word.isupper()


def content_stems(text: str) -> list[str]:
    """Stems of the words that carry content, in order (acronyms kept, even "US")."""
    words = []
    for raw in _WORD.findall(text):
        word = raw.lower().replace("’", "'").strip("'-")
        word = word[:-2] if word.endswith("'s") else word
        if word and (word not in STOPWORDS or _is_acronym(raw.strip("'’-"))):
            words.append(word)
    return _stemmer().stemWords(words)


def word_for_word(text: str, source: str) -> float:
    """How nearly the text is the source's own words: the words both have in the same order, as
    a share of the longer one (1.0 for a copy; case, footnote marks and quote styles aside)."""
    ours, theirs = tokens(normalize_for_search(text)), tokens(normalize_for_search(source))
    blocks = SequenceMatcher(None, ours, theirs, autojunk=False).get_matching_blocks()
    return sum(b.size for b in blocks) / max(len(ours), len(theirs), 1)


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


def _entities(words: list[str]) -> dict[int, str]:
    """Word position -> actor key; consecutive capitalised words ("President Hassan Rouhani")
    form one actor, keyed by the stem of its last word."""
    positions: dict[int, str] = {}
    run: list[int] = []
    for i, word in enumerate(words + [""]):
        if word[:1].isupper() and (word.lower() not in STOPWORDS or _is_acronym(word)):
            run.append(i)
            continue
        if run:
            last = words[run[-1]].lower().replace("’", "'").strip("'-")
            key = _stemmer().stemWord(last)
            positions.update({j: key for j in run})
            run = []
    return positions


def role_swaps(claim: str, source: str, before: int = 10, after: int = 3) -> list[str]:
    """Content words the claim attaches to a different actor than the source does.

    "Oslo backs the plan" against "Bergen backs keeping the plan while Oslo ..." reports
    'back': the claim gives Bergen's position to Oslo. In the source an actor counts for a word
    when named up to `before` words ahead of it or up to `after` words behind it ("a delegation,
    led by Mayor Hansen"), so voice changes pass.
    """
    def stem_of(word: str) -> str:
        return _stemmer().stemWord(word.lower().replace("’", "'").strip("'-"))

    claim_words = _WORD.findall(claim)
    claim_actor = _entities(claim_words)
    source_words = _WORD.findall(source)
    source_actor = _entities(source_words)
    source_actors = set(source_actor.values())
    near: dict[str, set[str]] = {}
    for i, word in enumerate(source_words):
        if i in source_actor or word.lower() in STOPWORDS:
            continue
        lo, hi = max(0, i - before), min(len(source_words), i + after + 1)
        near.setdefault(stem_of(word), set()).update(
            source_actor[j] for j in range(lo, hi) if j in source_actor)
    swaps: list[str] = []
    for i, word in enumerate(claim_words):
        if i in claim_actor or word.lower() in STOPWORDS:
            continue
        nearest = next((claim_actor[j] for j in range(i - 1, max(-1, i - before - 1), -1)
                        if j in claim_actor), None)
        known = near.get(stem_of(word))
        if nearest and known and nearest in source_actors and nearest not in known:
            stem = stem_of(word)
            if stem not in swaps:
                swaps.append(stem)
    return swaps


_CLAUSE_ENDS = frozenset(".,;:!?")


def _negation_scopes(text: str, reach: int = 1) -> tuple[list[list[str]], set[str]]:
    """(for each negation, the stems of up to `reach` content words after it; all content
    stems) of a text.

    Reach counts content words, so "did not deliver the systems" and "refused to deliver the
    systems" negate the same words. A negation's scope ends with its clause: in "we have no one
    there after him. The resistance depends on him" nothing of the second sentence is negated.
    """
    words = [w.lower().replace("’", "'") for w in re.findall(r"[A-Za-z'’]+|[.,;:!?]", text)]
    scopes: list[list[str]] = []
    stems: set[str] = set()
    left = 0  # content words still in the scope of the last negation
    for word in words:
        if word in _CLAUSE_ENDS:
            left = 0
        elif word in NEGATIONS or word in NEGATING_VERBS or word.endswith("n't"):
            scopes.append([])
            left = reach
        elif word not in STOPWORDS:
            stem = _stemmer().stemWord(word.strip("'"))
            stems.add(stem)
            if left > 0:
                scopes[-1].append(stem)
                left -= 1
    return scopes, stems


def polarity_flips(claim: str, source: str) -> list[str]:
    """Content words negated in one text but asserted in the other ("is not their red line"
    against "is a red line")."""
    claim_scopes, claim_stems = _negation_scopes(claim)
    source_scopes, source_stems = _negation_scopes(source)
    claim_negated = {stem for scope in claim_scopes for stem in scope}
    source_negated = {stem for scope in source_scopes for stem in scope}
    shared = claim_stems & source_stems
    return sorted(stem for stem in shared if (stem in claim_negated) != (stem in source_negated))


def dropped_negations(claim: str, source: str, reach: int = 5, kept: int = 3) -> list[str]:
    """Negated phrases of the source that the claim restates without their negation: the claim
    has no negation at all, leaves out the word the source negates, and keeps at least `kept`
    of the next `reach - 1` content words of that clause. "There is no reason for the council to
    close the bridge" restated as "The council closes the bridge" reports 'reason'.

    polarity_flips sees a negated word the claim asserts; this sees a claim that cut the
    negation away with the word it governed."""
    claim_scopes, claim_stems = _negation_scopes(claim)
    if claim_scopes:
        return []
    return [scope[0] for scope in _negation_scopes(source, reach)[0]
            if scope and scope[0] not in claim_stems
            and sum(stem in claim_stems for stem in scope[1:]) >= kept]
