"""`llmbase docs`: import a folder of .txt, .md, .jsonl and .pdf files (re-importing it
unchanged writes 0 rows), search, stats, reindex, and clear errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner, Result

from llmbase.cli import app

runner = CliRunner()


def invoke(db_url: str, *args: str) -> Result:
    return runner.invoke(app, ["docs", *args, "--database-url", db_url], catch_exceptions=False)


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def raw(db_url: str, q: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(q).fetchall()


def make_pdf(path: Path, text: str) -> None:
    """A one-page PDF showing `text` in Helvetica (hand-assembled: no PDF writer needed)."""
    content = f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n" % (len(objects) + 1, xref) + b"%%EOF\n"
    path.write_bytes(out)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    (root / "sub").mkdir(parents=True)
    (root / "cats.txt").write_text("Cats sleep for most of the day and purr when they are content.\n")
    (root / "sub" / "billing.md").write_text(
        "# Billing\n\nInvoices are due within thirty days.\n\nLate payments incur a small fee.\n"
    )
    lines = [
        {"id": "faq-1", "text": "Reset your password from the login page.", "metadata": {"topic": "account"}},
        {"text": "Our office is closed on public holidays.", "title": "Holidays"},
        {"id": "faq-3", "content": "Trains to the airport leave every fifteen minutes."},
    ]
    (root / "faq.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    make_pdf(root / "manual.pdf", "The printer manual explains how to replace the toner cartridge.")
    (root / ".hidden.txt").write_text("never imported")
    (root / "table.csv").write_text("a,b\n1,2\n")
    return root


def snapshot(db_url: str) -> list[Any]:
    """Every stored row's identity and version: equal snapshots mean nothing was written."""
    return [
        raw(db_url, "SELECT id, xmin::text, updated_at FROM llmbase.documents ORDER BY id"),
        raw(db_url, "SELECT id, xmin::text FROM llmbase.chunks ORDER BY id"),
    ]


def test_import_a_folder_then_reimporting_it_writes_nothing(db_url: str, folder: Path) -> None:
    first = ok_json(invoke(db_url, "import", str(folder), "--collection", "kb", "--create", "--json"))
    assert (first["files"], first["documents"], first["skipped"]) == (4, 6, 0)
    assert first["chunks"] >= 6 and first["seconds"] >= 0
    assert first["skipped_files"] == [{"path": str(folder / "table.csv"), "reason": "unsupported type .csv"}]
    docs = dict(raw(db_url, "SELECT external_id, title FROM llmbase.documents"))
    assert docs[str((folder / "sub" / "billing.md").resolve())] == "Billing"
    assert docs["faq-1"] is None and docs["faq-3"] is None  # JSONL lines without a title
    assert f"{(folder / 'faq.jsonl').resolve()}#2" in docs  # a line without id: path#line
    pdf = raw(db_url, "SELECT content FROM llmbase.chunks WHERE content LIKE '%toner%'")
    assert pdf == [("The printer manual explains how to replace the toner cartridge.",)]
    assert raw(db_url, "SELECT count(*) FROM llmbase.chunks WHERE embedding IS NULL") == [(0,)]
    before = snapshot(db_url)

    again = ok_json(invoke(db_url, "import", str(folder), "--collection", "kb", "--json"))
    assert (again["files"], again["documents"], again["chunks"], again["skipped"]) == (4, 0, 0, 6)
    assert snapshot(db_url) == before  # 0 rows written

    (folder / "sub" / "billing.md").write_text("# Billing\n\nInvoices are now due within sixty days.\n")
    changed = ok_json(invoke(db_url, "import", str(folder), "--collection", "kb", "--json"))
    assert (changed["documents"], changed["skipped"]) == (1, 5)

    plain = invoke(db_url, "import", str(folder), "--collection", "kb")
    assert (
        plain.exit_code == 0
        and "4 files, 0 documents written" in plain.stdout
        and "6 unchanged" in plain.stdout
    )


def test_search_stats_and_reindex(db_url: str, folder: Path) -> None:
    ok_json(invoke(db_url, "import", str(folder), "--collection", "kb", "--create", "--json"))
    hits = ok_json(
        invoke(db_url, "search", "when is my invoice due?", "--collection", "kb", "-k", "2", "--json")
    )
    assert len(hits) == 2 and "Invoices" in hits[0]["content"]
    only_faq = ok_json(
        invoke(db_url, "search", "password", "--collection", "kb", "--filter", '{"type": "jsonl"}', "--json")
    )
    assert {h["metadata"]["type"] for h in only_faq} == {"jsonl"} and len(only_faq) == 3
    text = ok_json(invoke(db_url, "search", "toner", "--collection", "kb", "--mode", "text", "--json"))
    assert [h["content"] for h in text] == ["The printer manual explains how to replace the toner cartridge."]
    table = invoke(db_url, "search", "cats", "--collection", "kb")
    assert table.exit_code == 0 and "Cats sleep" in table.stdout
    (stats,) = ok_json(invoke(db_url, "stats", "--json"))
    assert (stats["name"], stats["documents"], stats["dimension"]) == ("kb", 6, 384)
    assert "kb" in invoke(db_url, "stats", "--collection", "kb").stdout
    rebuilt = ok_json(
        invoke(db_url, "reindex", "--collection", "kb", "--m", "12", "--ef-construction", "48", "--json")
    )
    assert (
        rebuilt["collection"] == "kb" and rebuilt["index_bytes"] > 0 and rebuilt["chunks"] == stats["chunks"]
    )
    line = invoke(db_url, "reindex", "--collection", "kb")
    assert line.exit_code == 0 and "rebuilt chunks_" in line.stdout


def test_text_only_collection_owner_and_public(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Alpha text about rivers and lakes.")
    r = ok_json(
        invoke(
            db_url, "import", str(tmp_path / "a.txt"), "--collection", "plain", "--create", "--embedder", "none",
            "--dimension", "3", "--user", "ann", "--public", "--json",
        )
    )  # fmt: skip
    assert r["documents"] == 1
    assert raw(
        db_url,
        "SELECT u.external_id, d.is_public FROM llmbase.documents d JOIN llmbase.users u ON u.id = d.user_id",
    ) == [("ann", True)]
    assert raw(db_url, "SELECT count(*) FROM llmbase.chunks WHERE embedding IS NULL AND is_public") == [(1,)]
    hits = ok_json(
        invoke(db_url, "search", "rivers", "--collection", "plain", "--json")
    )  # text mode: no embedder
    assert [h["content"] for h in hits] == ["Alpha text about rivers and lakes."]


def test_bad_input_is_a_clear_error_and_writes_nothing(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("fine")
    missing = invoke(db_url, "import", str(tmp_path), "--collection", "nope")
    assert missing.exit_code == 1 and "not found" in missing.output and "--create" in missing.output
    (tmp_path / "bad.jsonl").write_text('{"text": "good"}\n{not json}\n')
    bad = invoke(
        db_url,
        "import",
        str(tmp_path),
        "--collection",
        "c",
        "--create",
        "--embedder",
        "none",
        "--dimension",
        "3",
    )
    assert bad.exit_code == 1 and "bad.jsonl:2" in bad.output
    assert raw(db_url, "SELECT count(*) FROM llmbase.collections") == [(0,)]
    (tmp_path / "bad.jsonl").write_text('{"text": "good", "extra": 1}\n')
    extra = invoke(
        db_url,
        "import",
        str(tmp_path),
        "--collection",
        "c",
        "--create",
        "--embedder",
        "none",
        "--dimension",
        "3",
    )
    assert extra.exit_code == 1 and "unknown keys ['extra']" in extra.output
    gone = invoke(db_url, "import", str(tmp_path / "missing.txt"), "--collection", "c")
    assert gone.exit_code == 1 and "no such file" in gone.output
    bad_filter = invoke(db_url, "search", "x", "--collection", "c", "--filter", "{oops")
    assert bad_filter.exit_code == 1 and "not valid JSON" in bad_filter.output
    assert raw(db_url, "SELECT count(*) FROM llmbase.documents") == [(0,)]
