"""Documents from files, for `llmbase docs import` and `collection.add(read_paths(...))`.

- `.txt`, `.md` (and `.markdown`): one document per file, read as UTF-8 (undecodable bytes
  become U+FFFD). Title: a Markdown file's first `# heading`, else the file name.
- `.jsonl`: one document per line, a JSON object with `text` (or `content`) and optional
  `id` (external id), `title`, `source`, `metadata` (an object). Blank lines are skipped;
  a malformed line is an error naming the file and line.
- `.pdf`: one document per file, the text of its pages (needs the `pdf` extra: pypdf);
  without pypdf, PDF files are skipped with a reason.

A file's external id is its resolved absolute path (a JSONL line's: its `id`, else
`<path>#<line>`), so importing the same folder again finds the same documents and, when
nothing changed, writes nothing. Directories are walked recursively in name order;
hidden files and directories (a leading dot) are left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from .rows import DocumentInput

__all__ = ["SUFFIXES", "Loaded", "read_paths"]

SUFFIXES = (".txt", ".md", ".markdown", ".jsonl", ".pdf")
_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.M)
_JSONL_KEYS = {"text", "content", "id", "title", "source", "metadata"}


@dataclass
class Loaded:
    """What was read: documents, the files they came from, and files left out (why)."""

    documents: list[DocumentInput] = field(default_factory=list)
    files: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _walk(paths: Iterable[Path | str]) -> Iterator[Path]:
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise ValidationError(f"{p}: no such file or directory", field="path")
        if p.is_dir():
            for child in sorted(p.rglob("*")):
                rel = child.relative_to(p)
                if child.is_file() and not any(part.startswith(".") for part in rel.parts):
                    yield child
        else:
            yield p


def _text_doc(path: Path, base: dict[str, Any]) -> DocumentInput | None:
    text = path.read_bytes().decode("utf-8", errors="replace")
    if not text.strip():
        return None
    title = path.name
    if path.suffix.lower() in (".md", ".markdown"):
        m = _HEADING.search(text)
        if m:
            title = m.group(1)[:2000]
    return DocumentInput(content=text, title=title, **base)


def _pdf_doc(path: Path, base: dict[str, Any]) -> DocumentInput | None:
    from pypdf import PdfReader

    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = reader.metadata.title if reader.metadata else None
    except Exception as exc:  # pypdf raises many kinds on damaged files
        raise ValidationError(f"{path}: not a readable PDF ({exc})", field="path") from exc
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        return None
    meta = {**base["metadata"], "pages": len(pages)}
    return DocumentInput(
        content=text, title=str(meta_title or path.name)[:2000], **{**base, "metadata": meta}
    )


def _jsonl_docs(path: Path, base: dict[str, Any]) -> Iterator[DocumentInput]:
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            where = f"{path}:{n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValidationError(f"{where}: not JSON ({exc.msg})", field="path") from None
            if not isinstance(obj, dict):
                raise ValidationError(f"{where}: each line must be a JSON object", field="path")
            unknown = set(obj) - _JSONL_KEYS
            if unknown:
                raise ValidationError(f"{where}: unknown keys {sorted(unknown)}", field="path")
            text = obj.get("text", obj.get("content"))
            if not isinstance(text, str) or not text.strip():
                raise ValidationError(f"{where}: needs a non-empty `text`", field="path")
            meta = obj.get("metadata") or {}
            if not isinstance(meta, dict):
                raise ValidationError(f"{where}: `metadata` must be an object", field="path")
            ext = obj.get("id")
            yield DocumentInput(
                content=text,
                external_id=str(ext) if ext is not None else f"{base['source']}#{n}",
                title=obj.get("title"),
                source=obj.get("source") or base["source"],
                metadata={**base["metadata"], **meta},
                user=base["user"],
                is_public=base["is_public"],
            )


def _has_pypdf() -> bool:
    try:
        import pypdf  # noqa: F401
    except ImportError:
        return False
    return True


def read_paths(paths: Iterable[Path | str], *, user: str | None = None, public: bool = False) -> Loaded:
    """Read files and directories into documents (see the module docstring)."""
    out = Loaded()
    pdf_ok: bool | None = None
    for path in _walk(paths):
        suffix = path.suffix.lower()
        if suffix not in SUFFIXES:
            out.skipped.append((str(path), f"unsupported type {suffix or '(none)'}"))
            continue
        resolved = str(path.resolve())
        base: dict[str, Any] = {
            "source": resolved,
            "metadata": {"file": path.name, "type": suffix.lstrip(".")},
            "user": user,
            "is_public": public,
        }
        if suffix == ".jsonl":
            docs = list(_jsonl_docs(path, base))
            out.files += 1
            out.documents.extend(docs)
            continue
        if suffix == ".pdf":
            if pdf_ok is None:
                pdf_ok = _has_pypdf()
            if not pdf_ok:
                out.skipped.append((str(path), "PDF support needs the pdf extra: pip install 'llmbase[pdf]'"))
                continue
            doc = _pdf_doc(path, {**base, "external_id": resolved})
        else:
            doc = _text_doc(path, {**base, "external_id": resolved})
        out.files += 1
        if doc is None:
            out.skipped.append((str(path), "no text"))
        else:
            out.documents.append(doc)
    return out
