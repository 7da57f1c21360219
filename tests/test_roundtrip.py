"""Property-based round trips: odd unicode and JSON metadata in, the documented value out."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmbase
from llmbase._sanitize import clean_json, clean_text

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _numbers_as_floats(value: Any) -> Any:
    """jsonb keeps numbers as decimals, so 3.6e16 comes back as the integer 36028797018963970:
    equal as a number, not as a Python float. Compare numbers as floats."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [_numbers_as_floats(v) for v in value]
    return {k: _numbers_as_floats(v) for k, v in value.items()}


def _normalise(value: Any) -> Any:
    return _numbers_as_floats(clean_json(value))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200), meta=st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_message_round_trip(client: llmbase.LLMBase, text: str, meta: dict[str, Any]) -> None:
    conv = client.conversations.create(title=text[:100], metadata=meta)
    msg = client.conversations.add_message(conv.id, role="user", content=text, metadata=meta)
    assert msg.content == clean_text(text)
    assert client.conversations.get_message(msg.id).content == clean_text(text)
    assert _numbers_as_floats(msg.metadata) == _normalise(meta)
    assert _numbers_as_floats(client.conversations.get(conv.id).metadata) == _normalise(meta)


@given(st.text())
def test_clean_text_only_touches_unstorable_code_points(text: str) -> None:
    out = clean_text(text)
    assert len(out) == len(text)
    for a, b in zip(text, out, strict=True):
        if a == "\x00" or 0xD800 <= ord(a) <= 0xDFFF:
            assert b == "\ufffd"
        else:
            assert a == b
    out.encode("utf-8")  # always encodable
