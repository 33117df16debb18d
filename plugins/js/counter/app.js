// counter: a per-key running count in state store "default" (same contract as plugins/counter).
// Key: the record key, else the JSON string/number member `key_field` (config) of the value;
// neither: fail invalid-input "no-key". Config `read`: `json` (the default) parses each value in
// the guest for `key_field`; `fields` declares `key_field` as a utf8 field and reads it from the
// host's typed column (`records.fields()`): then only a string member is a key, and a value that
// is not a JSON object or whose `key_field` holds another type fails invalid-input "bad-field"
// with the host's reason. Emits {"key":"<key>","count":N} per record. One get-column and one
// put-column per batch; counts are 8-byte little-endian i64s.
import * as ak from '../sdk/arkflow.js';

/** keysOf for `read: fields`: the record key, else the utf8 column's item (a view, no decode). */
function typedKeys(records, keyField) {
  const fields = records.fields(); // one host call per batch
  const col = fields.str(keyField);
  let keys = records.keys();
  let keyless = true;
  for (let i = 0; i < keys.length && keyless; i++) keyless = keys[i] === undefined;
  // No record key at all (the common case): the whole column in one pass.
  keys = keyless ? col.allBytes() : keys.slice();
  for (let i = 0; i < keys.length; i++) {
    if (keys[i] !== undefined) continue;
    const k = keyless ? undefined : col.bytes(i);
    if (k !== undefined) {
      keys[i] = k;
    } else {
      const why = fields.mismatch(i);
      keys[i] = why !== undefined ? ak.invalidInput('bad-field', why)
        : ak.invalidInput('no-key', `no string field \`${keyField}\``);
    }
  }
  return keys;
}

export const processor = ak.exportProcessor({
  name: 'counter',
  version: '0.1.0',
  stateStores: ['default'],
  stateFormats: { default: 'i64' },
  init(config) {
    const keyField = config.get('key_field');
    const read = config.get('read', 'json');
    if (read !== 'json' && read !== 'fields') {
      throw ak.configError('bad-config', `config \`read\`: \`${read}\` (json or fields)`);
    }
    const typed = read === 'fields' && keyField !== undefined;
    if (typed) ak.declareFields([[keyField, ak.FieldType.UTF8]]);
    const store = ak.Store.open('default');
    return {
      processBatch(ctx, records) {
        // Uint8Array, or the record's PluginError
        const keys = typed ? typedKeys(records, keyField) : ak.keysOf(records, keyField);
        const counts = ak.StateCache.load(store, keys); // one get-column
        const out = new Array(keys.length);
        for (let i = 0; i < keys.length; i++) {
          const key = keys[i];
          if (key instanceof ak.PluginError) {
            out[i] = ak.fail(key);
            continue;
          }
          try {
            const n = counts.increment(key, 1);
            out[i] = ak.emitOne(`{"key":"${ak.escapeJson(key)}","count":${n}}`);
          } catch (e) {
            if (!(e instanceof ak.PluginError)) throw e;
            out[i] = ak.fail(e);
          }
        }
        counts.flush(store); // one put-column
        return out;
      },
    };
  },
});
