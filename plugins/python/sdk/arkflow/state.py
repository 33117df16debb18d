"""Host-owned state for Python plugins: `Store` (the WIT resource, every call raising an Error of
class `state` on a `state-error`) and `StateCache`, the per-call cache for "one read of every
key, compute in memory, one write" (the Rust SDK's plugins/sdk/src/state.rs):

- `StateCache.load(store, keys)` dedupes the keys (first-seen order; anything but bytes, e.g. the
  Errors of `keys_of`, is skipped) and makes ONE `get-column` call (none without keys). Keys that
  were not loaded read as absent.
- Writes stay in memory until `flush(store)`, which makes ONE `put-column` of every written key's
  latest value, in first-write order (no call when nothing was written).
- Counters are 8-byte little-endian i64s that wrap on overflow like the host's `increment`; a
  stored value of another length is `not-a-counter`. The cache keeps counters as ints and encodes
  them once, at flush.
- Build one cache per call: state is per key group, and writes are staged per call.
"""
import struct
from typing import Dict, Iterable, List, Optional, Tuple, Union

from wit_world.imports import state as _state
from wit_world.imports.types import Column

from .batch import dense_column, items
from .errors import from_state_error, internal, state_call

_I64 = struct.Struct("<q")
_unpack = _I64.unpack
_MIN, _MAX = -(2**63), 2**63 - 1


def encode_i64(v: int) -> bytes:
    return _I64.pack(v)


def decode_i64(b: bytes) -> Optional[int]:
    """The counter in `b`, or None when `b` is not 8 bytes."""
    return _I64.unpack(b)[0] if len(b) == 8 else None


def _wrap(v: int) -> int:
    return (v + 2**63) % 2**64 - 2**63


class Store:
    """A host-owned key-value store (WIT resource `store`). Open stores in `init` and keep them;
    list each in `export(state_stores=...)`. Keys and values are bytes; absent is None."""

    def __init__(self, raw):
        self.raw = raw

    @classmethod
    def open(cls, name: str) -> "Store":
        return cls(state_call(_state.Store.open, name))

    def get(self, key: bytes) -> Optional[bytes]:
        return state_call(self.raw.get, key)

    def put(self, key: bytes, value: bytes) -> None:
        state_call(self.raw.put, key, value)

    def delete(self, key: bytes) -> bool:
        return state_call(self.raw.delete, key)

    def get_many(self, keys: List[bytes]) -> List[Optional[bytes]]:
        return state_call(self.raw.get_many, keys)

    def put_many(self, entries: List[Tuple[bytes, bytes]]) -> None:
        state_call(self.raw.put_many, entries)

    def delete_many(self, keys: List[bytes]) -> None:
        state_call(self.raw.delete_many, keys)

    def get_column(self, keys: List[bytes]) -> List[Optional[bytes]]:
        """`get` of every key in one call and one buffer; None where absent."""
        got = state_call(self.raw.get_column, dense_column(keys))
        n = len(keys)
        if len(got.ends) != n or (n and got.ends[-1] > len(got.data)):
            raise internal("bad-get-column", f"get-column returned {len(got.ends)} values for {n} keys")
        return items(got, n)

    def put_column(self, keys: List[bytes], values: List[bytes]) -> None:
        """`put` of every (keys[i], values[i]) in one call."""
        state_call(self.raw.put_column, dense_column(keys), dense_column(values))

    def increment(self, key: bytes, delta: int) -> int:
        return state_call(self.raw.increment, key, delta)

    def scan_prefix(self, prefix: bytes, start_after: Optional[bytes] = None, limit: int = 1024):
        """One page (`.entries`: [(key, value)], `.next`: pass it as `start_after`, None at the end)."""
        return state_call(self.raw.scan_prefix, prefix, start_after, limit)


def _not_a_counter():
    return from_state_error(_state.StateError_NotACounter())


class StateCache:
    """The values of one call's keys (see the module docs)."""

    def __init__(self, keys: List[bytes], values: List[Optional[bytes]]):
        if len(keys) != len(values):
            raise internal("bad-get-column", f"get-column returned {len(values)} values for {len(keys)} keys")
        # Loaded values: bytes, None (absent), or an int (an 8-byte value decoded as a counter).
        self.values: Dict[bytes, Union[bytes, int, None]] = dict(zip(keys, values))
        self.written: Dict[bytes, Union[bytes, int]] = {}  # first-write order; ints are counters

    @classmethod
    def load(cls, store: Store, keys: Iterable) -> "StateCache":
        """One `get-column` of the distinct keys; no call when there are none."""
        distinct = list(dict.fromkeys(keys))
        if set(map(type, distinct)) != {bytes}:
            distinct = [k for k in distinct if type(k) is bytes]
        if not distinct:
            return cls([], [])
        n = len(distinct)
        got = state_call(store.raw.get_column, dense_column(distinct))
        if len(got.ends) != n or got.ends[-1] > len(got.data):
            raise internal("bad-get-column", f"get-column returned {len(got.ends)} values for {n} keys")
        if not got.valid and len(got.data) == 8 * n:  # every key holds 8 bytes: decode all in one call
            return cls(distinct, struct.unpack(f"<{n}q", got.data))
        return cls(distinct, items(got, n))

    def get(self, key: bytes) -> Optional[bytes]:
        """The current value (after this cache's writes); None when absent or not loaded."""
        w = self.written.get(key)
        if w is None:
            w = self.values.get(key)
        return _I64.pack(w) if type(w) is int else w

    def put(self, key: bytes, value: bytes) -> None:
        self.written[key] = bytes(value)

    def get_i64(self, key: bytes) -> Optional[int]:
        v = self.written.get(key)
        if v is None:
            v = self.values.get(key)
        if v is None or type(v) is int:
            return v
        if len(v) != 8:
            raise _not_a_counter()
        return _unpack(v)[0]

    def put_i64(self, key: bytes, v: int) -> None:
        self.written[key] = _wrap(v)

    def increment(self, key: bytes, delta: int) -> int:
        """`increment` in the cache: absent = 0, wraps on overflow; `not-a-counter` for a value
        that is not 8 bytes. Returns the new value."""
        n = self.written.get(key)
        if type(n) is not int:  # first write of this key in the call: what was loaded
            if n is None:
                n = self.values.get(key)
            if type(n) is not int:
                if n is None:
                    n = 0
                elif len(n) == 8:
                    n = _unpack(n)[0]
                else:
                    raise _not_a_counter()
        n += delta
        if n > _MAX or n < _MIN:
            n = _wrap(n)
        self.written[key] = n
        return n

    def writes(self) -> List[Tuple[bytes, bytes]]:
        """(key, latest value) of every written key, in first-write order."""
        return [(k, _I64.pack(v) if type(v) is int else v) for k, v in self.written.items()]

    def flush(self, store: Store) -> None:
        """One `put-column` of every written key's latest value; no call when nothing was written."""
        w = self.written
        if not w:
            return
        keys = list(w)
        vals = list(w.values())
        if set(map(type, vals)) == {int}:  # only counters: one pack, fixed-width ends
            data = struct.pack(f"<{len(vals)}q", *vals)
            values = Column(data, list(range(8, len(data) + 1, 8)), b"")
        else:
            vals = [_I64.pack(v) if type(v) is int else v for v in vals]
            values = dense_column(vals)
        state_call(store.raw.put_column, dense_column(keys), values)
