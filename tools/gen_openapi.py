"""Write the HTTP API's OpenAPI document to docs/openapi.json (`--check`: exit 1 when the
checked-in file differs from what the app serves at /v1/openapi.json).

    python tools/gen_openapi.py            # regenerate
    python tools/gen_openapi.py --check    # CI: is the checked-in spec current?
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "openapi.json"


def spec() -> dict[str, Any]:
    """The document the app serves (no database needed: building the app touches none)."""
    from llmbase.client import LLMBase
    from llmbase.server import create_app

    return create_app(cast("LLMBase", None)).openapi()


def render() -> str:
    return json.dumps(spec(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is stale: run python tools/gen_openapi.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)} ({len(text):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
