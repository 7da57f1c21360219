"""Generate docs/cli.md from the CLI itself, so the reference never drifts.

python tools/gen_cli_docs.py          # rewrite docs/cli.md
python tools/gen_cli_docs.py --check  # exit 1 if docs/cli.md is stale
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from typer.main import get_command

from llmbase.cli import app

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"

INTRO = """# The `llmbase` command

Generated from the CLI by `python tools/gen_cli_docs.py`; a test keeps it current.
Every command takes `--database-url` (or `LLMBASE_DATABASE_URL`) for an external
PostgreSQL and `--data-dir` (or `LLMBASE_DATA_DIR`) for the embedded server's data
directory; without either it uses the embedded server in the user data directory.
Errors print `error: ...` on stderr and exit with status 1.
"""


def _walk(cmd: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    out = [(path, cmd)]
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        out.extend(_walk(sub, (*path, name)))
    return out


def _params(cmd: Any) -> list[str]:
    lines = []
    for p in cmd.params:
        if p.name in ("help", "database_url", "data_dir"):
            continue  # shared options, described once in the introduction
        if p.param_type_name == "argument":
            lines.append(f"| `{p.name.upper()}` | argument | {(getattr(p, 'help', '') or '').strip()} |")
        else:
            names = ", ".join(f"`{o}`" for o in p.opts)
            default = (
                ""
                if p.default in (None, False) or (p.is_flag and not p.default)
                else f" (default: `{p.default}`)"
            )
            lines.append(f"| {names} | option | {(p.help or '').strip()}{default} |")
    return lines


def render() -> str:
    parts = [INTRO]
    for path, cmd in _walk(get_command(app), ("llmbase",)):
        if hasattr(cmd, "commands") and len(path) > 1:
            parts.append(f"\n## `{' '.join(path)}`\n\n{(cmd.help or '').strip()}\n")
            continue
        if len(path) == 1:
            continue
        parts.append(f"\n### `{' '.join(path)}`\n\n{(cmd.help or '').strip()}\n")
        rows = _params(cmd)
        if rows:
            parts.append("\n| name | kind | meaning |\n|---|---|---|\n" + "\n".join(rows) + "\n")
    return "".join(parts)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not DOC.exists() or DOC.read_text() != text:
            print("docs/cli.md is stale: run python tools/gen_cli_docs.py")
            return 1
        return 0
    DOC.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
