"""`llmbase types`: TypeScript and Python types generated from the live schema."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from llmbase.cli import app
from llmbase.typegen import generate

TABLES = (
    "api_keys",
    "conversations",
    "feedback",
    "feedback_summary",
    "messages",
    "tenant_settings",
    "tenants",
    "user_profiles",
    "users",
)

# Objects a schema may grow that the generators must handle: enums, domains, keyword and
# non-identifier column names, generated and identity columns, overloads, OUT parameters.
EDGE_CASES = """
CREATE TYPE llmbase.mood AS ENUM ('happy', 'sad');
CREATE DOMAIN llmbase.short_text AS text CHECK (length(VALUE) < 10);
CREATE TABLE llmbase.zz_edge (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "from" text NOT NULL,
    "class" integer,
    "two words" boolean,
    doubled integer GENERATED ALWAYS AS ("class" * 2) STORED,
    mood llmbase.mood NOT NULL DEFAULT 'happy',
    moods llmbase.mood[],
    label llmbase.short_text,
    embedding vector(3),
    at date,
    span interval,
    amount numeric
);
CREATE FUNCTION llmbase.zz_over(a integer) RETURNS integer LANGUAGE sql AS 'SELECT a';
CREATE FUNCTION llmbase.zz_over(a text, b text DEFAULT 'x') RETURNS SETOF text
    LANGUAGE sql AS 'SELECT a || b';
CREATE FUNCTION llmbase.zz_out(x integer, OUT y integer, OUT z text)
    LANGUAGE sql AS 'SELECT x, x::text';
"""


def _tsc() -> list[str] | None:
    """A TypeScript compiler that runs without downloading anything, or None."""
    local = Path(__file__).resolve().parents[1] / "tools" / "ts" / "node_modules" / ".bin" / "tsc"
    if local.exists():  # installed by `make test` from tools/ts/package-lock.json
        return [str(local)]
    if shutil.which("tsc"):
        return ["tsc"]
    if shutil.which("npx"):
        probe = subprocess.run(["npx", "--no-install", "tsc", "--version"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return ["npx", "--no-install", "tsc"]
    return None


def _mypy_and_ruff(path: Path) -> None:
    mypy = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(path)],
        capture_output=True,
        text=True,
        cwd=path.parent,
    )
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr
    ruff = subprocess.run(
        [
            str(Path(sys.executable).parent / "ruff"),
            "check",
            "--isolated",
            "--select=E,F,W,I,UP,B,SIM,RUF",
            "--line-length=100",
            "--target-version=py311",
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr


def test_typescript_has_every_table(db_url: str) -> None:
    ts = generate(db_url, "typescript")
    assert "export type Database = {" in ts
    for table in TABLES:
        body = "\n" + ts.split(f"\n      {table}: {{\n", 1)[1].split("\n      }\n", 1)[0]
        for section in ("Row", "Insert", "Update", "Relationships"):
            assert f"\n        {section}: " in body, (table, section)
    messages = ts.split("\n      messages: {\n", 1)[1]
    row = messages.split("Insert: {", 1)[0]
    insert = messages.split("Insert: {", 1)[1].split("Update: {", 1)[0]
    assert "content: string\n" in row
    assert "model: string | null\n" in row
    assert "content: string\n" in insert  # required: NOT NULL without default
    assert "model?: string | null\n" in insert  # optional: nullable
    assert "id?: string\n" in insert  # optional: has a default
    assert "metadata: Json\n" in row
    assert "cost_usd: number | null\n" in row
    assert "conversation_feedback: {" in ts.split("Views: {", 1)[1]
    assert "authenticate_api_key: {" in ts.split("Functions: {", 1)[1]
    assert "touch_updated_at" not in ts  # trigger functions are not callable
    assert "alembic_version" not in ts
    assert generate(db_url, "typescript") == ts  # deterministic


def test_python_types_pass_mypy_strict(db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(EDGE_CASES)
    py = generate(db_url, "python")
    assert "class MessagesRow(TypedDict):" in py
    assert "class MessagesInsert(TypedDict):" in py
    assert "class MessagesUpdate(TypedDict, total=False):" in py
    assert "class ConversationFeedbackRow(TypedDict):" in py
    assert "ConversationFeedbackInsert" not in py  # views are read-only here
    assert "    content: str\n" in py
    assert "    model: NotRequired[str | None]\n" in py
    # Keyword and non-identifier names force the functional form; generated columns are
    # readable but never written.
    assert 'ZzEdgeRow = TypedDict(\n    "ZzEdgeRow",\n    {\n' in py
    assert '"mood": Literal["happy", "sad"]' in py
    assert '"label": str | None' in py
    insert = py.split('"ZzEdgeInsert",', 1)[1].split("\n)\n", 1)[0]
    assert '"doubled"' not in insert
    assert '"id"' not in insert
    assert '"from": str' in insert
    assert '"mood": NotRequired[' in insert

    path = tmp_path / "llmbase_types.py"
    path.write_text(py)
    _mypy_and_ruff(path)


def test_typescript_edge_cases_compile(db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(EDGE_CASES)
    ts = generate(db_url, "typescript")
    edge = ts.split("\n      zz_edge: {\n", 1)[1]
    assert '"two words": boolean | null' in edge
    assert 'mood: Database["llmbase"]["Enums"]["mood"]' in edge
    assert "doubled?: never" in edge.split("Insert: {", 1)[1]
    assert 'mood: "happy" | "sad"' in ts.split("Enums: {", 1)[1]
    functions = ts.split("Functions: {", 1)[1]
    assert "zz_over:\n        | {" in functions
    assert "Returns: string[]" in functions
    assert "y: number\n" in functions.split("zz_out: {", 1)[1]

    tsc = _tsc()
    if tsc is None:
        pytest.skip("no TypeScript compiler (tsc) installed; the output was checked as text")
    (tmp_path / "database.types.ts").write_text(ts)
    (tmp_path / "use.ts").write_text(
        'import type { Database, Tables, TablesInsert } from "./database.types"\n'
        'export const m: TablesInsert<"messages"> = '
        '{ conversation_id: "c", role: "user", content: "hi" }\n'
        'export const r: Tables<"conversations">["metadata"] = { a: [1, "b", null] }\n'
        'type F = Database["llmbase"]["Functions"]["authenticate_api_key"]["Returns"]\n'
        "export const keys: F = []\n"
    )
    result = subprocess.run(
        [*tsc, "--strict", "--noEmit", "--target", "es2020", "--moduleResolution", "node",
         "database.types.ts", "use.ts"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_writes_file(db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "types.py"
    result = CliRunner().invoke(
        app, ["types", "--lang", "python", "--output", str(out), "--database-url", db_url]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text() == generate(db_url, "python")

    ts = CliRunner().invoke(app, ["types", "--database-url", db_url])
    assert ts.exit_code == 0
    assert ts.stdout == generate(db_url, "typescript")


def test_cli_help() -> None:
    result = CliRunner().invoke(app, ["types", "--help"])
    assert result.exit_code == 0
    assert "--lang" in result.output
