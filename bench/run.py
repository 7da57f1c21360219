"""Run the benchmarks and write their tables into docs/benchmarks.md.

python -m bench.run            # all benchmarks
python -m bench.run startup    # one of them
"""

from __future__ import annotations

import platform
import re
import sys
import time
from pathlib import Path

from bench import analytics, http_ingest, ingest, instrument_overhead, memory, overhead, rag, startup
from bench import cache as cache_bench
from bench import dashboard as dashboard_bench
from bench import limits as limits_bench

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BENCHES = {
    "startup": startup.run,
    "instrument_overhead": instrument_overhead.run,
    "analytics": analytics.run,
    "ingest": ingest.run,
    "overhead": overhead.run,
    "memory": memory.run,
    "rag": rag.run,
    "cache": cache_bench.run,
    "limits": limits_bench.run,
    "dashboard": dashboard_bench.run,
    "http_ingest": http_ingest.run,
}


def table(rows: list[dict[str, object]]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def write(name: str, rows: list[dict[str, object]]) -> None:
    doc = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    stamp = f"_{time.strftime('%Y-%m-%d')}, {platform.machine()}, {platform.python_version()}, `python -m bench.run {name}`_"
    block = f"<!-- bench:{name} -->\n{stamp}\n\n{table(rows)}\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    doc = pattern.sub(block, doc) if pattern.search(doc) else doc.rstrip() + f"\n\n## {name}\n\n{block}\n"
    DOC.write_text(doc)


def main(argv: list[str]) -> None:
    for name in argv or list(BENCHES):
        rows = BENCHES[name]()
        print(table(rows))
        write(name, rows)


if __name__ == "__main__":
    main(sys.argv[1:])
