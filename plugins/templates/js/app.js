// {{name}}: an ArkFlow processor plugin. The example counts records per key: state store "default"
// holds each record key's count (an i64), and every record emits {"key":"<key>","count":N}; a
// record without a key fails with invalid-input "no-key". The SDK is @arkflow/plugin-sdk (sdk/).
import * as ak from '@arkflow/plugin-sdk';

export const processor = ak.exportProcessor({
  name: '{{name}}',
  version: '0.1.0',
  stateStores: ['default'],
  stateFormats: { default: 'i64' },
  init(config) {
    const store = ak.Store.open('default'); // open stores in init, keep them
    return {
      processBatch(ctx, records) {
        const keys = records.keys(); // a Uint8Array per record, undefined without a key
        const counts = ak.StateCache.load(store, keys); // one get-column for the whole batch
        const out = keys.map((key) => {
          if (key === undefined) return ak.fail(ak.invalidInput('no-key', 'record has no key'));
          const n = counts.increment(key, 1);
          return ak.emitOne(`{"key":"${ak.escapeJson(key)}","count":${n}}`);
        });
        counts.flush(store); // one put-column
        return out; // one outcome per record
      },
    };
  },
});
