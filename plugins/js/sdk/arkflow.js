// ArkFlow plugin SDK for JavaScript (componentize-js). A plugin is an ES module that exports the
// object `exportProcessor` returns, under the name `processor`:
//
//   import * as ak from '../sdk/arkflow.js';
//   export const processor = ak.exportProcessor({
//     name: 'counter', version: '0.1.0',
//     stateStores: ['default'], stateFormats: { default: 'i64' },
//     init(config) {                       // -> the plugin: { processBatch(ctx, records), onCheckpoint?(ctx) }
//       const store = ak.Store.open('default');
//       return { processBatch(ctx, records) { ... one outcome per record ... } };
//     },
//   });
//
// Contract (the Rust SDK's, see plugins/README.md):
// - describe() comes from exportProcessor's fields (abi = ABI_VERSION). Calls before a
//   successful init fail with `internal` / `not-initialized`.
// - Throw a PluginError to fail the call (init: the plugin is refused; processBatch: the whole
//   batch fails). Any other exception is logged at level error through the host's log, then
//   thrown on, which traps the instance (the host re-instantiates and retries).
// - State calls throw a PluginError of class `state` whose code is the `state-error` case's WIT
//   name, with the Rust SDK's message (`StateError::QuotaExceeded("...")`).
// - Counters are 8-byte little-endian i64s that wrap on overflow, like the host's `increment`;
//   they are Numbers while safe integers and BigInts beyond (the interpreter's BigInt
//   arithmetic is slow).
// Binding conventions (componentize-js): list<u8> is Uint8Array, s64/u64 are BigInt, absent
// options are `undefined`, variants are `{ tag, val }`, enums are their WIT names.
import { Store as RawStore } from 'arkflow:plugin/state@0.1.1';
import { log as rawLog } from 'arkflow:plugin/log@0.1.1';
import { counterAdd as rawCounterAdd, gaugeSet as rawGaugeSet, histogramRecord as rawHistogramRecord } from 'arkflow:plugin/metrics@0.1.1';
import { locateJsonError } from './json-locate.js';

export const ABI_VERSION = '0.1.1';
export const JSON_MAX_DEPTH = 128;

// --- errors -------------------------------------------------------------------------------------

/** An `error` of the WIT: throw it to fail a call, or pass it to fail() for one record. */
export class PluginError extends Error {
  constructor(cls, code, message) {
    super(`${cls} [${code}]: ${message}`);
    this.payload = { class: cls, code, message }; // what componentize-js returns as `err`
  }
  get class() { return this.payload.class; }
  get code() { return this.payload.code; }
}

export const invalidInput = (code, message) => new PluginError('invalid-input', code, message);
export const configError = (code, message) => new PluginError('config', code, message);
export const stateError = (code, message) => new PluginError('state', code, message);
export const retriable = (code, message) => new PluginError('retriable', code, message);
export const internal = (code, message) => new PluginError('internal', code, message);

const camel = (tag) => tag.replace(/(^|-)([a-z])/g, (_, __, c) => c.toUpperCase());

/** `{:?}` of a Rust string, for messages identical to the Rust SDK's. */
function rustDebugString(s) {
  let out = '"';
  for (const c of s) {
    const n = c.codePointAt(0);
    if (c === '"' || c === '\\') out += `\\${c}`;
    else if (c === '\n') out += '\\n';
    else if (c === '\r') out += '\\r';
    else if (c === '\t') out += '\\t';
    else if (c === '\0') out += '\\0';
    else if (n < 0x20 || n === 0x7f) out += `\\u{${n.toString(16)}}`;
    else out += c;
  }
  return `${out}"`;
}

/** A `state-error` case (`{ tag, val }`) as a PluginError of class `state`. */
function fromStateError(v) {
  const name = `StateError::${camel(v.tag)}`;
  const message = v.val === undefined ? name
    : `${name}(${typeof v.val === 'string' ? rustDebugString(v.val) : String(v.val)})`;
  return stateError(v.tag, message);
}

export function stateCall(f) {
  try {
    return f();
  } catch (e) {
    const v = e && e.payload; // componentize-js throws an import's `err` with the error as payload
    if (v && typeof v.tag === 'string') throw fromStateError(v);
    throw e;
  }
}

// --- config -------------------------------------------------------------------------------------

/** init's configuration: string pairs (scalars as written, nested YAML as JSON text). With a key
 * given twice the last value wins. */
export class Config {
  constructor(entries) {
    this.entries = entries;
    this.map = new Map(entries);
  }
  get(key, fallback) { return this.map.has(key) ? this.map.get(key) : fallback; }
  require(key) {
    if (!this.map.has(key)) throw configError('missing-config', `missing config key \`${key}\``);
    return this.map.get(key);
  }
  getInt(key, fallback) {
    if (!this.map.has(key)) return fallback;
    const v = this.map.get(key);
    if (!/^\s*[-+]?\d+\s*$/.test(v)) throw configError('bad-config', `config key \`${key}\`: \`${v}\` is not an integer`);
    return Number(v);
  }
  getBool(key, fallback = false) {
    if (!this.map.has(key)) return fallback;
    const v = this.map.get(key);
    if (v !== 'true' && v !== 'false') throw configError('bad-config', `config key \`${key}\`: \`${v}\` is not true or false`);
    return v === 'true';
  }
}

// --- state --------------------------------------------------------------------------------------

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
  /** delta: a Number or BigInt; returns a BigInt. */
  increment(key, delta) { return stateCall(() => this.raw.increment(key, BigInt(delta))); }
  /** One page: `{ entries: [[key, value]], next }`; pass `next` as startAfter (undefined at the end). */
  scanPrefix(prefix, startAfter, limit = 1024) { return stateCall(() => this.raw.scanPrefix(prefix, startAfter, limit)); }
}

const TWO32 = 4294967296;

/** The counter in 8 bytes `b` (a Number when a safe integer, else a BigInt), or undefined when
 * `b` is not 8 bytes. */
export function decodeI64(b) {
  if (b.length !== 8) return undefined;
  const view = new DataView(b.buffer, b.byteOffset, 8);
  const hi = view.getInt32(4, true);
  if (hi > -2097152 && hi < 2097152) return hi * TWO32 + view.getUint32(0, true); // |n| < 2^53
  return view.getBigInt64(0, true);
}

export function encodeI64(n) {
  const b = new Uint8Array(8);
  const view = new DataView(b.buffer);
  if (typeof n === 'bigint') {
    view.setBigInt64(0, BigInt.asIntN(64, n), true);
  } else {
    const hi = Math.floor(n / TWO32);
    view.setUint32(0, n - hi * TWO32, true);
    view.setInt32(4, hi, true);
  }
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

/** Map key for bytes: one char per byte. */
export function bytesKey(b) {
  if (b.length <= 4096) return String.fromCharCode.apply(null, b);
  let s = '';
  for (let i = 0; i < b.length; i += 4096) s += String.fromCharCode.apply(null, b.subarray(i, i + 4096));
  return s;
}

/** The values of one call's keys, for "one get-many, compute in memory, one put-many". Build one
 * per call (state is per key group). */
export class StateCache {
  constructor(keys, values) {
    if (values.length !== keys.length) {
      throw internal('bad-get-many', `get-many returned ${values.length} values for ${keys.length} keys`);
    }
    // bytesKey -> { key, value: bytes | undefined | null (= encode n), n: counter | undefined }
    this.slots = new Map();
    keys.forEach((key, i) => this.slots.set(bytesKey(key), { key, value: values[i], n: undefined }));
    this.written = []; // slots, in first-write order
  }

  /** One get-many of the distinct keys (first-seen order; anything but a Uint8Array is skipped,
   * e.g. the PluginErrors of keysOf); no call when there are none. */
  static load(store, keys) {
    const distinct = new Map();
    for (const k of keys) {
      // Not `instanceof Uint8Array`: in the component the bindings make typed arrays whose
      // prototype is not the module's Uint8Array.prototype.
      if (ArrayBuffer.isView(k)) {
        const id = bytesKey(k);
        if (!distinct.has(id)) distinct.set(id, k);
      }
    }
    const list = [...distinct.values()];
    return new StateCache(list, list.length ? store.getMany(list) : []);
  }

  slot(key) {
    const id = bytesKey(key);
    let s = this.slots.get(id);
    if (s === undefined) {
      s = { key, value: undefined, n: undefined };
      this.slots.set(id, s);
    }
    return s;
  }

  write(s) {
    if (!s.dirty) {
      s.dirty = true;
      this.written.push(s);
    }
  }

  /** The current value (after this cache's writes); undefined when absent or not loaded. */
  get(key) {
    const s = this.slots.get(bytesKey(key));
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
    const s = this.slots.get(bytesKey(key));
    return s === undefined ? undefined : this.counterOf(s);
  }

  putI64(key, n) {
    const s = this.slot(key);
    s.n = n;
    s.value = null;
    this.write(s);
  }

  /** `increment` in the cache: absent = 0, wraps on overflow; `not-a-counter` for a value that
   * is not 8 bytes. Returns the new value. */
  increment(key, delta) {
    const s = this.slot(key);
    s.n = addWrapping(this.counterOf(s) ?? 0, delta);
    s.value = null;
    this.write(s);
    return s.n;
  }

  /** [[key, value]] of every written key's latest value, in first-write order. */
  writes() {
    return this.written.map((s) => [s.key, s.value === null ? (s.value = encodeI64(s.n)) : s.value]);
  }

  /** One put-many of writes(); no call when nothing was written. */
  flush(store) {
    if (this.written.length > 0) store.putMany(this.writes());
  }
}

// --- JSON ---------------------------------------------------------------------------------------
// The Rust SDK's semantics (plugins/sdk/src/json.rs): a document is valid when it is UTF-8
// RFC 8259 JSON nesting at most JSON_MAX_DEPTH objects/arrays, with no lone surrogate escapes;
// invalid JSON is invalid-input `bad-json` with the message `invalid JSON at byte N: reason`.
// Valid documents take the engine's JSON.parse (plus a walk for depth and lone surrogates); only
// an invalid one is re-read by json-locate.js, a port of the Rust parser, for the exact message.

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }); // a BOM is not JSON whitespace
const lossy = new TextDecoder('utf-8', { ignoreBOM: true });
const encoder = new TextEncoder();
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function check(v, depth) {
  if (typeof v === 'string') {
    if (LONE_SURROGATE.test(v)) throw new SyntaxError('lone surrogate');
  } else if (v !== null && typeof v === 'object') {
    if (depth >= JSON_MAX_DEPTH) throw new SyntaxError('nesting too deep');
    if (Array.isArray(v)) {
      for (const x of v) check(x, depth + 1);
    } else {
      for (const k of Object.keys(v)) {
        check(k, depth + 1);
        check(v[k], depth + 1);
      }
    }
  }
}

/** [text, parsed value] of `doc`, or throws bad-json. */
function parse(doc) {
  try {
    const text = utf8.decode(doc);
    const v = JSON.parse(text);
    check(v, 0);
    return [text, v];
  } catch (e) {
    const at = locateJsonError(doc);
    throw invalidInput('bad-json', at ? `invalid JSON at byte ${at[0]}: ${at[1]}` : `invalid JSON: ${e.message}`);
  }
}

const isWs = (c) => c === ' ' || c === '\t' || c === '\n' || c === '\r';

/** End (exclusive) of the value starting at `i` of the valid document `s`. */
function skipValue(s, i) {
  const c = s[i];
  if (c === '"') {
    for (i++; s[i] !== '"'; i++) if (s[i] === '\\') i++;
    return i + 1;
  }
  if (c === '{' || c === '[') {
    for (let depth = 0; ; i++) {
      const d = s[i];
      if (d === '"') i = skipValue(s, i) - 1;
      else if (d === '{' || d === '[') depth++;
      else if ((d === '}' || d === ']') && --depth === 0) return i + 1;
    }
  }
  while (i < s.length && s[i] !== ',' && s[i] !== '}' && s[i] !== ']' && !isWs(s[i])) i++;
  return i;
}

function skipWs(s, i) {
  while (isWs(s[i])) i++;
  return i;
}

/** Raw text of the first top-level member `name` of the valid object document `s`. */
function firstMember(s, name) {
  let i = skipWs(s, 0) + 1; // past '{'
  for (;;) {
    i = skipWs(s, i);
    if (s[i] !== '"') return undefined;
    const end = skipValue(s, i);
    const member = JSON.parse(s.slice(i, end));
    const start = skipWs(s, skipWs(s, end) + 1); // past ':'
    const valueEnd = skipValue(s, start);
    if (member === name) return s.slice(start, valueEnd);
    i = skipWs(s, valueEnd) + 1; // past ','
  }
}

/** Throws invalid-input `bad-json` unless `doc` (Uint8Array) is one valid JSON document. */
export function validateJson(doc) {
  parse(doc);
}

/** The top-level member `name` of `doc` when it is a string (its contents) or a number (its text
 * as written); undefined when absent, of another type, or the document is not an object. With
 * duplicate names the first wins. Throws bad-json. */
export function jsonKey(doc, name) {
  const [text, v] = parse(doc);
  if (v === null || typeof v !== 'object' || Array.isArray(v) || !Object.hasOwn(v, name)) return undefined;
  const raw = firstMember(text, name);
  if (raw[0] === '"') return JSON.parse(raw);
  if (raw[0] === '-' || (raw[0] >= '0' && raw[0] <= '9')) return raw;
  return undefined;
}

/** The body of a JSON string literal for bytes `b` (UTF-8, invalid sequences replaced by U+FFFD
 * as Rust's from_utf8_lossy does), escaped as the Rust SDK escapes. */
export function escapeJson(b) {
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return JSON.stringify(lossy.decode(b)).slice(1, -1);
  }
  return bytesKey(b);
}

// --- records and outcomes -----------------------------------------------------------------------

/** The record key or, when the record has none, the JSON string/number member `keyField` of its
 * value (a number as written). Throws invalid-input `no-key` (or `bad-json`). */
export function recordKey(record, keyField) {
  if (record.key !== undefined) return record.key;
  if (keyField === undefined || record.value === undefined) {
    throw invalidInput('no-key', 'record has no key and no `key_field` value');
  }
  const k = jsonKey(record.value, keyField);
  if (k === undefined) throw invalidInput('no-key', `no string/number field \`${keyField}\``);
  return encoder.encode(k);
}

/** recordKey of each record, with the PluginError in place of a key that failed. */
export function keysOf(records, keyField) {
  return records.map((r) => {
    try {
      return recordKey(r, keyField);
    } catch (e) {
      if (e instanceof PluginError) return e;
      throw e;
    }
  });
}

/** The value of the first header named `name`. */
export function header(record, name) {
  const h = record.headers.find((x) => x.key === name);
  return h === undefined ? undefined : h.value;
}

const bytesOf = (v) => (typeof v === 'string' ? encoder.encode(v) : v);

/** A record to emit; absent key/timestamp (BigInt): the host keeps the input's. */
export function recordOut(value, { key, timestampMs, headers = [] } = {}) {
  return {
    key,
    value: bytesOf(value),
    headers: headers.map(([k, v]) => ({ key: k, value: bytesOf(v) })),
    timestampMs: timestampMs === undefined ? undefined : BigInt(timestampMs),
    output: undefined,
  };
}

export const emitOne = (value) => ({ tag: 'emit', val: [{ key: undefined, value: bytesOf(value), headers: [], timestampMs: undefined, output: undefined }] });
export const emit = (...records) => ({ tag: 'emit', val: records });
/** Re-emit the input unchanged (timestamp inherited). */
export const pass = (r) => ({ tag: 'emit', val: [{ key: r.key, value: r.value, headers: r.headers, timestampMs: undefined, output: undefined }] });
export const drop = () => ({ tag: 'drop' });
export const fail = (error) => ({ tag: 'fail', val: error.payload });

// --- log and metrics ----------------------------------------------------------------------------

/** level: 'trace' | 'debug' | 'info' | 'warn' | 'error'. */
export const log = (level, message) => rawLog(level, message);
export const counterAdd = (name, delta) => rawCounterAdd(name, BigInt(delta));
export const gaugeSet = (name, value) => rawGaugeSet(name, value);
export const histogramRecord = (name, value) => rawHistogramRecord(name, value);

// --- export -------------------------------------------------------------------------------------

/** The `processor` export for a plugin declared by `spec` (see the top of this file). */
export function exportProcessor(spec) {
  const info = {
    name: spec.name,
    version: spec.version,
    abi: ABI_VERSION,
    stateStores: spec.stateStores ?? [],
    stateFormats: Object.entries(spec.stateFormats ?? {}).map(([store, format]) => ({ store, format })),
  };
  let plugin; // what a successful init built

  const guarded = (call, f) => {
    try {
      return f();
    } catch (e) {
      if (!(e instanceof PluginError)) {
        rawLog('error', `${spec.name}: ${call} threw: ${e && e.stack ? `${e}\n${e.stack}` : e}`);
      }
      throw e;
    }
  };
  const notInitialized = (call) => internal('not-initialized', `${call} before a successful init`);

  return {
    describe: () => info,
    init(config) {
      plugin = undefined;
      plugin = guarded('init', () => spec.init(new Config(config)));
    },
    processBatch(ctx, records) {
      if (plugin === undefined) throw notInitialized('process-batch');
      return guarded('process-batch', () => plugin.processBatch(ctx, records));
    },
    onCheckpoint(ctx) {
      if (plugin === undefined) throw notInitialized('on-checkpoint');
      if (plugin.onCheckpoint) guarded('on-checkpoint', () => plugin.onCheckpoint(ctx));
    },
    // Called through `timerHandler` (timers.js) in a plugin of the world `timed-plugin`.
    onTimers(ctx, fired) {
      if (plugin === undefined) throw notInitialized('on-timers');
      if (!plugin.onTimers) throw internal('no-timer-handler', `${fired.length} timers fired but the plugin has no onTimers`);
      return guarded('on-timers', () => plugin.onTimers(ctx, fired));
    },
  };
}
