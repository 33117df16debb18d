"""counter: a per-key running count in state store "default" (same contract as plugins/counter).
Key: the record key, else the JSON string/number member `key_field` (config) of the value;
neither: fail invalid-input "no-key". Config `read`: `json` (the default) parses each value in the
guest for `key_field`; `fields` declares `key_field` as a utf8 field and reads it from the host's
typed column (`records.fields()`): then only a string member is a key, and a value that is not a
JSON object or whose `key_field` holds another type fails invalid-input "bad-field" with the
host's reason. Emits {"key":"<key>","count":N} per record. One get-column and one put-column per
batch; counts are 8-byte little-endian i64s."""
import arkflow
from arkflow import Processor  # noqa: F401  (the export componentize-py looks for in `app`)


class Counter:
    def __init__(self, config: arkflow.Config):
        self.key_field = config.get("key_field")
        read = config.get("read", "json")
        if read not in ("json", "fields"):
            raise arkflow.config_error("bad-config", f"config `read`: `{read}` (json or fields)")
        # `read: fields`: key_field comes from the host's typed column.
        self.typed = read == "fields" and self.key_field is not None
        if self.typed:
            arkflow.fields.declare([(self.key_field, arkflow.fields.UTF8)])
        self.store = arkflow.Store.open("default")

    def typed_keys(self, records):
        """`keys_of` for `read: fields`: the record key, else the utf8 column's item."""
        fields = records.fields()  # one host call per batch
        keys = records.keys()
        if None not in keys:
            return list(keys)
        col = fields.utf8(self.key_field)
        if keys.count(None) == len(keys):  # no record key at all: the whole column in one pass
            keys = col.to_bytes_list()
            if None not in keys:
                return keys
        else:
            keys = list(keys)
        get = col.get_bytes
        for i, k in enumerate(keys):
            if k is None:
                k = get(i)
                if k is None:
                    why = fields.mismatch(i)
                    k = (arkflow.invalid_input("bad-field", why) if why is not None
                         else arkflow.invalid_input("no-key", f"no string field `{self.key_field}`"))
                keys[i] = k
        return keys

    def process_batch(self, ctx, records):
        if self.typed:
            keys = self.typed_keys(records)
        else:
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
