"""The batch ABI of `arkflow:plugin@0.2.0` as plugin code sees it (the Python twin of the Rust
SDK's plugins/sdk/src/batch.rs).

- `Batch`: the records of one call, a read-only sequence over the few buffers the host sent.
  Nothing is decoded up front: `keys()` / `values()` slice a whole column by its `ends` in one
  pass the first time they are asked for (C-level slicing, no Python loop), and a `Record`
  (`batch[i]`, or iterating) is a view of index `i` that reads those lists. `fields()`: the
  declared typed fields of every record, decoded by the host (fields.py), fetched once.
- Outcomes: `process_batch` returns either a list with one outcome per input, in order, or an
  `Outcomes` builder. An outcome is a `str`/`bytes` value (what `emit_one` returns: one record
  with the input's key and timestamp), `None` (`drop()`), an `Error` (`fail(e)`), or an `Emit`
  (`emit(...)` / `pass_(...)`: a list of `RecordOut`). A list of only values goes back as one
  buffer plus its ends with no per-record list (the empty-`sources` fast path); anything else goes
  through `Outcomes`, which fills the sparse lists (`sources`, keys, timestamps, headers, outputs,
  `failed`) only where a record needs them.
- `Outcomes` contract (the Rust SDK's): address inputs in ascending order (several emits of one
  input in a row are fine); an input with no call is dropped; out of order, or emitting and
  failing the same input, fails the call with `internal` `outcomes-out-of-order` /
  `outcomes-mixed`.
"""
from itertools import accumulate
from typing import List, Optional, Sequence, Tuple, Union

from wit_world.imports.types import Column, Header
from wit_world.imports.types import Outcomes as WitOutcomes

from .errors import Error, internal
from .fields import Fields


# --- columns ------------------------------------------------------------------------------------

def items(col: Column, n: int) -> List[Optional[bytes]]:
    """The `n` items of a column (bytes, None where absent)."""
    if n == 0:
        return []
    data, ends = col.data, col.ends
    starts = [0]
    starts += ends[:-1]
    out = [data[s:e] for s, e in zip(starts, ends)]
    valid = col.valid
    if valid:
        bits = int.from_bytes(valid, "little")
        full = (1 << n) - 1
        if bits & full != full:
            for i in range(n):
                if not (bits >> i) & 1:
                    out[i] = None
    return out


def dense_column(values: Sequence[bytes]) -> Column:
    """A column of `values`, every item present."""
    return Column(b"".join(values), list(accumulate(map(len, values))), b"")


def column(values: Sequence[Optional[bytes]]) -> Column:
    """A column of `values` (bytes, or None for absent items)."""
    if None not in values:
        return dense_column(values)
    bits = 0
    for i, v in enumerate(values):
        if v is not None:
            bits |= 1 << i
    present = [b"" if v is None else v for v in values]
    return Column(b"".join(present), list(accumulate(map(len, present))),
                  bits.to_bytes((len(values) + 7) // 8, "little"))


def text_column(values: List[str]) -> Column:
    """A column of `values` encoded as UTF-8 (one encode of the whole list when it is ASCII)."""
    joined = "".join(values)
    data = joined.encode("utf-8")
    if len(data) == len(joined):
        return Column(data, list(accumulate(map(len, values))), b"")
    return dense_column([v.encode("utf-8") for v in values])


# --- records ------------------------------------------------------------------------------------

class Batch:
    """The records of one call (see the module docs). `len()`, `batch[i]` and iteration give
    `Record` views; `keys()` / `values()` give whole columns as lists; `fields()` the typed
    fields."""

    __slots__ = ("raw", "_n", "_keys", "_values", "_headers", "_fields")

    def __init__(self, raw, fields: Optional[Fields] = None):
        self.raw = raw
        self._n = len(raw.timestamps)
        self._keys = self._values = self._headers = None
        self._fields = fields

    @classmethod
    def of(cls, records: Sequence[Tuple], timestamp_ms: int = 0, fields: Optional[Fields] = None) -> "Batch":
        """A batch of (key, value[, timestamp_ms[, headers]]) tuples, for tests of plugin code;
        `fields`: what `fields()` returns (else it asks the host)."""
        from wit_world.imports.types import Batch as WitBatch  # noqa: PLC0415
        ts = [r[2] if len(r) > 2 else timestamp_ms for r in records]
        hs = [(i, Header(k, v)) for i, r in enumerate(records) if len(r) > 3 for k, v in r[3]]
        return cls(WitBatch(column([r[0] for r in records]), column([r[1] for r in records]),
                            ts, [0] * len(records), [0] * len(records), hs), fields)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> "Record":
        if not 0 <= i < self._n:
            raise IndexError(i)
        return Record(self, i)

    def __iter__(self):
        for i in range(self._n):
            yield Record(self, i)

    def keys(self) -> List[Optional[bytes]]:
        """Every record's key (None when absent), sliced once."""
        if self._keys is None:
            self._keys = items(self.raw.keys, self._n)
        return self._keys

    def values(self) -> List[Optional[bytes]]:
        """Every record's value (None for tombstones), sliced once."""
        if self._values is None:
            self._values = items(self.raw.values, self._n)
        return self._values

    def fields(self) -> Fields:
        """The fields declared with `arkflow.fields.declare`, decoded by the host for every record
        of this batch: one host call, the first time (raises internal `fields` on a host error,
        e.g. when nothing is declared)."""
        if self._fields is None:
            self._fields = Fields.fetch(self._n)
        return self._fields

    def timestamps(self) -> List[int]:
        return self.raw.timestamps

    def headers_of(self, i: int) -> List[Tuple[str, bytes]]:
        if self._headers is None:
            self._headers = {}
            for at, h in self.raw.headers:
                self._headers.setdefault(at, []).append((h.key, h.value))
        return self._headers.get(i, [])


class Record:
    """Record `index` of a Batch: `key`, `value` (bytes or None), `timestamp_ms`, `partition`,
    `offset`, `headers` ([(name, value)])."""

    __slots__ = ("batch", "index")

    def __init__(self, batch: Batch, index: int):
        self.batch, self.index = batch, index

    key = property(lambda self: self.batch.keys()[self.index])
    value = property(lambda self: self.batch.values()[self.index])
    timestamp_ms = property(lambda self: self.batch.raw.timestamps[self.index])
    partition = property(lambda self: self.batch.raw.partitions[self.index])
    offset = property(lambda self: self.batch.raw.offsets[self.index])
    headers = property(lambda self: self.batch.headers_of(self.index))

    def header(self, name: str) -> Optional[bytes]:
        """The value of the first header named `name`."""
        return next((v for k, v in self.headers if k == name), None)


# --- outcomes -----------------------------------------------------------------------------------

class RecordOut:
    """A record to emit; None key/timestamp: the host keeps the input's; `output`: a named
    output of the stream to send it to instead of the next stage."""

    __slots__ = ("key", "value", "headers", "timestamp_ms", "output")

    def __init__(self, value: Union[bytes, str, None], key: Optional[bytes] = None, timestamp_ms: Optional[int] = None,
                 headers: Sequence[Tuple[str, Union[bytes, str]]] = (), output: Optional[str] = None):
        self.value = value.encode("utf-8") if isinstance(value, str) else value
        self.key, self.timestamp_ms, self.output = key, timestamp_ms, output
        self.headers = [(k, v.encode("utf-8") if isinstance(v, str) else v) for k, v in headers]


class Emit(list):
    """The outcome "emit these RecordOuts"."""


class Outcomes:
    """What the inputs of one call became (see the module docs)."""

    def __init__(self):
        self.values: List[Optional[bytes]] = []
        self.sources: List[int] = []
        self.keys: Optional[List[Optional[bytes]]] = None  # once a record sets its key
        self.timestamps, self.headers, self.outputs, self.failed = [], [], [], []
        self._last, self._last_emitted, self._misuse = -1, False, None

    def _address(self, i: int, emits: bool) -> bool:
        last = self._last
        err = None
        if i < last:
            err = ("outcomes-out-of-order", f"input {i} addressed after input {last}")
        elif i == last and self._last_emitted != emits:
            err = ("outcomes-mixed", f"input {i} both emitted records and failed")
        elif i == last and not emits:
            err = ("outcomes-mixed", f"input {i} failed twice")
        if err is not None:
            self._misuse = self._misuse or internal(*err)
            return False
        self._last, self._last_emitted = i, emits
        return True

    def emit(self, i: int, value: Union[bytes, str, None]) -> None:
        """Emits, for input `i`, one record with `value` (the input's key and timestamp)."""
        if self._address(i, True):
            self.values.append(value.encode("utf-8") if isinstance(value, str) else value)
            self.sources.append(i)

    def emit_record(self, i: int, r: RecordOut) -> None:
        """Emits a prepared record for input `i`."""
        if not self._address(i, True):
            return
        j = len(self.values)
        self.values.append(r.value)
        self.sources.append(i)
        if r.key is not None:
            if self.keys is None:
                self.keys = [None] * j
            self.keys.append(r.key)
        elif self.keys is not None:
            self.keys.append(None)
        if r.timestamp_ms is not None:
            self.timestamps.append((j, r.timestamp_ms))
        for k, v in r.headers:
            self.headers.append((j, Header(k, v)))
        if r.output is not None:
            self.outputs.append((j, r.output))

    def fail(self, i: int, error: Error) -> None:
        """Input `i` failed: the host sends it, with `error`, to the stream's `error_output`."""
        if self._address(i, False):
            self.failed.append((i, error.to_wit()))

    def finish(self, inputs: int) -> WitOutcomes:
        """The WIT value for a call with `inputs` inputs; raises on misuse (see the module docs)."""
        if self._misuse is not None:
            raise self._misuse
        m = len(self.values)
        one_each = m == inputs and self.sources == list(range(m))
        keys = self.keys
        if keys is not None:
            keys += [None] * (m - len(keys))
        return WitOutcomes(column(self.values), [] if one_each else self.sources,
                           column(keys) if keys is not None else Column(b"", [], b""),
                           self.timestamps, self.headers, self.outputs, self.failed)


_EMPTY = Column(b"", [], b"")


def to_wit(result, inputs: int, what: str) -> WitOutcomes:
    """What `process_batch` / `on_timers` returned (an Outcomes, or one outcome per input) as the
    WIT value."""
    if isinstance(result, Outcomes):
        return result.finish(inputs)
    if len(result) != inputs:
        raise internal("wrong-outcome-count", f"{what} returned {len(result)} outcomes for {inputs} inputs")
    kinds = set(map(type, result))
    if kinds == {str}:  # the fast path: one value per input, no per-record list
        return WitOutcomes(text_column(result), [], _EMPTY, [], [], [], [])
    if kinds == {bytes}:
        return WitOutcomes(dense_column(result), [], _EMPTY, [], [], [], [])
    if not result:
        return WitOutcomes(_EMPTY, [], _EMPTY, [], [], [], [])
    out = Outcomes()
    for i, o in enumerate(result):
        if o is None:
            continue
        if isinstance(o, (str, bytes)):
            out.emit(i, o)
        elif isinstance(o, Error):
            out.fail(i, o)
        elif isinstance(o, Emit):
            for r in o:
                out.emit_record(i, r)
        else:
            raise internal("bad-outcome", f"{what}: outcome {i} is a {type(o).__name__}, not a value, "
                                          "None, an Error or an Emit")
    return out.finish(inputs)
