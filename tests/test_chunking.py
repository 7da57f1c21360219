"""The chunker: token-bounded chunks, cut at paragraph, then sentence, then word boundaries,
with the configured overlap; every chunk is a slice of the text."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmbase import ValidationError
from llmbase.documents.chunking import approx_tokens, chunk_text


def test_approx_tokens_counts_words_and_punctuation() -> None:
    assert approx_tokens(["Hello, world!", "", "  ", "don't stop-me 42"]) == [4, 0, 0, 7]


def test_short_text_is_one_chunk() -> None:
    (c,) = chunk_text("  Just one line.  \n")
    assert (c.content, c.position, c.token_count, c.start) == ("Just one line.", 0, 4, 2)


def test_whitespace_only_text_has_no_chunks() -> None:
    assert chunk_text(" \n\n\t ") == []


def test_paragraph_boundaries_are_preferred() -> None:
    paras = [" ".join(f"p{i}w{j}" for j in range(30)) + "." for i in range(5)]
    text = "\n\n".join(paras)
    chunks = chunk_text(text, size=70, overlap=0)
    # two paragraphs (62 tokens) fit; a third would not: every chunk ends where a paragraph ends
    assert [c.content for c in chunks] == ["\n\n".join(paras[0:2]), "\n\n".join(paras[2:4]), paras[4]]


def test_sentence_boundaries_inside_a_long_paragraph() -> None:
    sentences = [f"Sentence {i} has " + "some more words " * 3 + "in it." for i in range(12)]
    text = " ".join(sentences)
    chunks = chunk_text(text, size=40, overlap=0)
    assert len(chunks) > 2
    for c in chunks:
        assert c.content.startswith("Sentence ") and c.content.endswith("in it."), c.content
        assert c.token_count <= 40


def test_words_and_overlong_words_are_split_when_nothing_else_fits() -> None:
    words = " ".join(f"w{i}" for i in range(100))
    chunks = chunk_text(words, size=10, overlap=3)
    assert all(c.token_count <= 10 for c in chunks)
    assert chunks[0].content == " ".join(f"w{i}" for i in range(10))
    assert chunks[1].content.startswith("w7 w8 w9 w10")  # 3 tokens of overlap
    # one "word" of 500 characters, counted one token per 10 characters
    counter = lambda texts: [len(t) // 10 + 1 for t in texts]  # noqa: E731
    long = chunk_text("x" * 500, size=10, count=counter, overlap=0)
    assert "".join(c.content for c in long) == "x" * 500
    assert all(c.token_count <= 10 for c in long)


def test_size_and_overlap_are_checked() -> None:
    for kwargs, field in (
        ({"size": 0}, "chunk_size"),
        ({"size": True}, "chunk_size"),
        ({"size": 10, "overlap": 10}, "overlap"),
        ({"size": 10, "overlap": -1}, "overlap"),
    ):
        with pytest.raises(ValidationError) as e:
            chunk_text("text", **kwargs)  # type: ignore[arg-type]
        assert e.value.field == field


WORD = st.text(alphabet=st.characters(categories=["L", "N", "P"]), min_size=1, max_size=12)
SENTENCE = st.lists(WORD, min_size=1, max_size=25).map(lambda ws: " ".join(ws) + ".")
PARAGRAPH = st.lists(SENTENCE, min_size=1, max_size=6).map(" ".join)
TEXT = st.lists(PARAGRAPH, min_size=1, max_size=8).map("\n\n".join)


@settings(max_examples=150, deadline=None)
@given(TEXT, st.integers(min_value=4, max_value=80), st.integers(min_value=0, max_value=30))
def test_chunks_are_bounded_ordered_slices_covering_the_text(text: str, size: int, overlap: int) -> None:
    overlap = min(overlap, size - 1)
    chunks = chunk_text(text, size=size, overlap=overlap)
    assert chunks, "non-blank text has chunks"
    assert [c.position for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert text[c.start : c.end] == c.content
        assert c.content == c.content.strip()
        assert c.token_count == approx_tokens([c.content])[0]
        # a unit never exceeds `size` unless it is one indivisible piece (a split word)
        assert c.token_count <= size or len(c.content.split()) == 1
    for a, b in itertools.pairwise(chunks):
        assert a.start < b.start and a.end < b.end  # progress
        if b.start < a.end:  # the overlap is whole units of at most `overlap` tokens
            assert approx_tokens([text[b.start : a.end]])[0] <= overlap
    covered = [False] * len(text)
    for c in chunks:
        covered[c.start : c.end] = [True] * (c.end - c.start)
    assert all(covered[i] for i, ch in enumerate(text) if not ch.isspace())


def test_a_real_tokenizer_can_count() -> None:
    """Any `texts -> counts` function works; here: characters (a tokenizer stand-in)."""
    text = "\n\n".join(["a" * 30, "b" * 30, "c" * 30])
    chunks = chunk_text(text, size=65, overlap=0, count=lambda ts: [len(re.sub(r"\s", "", t)) for t in ts])
    assert [c.content for c in chunks] == ["a" * 30 + "\n\n" + "b" * 30, "c" * 30]
