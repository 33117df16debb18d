// ArkFlow plugin SDK for JavaScript (componentize-js), on the batch ABI `arkflow:plugin@0.2.0`. A
// plugin is an ES module that exports the object `exportProcessor` returns, under the name
// `processor`:
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
// `records` is a `Batch` (batch.js: a view of the host's buffers, nothing decoded until touched;
// `length`, `get(i)`, iteration, `map`, `keys()`, `values()`). `processBatch` (and `onTimers`)
// return one outcome per input (`emitOne(value)`, `emit(...)`, `pass(r)`, `drop()`, `fail(e)`) or
// an `Outcomes` builder; values cross back as one buffer (batch.js). State: state.js (`Store`,
// `StateCache` over `get-column` / `put-column`). Typed fields: fields.js (`declareFields` in
// init, then `records.fields()` per batch: columns the host decoded from the JSON values).
//
// Contract (the Rust SDK's, see plugins/README.md):
// - describe() comes from exportProcessor's fields (abi = ABI_VERSION, "0.2.0"; `keyBy`: see
//   `info.key-by` in wit/plugin.wit). Calls before a successful init fail with `internal` /
//   `not-initialized`.
// - Throw a PluginError to fail the call (init: the plugin is refused; processBatch: the whole
//   batch fails). Any other exception is logged at level error through the host's log, then
//   thrown on, which traps the instance (the host re-instantiates and retries).
// - State calls throw a PluginError of class `state` whose code is the `state-error` case's WIT
//   name, with the Rust SDK's message (`StateError::QuotaExceeded("...")`).
// - Counters are 8-byte little-endian i64s that wrap on overflow, like the host's `increment`;
//   they are Numbers while safe integers and BigInts beyond.
// Binding conventions (componentize-js): list<u8> is Uint8Array, s64/u64 are BigInt, absent
// options are `undefined`, variants are `{ tag, val }`, enums are their WIT names.
import { log as rawLog } from 'arkflow:plugin/log@0.2.0';
import { counterAdd as rawCounterAdd, gaugeSet as rawGaugeSet, histogramRecord as rawHistogramRecord } from 'arkflow:plugin/metrics@0.2.0';
import { PluginError, configError, internal, invalidInput } from './errors.js';
import { Batch, Emit, bytesOf, toWit } from './batch.js';
import { jsonKey } from './json.js';

export * from './errors.js';
export { Batch, Record, Emit, Outcomes, toWit } from './batch.js';
export { Store, StateCache, decodeI64, encodeI64 } from './state.js';
export { FieldType, Fields, declareFields, Int64Column, Float64Column, BooleanColumn, Utf8Column } from './fields.js';
export { JSON_MAX_DEPTH, bytesKey, escapeJson, jsonKey, validateJson } from './json.js';

export const ABI_VERSION = '0.2.0';

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

// --- records and outcomes -----------------------------------------------------------------------

const encoder = new TextEncoder();

function keyFromValue(value, keyField) {
  if (keyField === undefined || value === undefined) {
    throw invalidInput('no-key', 'record has no key and no `key_field` value');
  }
  const k = jsonKey(value, keyField);
  if (k === undefined) throw invalidInput('no-key', `no string/number field \`${keyField}\``);
  return encoder.encode(k);
}

/** The record key or, when the record has none, the JSON string/number member `keyField` of its
 * value (a number as written). Throws invalid-input `no-key` (or `bad-json`). */
export function recordKey(record, keyField) {
  const key = record.key;
  return key !== undefined ? key : keyFromValue(record.value, keyField);
}

/** recordKey of each record, with the PluginError in place of a key that failed. On a Batch the
 * keys column is cut once and values are read only for records without a key. */
export function keysOf(records, keyField) {
  const isBatch = records instanceof Batch;
  const keys = isBatch ? records.keys().slice() : Array.from(records, (r) => r.key);
  for (let i = 0; i < keys.length; i++) {
    if (keys[i] !== undefined) continue;
    try {
      keys[i] = keyFromValue(isBatch ? records.values()[i] : records[i].value, keyField);
    } catch (e) {
      if (!(e instanceof PluginError)) throw e;
      keys[i] = e;
    }
  }
  return keys;
}

/** The value of the first header named `name`. */
export const header = (record, name) => record.header(name);

/** A record to emit; absent key/timestamp (Number or BigInt): the host keeps the input's; `output`:
 * a named output of the stream to send it to instead of the next stage. */
export function recordOut(value, { key, timestampMs, headers = [], output } = {}) {
  return {
    key,
    value: bytesOf(value),
    headers: headers.map(([k, v]) => ({ key: k, value: bytesOf(v) })),
    timestampMs: timestampMs === undefined ? undefined : BigInt(timestampMs),
    output,
  };
}

/** Emit one record with `value` (the input's key and timestamp): the outcome is the value itself
 * (undefined, a tombstone, becomes an Emit). */
export const emitOne = (value) => (value !== undefined ? value : new Emit([recordOut(undefined)]));
export const emit = (...records) => new Emit(records);
/** Re-emit the input unchanged (key, timestamp and headers kept). */
export const pass = (r) => new Emit([{ key: undefined, value: r.value, headers: r.headers, timestampMs: undefined, output: undefined }]);
export const drop = () => undefined;
export const fail = (error) => error;

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
    keyBy: spec.keyBy,
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
      const batch = new Batch(records);
      return guarded('process-batch', () => toWit(plugin.processBatch(ctx, batch), batch.length, 'processBatch'));
    },
    onCheckpoint(ctx) {
      if (plugin === undefined) throw notInitialized('on-checkpoint');
      if (plugin.onCheckpoint) guarded('on-checkpoint', () => plugin.onCheckpoint(ctx));
    },
    // Called through `timerHandler` (timers.js) in a plugin of the world `timed-plugin`.
    onTimers(ctx, fired) {
      if (plugin === undefined) throw notInitialized('on-timers');
      if (!plugin.onTimers) throw internal('no-timer-handler', `${fired.length} timers fired but the plugin has no onTimers`);
      return guarded('on-timers', () => toWit(plugin.onTimers(ctx, fired), fired.length, 'onTimers'));
    },
  };
}
