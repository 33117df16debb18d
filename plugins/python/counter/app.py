"""counter: a per-key running count in state store "default" (same contract as plugins/counter).
Key: the record key, else the JSON string/number member `key_field` (config) of the value;
neither: fail invalid-input "no-key". Emits {"key":"<key>","count":N} per record. One get-column
and one put-column per batch; counts are 8-byte little-endian i64s."""
import arkflow
from arkflow import Processor  # noqa: F401  (the export componentize-py looks for in `app`)


class Counter:
    def __init__(self, config: arkflow.Config):
        self.store = arkflow.Store.open("default")
        self.key_field = config.get("key_field")

    def process_batch(self, ctx, records):
        keys = arkflow.keys_of(records, self.key_field)  # bytes, or the record's Error
        counts = arkflow.StateCache.load(self.store, keys)  # one get-column
        out = []
        for key in keys:
            try:
                if isinstance(key, arkflow.Error):
                    raise key
                n = counts.increment(key, 1)
                out.append(arkflow.emit_one(f'{{"key":"{arkflow.escape_json(key)}","count":{n}}}'))
            except arkflow.Error as e:
                out.append(arkflow.fail(e))
        counts.flush(self.store)  # one put-column
        return out


arkflow.export(Counter, name="counter", version="0.1.0", state_stores=["default"],
               state_formats={"default": arkflow.I64})
