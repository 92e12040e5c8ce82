"""chunk_ahead: results in order, with the next items' work already under way."""

from __future__ import annotations

import threading

from index.chunking import chunk_ahead


def test_results_come_in_order_and_work_runs_ahead_of_the_consumer():
    started: list[int] = []
    third_started = threading.Event()

    def work(item: int) -> int:
        started.append(item)
        if item == 2:
            third_started.set()
        return item * item

    stream = chunk_ahead(range(6), work, ahead=2)
    first = next(stream)
    # While the caller still holds item 0, item 2 is prepared without being asked for.
    assert third_started.wait(timeout=10)
    assert first == (0, 0)
    assert list(stream) == [(1, 1), (2, 4), (3, 9), (4, 16), (5, 25)]
    assert started == [0, 1, 2, 3, 4, 5]


def test_an_error_in_the_work_reaches_the_consumer_at_its_item():
    def work(item: int) -> int:
        if item == 1:
            raise ValueError("unreadable")
        return item

    stream = chunk_ahead(range(3), work)
    assert next(stream) == (0, 0)
    try:
        next(stream)
    except ValueError as exc:
        assert str(exc) == "unreadable"
    else:
        raise AssertionError("the error was swallowed")


def test_chunking_ahead_while_the_real_encoder_embeds_gives_the_same_passages(
        real_embedder, seed_copy):
    """Token counting in the chunking thread must not trip over the encoder's tokenizer."""
    import pytest

    from index.chunking import chunk_text, embedding_text
    from index.readers import read_documents

    pytest.importorskip("sentence_transformers")
    documents, _ = read_documents([seed_copy])
    serial = [chunk_text(d.doc_id, d.text, real_embedder.count_tokens) for d in documents]
    ahead = []
    for _, passages in chunk_ahead(documents, lambda d: chunk_text(d.doc_id, d.text,
                                                                   real_embedder.count_tokens)):
        real_embedder.embed([embedding_text(p) for p in passages])
        ahead.append(passages)
    assert ahead == serial and sum(map(len, serial)) > 100
    text = "Moscow and Tehran disagree on Assad's future, don't they?"
    assert real_embedder.count_tokens(text) == len(real_embedder._tokenizer.tokenize(text))
