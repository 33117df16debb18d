"""ArkFlow plugin SDK for Python (componentize-py), over the `wit_world` bindings that
componentize-py generates from wit/ at build time.

A plugin is a module `app` that calls `arkflow.export(...)` and re-exports `Processor`:

    import arkflow
    from arkflow import Processor  # the export componentize-py looks for in `app`

    class Counter:
        def __init__(self, config: arkflow.Config): ...       # init: open stores here
        def process_batch(self, ctx, records): ...            # -> one outcome per record
        def on_checkpoint(self, ctx): ...                     # optional
        def on_timers(self, ctx, fired): ...                  # timed plugins: one outcome per timer

    arkflow.export(Counter, name="counter", version="0.1.0", state_stores=["default"],
                   state_formats={"default": arkflow.I64})

Contract (the Rust SDK's, see plugins/README.md):
- `describe()` comes from `export`'s arguments (abi = ABI_VERSION). `init` builds the plugin
  object; it lives in this module between calls (componentize-py makes a new `Processor` per
  call). Calls before a successful `init` fail with `internal` / `not-initialized`.
- A plugin raises `arkflow.Error` to fail the call (`init`: the plugin is refused;
  `process_batch`: the whole batch fails). Any other exception is logged at level error through
  the host's log and re-raised, which traps the instance (the host re-instantiates and retries).
- State calls raise `arkflow.Error` of class `state` whose code is the `state-error` case's WIT
  name and whose message reads like the Rust SDK's (`StateError::QuotaExceeded("...")`).
- Counters are 8-byte little-endian i64s and wrap on overflow, like the host's `increment`.
- Timers: a plugin built for the world `timed-plugin` (build.sh picks it when `app` re-exports
  `TimerHandler`) calls `register_timer` / `delete_timer` / `watermark` / `now`, and the host calls
  its object's `on_timers(ctx, fired)` when they fire. In a plain `plugin` they raise `internal`.
"""
import struct
import traceback
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from componentize_py_types import Err
from wit_world import exports as _exports
from wit_world.imports import log as _log
from wit_world.imports import metrics as _metrics
from wit_world.imports import state as _state
from wit_world.imports.types import (
    BatchContext, CheckpointContext, ErrorClass, Header, Info, RecordIn, RecordOut,
    RecordOutcome, RecordOutcome_Drop, RecordOutcome_Emit, RecordOutcome_Fail, StoreFormat,
    TimeDomain, ValueFormat,
)
try:  # only in the world `timed-plugin`
    from wit_world.imports import timers as _timers
except ImportError:
    _timers = None
from wit_world.imports.types import Error as WitError

from .json import escape_json, json_key, validate_json, JSON_MAX_DEPTH  # noqa: F401

ABI_VERSION = "0.1.1"
EVENT, PROCESSING = TimeDomain.EVENT, TimeDomain.PROCESSING
BYTES, UTF8, JSON, I64 = ValueFormat.BYTES, ValueFormat.UTF8, ValueFormat.JSON, ValueFormat.I64
Level = _log.Level
TRACE, DEBUG, INFO, WARN, ERROR = Level.TRACE, Level.DEBUG, Level.INFO, Level.WARN, Level.ERROR


# --- errors -------------------------------------------------------------------------------------

class Error(Exception):
    """An `error` of the WIT: raise it to fail a call, or pass it to `fail()` for one record."""

    def __init__(self, class_: ErrorClass, code: str, message: str):
        super().__init__(f"{class_.name.lower().replace('_', '-')} [{code}]: {message}")
        self.class_, self.code, self.message = class_, code, message

    def to_wit(self) -> WitError:
        return WitError(self.class_, self.code, self.message)


def invalid_input(code: str, message: str) -> Error:
    return Error(ErrorClass.INVALID_INPUT, code, message)


def config_error(code: str, message: str) -> Error:
    return Error(ErrorClass.CONFIG, code, message)


def state_error(code: str, message: str) -> Error:
    return Error(ErrorClass.STATE, code, message)


def retriable(code: str, message: str) -> Error:
    return Error(ErrorClass.RETRIABLE, code, message)


def internal(code: str, message: str) -> Error:
    return Error(ErrorClass.INTERNAL, code, message)


def _from_state_error(variant) -> Error:
    """A `state-error` case as an Error of class `state` (code: the case's WIT name)."""
    case = type(variant).__name__.split("_", 1)[1]  # StateError_QuotaExceeded -> QuotaExceeded
    code = "".join("-" + c.lower() if c.isupper() else c for c in case).lstrip("-")
    payload = getattr(variant, "value", None)
    if payload is None:
        message = f"StateError::{case}"
    elif isinstance(payload, str):
        message = f"StateError::{case}({_rust_debug_str(payload)})"
    else:
        message = f"StateError::{case}({payload})"
    return state_error(code, message)


def _rust_debug_str(s: str) -> str:
    """`{:?}` of a Rust string, for messages identical to the Rust SDK's."""
    out = ['"']
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif c == "\0":
            out.append("\\0")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{{{ord(c):x}}}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


# --- config -------------------------------------------------------------------------------------

class Config:
    """`init`'s configuration: string pairs (scalars as written, nested YAML as JSON text). With a
    key given twice the last value wins."""

    def __init__(self, entries: Sequence[Tuple[str, str]]):
        self.entries = list(entries)
        self._map = dict(self.entries)

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        return self._map.get(key, default)

    def require(self, key: str) -> str:
        if key not in self._map:
            raise config_error("missing-config", f"missing config key `{key}`")
        return self._map[key]

    def get_int(self, key: str, default: Optional[int] = None) -> Optional[int]:
        v = self._map.get(key)
        if v is None:
            return default
        try:
            return int(v.strip())
        except ValueError:
            raise config_error("bad-config", f"config key `{key}`: `{v}` is not an integer") from None

    def get_bool(self, key: str, default: bool = False) -> bool:
        v = self._map.get(key)
        if v is None:
            return default
        if v in ("true", "false"):
            return v == "true"
        raise config_error("bad-config", f"config key `{key}`: `{v}` is not true or false")


# --- state --------------------------------------------------------------------------------------

def _state_call(f, *args):
    try:
        return f(*args)
    except Err as e:
        raise _from_state_error(e.value) from None


class Store:
    """A host-owned key-value store (WIT resource `store`). Open stores in `init` and keep them;
    list each in `export(state_stores=...)`. Keys and values are bytes; absent is None."""

    def __init__(self, raw):
        self.raw = raw

    @classmethod
    def open(cls, name: str) -> "Store":
        return cls(_state_call(_state.Store.open, name))

    def get(self, key: bytes) -> Optional[bytes]:
        return _state_call(self.raw.get, key)

    def put(self, key: bytes, value: bytes) -> None:
        _state_call(self.raw.put, key, value)

    def delete(self, key: bytes) -> bool:
        return _state_call(self.raw.delete, key)

    def get_many(self, keys: List[bytes]) -> List[Optional[bytes]]:
        return _state_call(self.raw.get_many, keys)

    def put_many(self, entries: List[Tuple[bytes, bytes]]) -> None:
        _state_call(self.raw.put_many, entries)

    def delete_many(self, keys: List[bytes]) -> None:
        _state_call(self.raw.delete_many, keys)

    def increment(self, key: bytes, delta: int) -> int:
        return _state_call(self.raw.increment, key, delta)

    def scan_prefix(self, prefix: bytes, start_after: Optional[bytes] = None, limit: int = 1024):
        """One page (`.entries`: [(key, value)], `.next`: pass it as `start_after`, None at the end)."""
        return _state_call(self.raw.scan_prefix, prefix, start_after, limit)


_I64 = struct.Struct("<q")


def encode_i64(v: int) -> bytes:
    return _I64.pack(v)


def decode_i64(b: bytes) -> Optional[int]:
    """The counter in `b`, or None when `b` is not 8 bytes."""
    return _I64.unpack(b)[0] if len(b) == 8 else None


def _wrap(v: int) -> int:
    return (v + 2**63) % 2**64 - 2**63


class StateCache:
    """The values of one call's keys, for "one get-many, compute in memory, one put-many".
    Build one per call (state is per key group)."""

    def __init__(self, keys: List[bytes], values: List[Optional[bytes]]):
        if len(keys) != len(values):
            raise internal("bad-get-many", f"get-many returned {len(values)} values for {len(keys)} keys")
        self.values: Dict[bytes, Optional[bytes]] = dict(zip(keys, values))
        self.written: Dict[bytes, bytes] = {}  # first-write order

    @classmethod
    def load(cls, store: Store, keys: Iterable) -> "StateCache":
        """One `get-many` of the distinct keys (first-seen order; anything but bytes is skipped,
        e.g. the Errors of `keys_of`); no call when there are none."""
        distinct = list(dict.fromkeys(k for k in keys if isinstance(k, bytes)))
        return cls(distinct, store.get_many(distinct) if distinct else [])

    def get(self, key: bytes) -> Optional[bytes]:
        """The current value (after this cache's writes); None when absent or not loaded."""
        return self.written.get(key, self.values.get(key))

    def put(self, key: bytes, value: bytes) -> None:
        self.written[key] = value

    def get_i64(self, key: bytes) -> Optional[int]:
        v = self.get(key)
        if v is None:
            return None
        n = decode_i64(v)
        if n is None:
            raise _from_state_error(_state.StateError_NotACounter())
        return n

    def put_i64(self, key: bytes, v: int) -> None:
        self.put(key, encode_i64(v))

    def increment(self, key: bytes, delta: int) -> int:
        """`increment` in the cache: absent = 0, wraps on overflow; `not-a-counter` for a value
        that is not 8 bytes. Returns the new value."""
        n = _wrap((self.get_i64(key) or 0) + delta)
        self.written[key] = encode_i64(n)
        return n

    def writes(self) -> List[Tuple[bytes, bytes]]:
        return list(self.written.items())

    def flush(self, store: Store) -> None:
        """One `put-many` of every written key's latest value; no call when nothing was written."""
        if self.written:
            store.put_many(self.writes())


# --- records and outcomes -----------------------------------------------------------------------

def record_key(record: RecordIn, key_field: Optional[str]) -> bytes:
    """The record key or, when the record has none, the JSON string/number member `key_field` of
    its value (a number as written). Raises invalid-input `no-key` (or `bad-json`)."""
    if record.key is not None:
        return record.key
    if key_field is None or record.value is None:
        raise invalid_input("no-key", "record has no key and no `key_field` value")
    k = json_key(record.value, key_field)
    if k is None:
        raise invalid_input("no-key", f"no string/number field `{key_field}`")
    return k.encode("utf-8")


def keys_of(records: List[RecordIn], key_field: Optional[str]) -> List[Union[bytes, Error]]:
    """`record_key` of each record, with the Error in place of a key that failed."""
    out: List[Union[bytes, Error]] = []
    for r in records:
        try:
            out.append(record_key(r, key_field))
        except Error as e:
            out.append(e)
    return out


def header(record: RecordIn, name: str) -> Optional[bytes]:
    """The value of the first header named `name`."""
    return next((h.value for h in record.headers if h.key == name), None)


def record_out(value: Union[bytes, str, None], key: Optional[bytes] = None,
               timestamp_ms: Optional[int] = None, headers: Sequence[Tuple[str, bytes]] = ()) -> RecordOut:
    """A record to emit; absent key/timestamp: the host keeps the input's."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    return RecordOut(key, value, [Header(k, v) for k, v in headers], timestamp_ms, None)


def emit_one(value: Union[bytes, str]) -> RecordOutcome:
    return RecordOutcome_Emit([record_out(value)])


def emit(*records: RecordOut) -> RecordOutcome:
    return RecordOutcome_Emit(list(records))


def pass_(record: RecordIn) -> RecordOutcome:
    """Re-emit the input unchanged (timestamp inherited)."""
    return RecordOutcome_Emit([RecordOut(record.key, record.value, record.headers, None, None)])


def drop() -> RecordOutcome:
    return RecordOutcome_Drop()


def fail(error: Error) -> RecordOutcome:
    return RecordOutcome_Fail(error.to_wit())


# --- log and metrics ----------------------------------------------------------------------------

def log(level: Level, message: str) -> None:
    _log.log(level, message)


def counter_add(name: str, delta: int) -> None:
    _metrics.counter_add(name, delta)


def gauge_set(name: str, value: float) -> None:
    _metrics.gauge_set(name, value)


def histogram_record(name: str, value: float) -> None:
    _metrics.histogram_record(name, value)


# --- timers -------------------------------------------------------------------------------------

def _timer_call(name: str, *args):
    if _timers is None:
        raise internal("no-timers", f"{name}: the plugin was built for the world `plugin`; re-export "
                                    "arkflow.TimerHandler from `app` to build it for `timed-plugin`")
    return _state_call(getattr(_timers, name), *args)


def register_timer(key: bytes, time_ms: int, domain: TimeDomain = EVENT) -> None:
    """Registers a timer for `key` at `time_ms` on the event (watermark) or processing (wall)
    clock, staged with the call; it fires in `on_timers` of the key group of the call."""
    _timer_call("register_timer", key, time_ms, domain)


def delete_timer(key: bytes, time_ms: int, domain: TimeDomain = EVENT) -> bool:
    """Deletes a timer; returns whether it was registered."""
    return _timer_call("delete_timer", key, time_ms, domain)


def watermark() -> int:
    """The stream's watermark as this instance last saw it (the smallest i64 before the first)."""
    return _timer_call("watermark")


def now() -> int:
    """The host's wall clock in ms since the Unix epoch (the processing-time clock)."""
    return _timer_call("now")


# --- export -------------------------------------------------------------------------------------

_plugin = None  # what export() declared
_instance = None  # what a successful init built


def export(factory, *, name: str, version: str, state_stores: Sequence[str] = (),
           state_formats: Optional[Dict[str, ValueFormat]] = None) -> None:
    """Declares the plugin: `factory(config)` builds the object whose `process_batch(ctx,
    records)` (and optional `on_checkpoint(ctx)`) the host calls."""
    global _plugin
    info = Info(name, version, ABI_VERSION, list(state_stores),
                [StoreFormat(s, f) for s, f in (state_formats or {}).items()])
    _plugin = (factory, info)


def _guarded(call: str, f, *args):
    try:
        return f(*args)
    except Error as e:
        raise Err(e.to_wit()) from None
    except BaseException:
        name = _plugin[1].name if _plugin else "plugin"
        _log.log(Level.ERROR, f"{name}: {call} raised: {traceback.format_exc()}")
        raise


def _not_initialized(call: str) -> Err:
    return Err(WitError(ErrorClass.INTERNAL, "not-initialized", f"{call} before a successful init"))


class Processor(_exports.Processor):
    """The export componentize-py calls (a new object per call): dispatches to the plugin."""

    def describe(self) -> Info:
        if _plugin is None:
            raise RuntimeError("the app module did not call arkflow.export(...)")
        return _plugin[1]

    def init(self, config: List[Tuple[str, str]]) -> None:
        global _instance
        _instance = None
        _instance = _guarded("init", _plugin[0], Config(config))

    def process_batch(self, ctx: BatchContext, records: List[RecordIn]) -> List[RecordOutcome]:
        if _instance is None:
            raise _not_initialized("process-batch")
        return _guarded("process-batch", _instance.process_batch, ctx, records)

    def on_checkpoint(self, ctx: CheckpointContext) -> None:
        if _instance is None:
            raise _not_initialized("on-checkpoint")
        f = getattr(_instance, "on_checkpoint", None)
        if f is not None:
            _guarded("on-checkpoint", f, ctx)


if hasattr(_exports, "TimerHandler"):
    class TimerHandler(_exports.TimerHandler):
        """The `timer-handler` export (world `timed-plugin`): dispatches to `on_timers`."""

        def on_timers(self, ctx, fired):
            if _instance is None:
                raise _not_initialized("on-timers")
            f = getattr(_instance, "on_timers", None)
            if f is None:
                raise Err(WitError(ErrorClass.INTERNAL, "no-timer-handler",
                                   f"{len(fired)} timers fired but the plugin has no on_timers"))
            return _guarded("on-timers", f, ctx, fired)
