"""The RAG benchmark's corpus: docstring and comment paragraphs of shipped Python code.

Source: the Python standard library and a fixed list of big packages in the venv (torch,
sympy, scipy, numpy, sklearn, transformers, networkx — present once the bench's extras are
installed). Every .py file is parsed with `ast` (docstrings of modules, classes and
functions) and `tokenize` (runs of `#` comment lines); texts are split at blank lines into
paragraphs, whitespace collapsed, paragraphs of < 8 words or mostly doctest lines dropped,
long ones cut at sentence ends into pieces of <= 90 words, and pieces over 128 tokens of
the embedding model's tokenizer halved (at word boundaries) until they fit; exact
duplicates dropped. Deterministic:
files are taken in the order of a hash of their relative path until the target size is
reached, then sorted by (source, path, position).

Queries are held out: the chunks with the smallest hash of their text (never inserted).
"""

from __future__ import annotations

import ast
import hashlib
import io
import re
import sysconfig
import tokenize
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("torch", "sympy", "scipy", "numpy", "sklearn", "transformers", "networkx")
MAX_WORDS = 90
MAX_TOKENS = 128
MIN_WORDS = 8
_WS = re.compile(r"\s+")
_SENTENCE = re.compile(r"(?<=[.!?:;])\s+")
_RULE = re.compile(r"^[-=~^*#_ ]+$")


@dataclass(frozen=True)
class Chunk:
    source: str  # "stdlib/json/decoder.py", "torch/nn/modules/linear.py"
    position: int  # within its file
    text: str


def roots() -> list[tuple[str, Path]]:
    """(label, directory) of every source that exists here, in a fixed order."""
    out = [("stdlib", Path(sysconfig.get_paths()["stdlib"]))]
    site = Path(sysconfig.get_paths()["purelib"])
    out += [(name, site / name) for name in PACKAGES if (site / name).is_dir()]
    return out


def _files(label: str, root: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if label == "stdlib" and (rel.parts[0] in ("site-packages", "test") or "tests" in rel.parts):
            continue
        yield f"{label}/{rel.as_posix()}", path


def _texts(source: str) -> Iterator[str]:
    """Docstrings, then comment blocks, of one module's source."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc:
                yield doc
    block: list[str] = []
    last = -2
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type != tokenize.COMMENT:
                continue
            line = tok.string.lstrip("#").strip()
            if tok.start[0] != last + 1 and block:
                yield "\n".join(block)
                block = []
            block.append(line)
            last = tok.start[0]
    except (tokenize.TokenError, SyntaxError):
        pass
    if block:
        yield "\n".join(block)


def _paragraphs(text: str) -> Iterator[str]:
    for para in re.split(r"\n\s*\n", text):
        lines = [ln for ln in para.splitlines() if ln.strip() and not _RULE.match(ln.strip())]
        if not lines:
            continue
        code = sum(ln.lstrip().startswith((">>>", "...", "$ ", "In [", "Out[")) for ln in lines)
        if code * 2 >= len(lines):
            continue
        flat = _WS.sub(" ", " ".join(lines)).strip()
        if len(flat.split()) < MIN_WORDS or sum(c.isalpha() for c in flat) < len(flat) // 2:
            continue
        yield from _pieces(flat)


def _pieces(flat: str) -> Iterator[str]:
    """Cut at sentence ends into pieces of <= MAX_WORDS words (hard cut inside a long sentence)."""
    piece: list[str] = []
    for sentence in _SENTENCE.split(flat):
        words = sentence.split()
        while len(words) > MAX_WORDS:
            if piece:
                yield " ".join(piece)
                piece = []
            yield " ".join(words[:MAX_WORDS])
            words = words[MAX_WORDS:]
        if len(piece) + len(words) > MAX_WORDS:
            yield " ".join(piece)
            piece = []
        piece += words
    if len(piece) >= MIN_WORDS:
        yield " ".join(piece)


def _hash(s: str) -> int:
    return int.from_bytes(hashlib.sha1(s.encode()).digest()[:8], "big")


def _fit(pieces: list[str], count: Callable[[list[str]], list[int]]) -> list[str]:
    """Halve pieces over MAX_TOKENS tokens at word boundaries until every one fits (in order)."""
    out: list[str] = []
    for piece, n in zip(pieces, count(pieces), strict=True):
        if n <= MAX_TOKENS:
            out.append(piece)
        elif len(words := piece.split()) > 1:
            half = len(words) // 2
            out += _fit([" ".join(words[:half]), " ".join(words[half:])], count)
    return out


def build(
    target: int, queries: int, count: Callable[[list[str]], list[int]], progress: bool = True
) -> tuple[list[Chunk], list[Chunk]]:
    """(corpus chunks to insert, held-out query chunks): about `target` + `queries` unique
    paragraphs, the corpus in (source, path, position) order. `count`: tokens per text."""
    files = [f for label, root in roots() for f in _files(label, root)]
    files.sort(key=lambda f: _hash(f[0]))
    seen: set[str] = set()
    chunks: list[Chunk] = []
    for i, (name, path) in enumerate(files):
        if len(chunks) >= target + queries:
            break
        try:
            source = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        pos = 0
        paras = [para for text in _texts(source) for para in _paragraphs(text)]
        for para in _fit(paras, count) if paras else []:
            if para not in seen and len(para.split()) >= MIN_WORDS // 2:
                seen.add(para)
                chunks.append(Chunk(name, pos, para))
                pos += 1
        if progress and i % 2000 == 0:
            print(f"  corpus: {i:,}/{len(files):,} files, {len(chunks):,} chunks", flush=True)
    held = set(sorted(range(len(chunks)), key=lambda k: _hash(chunks[k].text))[:queries])
    rest = [c for k, c in enumerate(chunks) if k not in held]
    rest.sort(key=lambda c: (c.source, c.position))
    return rest[:target], sorted((chunks[k] for k in held), key=lambda c: (c.source, c.position))
