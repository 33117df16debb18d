"""ArkFlow plugin SDK for Python (componentize-py), on the batch ABI `arkflow:plugin@0.2.0`, over
the `wit_world` bindings that componentize-py generates from wit/ at build time.

A plugin is a module `app` that calls `arkflow.export(...)` and re-exports `Processor`:

    import arkflow
    from arkflow import Processor  # the export componentize-py looks for in `app`

    class Counter:
        def __init__(self, config: arkflow.Config): ...       # init: open stores here
        def process_batch(self, ctx, records): ...            # records: arkflow.Batch
        def on_checkpoint(self, ctx): ...                     # optional
        def on_timers(self, ctx, fired): ...                  # timed plugins: fired timers

    arkflow.export(Counter, name="counter", version="0.1.0", state_stores=["default"],
                   state_formats={"default": arkflow.I64})

`process_batch` and `on_timers` return one outcome per input (`emit_one(value)`, `emit(...)`,
`pass_(record)`, `drop()`, `fail(error)`) or an `Outcomes` builder; see batch.py for the batch
view (`Batch`, `Record`: nothing decoded until touched) and how outcomes cross back (one values
buffer, no per-record list when every input emits one value). State: state.py (`Store`,
`StateCache` over `get-column` / `put-column`). Typed fields: fields.py (`fields.declare` in
`init`, then `records.fields()` per batch: the host decodes the declared top-level JSON fields of
every record into typed columns, so the guest parses no JSON):

    arkflow.fields.declare([("user", arkflow.fields.UTF8)])       # in __init__
    users = records.fields().utf8("user")                         # in process_batch
    users.get(i)  # str, or None (records.fields().mismatch(i): why record i did not fit)

Contract (the Rust SDK's, see plugins/README.md):
- `describe()` comes from `export`'s arguments (abi = ABI_VERSION, "0.2.0"). `init` builds the
  plugin object; it lives in this module between calls (componentize-py makes a new `Processor`
  per call). Calls before a successful `init` fail with `internal` / `not-initialized`.
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
import traceback
from typing import Dict, List, Optional, Sequence, Tuple, Union

from componentize_py_types import Err
from wit_world import exports as _exports
from wit_world.imports import log as _log
from wit_world.imports import metrics as _metrics
from wit_world.imports.types import (
    BatchContext, CheckpointContext, ErrorClass, Info, Outcomes as WitOutcomes, StoreFormat,
    TimeDomain, ValueFormat,
)
try:  # only in the world `timed-plugin`
    from wit_world.imports import timers as _timers
except ImportError:
    _timers = None
from wit_world.imports.types import Error as WitError

from .batch import Batch, Emit, Outcomes, Record, RecordOut, to_wit  # noqa: F401
from .errors import (  # noqa: F401
    Error, config_error, internal, invalid_input, retriable, state_call, state_error,
)
from . import fields  # noqa: F401  (arkflow.fields.declare, ...)
from .fields import (  # noqa: F401
    BooleanColumn, Fields, FieldType, Float64Column, Int64Column, Utf8Column,
)
from .json import escape_json, json_key, validate_json, JSON_MAX_DEPTH  # noqa: F401
from .state import StateCache, Store, decode_i64, encode_i64  # noqa: F401

ABI_VERSION = "0.2.0"
EVENT, PROCESSING = TimeDomain.EVENT, TimeDomain.PROCESSING
BYTES, UTF8, JSON, I64 = ValueFormat.BYTES, ValueFormat.UTF8, ValueFormat.JSON, ValueFormat.I64
Level = _log.Level
TRACE, DEBUG, INFO, WARN, ERROR = Level.TRACE, Level.DEBUG, Level.INFO, Level.WARN, Level.ERROR


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


# --- records and outcomes -----------------------------------------------------------------------

def _key_from_value(value: Optional[bytes], key_field: Optional[str]) -> bytes:
    if key_field is None or value is None:
        raise invalid_input("no-key", "record has no key and no `key_field` value")
    k = json_key(value, key_field)
    if k is None:
        raise invalid_input("no-key", f"no string/number field `{key_field}`")
    return k.encode("utf-8")


def record_key(record: Record, key_field: Optional[str]) -> bytes:
    """The record key or, when the record has none, the JSON string/number member `key_field` of
    its value (a number as written). Raises invalid-input `no-key` (or `bad-json`)."""
    key = record.key
    return key if key is not None else _key_from_value(record.value, key_field)


def keys_of(records: Union[Batch, Sequence[Record]], key_field: Optional[str]) -> List[Union[bytes, Error]]:
    """`record_key` of each record, with the Error in place of a key that failed. On a Batch the
    keys column is sliced once and values are read only for records without a key."""
    if isinstance(records, Batch):
        keys = list(records.keys())
    else:
        records = list(records)
        keys = [r.key for r in records]
    if None in keys:
        for i, k in enumerate(keys):
            if k is None:
                try:
                    value = records.values()[i] if isinstance(records, Batch) else records[i].value
                    keys[i] = _key_from_value(value, key_field)
                except Error as e:
                    keys[i] = e
    return keys


def header(record: Record, name: str) -> Optional[bytes]:
    """The value of the first header named `name`."""
    return record.header(name)


def record_out(value: Union[bytes, str, None], key: Optional[bytes] = None, timestamp_ms: Optional[int] = None,
               headers: Sequence[Tuple[str, bytes]] = (), output: Optional[str] = None) -> RecordOut:
    """A record to emit; absent key/timestamp: the host keeps the input's."""
    return RecordOut(value, key, timestamp_ms, headers, output)


def emit_one(value: Union[bytes, str]):
    """Emit one record with `value` (the input's key and timestamp): the outcome is the value
    itself (None, a tombstone, becomes an `Emit`)."""
    return value if value is not None else Emit([RecordOut(None)])


def emit(*records: RecordOut) -> Emit:
    return Emit(records)


def pass_(record: Record) -> Emit:
    """Re-emit the input unchanged (key, timestamp and headers kept)."""
    return Emit([RecordOut(record.value, headers=record.headers)])


def drop() -> None:
    return None


def fail(error: Error) -> Error:
    return error


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
    return state_call(getattr(_timers, name), *args)


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
           state_formats: Optional[Dict[str, ValueFormat]] = None, key_by: Optional[str] = None) -> None:
    """Declares the plugin: `factory(config)` builds the object whose `process_batch(ctx,
    records)` (and optional `on_checkpoint(ctx)`, `on_timers(ctx, fired)`) the host calls.
    `key_by`: the key the plugin's state is grouped by (a top-level JSON field, or "record_key"),
    when it is not the record key the stream already has (see `info.key-by` in wit/plugin.wit)."""
    global _plugin
    info = Info(name, version, ABI_VERSION, list(state_stores),
                [StoreFormat(s, f) for s, f in (state_formats or {}).items()], key_by)
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


def _run(what: str, f, ctx, inputs, n: int) -> WitOutcomes:
    return to_wit(f(ctx, inputs), n, what)


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

    def process_batch(self, ctx: BatchContext, records) -> WitOutcomes:
        if _instance is None:
            raise _not_initialized("process-batch")
        batch = Batch(records)
        return _guarded("process-batch", _run, "process_batch", _instance.process_batch, ctx, batch, len(batch))

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
            return _guarded("on-timers", _run, "on_timers", f, ctx, fired, len(fired))
