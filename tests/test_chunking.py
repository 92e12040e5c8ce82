"""Chunking is a pure function: sizes, overlap, headings and offsets, without any model."""

from __future__ import annotations

from index.chunking import ChunkingParams, chunk_text, normalize_for_search


def words(text: str) -> int:
    return len(text.split())


SECTION = "\n\n".join(
    f"Sentence number {i} talks about topic {i} in some detail here." for i in range(40))
DOCUMENT = f"# Background\n\n{SECTION}\n\n## Outlook\n\nThe outlook is uncertain. Both sides wait.\n"


def test_passages_respect_the_token_budget_including_heading():
    params = ChunkingParams(max_tokens=40, overlap_tokens=10)
    passages = chunk_text("doc", DOCUMENT, words, params)
    for passage in passages:
        assert words(passage.heading) + 1 + words(normalize_for_search(passage.text)) <= 40


def test_offsets_are_exact_and_sentences_whole():
    passages = chunk_text("doc", DOCUMENT, words, ChunkingParams(40, 10))
    for passage in passages:
        assert DOCUMENT[passage.start:passage.end] == passage.text
        assert passage.text.startswith(("Sentence number", "The outlook"))
        assert passage.text.endswith(".")


def test_neighbouring_passages_overlap_by_whole_sentences():
    # Each sentence is 11 words: an overlap budget of 12 repeats exactly one sentence.
    passages = [p for p in chunk_text("doc", DOCUMENT, words, ChunkingParams(40, 12))
                if p.heading == "Background"]
    assert len(passages) > 3
    for before, after in zip(passages, passages[1:]):
        assert after.start < before.end  # overlap
        assert after.start > before.start  # progress
        last_sentence = before.text.rsplit("\n\n", 1)[-1]
        assert last_sentence in after.text


def test_no_overlap_when_disabled_and_everything_covered():
    passages = [p for p in chunk_text("doc", DOCUMENT, words, ChunkingParams(40, 0))
                if p.heading == "Background"]
    covered = " ".join(p.text for p in passages)
    for i in range(40):
        assert covered.count(f"Sentence number {i} ") == 1


def test_headings_attach_to_their_sections():
    passages = chunk_text("doc", DOCUMENT, words, ChunkingParams(40, 10))
    assert {p.heading for p in passages} == {"Background", "Outlook"}
    assert passages[-1].heading == "Outlook"
    assert passages[-1].text == "The outlook is uncertain. Both sides wait."


def test_a_sentence_longer_than_the_budget_is_split_not_truncated():
    long_sentence = " ".join(f"word{i}" for i in range(100)) + "."
    text = f"Intro sentence is short.\n\n{long_sentence}\n"
    passages = chunk_text("doc", text, words, ChunkingParams(max_tokens=30, overlap_tokens=0))
    joined = " ".join(p.text for p in passages)
    for i in range(100):
        assert f"word{i}" in joined
    assert all(words(p.text) <= 30 for p in passages)


def test_footnote_marks_are_not_searched():
    assert normalize_for_search("Lavrov said[49]. The\nend [12, 13].") == "Lavrov said. The end ."
