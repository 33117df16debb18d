"""Typed fields decoded by the host (the `fields` import; the Python twin of the Rust SDK's
plugins/sdk/src/fields.rs): declare the top-level JSON fields the plugin reads once, in `init`
(`declare`), then read them per batch as typed columns (`Batch.fields()`): the guest parses no
JSON, and no per-record Python object exists until a value is asked for.

    arkflow.fields.declare([("user", arkflow.fields.UTF8), ("amount", arkflow.fields.INT64)])
    ...
    def process_batch(self, ctx, records):
        f = records.fields()                   # one host call, cached on the batch
        user, amount = f.utf8("user"), f.int64("amount")
        for i in range(len(records)):
            u = user.get(i)                    # str, or None where the record has none
            why = f.mismatch(i)                # the host's reason when record i did not fit

Contract:
- `declare` replaces any earlier declaration; the host checks it (at most 64 fields, names
  non-empty and unique) and its error becomes `config` / `bad-fields`. A type is a `FieldType` or
  its WIT name ("boolean", "int64", "float64", "utf8"); the fields a sequence of (name, type) or a
  dict name -> type (in its order).
- `Fields` holds one column per declared field, indexed by record. `get(i)` is None where record
  `i` lacks the field, holds `null`, has no value, or is in `Fields.mismatched` (its value is not
  a JSON object, or a declared field holds another type: the host's reason names the field).
- Columns are looked up by name and type (`int64`, `float64`, `boolean`, `utf8`); a name that was
  not declared with that type is an `internal` / `undeclared-field` error naming it. A host error
  of `columns` is `internal` / `fields`.
- The column views are zero-copy: they index the lists and bytes the host's answer was lifted
  into (`valid` bitmap, `values`; for utf8 `data` and `ends`, Arrow's layout). `get(i)` takes
  0 <= i < len(batch); `to_list()` gives the whole column (None where absent) in one pass.
"""
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from componentize_py_types import Err
from wit_world.imports import fields as _wit
from wit_world.imports.fields import Decoded, FieldType, TypedColumn  # noqa: F401

from .errors import Error, config_error, internal

BOOLEAN, INT64, FLOAT64, UTF8 = FieldType.BOOLEAN, FieldType.INT64, FieldType.FLOAT64, FieldType.UTF8
_BY_NAME = {t.name.lower(): t for t in FieldType}

FieldList = Union[Mapping[str, Union[FieldType, str]], Sequence[Tuple[str, Union[FieldType, str]]]]

# The declaration `declare` made last: name -> (column index, type), in the host's column order.
_declared: Dict[str, Tuple[int, FieldType]] = {}


def _pairs(fields: FieldList) -> List[Tuple[str, FieldType]]:
    out = []
    for name, t in (fields.items() if isinstance(fields, Mapping) else fields):
        if not isinstance(t, FieldType):
            t = _BY_NAME.get(t) if isinstance(t, str) else None
            if t is None:
                raise config_error("bad-fields", f"field `{name}`: type must be boolean, int64, float64 or utf8")
        out.append((name, t))
    return out


def _index(pairs: List[Tuple[str, FieldType]]) -> Dict[str, Tuple[int, FieldType]]:
    index = {}
    for j, (name, t) in enumerate(pairs):
        index.setdefault(name, (j, t))
    return index


def declare(fields: FieldList) -> None:
    """Declares the fields `Batch.fields()` returns (see the module docs); call it in `init`."""
    global _declared
    pairs = _pairs(fields)
    try:
        _wit.declare([_wit.Field(name, t) for name, t in pairs])
    except Err as e:
        raise config_error("bad-fields", str(e.value)) from None
    _declared = _index(pairs)


# --- column views -------------------------------------------------------------------------------

def _absent(valid: bytes, n: int):
    """The indices below `n` whose bit in `valid` is clear (none to look for when all are set)."""
    full = (1 << n) - 1
    if int.from_bytes(valid, "little") & full == full:
        return
    for j, b in enumerate(valid[: (n + 7) >> 3]):
        if b != 0xFF:
            base = j << 3
            for k in range(min(8, n - base)):
                if not (b >> k) & 1:
                    yield base + k


class Int64Column:
    """An int64 column: `values[i]` (an int) is meaningful where `valid`'s bit i is set."""

    __slots__ = ("valid", "values")

    def __init__(self, valid: bytes, values: List[int]):
        self.valid, self.values = valid, values

    def __len__(self) -> int:
        return len(self.values)

    def get(self, i: int) -> Optional[int]:
        if self.valid[i >> 3] >> (i & 7) & 1:
            return self.values[i]
        return None

    def to_list(self) -> List[Optional[int]]:
        out = list(self.values)
        for i in _absent(self.valid, len(out)):
            out[i] = None
        return out

    def __iter__(self):
        return iter(self.to_list())


class Float64Column(Int64Column):
    """A float64 column (`values`: floats; integers in the JSON are read as the nearest float)."""

    __slots__ = ()

    def get(self, i: int) -> Optional[float]:
        if self.valid[i >> 3] >> (i & 7) & 1:
            return self.values[i]
        return None


class BooleanColumn:
    """A boolean column: `values` is a bitmap like `valid` (least significant bit first)."""

    __slots__ = ("valid", "values", "n")

    def __init__(self, valid: bytes, values: bytes, n: int):
        self.valid, self.values, self.n = valid, values, n

    def __len__(self) -> int:
        return self.n

    def get(self, i: int) -> Optional[bool]:
        j, k = i >> 3, i & 7
        if self.valid[j] >> k & 1:
            return self.values[j] >> k & 1 == 1
        return None

    def to_list(self) -> List[Optional[bool]]:
        n, valid, values = self.n, self.valid, self.values
        return [values[i >> 3] >> (i & 7) & 1 == 1 if valid[i >> 3] >> (i & 7) & 1 else None for i in range(n)]

    def __iter__(self):
        return iter(self.to_list())


class Utf8Column:
    """A utf8 column in Arrow's layout: item i is `data[ends[i-1]:ends[i]]` (ends[-1] = 0),
    meaningful where `valid`'s bit i is set. `get` decodes it (one slice and one decode);
    `get_bytes` gives the UTF-8 bytes (one slice, e.g. for a state key)."""

    __slots__ = ("valid", "data", "ends")

    def __init__(self, valid: bytes, data: bytes, ends: List[int]):
        self.valid, self.data, self.ends = valid, data, ends

    def __len__(self) -> int:
        return len(self.ends)

    def get(self, i: int) -> Optional[str]:
        if self.valid[i >> 3] >> (i & 7) & 1:
            ends = self.ends
            return self.data[ends[i - 1] if i else 0:ends[i]].decode()
        return None

    def get_bytes(self, i: int) -> Optional[bytes]:
        if self.valid[i >> 3] >> (i & 7) & 1:
            ends = self.ends
            return self.data[ends[i - 1] if i else 0:ends[i]]
        return None

    def to_bytes_list(self) -> List[Optional[bytes]]:
        """Every item's bytes (None where absent), sliced in one pass."""
        data, ends = self.data, self.ends
        if not ends:
            return []
        starts = [0]
        starts += ends[:-1]
        out = [data[s:e] for s, e in zip(starts, ends)]
        for i in _absent(self.valid, len(out)):
            out[i] = None
        return out

    def to_list(self) -> List[Optional[str]]:
        return [None if b is None else b.decode() for b in self.to_bytes_list()]

    def __iter__(self):
        return iter(self.to_list())


# --- one batch's fields -------------------------------------------------------------------------

def _undeclared(name: str, t: FieldType) -> Error:
    return internal("undeclared-field",
                    f"field `{name}` was not declared as {t.name.lower()} (arkflow.fields.declare)")


class Fields:
    """The declared fields of one batch (see the module docs). `Fields(raw, names, n)` wraps a
    WIT `decoded` for the fields `names` (default: the current declaration), e.g. in unit tests
    of plugin code (pass it to `Batch.of(..., fields=...)`)."""

    __slots__ = ("raw", "n", "mismatched", "_names", "_mismatch")

    def __init__(self, raw: Decoded, names: Optional[FieldList] = None, n: Optional[int] = None):
        self.raw = raw
        self._names = _declared if names is None else _index(_pairs(names))
        if n is None:
            n = next((len(c.values.value.ends) if isinstance(c.values, _wit.TypedValues_Utf8)
                      else len(c.values.value) for c in raw.columns
                      if not isinstance(c.values, _wit.TypedValues_Boolean)),
                     8 * len(raw.columns[0].valid) if raw.columns else 0)
        self.n = n
        #: (record index, reason) of the records whose value did not fit the declaration, ascending.
        self.mismatched: List[Tuple[int, str]] = raw.mismatched
        self._mismatch: Optional[Dict[int, str]] = None

    @classmethod
    def fetch(cls, n: int) -> "Fields":
        """The host's columns for the running `process-batch` call (use `Batch.fields()`)."""
        try:
            raw = _wit.columns()
        except Err as e:
            raise internal("fields", str(e.value)) from None
        return cls(raw, None, n)

    def __len__(self) -> int:
        return self.n

    def _column(self, name: str, t: FieldType, variant) -> TypedColumn:
        at = self._names.get(name)
        if at is None or at[1] != t or at[0] >= len(self.raw.columns):
            raise _undeclared(name, t)
        c = self.raw.columns[at[0]]
        if not isinstance(c.values, variant):
            raise _undeclared(name, t)
        return c

    def int64(self, name: str) -> Int64Column:
        """The int64 column of the field `name`."""
        c = self._column(name, INT64, _wit.TypedValues_Int64)
        return Int64Column(c.valid, c.values.value)

    def float64(self, name: str) -> Float64Column:
        """The float64 column of the field `name`."""
        c = self._column(name, FLOAT64, _wit.TypedValues_Float64)
        return Float64Column(c.valid, c.values.value)

    def boolean(self, name: str) -> BooleanColumn:
        """The boolean column of the field `name`."""
        c = self._column(name, BOOLEAN, _wit.TypedValues_Boolean)
        return BooleanColumn(c.valid, c.values.value, self.n)

    def utf8(self, name: str) -> Utf8Column:
        """The utf8 column of the field `name`."""
        c = self._column(name, UTF8, _wit.TypedValues_Utf8)
        v = c.values.value
        return Utf8Column(c.valid, v.data, v.ends)

    def mismatch(self, i: int) -> Optional[str]:
        """The reason record `i` did not fit the declaration, if it did not."""
        if not self.mismatched:
            return None
        m = self._mismatch
        if m is None:
            m = self._mismatch = dict(self.mismatched)
        return m.get(i)
