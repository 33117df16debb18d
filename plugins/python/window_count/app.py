"""window_count: a keyed tumbling-window count on host timers (the contract of
plugins/window-count, in Python). Config `size_ms` (required), `key_field`, `domain`
(`event` or `processing`). A record counts in the window [start, start + size_ms) of its timestamp
(event) or of the host clock (processing), in state store "default" under
[start: 8 bytes big-endian][key], with a timer on that key at start + size_ms - 1. When it fires,
the plugin emits {"key","window_start","window_end","count"} and deletes the count. An event-time
record whose window's timer is at or before the watermark fails with code `late`."""
import struct

import arkflow
from arkflow import Processor, TimerHandler  # noqa: F401  (the exports componentize-py looks for)


class WindowCount:
    def __init__(self, config: arkflow.Config):
        self.size = config.get_int("size_ms")
        if self.size is None or self.size <= 0:
            raise arkflow.config_error("bad-size", "config `size_ms` is required and must be > 0")
        domain = config.get("domain", "event")
        if domain not in ("event", "processing"):
            raise arkflow.config_error("bad-domain", f"`domain` must be event or processing, got `{domain}`")
        self.domain = arkflow.EVENT if domain == "event" else arkflow.PROCESSING
        self.key_field = config.get("key_field")
        self.store = arkflow.Store.open("default")

    def add(self, record):
        key = arkflow.record_key(record, self.key_field)
        t = record.timestamp_ms if self.domain == arkflow.EVENT else arkflow.now()
        start = (t // self.size) * self.size
        fire_at = start + self.size - 1
        if self.domain == arkflow.EVENT and fire_at <= arkflow.watermark():
            raise arkflow.invalid_input("late", f"event time {t} is behind the watermark {arkflow.watermark()}")
        skey = struct.pack(">q", start) + key
        arkflow.register_timer(skey, fire_at, self.domain)
        self.store.increment(skey, 1)
        return arkflow.drop()

    def process_batch(self, ctx, records):
        out = []
        for r in records:
            try:
                out.append(self.add(r))
            except arkflow.Error as e:
                out.append(arkflow.fail(e))
        return out

    def on_timers(self, ctx, fired):
        out = []
        for t in fired:
            (start,) = struct.unpack(">q", t.key[:8])
            key = t.key[8:]
            count = arkflow.decode_i64(self.store.get(t.key) or b"") or 0
            self.store.delete(t.key)
            end = start + self.size
            value = f'{{"key":"{arkflow.escape_json(key)}","window_start":{start},"window_end":{end},"count":{count}}}'
            out.append(arkflow.emit(arkflow.record_out(value, key=key, timestamp_ms=end - 1)))
        return out


arkflow.export(WindowCount, name="window_count", version="0.1.0", state_stores=["default"])
