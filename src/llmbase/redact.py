"""Redaction of secrets before a record is written or spooled.

Two layers run in the background writer (never in `log()`), before a record reaches the
database or the disk spool:

1. your hook, `Settings.redact` (`llmbase.connect(redact=fn)`): `fn(kind, payload)` gets the
   record kind ("request", "run", "iteration", "tool_call") and the payload dict as
   logged, and returns the payload to store (or None after changing it in place);
2. the built-in `scrub_text` (on unless `redact_secrets=False`), applied to the JSON text
   of the request and response bodies and the metadata, and to error messages. It
   replaces with ``[REDACTED]``:

   - the value of a JSON member, or of a ``name=value`` / ``name: value`` assignment, whose
     name ends in a credential word: api_key, apikey, x-api-key, authorization, password,
     passwd, secret, client_secret, access_token, refresh_token, id_token, auth_token,
     token, private_key, cookie;
   - provider keys and tokens by their shape, anywhere: OpenAI / Anthropic ``sk-...``,
     AWS access key ids, GitHub, GitLab, Slack, Hugging Face, Stripe and Google API keys,
     JSON Web Tokens, PEM private key blocks;
   - the credential after ``Bearer`` / ``Basic`` and in ``scheme://user:password@host``.

It is a safety net for the common leaks, not a data-loss-prevention system: redact
application-specific secrets with your own hook. It is built to cost a couple of
microseconds per record on bodies without secrets: the writer first asks `maybe_secret`,
one pass over the UTF-8 JSON of the bodies and metadata of several records at once
(credential-named members, URL credentials, PEM blocks, and token shapes or Bearer / Basic
credentials inside runs of 16+ token characters), which is never False where `scrub_json`
would change something; only when it says True does it ask record by record, and
`scrub_json` run, field by field, on the records it names. Plain text (error messages) gets
every rule, `name=value` assignments included.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MARK", "maybe_secret", "scrub", "scrub_json", "scrub_text"]

MARK = "[REDACTED]"
_MARK_B = MARK.encode()

#: Names (lowercase endings) that mark a credential.
_WORDS = (
    r"api[_-]?key|x[_-]api[_-]key|authorization|passw(?:or)?d|secret|access[_-]token|refresh[_-]token"
    r"|id[_-]token|session[_-]token|auth[_-]token|token|private[_-]key|cookie"
)
#: Substrings a credential name ends with (for the cheap scan), checked with `_named`.
_ENDINGS = ("key", "authorization", "passwd", "password", "secret", "token", "cookie")
#: "name": "value" (or a number) in JSON text.
_JSON_MEMBER = re.compile(
    r'("(?:[^"\\]*[_-])?(?i:' + _WORDS + r')"\s*:\s*)("(?:[^"\\]|\\.)*"|-?\d[\d.eE+-]*)'
)
#: name=value / name: value in plain text (also inside JSON strings).
_ASSIGN = re.compile(
    r"(\b(?:[A-Za-z0-9]+[_-])?(?i:" + _WORDS + r")\s*[=:]\s*)"
    r"(?![\s\"{\[]|(?i:bearer|basic)\b)[^\s\"'&,;}\]\\]{4,}"
)
_PEM = re.compile(r"(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----")
_URL_CREDENTIAL = re.compile(r"(://[^\s:/@\"'\\]+:)[^\s@/\"'\\]+(?=@)")
_AUTH_VALUE = re.compile(
    r"(\b(?i:bearer)\s+)[A-Za-z0-9._~+/\-]{8,}=*"
    r"|(\b(?i:basic)\s+)(?=[A-Za-z]*[0-9+/=])[A-Za-z0-9+/]{8,}={0,2}"
)
#: Secrets by shape, checked inside each long run of token characters.
_SHAPES = re.compile(
    rb"sk-[A-Za-z0-9_\-]{16,}"  # OpenAI, Anthropic (sk-ant-...), project keys
    rb"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    rb"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"  # GitHub
    rb"|glpat-[A-Za-z0-9_\-]{20,}"  # GitLab
    rb"|xox[abeprs]-[A-Za-z0-9\-]{10,}"  # Slack
    rb"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    rb"|[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    rb"|AIza[0-9A-Za-z_\-]{35}"  # Google API key
    rb"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"  # JWT
)
_RUN_MIN = 16
_TOKEN_CHARS = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/=.")
_TO_RUNS = bytes((97 if i in _TOKEN_CHARS else 32) for i in range(256))
_RUN = b"a" * _RUN_MIN


def _named(low: str) -> bool:
    """Does a credential word end a name followed by a quote, '=' or ':'?"""
    for word in _ENDINGS:
        i = low.find(word)
        while i >= 0:
            j = i + len(word)
            if low[j : j + 1] == '"':
                j += 1
            while low[j : j + 1] == " ":
                j += 1
            if low[j : j + 1] in (":", "="):
                return True
            i = low.find(word, j)
    return False


_AUTH_BEFORE = re.compile(rb"(?i:bearer|basic)\s+$")


def _runs(text: str) -> str:
    """Replace token-shaped secrets (and Bearer / Basic credentials), found inside runs of
    >= 16 token characters."""
    raw = text.encode()
    runs = raw.translate(_TO_RUNS)
    i = runs.find(_RUN)
    if i < 0:
        return text
    out: list[bytes] = []
    last = 0
    n = len(raw)
    while i >= 0:
        end = runs.find(b" ", i + _RUN_MIN)
        end = n if end < 0 else end
        run = raw[i:end]
        new = _MARK_B if _AUTH_BEFORE.search(raw, max(0, i - 12), i) else _SHAPES.sub(_MARK_B, run)
        if new != run:
            out.append(raw[last:i])
            out.append(new)
            last = end
        i = runs.find(_RUN, end)
    if not out:
        return text
    out.append(raw[last:])
    return b"".join(out).decode()


def scrub_text(text: str) -> str:
    """Replace the secrets described in the module docstring in `text` (plain text or JSON
    text; JSON stays valid)."""
    low = text.lower()
    if _named(low):
        text = _JSON_MEMBER.sub(lambda m: m.group(1) + '"' + MARK + '"', text)
        text = _ASSIGN.sub(lambda m: m.group(1) + MARK, text)
    if "private key-----" in low:
        text = _PEM.sub(MARK, text)
    if "://" in low and "@" in low:
        text = _URL_CREDENTIAL.sub(lambda m: m.group(1) + MARK, text)
    if "bearer" in low or "basic" in low:
        text = _AUTH_VALUE.sub(lambda m: (m.group(1) or m.group(2)) + MARK, text)
    return _runs(text)


_KEY = re.compile(r"^(?:.*[_-])?(?i:" + _WORDS + r")$")
_KEY_CACHE: dict[str, bool] = {}


def _credential_key(k: Any) -> bool:
    hit = _KEY_CACHE.get(k)
    if hit is None:
        hit = type(k) is str and _KEY.match(k) is not None
        if len(_KEY_CACHE) < 10_000 and type(k) is str:
            _KEY_CACHE[k] = hit
    return hit


def _has_credential_key(value: Any) -> bool:
    """Is any dict key (at any depth) a credential name? Lists are looked into when their
    first item is a container (a list of numbers, an embedding, is not walked)."""
    if type(value) is dict:
        cache = _KEY_CACHE
        for k, v in value.items():
            hit = cache.get(k)
            if hit is None:
                hit = _credential_key(k)
            if hit:
                return True
            t = type(v)
            if (t is dict or t is list) and _has_credential_key(v):
                return True
        return False
    if type(value) is list:
        if not value:
            return False
        t = type(value[0])
        if t is dict or t is list:
            return any(_has_credential_key(v) for v in value)
        return False
    if isinstance(value, Mapping):
        return _has_credential_key(dict(value))
    if isinstance(value, list | tuple):
        return _has_credential_key(list(value))
    return False


def scrub_json(value: Any, text: str) -> str:
    """Redact `text`, the JSON of `value`: credential-named members (found on `value`'s
    keys), token shapes, Bearer / Basic credentials, URL passwords, PEM private keys."""
    if _has_credential_key(value):
        text = _JSON_MEMBER.sub(lambda m: m.group(1) + '"' + MARK + '"', text)
    if "@" in text and "://" in text:
        text = _URL_CREDENTIAL.sub(lambda m: m.group(1) + MARK, text)
    text = _runs(text)
    if "PRIVATE KEY-----" in text:
        text = _PEM.sub(MARK, text)
    return text


#: A JSON member name ending in a credential word, right before its ':' (ASCII case-insensitive;
#: the endings of every name in _WORDS).
_MEMBER_END = re.compile(
    rb'":(?:(?<=(?i:key)":)|(?<=(?i:oken)":)|(?<=(?i:cret)":)|(?<=(?i:sswd)":)'
    rb'|(?<=(?i:sword)":)|(?<=(?i:ation)":)|(?<=(?i:ookie)":))'
)
#: Non-ASCII characters that Python's case-insensitive matching equates with a letter of a
#: credential word (I: U+0130, U+0131; K: U+212A; S: U+017F), in UTF-8.
_FOLDS = (b"\xc4\xb0", b"\xc4\xb1", b"\xe2\x84\xaa", b"\xc5\xbf")


def maybe_secret(data: bytes) -> bool:
    """Could `scrub_json` change the JSON text whose UTF-8 is `data`? Never False when it
    would (False: nothing to redact, skip it). `data` may hold several JSON texts separated
    by a byte that is not a token character (the writer checks a record's bodies and
    metadata at once). The JSON must have been written with a key separator that starts
    with ':' (as json.dumps and orjson write it), so a member name is followed by '":'."""
    if _MEMBER_END.search(data) is not None:
        return True
    if b"@" in data and b"://" in data:
        return True
    if b"PRIVATE KEY-----" in data:
        return True
    if not data.isascii() and any(f in data for f in _FOLDS):
        return True
    runs = data.translate(_TO_RUNS)
    i = runs.find(_RUN)
    n = len(data)
    while i >= 0:  # what _runs would replace
        end = runs.find(b" ", i + _RUN_MIN)
        if end < 0:
            end = n
        if _SHAPES.search(data, i, end) is not None:
            return True
        # Bearer / Basic right before it: then whitespace is (the regular expression is slower)
        if i and data[i - 1] in _WHITESPACE and _AUTH_BEFORE.search(data, max(0, i - 12), i):
            return True
        i = runs.find(_RUN, end)
    return False


_WHITESPACE = frozenset(b" \t\n\r\x0b\x0c")  # what \s matches in a bytes pattern


def scrub(value: Any) -> Any:
    """`scrub_text` for Python values: mappings (credential keys blanked), lists and strings,
    recursively; for use in your own `redact` hook."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {
            k: (
                MARK
                if isinstance(k, str) and _KEY.match(k) and not isinstance(v, Mapping | list)
                else scrub(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value
