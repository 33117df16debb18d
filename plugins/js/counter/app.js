// counter: a per-key running count in state store "default" (same contract as plugins/counter).
// Key: the record key, else the JSON string/number member `key_field` (config) of the value;
// neither: fail invalid-input "no-key". Emits {"key":"<key>","count":N} per record. One get-column
// and one put-column per batch; counts are 8-byte little-endian i64s.
import * as ak from '../sdk/arkflow.js';

export const processor = ak.exportProcessor({
  name: 'counter',
  version: '0.1.0',
  stateStores: ['default'],
  stateFormats: { default: 'i64' },
  init(config) {
    const store = ak.Store.open('default');
    const keyField = config.get('key_field');
    return {
      processBatch(ctx, records) {
        const keys = ak.keysOf(records, keyField); // Uint8Array, or the record's PluginError
        const counts = ak.StateCache.load(store, keys); // one get-column
        const out = keys.map((key) => {
          try {
            if (key instanceof ak.PluginError) throw key;
            const n = counts.increment(key, 1);
            return ak.emitOne(`{"key":"${ak.escapeJson(key)}","count":${n}}`);
          } catch (e) {
            if (e instanceof ak.PluginError) return ak.fail(e);
            throw e;
          }
        });
        counts.flush(store); // one put-column
        return out;
      },
    };
  },
});
