// The batch ABI of `arkflow:plugin@0.2.0` as plugin code sees it (the JavaScript twin of the Rust
// SDK's plugins/sdk/src/batch.rs).
//
// - `Batch`: the records of one call, a read-only view of the few buffers the host sent. Nothing is
//   decoded up front: `keys()` / `values()` cut a whole column into `subarray` views (no copy) the
//   first time they are asked for, and a `Record` (`batch.get(i)`, iterating, `batch.map(...)`) is
//   a view of index `i` that reads them.
// - `records.fields()`: the fields declared with `declareFields` (fields.js), decoded by the host
//   for every record of the batch (one host call, made on the first ask).
// - Outcomes: `processBatch` returns either an array with one outcome per input, in order, or an
//   `Outcomes` builder. An outcome is a string / Uint8Array value (what `emitOne` returns: one
//   record with the input's key and timestamp), `undefined` (`drop()`), a `PluginError`
//   (`fail(e)`), or an `Emit` (`emit(...)` / `pass(r)`: records made by `recordOut`). An array of
//   only values goes back as one buffer plus its ends with no per-record list (the empty-`sources`
//   fast path; strings are joined and encoded once); anything else goes through `Outcomes`, which
//   fills the sparse lists (`sources`, keys, timestamps, headers, outputs, `failed`) only where a
//   record needs them.
// - Hot paths use indexed loops: for-of and spreads go through the iterator protocol, which costs
//   about a microsecond per item in the component's interpreter.
// - `Outcomes` contract (the Rust SDK's): address inputs in ascending order (several emits of one
//   input in a row are fine); an input with no call is dropped; out of order, or emitting and
//   failing the same input, fails the call with `internal` `outcomes-out-of-order` /
//   `outcomes-mixed`.
import { PluginError, internal } from './errors.js';
import { Fields } from './fields.js';

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
const emptyColumn = () => ({ data: EMPTY, ends: new Uint32Array(0), valid: EMPTY });
export const bytesOf = (v) => (typeof v === 'string' ? encoder.encode(v) : v);

// --- columns ------------------------------------------------------------------------------------

/** The `n` items of a column: Uint8Array views of its data, undefined where absent. */
export function items(col, n) {
  const { data, ends, valid } = col;
  const out = new Array(n);
  let start = 0;
  if (valid.length === 0) {
    for (let i = 0; i < n; i++) {
      const end = ends[i];
      out[i] = data.subarray(start, end);
      start = end;
    }
  } else { // no view for an absent item (a batch without record keys is common)
    for (let i = 0; i < n; i++) {
      const end = ends[i];
      out[i] = (valid[i >> 3] & (1 << (i & 7))) !== 0 ? data.subarray(start, end) : undefined;
      start = end;
    }
  }
  return out;
}

/** A column of `values` (Uint8Arrays, undefined for absent items). */
export function column(values) {
  const n = values.length;
  const ends = new Uint32Array(n);
  let size = 0;
  let absent = false;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === undefined) absent = true;
    else size += v.length;
    ends[i] = size;
  }
  const data = new Uint8Array(size);
  let at = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v !== undefined && v.length > 0) {
      data.set(v, at);
      at += v.length;
    }
  }
  let valid = EMPTY;
  if (absent) {
    valid = new Uint8Array((n + 7) >> 3);
    for (let i = 0; i < n; i++) if (values[i] !== undefined) valid[i >> 3] |= 1 << (i & 7);
  }
  return { data, ends, valid };
}

/** A column of strings, UTF-8: one encode of the joined text when it is ASCII. */
export function textColumn(values) {
  const n = values.length;
  const ends = new Uint32Array(n);
  let size = 0;
  for (let i = 0; i < n; i++) {
    size += values[i].length;
    ends[i] = size;
  }
  const data = encoder.encode(values.join(''));
  if (data.length === size) return { data, ends, valid: EMPTY };
  return column(values.map((v) => encoder.encode(v)));
}

// --- records ------------------------------------------------------------------------------------

/** The records of one call (see the top of this file). */
export class Batch {
  constructor(raw) {
    this.raw = raw;
    this.length = raw.timestamps.length;
    this._keys = undefined;
    this._values = undefined;
    this._headers = undefined;
    this._fields = undefined;
  }

  /** A batch of `{ key, value, timestampMs, headers: [[name, value]] }` (tests of plugin code);
   * `fields`: what `fields()` returns (a `Fields.fromRaw(...)`) instead of asking the host. */
  static of(records, { fields } = {}) {
    const headers = [];
    records.forEach((r, i) => (r.headers ?? []).forEach(([k, v]) => headers.push([i, { key: k, value: bytesOf(v) }])));
    const batch = new Batch({
      keys: column(records.map((r) => bytesOf(r.key))),
      values: column(records.map((r) => bytesOf(r.value))),
      timestamps: BigInt64Array.from(records, (r) => BigInt(r.timestampMs ?? 0)),
      partitions: new Uint32Array(records.length),
      offsets: new BigUint64Array(records.length),
      headers,
    });
    batch._fields = fields;
    return batch;
  }

  /** The fields declared with `declareFields` (fields.js), decoded by the host for every record
   * of this batch: a `Fields`. The first call asks the host (`internal` / `fields` when it
   * refuses, e.g. nothing was declared); later calls return the same object. */
  fields() {
    if (this._fields === undefined) this._fields = Fields.fetch();
    return this._fields;
  }

  /** Every record's key (undefined when absent), as views cut once. */
  keys() {
    if (this._keys === undefined) this._keys = items(this.raw.keys, this.length);
    return this._keys;
  }

  /** Every record's value (undefined for tombstones), as views cut once. */
  values() {
    if (this._values === undefined) this._values = items(this.raw.values, this.length);
    return this._values;
  }

  headersOf(i) {
    if (this._headers === undefined) {
      this._headers = new Map();
      const list = this.raw.headers;
      for (let i = 0; i < list.length; i++) {
        const [at, h] = list[i];
        if (!this._headers.has(at)) this._headers.set(at, []);
        this._headers.get(at).push(h);
      }
    }
    return this._headers.get(i) ?? [];
  }

  get(i) { return new Record(this, i); }
  *[Symbol.iterator]() { for (let i = 0; i < this.length; i++) yield new Record(this, i); }
  map(f) {
    const out = new Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = f(new Record(this, i), i);
    return out;
  }
  forEach(f) { for (let i = 0; i < this.length; i++) f(new Record(this, i), i); }
}

/** Record `index` of a Batch: `key`, `value` (Uint8Array or undefined), `timestampMs`, `offset`
 * (BigInt, as the bindings give s64/u64), `partition`, `headers` ([{ key, value }]). */
export class Record {
  constructor(batch, index) {
    this.batch = batch;
    this.index = index;
  }
  get key() { return this.batch.keys()[this.index]; }
  get value() { return this.batch.values()[this.index]; }
  get timestampMs() { return this.batch.raw.timestamps[this.index]; }
  get partition() { return this.batch.raw.partitions[this.index]; }
  get offset() { return this.batch.raw.offsets[this.index]; }
  get headers() { return this.batch.headersOf(this.index); }
  /** The value of the first header named `name`. */
  header(name) {
    const h = this.headers.find((x) => x.key === name);
    return h === undefined ? undefined : h.value;
  }
}

// --- outcomes -----------------------------------------------------------------------------------

/** The outcome "emit these records" (made by `recordOut`). */
export class Emit {
  constructor(records) { this.records = records; }
}

/** What the inputs of one call became (see the top of this file). */
export class Outcomes {
  constructor() {
    this.values = [];
    this.sources = [];
    this.keys = undefined; // once a record sets its key
    this.timestamps = [];
    this.headers = [];
    this.outputs = [];
    this.failed = [];
    this.last = -1;
    this.lastEmitted = false;
    this.misuse = undefined;
  }

  address(i, emits) {
    let err;
    if (i < this.last) err = ['outcomes-out-of-order', `input ${i} addressed after input ${this.last}`];
    else if (i === this.last && this.lastEmitted !== emits) err = ['outcomes-mixed', `input ${i} both emitted records and failed`];
    else if (i === this.last && !emits) err = ['outcomes-mixed', `input ${i} failed twice`];
    if (err !== undefined) {
      this.misuse ??= internal(...err);
      return false;
    }
    this.last = i;
    this.lastEmitted = emits;
    return true;
  }

  /** Emits, for input `i`, one record with `value` (the input's key and timestamp). */
  emit(i, value) {
    if (this.address(i, true)) {
      this.values.push(bytesOf(value));
      this.sources.push(i);
    }
  }

  /** Emits a record made by `recordOut` for input `i`. */
  emitRecord(i, r) {
    if (!this.address(i, true)) return;
    const j = this.values.length;
    this.values.push(r.value);
    this.sources.push(i);
    if (r.key !== undefined) {
      this.keys ??= new Array(j).fill(undefined);
      this.keys.push(r.key);
    } else if (this.keys !== undefined) {
      this.keys.push(undefined);
    }
    if (r.timestampMs !== undefined) this.timestamps.push([j, r.timestampMs]);
    for (let k = 0; k < r.headers.length; k++) this.headers.push([j, r.headers[k]]);
    if (r.output !== undefined) this.outputs.push([j, r.output]);
  }

  /** Input `i` failed: the host sends it, with `error`, to the stream's `error_output`. */
  fail(i, error) {
    if (this.address(i, false)) this.failed.push([i, error.payload]);
  }

  /** The WIT value for a call with `inputs` inputs; throws on misuse (see the top of this file). */
  finish(inputs) {
    if (this.misuse !== undefined) throw this.misuse;
    const m = this.values.length;
    let oneEach = m === inputs;
    for (let j = 0; oneEach && j < m; j++) oneEach = this.sources[j] === j;
    if (this.keys !== undefined) while (this.keys.length < m) this.keys.push(undefined);
    return {
      values: column(this.values),
      sources: oneEach ? new Uint32Array(0) : u32s(this.sources),
      keys: this.keys === undefined ? emptyColumn() : column(this.keys),
      timestamps: this.timestamps,
      headers: this.headers,
      outputs: this.outputs,
      failed: this.failed,
    };
  }
}

function u32s(list) {
  const out = new Uint32Array(list.length);
  for (let i = 0; i < list.length; i++) out[i] = list[i];
  return out;
}

const fastPath = (values) => ({
  values, sources: new Uint32Array(0), keys: emptyColumn(), timestamps: [], headers: [], outputs: [], failed: [],
});

/** What `processBatch` / `onTimers` returned (an Outcomes, or one outcome per input) as the WIT
 * value. */
export function toWit(result, inputs, what) {
  if (result instanceof Outcomes) return result.finish(inputs);
  if (result.length !== inputs) {
    throw internal('wrong-outcome-count', `${what} returned ${result.length} outcomes for ${inputs} inputs`);
  }
  let strings = 0;
  let bytes = 0;
  for (let i = 0; i < inputs; i++) {
    const o = result[i];
    if (typeof o === 'string') strings++;
    else if (ArrayBuffer.isView(o)) bytes++;
    else break;
  }
  if (strings === inputs) return fastPath(textColumn(result));
  if (bytes === inputs) return fastPath(column(result));
  const out = new Outcomes();
  for (let i = 0; i < inputs; i++) {
    const o = result[i];
    if (o === undefined) continue;
    if (typeof o === 'string' || ArrayBuffer.isView(o)) out.emit(i, o);
    else if (o instanceof PluginError) out.fail(i, o);
    else if (o instanceof Emit) for (let k = 0; k < o.records.length; k++) out.emitRecord(i, o.records[k]);
    else throw internal('bad-outcome', `${what}: outcome ${i} is not a value, undefined, a PluginError or an Emit`);
  }
  return out.finish(inputs);
}
