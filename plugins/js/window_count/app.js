// window_count: a keyed tumbling-window count on host timers (the contract of
// plugins/window-count, in JavaScript). Config `size_ms` (required), `key_field`, `domain`
// (`event` or `processing`). A record counts in the window [start, start + size_ms) of its
// timestamp (event) or of the host clock (processing), in state store "default" under
// [start: 8 bytes big-endian][key], with a timer on that key at start + size_ms - 1. When it fires,
// the plugin emits {"key","window_start","window_end","count"} and deletes the count. An event-time
// record whose window's timer is at or before the watermark fails with code `late`.
import * as ak from '../sdk/arkflow.js';
import * as timers from '../sdk/timers.js';

const startKey = (start, key) => {
  const out = new Uint8Array(8 + key.length);
  new DataView(out.buffer).setBigInt64(0, BigInt(start));
  out.set(key, 8);
  return out;
};

export const processor = ak.exportProcessor({
  name: 'window_count',
  version: '0.1.0',
  stateStores: ['default'],
  init(config) {
    const size = Number(config.get('size_ms'));
    if (!Number.isInteger(size) || size <= 0) throw ak.configError('bad-size', 'config `size_ms` is required and must be > 0');
    const domain = config.get('domain') ?? 'event';
    if (domain !== 'event' && domain !== 'processing') throw ak.configError('bad-domain', `\`domain\` must be event or processing, got \`${domain}\``);
    const keyField = config.get('key_field');
    const store = ak.Store.open('default');
    const add = (r) => {
      const key = ak.recordKey(r, keyField);
      const t = domain === 'event' ? timers.signed(r.timestampMs) : timers.now();
      const start = Math.floor(t / size) * size;
      const fireAt = start + size - 1;
      if (domain === 'event' && fireAt <= timers.watermark()) {
        throw ak.invalidInput('late', `event time ${t} is behind the watermark ${timers.watermark()}`);
      }
      const skey = startKey(start, key);
      timers.registerTimer(skey, fireAt, domain); // first: a refused timer leaves no count behind
      store.increment(skey, 1);
      return ak.drop();
    };
    return {
      processBatch(ctx, records) {
        return records.map((r) => {
          try {
            return add(r);
          } catch (e) {
            if (e instanceof ak.PluginError) return ak.fail(e);
            throw e;
          }
        });
      },
      onTimers(ctx, fired) {
        return fired.map((t) => {
          const start = Number(new DataView(t.key.buffer, t.key.byteOffset, 8).getBigInt64(0));
          const key = t.key.subarray(8);
          const count = ak.decodeI64(store.get(t.key) ?? new Uint8Array()) ?? 0;
          store.delete(t.key);
          const end = start + size;
          const value = `{"key":"${ak.escapeJson(key)}","window_start":${start},"window_end":${end},"count":${count}}`;
          return ak.emit(ak.recordOut(value, { key, timestampMs: BigInt(end - 1) }));
        });
      },
    };
  },
});

export const timerHandler = timers.timerHandler(processor);
