"""The README stays true: its quickstart runs, its two commands exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_quickstart_runs_and_prints_what_it_says(db_url: str) -> None:
    blocks = _python_blocks()
    assert blocks, "README has no python quickstart"
    code = blocks[0]
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"LLMBASE_DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    expected = [
        c.strip()
        for c in re.findall(r"# (\S.*)$", code, flags=re.M)
        if c.strip()[0].isdigit() or c.strip()[0] == "["
    ]
    printed = out.stdout.splitlines()
    assert printed[:3] == expected[:3]
    assert printed[-1] == "bob cannot see it"


def test_readme_commands_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test", "test-all"):
        assert f"make {target}" in README
        assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), target
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_request_log_example_runs(db_url: str) -> None:
    code = _python_blocks()[1]
    assert "requests.log" in code
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"LLMBASE_DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    expected = re.search(r"print\(row\.external_id.*# (.*)$", code, flags=re.M)
    assert expected is not None
    assert out.stdout.strip().splitlines() == [expected.group(1)]
