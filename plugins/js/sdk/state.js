// Host-owned state for JavaScript plugins: `Store` (the WIT resource; every call throws a
// PluginError of class `state` on a `state-error`) and `StateCache`, the per-call cache for "one
// read of every key, compute in memory, one write" (the Rust SDK's plugins/sdk/src/state.rs):
//
// - `StateCache.load(store, keys)` dedupes the keys (first-seen order; anything but a Uint8Array,
//   e.g. the PluginErrors of keysOf, is skipped) and makes ONE `get-column` call (none without
//   keys). Keys that were not loaded read as absent. The very key objects given to `load` are then
//   found by identity, without hashing their bytes again.
// - Writes stay in memory until `flush(store)`, which makes ONE `put-column` of every written key's
//   latest value, in first-write order (no call when nothing was written).
// - Counters are 8-byte little-endian i64s that wrap on overflow like the host's `increment`; a
//   stored value of another length is `not-a-counter`. They are Numbers while safe integers and
//   BigInts beyond (the interpreter's BigInt arithmetic is slow), kept decoded and encoded once, at
//   flush.
// - Build one cache per call: state is per key group, and writes are staged per call.
import { Store as RawStore } from 'arkflow:plugin/state@0.2.0';
import { fromStateError, internal, stateCall } from './errors.js';
import { bytesKey } from './json.js';
import { column, items } from './batch.js';

/** A host-owned key-value store (WIT resource `store`). Open stores in init and keep them; list
 * each in `stateStores`. Keys and values are Uint8Arrays; absent is undefined. */
export class Store {
  constructor(raw) { this.raw = raw; }
  static open(name) { return new Store(stateCall(() => RawStore.open(name))); }
  get(key) { return stateCall(() => this.raw.get(key)); }
  put(key, value) { stateCall(() => this.raw.put(key, value)); }
  delete(key) { return stateCall(() => this.raw.delete(key)); }
  getMany(keys) { return stateCall(() => this.raw.getMany(keys)); }
  putMany(entries) { stateCall(() => this.raw.putMany(entries)); }
  deleteMany(keys) { stateCall(() => this.raw.deleteMany(keys)); }
  /** `get` of every key in one call and one buffer; undefined where absent. */
  getColumn(keys) {
    const got = stateCall(() => this.raw.getColumn(column(keys)));
    const n = keys.length;
    if (got.ends.length !== n || (n > 0 && got.ends[n - 1] > got.data.length)) {
      throw internal('bad-get-column', `get-column returned ${got.ends.length} values for ${n} keys`);
    }
    return items(got, n);
  }
  /** `put` of every [keys[i], values[i]] in one call. */
  putColumn(keys, values) { stateCall(() => this.raw.putColumn(column(keys), column(values))); }
  /** delta: a Number or BigInt; returns a BigInt. */
  increment(key, delta) { return stateCall(() => this.raw.increment(key, BigInt(delta))); }
  /** One page: `{ entries: [[key, value]], next }`; pass `next` as startAfter (undefined at the end). */
  scanPrefix(prefix, startAfter, limit = 1024) { return stateCall(() => this.raw.scanPrefix(prefix, startAfter, limit)); }
}

const TWO32 = 4294967296;

/** The counter in 8 bytes `b` (a Number when a safe integer, else a BigInt), or undefined when
 * `b` is not 8 bytes. Plain byte arithmetic: a DataView per value is slow in the interpreter. */
export function decodeI64(b) {
  if (b.length !== 8) return undefined;
  const hi = b[4] | (b[5] << 8) | (b[6] << 16) | (b[7] << 24); // signed
  if (hi > -2097152 && hi < 2097152) return hi * TWO32 + (b[0] | (b[1] << 8) | (b[2] << 16)) + b[3] * 16777216; // |n| < 2^53
  return new DataView(b.buffer, b.byteOffset, 8).getBigInt64(0, true);
}

function writeI64(view, at, n) {
  if (typeof n === 'bigint') {
    view.setBigInt64(at, BigInt.asIntN(64, n), true);
  } else {
    const hi = Math.floor(n / TWO32);
    view.setUint32(at, n - hi * TWO32, true);
    view.setInt32(at + 4, hi, true);
  }
}

export function encodeI64(n) {
  const b = new Uint8Array(8);
  writeI64(new DataView(b.buffer), 0, n);
  return b;
}

function addWrapping(n, delta) {
  if (typeof n === 'number' && typeof delta === 'number') {
    const m = n + delta;
    if (Number.isSafeInteger(m)) return m;
  }
  const m = BigInt.asIntN(64, BigInt(n) + BigInt(delta));
  return m >= -9007199254740991n && m <= 9007199254740991n ? Number(m) : m;
}

// A slot: { key, value: bytes | undefined (absent) | null (= the counter n, encoded on demand),
// n: the decoded counter or undefined, dirty }. An 8-byte value read by get-column is decoded
// straight from the reply (value null), so counting allocates nothing per key.
const newSlot = (key, value) => ({ key, value, n: undefined, dirty: false });

/** The i64 at `data[at .. at + 8]`, as decodeI64. */
function readI64(data, at) {
  const hi = data[at + 4] | (data[at + 5] << 8) | (data[at + 6] << 16) | (data[at + 7] << 24); // signed
  if (hi > -2097152 && hi < 2097152) return hi * TWO32 + (data[at] | (data[at + 1] << 8) | (data[at + 2] << 16)) + data[at + 3] * 16777216;
  return new DataView(data.buffer, data.byteOffset + at, 8).getBigInt64(0, true);
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const encoder = new TextEncoder();

/** The values of one call's keys (see the top of this file). */
export class StateCache {
  constructor(keys = [], values = []) {
    if (values.length !== keys.length) {
      throw internal('bad-get-column', `get-column returned ${values.length} values for ${keys.length} keys`);
    }
    this.slots = new Map(); // bytesKey -> slot
    this.byRef = new Map(); // key object given to load -> slot
    this.written = []; // slots, in first-write order
    for (let i = 0; i < keys.length; i++) this.slots.set(bytesKey(keys[i]), newSlot(keys[i], values[i]));
  }

  /** One get-column of the distinct keys; no call when there are none. */
  static load(store, keys) {
    // Indexed loops only: for-of and spreads go through the iterator protocol, which costs about a
    // microsecond per item in the component's interpreter.
    const cache = new StateCache();
    const { slots, byRef } = cache;
    const list = [];
    const ids = [];
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      // Not `instanceof Uint8Array`: in the component the bindings make typed arrays whose
      // prototype is not the module's Uint8Array.prototype.
      if (!ArrayBuffer.isView(k)) continue;
      const id = bytesKey(k);
      let s = slots.get(id);
      if (s === undefined) {
        s = newSlot(k, undefined);
        slots.set(id, s);
        list.push(s);
        ids.push(id);
      }
      byRef.set(k, s);
    }
    const n = list.length;
    if (n === 0) return cache;
    // The request: the ids are the keys' bytes one char each, so ASCII keys encode in one call.
    const ends = new Uint32Array(n);
    let size = 0;
    for (let i = 0; i < n; i++) ends[i] = size += ids[i].length;
    let data = encoder.encode(ids.join(''));
    if (data.length !== size) data = column(list.map((x) => x.key)).data;
    const got = stateCall(() => store.raw.getColumn({ data, ends, valid: new Uint8Array(0) }));
    const vd = got.data;
    const ve = got.ends;
    const valid = got.valid;
    if (ve.length !== n || ve[n - 1] > vd.length) {
      throw internal('bad-get-column', `get-column returned ${ve.length} values for ${n} keys`);
    }
    let start = 0;
    for (let i = 0; i < n; i++) {
      const end = ve[i];
      if (valid.length === 0 || (valid[i >> 3] & (1 << (i & 7))) !== 0) {
        const s = list[i];
        if (end - start === 8) {
          s.n = readI64(vd, start);
          s.value = null;
        } else {
          s.value = vd.subarray(start, end);
        }
      }
      start = end;
    }
    return cache;
  }

  slot(key) {
    let s = this.byRef.get(key);
    if (s !== undefined) return s;
    const id = bytesKey(key);
    s = this.slots.get(id);
    if (s === undefined) {
      s = newSlot(key, undefined);
      this.slots.set(id, s);
    }
    return s;
  }

  find(key) {
    const s = this.byRef.get(key);
    return s !== undefined ? s : this.slots.get(bytesKey(key));
  }

  write(s) {
    if (!s.dirty) {
      s.dirty = true;
      this.written.push(s);
    }
  }

  /** The current value (after this cache's writes); undefined when absent or not loaded. */
  get(key) {
    const s = this.find(key);
    if (s === undefined) return undefined;
    if (s.value === null) s.value = encodeI64(s.n);
    return s.value;
  }

  put(key, value) {
    const s = this.slot(key);
    s.value = value;
    s.n = undefined;
    this.write(s);
  }

  counterOf(s) {
    if (s.n === undefined && s.value !== undefined) {
      s.n = decodeI64(s.value);
      if (s.n === undefined) throw fromStateError({ tag: 'not-a-counter' });
    }
    return s.n;
  }

  getI64(key) {
    const s = this.find(key);
    return s === undefined ? undefined : this.counterOf(s);
  }

  putI64(key, n) {
    const s = this.slot(key);
    s.n = n;
    s.value = null;
    this.write(s);
  }

  /** `increment` in the cache: absent = 0, wraps on overflow; `not-a-counter` for a value that
   * is not 8 bytes. Returns the new value. (The common case inlined: calls cost in the
   * interpreter.) */
  increment(key, delta) {
    let s = this.byRef.get(key);
    if (s === undefined) s = this.slot(key);
    let n = s.n;
    if (n === undefined) n = s.value === undefined ? 0 : this.counterOf(s);
    let m;
    if (typeof n === 'number' && typeof delta === 'number' && (m = n + delta) <= MAX_SAFE && m >= -MAX_SAFE) n = m;
    else n = addWrapping(n, delta);
    s.n = n;
    s.value = null;
    if (!s.dirty) {
      s.dirty = true;
      this.written.push(s);
    }
    return n;
  }

  /** [[key, value]] of every written key's latest value, in first-write order. */
  writes() {
    return this.written.map((s) => [s.key, s.value === null ? (s.value = encodeI64(s.n)) : s.value]);
  }

  /** One put-column of writes(); no call when nothing was written. */
  flush(store) {
    const w = this.written;
    const m = w.length;
    if (m === 0) return;
    let values;
    let counters = true;
    for (let i = 0; i < m && counters; i++) counters = w[i].value === null;
    if (counters) { // only counters: one buffer, fixed-width ends
      const data = new Uint8Array(8 * m);
      const view = new DataView(data.buffer);
      const ends = new Uint32Array(m);
      for (let i = 0; i < m; i++) {
        writeI64(view, 8 * i, w[i].n);
        ends[i] = 8 * (i + 1);
      }
      values = { data, ends, valid: new Uint8Array(0) };
    } else {
      values = column(this.writes().map((e) => e[1]));
    }
    const keys = new Array(m);
    for (let i = 0; i < m; i++) keys[i] = w[i].key;
    stateCall(() => store.raw.putColumn(column(keys), values));
  }
}
