"""Split text into chunks of at most `size` tokens with `overlap` tokens carried between
neighbours, cutting at paragraph, then sentence, then word boundaries when it can.

Tokens are counted with the embedder's tokenizer when it has one (`LocalEmbedder` does:
the model's WordPiece tokenizer), else by `approx_tokens`: one token per run of letters
or digits and one per other visible character (`\\w+|[^\\w\\s]`), close to what BPE and
WordPiece tokenizers count for English prose.

How it cuts: the text is split into units (paragraphs; a paragraph longer than `size` into
sentences; a longer sentence into words; a longer word into pieces). Units are packed
greedily; when the next one does not fit, the chunk ends at the strongest boundary
(paragraph > sentence > word) that still leaves it at least half full. The next chunk
starts with the last units of the previous one, up to `overlap` tokens (fewer when the
next unit would not fit beside them). A chunk's text is
a slice of the original text (whitespace between its units kept), and its token count is
counted on that slice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import ValidationError

__all__ = ["DEFAULT_OVERLAP", "DEFAULT_SIZE", "Chunk", "TokenCounter", "approx_tokens", "chunk_text"]

#: counts the tokens of each text
TokenCounter = Callable[[Sequence[str]], list[int]]

DEFAULT_SIZE = 200
DEFAULT_OVERLAP = 20
MAX_SIZE = 100_000

_APPROX = re.compile(r"\w+|[^\w\s]")
_PARAGRAPH = re.compile(r"\S(?:.*?\S)?(?=\s*\n[ \t\r\f\v]*\n|\s*\Z)", re.S)
_SENTENCE = re.compile(r"\S.*?(?:[.!?\u2026\u3002\uff01\uff1f]+[\"'\u201d\u2019)\]]*(?=\s)|\Z)", re.S)
_WORD = re.compile(r"\S+")

# Boundary strength after a unit: what separates it from the next one.
_PARA, _SENT, _WORDB, _PIECE = 3, 2, 1, 0


@dataclass(frozen=True)
class Chunk:
    """A slice of the text: `text[start:end]`, `position` 0.. in the document."""

    content: str
    position: int
    token_count: int
    start: int
    end: int


def approx_tokens(texts: Sequence[str]) -> list[int]:
    """The documented approximation: words and visible non-word characters."""
    return [len(_APPROX.findall(t)) for t in texts]


def _check(size: int, overlap: int) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_SIZE:
        raise ValidationError(f"must be an integer from 1 to {MAX_SIZE}", field="chunk_size")
    if not isinstance(overlap, int) or isinstance(overlap, bool) or not 0 <= overlap < size:
        raise ValidationError("must be an integer from 0 to chunk_size - 1", field="overlap")


class _Units:
    """Spans of the text with token counts and the strength of the boundary after each."""

    def __init__(self, text: str, size: int, count: TokenCounter) -> None:
        self.text, self.size, self.count = text, size, count
        self.spans: list[tuple[int, int]] = []
        self.tokens: list[int] = []
        self.after: list[int] = []

    def add(self, spans: list[tuple[int, int]], strength: int, level: int) -> None:
        """Add spans separated by `strength`; split those over `size` one level finer."""
        counts = self.count([self.text[a:b] for a, b in spans])
        for i, ((a, b), n) in enumerate(zip(spans, counts, strict=True)):
            last = i == len(spans) - 1
            if n > self.size and level < _PIECE + 3:
                before = len(self.after)
                self.add(self._finer(a, b, level), _finer_strength(level), level + 1)
                if len(self.after) > before and not last:
                    self.after[-1] = strength
                continue
            self.spans.append((a, b))
            self.tokens.append(n)
            self.after.append(strength if not last else -1)

    def _finer(self, a: int, b: int, level: int) -> list[tuple[int, int]]:
        part = self.text[a:b]
        if level == 0:
            found = [(a + m.start(), a + m.end()) for m in _SENTENCE.finditer(part)]
        elif level == 1:
            found = [(a + m.start(), a + m.end()) for m in _WORD.finditer(part)]
        else:  # a "word" longer than size tokens: cut it into even pieces
            n = max(1, self.count([part])[0])
            step = max(1, len(part) * self.size // (n + 1))
            found = [(i, min(i + step, b)) for i in range(a, b, step)]
        return found if len(found) > 1 or level == 2 else found or [(a, b)]


def _finer_strength(level: int) -> int:
    return (_SENT, _WORDB, _PIECE)[min(level, 2)]


def chunk_text(
    text: str,
    *,
    size: int = DEFAULT_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    count: TokenCounter | None = None,
) -> list[Chunk]:
    """Chunks of `text` (see the module docstring). Whitespace-only text has none."""
    _check(size, overlap)
    counter = count or approx_tokens
    units = _Units(text, size, counter)
    paragraphs = [(m.start(), m.end()) for m in _PARAGRAPH.finditer(text)]
    if not paragraphs:
        return []
    units.add(paragraphs, _PARA, 0)
    spans, tokens, after = units.spans, units.tokens, units.after
    n = len(spans)
    cuts: list[tuple[int, int]] = []  # unit ranges [i, j)
    i = fresh = 0  # fresh: the first unit the previous chunk did not hold
    while i < n:
        j, total = i, 0
        while j < n and (j <= fresh or total + tokens[j] <= size):
            total += tokens[j]
            j += 1
        if j < n:
            j = _best_cut(i, max(i, fresh), j, tokens, after, size)
        cuts.append((i, j))
        fresh = j
        if j >= n:
            break
        # overlap: the last units of this chunk, up to `overlap` tokens, start the next,
        # leaving room for the next unit (a chunk is never all overlap)
        k, carried = j, 0
        while k - 1 > i and carried + tokens[k - 1] <= min(overlap, size - tokens[j]):
            k -= 1
            carried += tokens[k]
        i = k
    contents = [text[spans[a][0] : spans[b - 1][1]] for a, b in cuts]
    counts = counter(contents)
    return [
        Chunk(c, pos, counts[pos], spans[a][0], spans[b - 1][1])
        for pos, (c, (a, b)) in enumerate(zip(contents, cuts, strict=True))
    ]


def _best_cut(i: int, fresh: int, j: int, tokens: list[int], after: list[int], size: int) -> int:
    """Where to end the chunk of units [i, j): after the strongest boundary that keeps it at
    least half full (the latest such) and past its first new unit `fresh`, else at j."""
    best, best_strength = j, after[j - 1]
    total = sum(tokens[i:j])
    for end in range(j - 1, fresh, -1):  # candidate: units [i, end)
        total -= tokens[end]
        if total < size / 2:
            break
        if after[end - 1] > best_strength:
            best, best_strength = end, after[end - 1]
    return best
