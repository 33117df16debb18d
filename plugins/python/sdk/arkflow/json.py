"""JSON for record values, with the Rust SDK's semantics (plugins/sdk/src/json.rs):

- A document is valid when it is UTF-8 RFC 8259 JSON nesting at most JSON_MAX_DEPTH (128)
  objects/arrays, with no lone surrogate escapes.
- `json_key(doc, name)`: the top-level member `name` when it is a string (its contents) or a
  number (its text as written); None when absent, of another type, or the document is not an
  object. With duplicate names the first wins.
- Invalid JSON raises invalid-input `bad-json` with the Rust SDK's message,
  `invalid JSON at byte N: reason`.
- `escape_json(b)`: the body of a JSON string literal for bytes `b` (UTF-8, invalid sequences
  replaced by U+FFFD as Rust's from_utf8_lossy does), escaped as the Rust SDK escapes.

Valid documents take CPython's C parser (`json.loads`, with hooks that keep duplicate members
and number texts, then a walk for depth and lone surrogates); only an invalid one is re-read by
`_locate`, a port of the Rust parser, to name the byte and the reason exactly.
"""
import json as _json
import re

JSON_MAX_DEPTH = 128
_SURROGATE = re.compile("[\ud800-\udfff]")
_PLAIN = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')  # bytes a JSON string keeps as is


class _Members(list):
    """A JSON object as its (name, value) pairs in document order, duplicates kept."""


class _Number(str):
    """A number's text as written."""


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def _check(v, depth):
    if isinstance(v, str):
        if _SURROGATE.search(v):
            raise ValueError("lone surrogate")
    elif isinstance(v, list):  # arrays and _Members
        if depth >= JSON_MAX_DEPTH:
            raise ValueError("nesting too deep")
        for x in v:
            _check(x, depth + 1)
    elif isinstance(v, tuple):  # a member
        _check(v[0], depth)
        _check(v[1], depth)


def _parse(doc: bytes):
    """The document (objects as _Members, numbers as _Number), or raises bad-json."""
    try:
        v = _json.loads(doc.decode("utf-8"), parse_int=_Number, parse_float=_Number,
                        parse_constant=_reject_constant, object_pairs_hook=_Members)
        _check(v, 0)
        return v
    except (ValueError, RecursionError) as e:
        from .errors import invalid_input  # noqa: PLC0415
        located = _locate(doc)
        message = f"invalid JSON at byte {located[0]}: {located[1]}" if located else f"invalid JSON: {e}"
        raise invalid_input("bad-json", message) from None


def validate_json(doc: bytes) -> None:
    """Raises invalid-input `bad-json` unless `doc` is one valid JSON document."""
    _parse(doc)


def json_key(doc: bytes, name: str):
    """See the module docs."""
    v = _parse(doc)
    if isinstance(v, _Members):
        for k, x in v:
            if k == name:
                return str(x) if isinstance(x, str) else None
    return None


def escape_json(key: bytes) -> str:
    """See the module docs."""
    if not key.translate(None, _PLAIN):  # every byte plain (one C call, no allocation)
        return key.decode("ascii")
    return _json.dumps(key.decode("utf-8", "replace"), ensure_ascii=False)[1:-1]


# --- the Rust parser, for the position and reason of an error -----------------------------------

class _Bad(Exception):
    def __init__(self, pos, reason):
        self.pos, self.reason = pos, reason


class _Locator:
    def __init__(self, b: bytes):
        self.b, self.pos, self.depth = b, 0, 0

    def peek(self):
        return self.b[self.pos] if self.pos < len(self.b) else None

    def ws(self):
        while self.peek() in (0x20, 0x09, 0x0A, 0x0D):
            self.pos += 1

    def expect(self, c, reason):
        if self.peek() != c:
            raise _Bad(self.pos, reason)
        self.pos += 1

    def value(self):
        self.ws()
        c = self.peek()
        if c is None:
            raise _Bad(self.pos, "unexpected end of input")
        if c == 0x22:
            self.string()
        elif c == 0x7B:
            self.object()
        elif c == 0x5B:
            self.array()
        elif c in (0x74, 0x66, 0x6E):
            word = {0x74: b"true", 0x66: b"false", 0x6E: b"null"}[c]
            if not self.b.startswith(word, self.pos):
                raise _Bad(self.pos, "invalid literal")
            self.pos += len(word)
        elif c == 0x2D or 0x30 <= c <= 0x39:
            self.number()
        else:
            raise _Bad(self.pos, "unexpected character")

    def enter(self):
        self.depth += 1
        if self.depth > JSON_MAX_DEPTH:
            raise _Bad(self.pos, "nesting too deep")

    def object(self):
        self.enter()
        self.expect(0x7B, "expected '{'")
        self.ws()
        if self.peek() == 0x7D:
            self.pos += 1
            self.depth -= 1
            return
        while True:
            self.ws()
            if self.peek() != 0x22:
                raise _Bad(self.pos, "expected a member name")
            self.string()
            self.ws()
            self.expect(0x3A, "expected ':'")
            self.value()
            self.ws()
            c = self.peek()
            if c == 0x2C:
                self.pos += 1
            elif c == 0x7D:
                self.pos += 1
                break
            else:
                raise _Bad(self.pos, "expected ',' or '}'")
        self.depth -= 1

    def array(self):
        self.enter()
        self.expect(0x5B, "expected '['")
        self.ws()
        if self.peek() == 0x5D:
            self.pos += 1
            self.depth -= 1
            return
        while True:
            self.value()
            self.ws()
            c = self.peek()
            if c == 0x2C:
                self.pos += 1
            elif c == 0x5D:
                self.pos += 1
                break
            else:
                raise _Bad(self.pos, "expected ',' or ']'")
        self.depth -= 1

    def digits(self):
        start = self.pos
        while self.peek() is not None and 0x30 <= self.peek() <= 0x39:
            self.pos += 1
        return self.pos - start

    def number(self):
        if self.peek() == 0x2D:
            self.pos += 1
        c = self.peek()
        if c == 0x30:
            self.pos += 1
        elif c is not None and 0x31 <= c <= 0x39:
            self.digits()
        else:
            raise _Bad(self.pos, "invalid number")
        if self.peek() == 0x2E:
            self.pos += 1
            if self.digits() == 0:
                raise _Bad(self.pos, "invalid number")
        if self.peek() in (0x65, 0x45):
            self.pos += 1
            if self.peek() in (0x2B, 0x2D):
                self.pos += 1
            if self.digits() == 0:
                raise _Bad(self.pos, "invalid number")

    def hex4(self):
        h = self.b[self.pos:self.pos + 4]
        if len(h) < 4:
            raise _Bad(self.pos, "truncated \\u escape")
        if any(c not in b"0123456789abcdefABCDEF" for c in h):
            raise _Bad(self.pos, "invalid \\u escape")
        self.pos += 4
        return int(h, 16)

    def string(self):
        self.pos += 1
        while True:
            c = self.peek()
            if c is None:
                raise _Bad(self.pos, "unterminated string")
            if c == 0x22:
                self.pos += 1
                return
            if c < 0x20:
                raise _Bad(self.pos, "control character in string")
            self.pos += 1
            if c != 0x5C:
                continue
            e = self.peek()
            if e is None:
                raise _Bad(self.pos, "unterminated string")
            self.pos += 1
            if e in b'"\\/bfnrt':
                continue
            if e != 0x75:
                raise _Bad(self.pos, "invalid escape")
            hi = self.hex4()
            if 0xD800 <= hi < 0xDC00:
                if not self.b.startswith(b"\\u", self.pos):
                    raise _Bad(self.pos, "lone surrogate")
                self.pos += 2
                if not 0xDC00 <= self.hex4() < 0xE000:
                    raise _Bad(self.pos, "lone surrogate")
            elif 0xDC00 <= hi < 0xE000:
                raise _Bad(self.pos, "lone surrogate")


def _locate(doc: bytes):
    """(byte offset, reason) of the first error the Rust parser reports, or None if it accepts."""
    try:
        doc.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start, "not UTF-8"
    p = _Locator(doc)
    try:
        p.ws()
        if p.peek() == 0x7B:
            p.object()
        else:
            p.value()
        p.ws()
        if p.pos != len(doc):
            return p.pos, "trailing characters"
    except _Bad as e:
        return e.pos, e.reason
    return None
