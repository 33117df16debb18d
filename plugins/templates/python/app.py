"""{{name}}: an ArkFlow processor plugin. The example counts records per key: state store "default"
holds each record key's count (an i64), and every record emits {"key":"<key>","count":N}; a
record without a key fails with invalid-input "no-key". The SDK is the package `arkflow` (sdk/)."""
import arkflow
from arkflow import Processor  # noqa: F401  (the export componentize-py looks for in `app`)


class Plugin:
    def __init__(self, config: arkflow.Config):
        self.store = arkflow.Store.open("default")  # open stores in init, keep them

    def process_batch(self, ctx, records):
        keys = records.keys()  # bytes per record, None without a key
        counts = arkflow.StateCache.load(self.store, keys)  # one get-column for the whole batch
        out = []
        for key in keys:
            if key is None:
                out.append(arkflow.fail(arkflow.invalid_input("no-key", "record has no key")))
            else:
                n = counts.increment(key, 1)
                out.append(arkflow.emit_one(f'{{"key":"{arkflow.escape_json(key)}","count":{n}}}'))
        counts.flush(self.store)  # one put-column
        return out  # one outcome per record


arkflow.export(Plugin, name="{{name}}", version="0.1.0", state_stores=["default"],
               state_formats={"default": arkflow.I64})
