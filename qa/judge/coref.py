"""Spell out "the former" and "the latter" in evidence before it is judged.

Small judges cannot follow the reference ("Oslo and Bergen, where the former insists ...") and
happily accept the claim with the roles reversed. The two names the phrases point at are the
last two names written before them, so the evidence can be rewritten with the names in place.
The rewritten text is only read by the judge; quotes shown to users stay verbatim.
"""

from __future__ import annotations

import re

# A name: a run of capitalised words ("Ada Lovelace", "New Zealand", "Abd al-Rahman"), or an
# acronym.
_NAME = re.compile(r"\b(?:[A-Z][\w’'-]*|al-[A-Z][\w’'-]*)(?:\s+(?:[A-Z][\w’'-]*|al-[A-Z][\w’'-]*|of|the))*")
_REFERENCE = re.compile(r"\b([Tt])he (former|latter)\b")
_NOT_NAMES = frozenset({"The", "A", "An", "This", "That", "These", "Those", "It", "In", "On",
                        "At", "For", "But", "And", "However", "While", "When", "As", "If"})


def _names_before(text: str) -> list[str]:
    names = []
    for match in _NAME.finditer(text):
        name = re.sub(r"\s+(?:of|the)$", "", match.group()).strip()
        words = name.split()
        while words and words[0] in _NOT_NAMES:
            words = words[1:]
        if words:
            names.append(" ".join(words))
    return names


def spell_out_former_latter(text: str) -> str:
    """The text with "the former"/"the latter" replaced by the names they refer to.

    Both phrases of one construction refer to the pair named before the first of them, so the
    pair is read once per run of references, not again before "the latter".
    """
    out, last, pair, pair_end = [], 0, None, -1
    for match in _REFERENCE.finditer(text):
        # A new construction starts when a sentence ended since the previous reference.
        if pair is None or re.search(r"[.!?]\s", text[pair_end:match.start()]):
            distinct = list(dict.fromkeys(reversed(_names_before(text[:match.start()]))))
            pair = (distinct[1], distinct[0]) if len(distinct) >= 2 else None
        pair_end = match.end()
        if pair is None:
            continue
        out.append(text[last:match.start()])
        out.append(pair[0] if match.group(2) == "former" else pair[1])
        last = match.end()
    out.append(text[last:])
    return "".join(out)
