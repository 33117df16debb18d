// Typed fields decoded by the host (the `arkflow:plugin/fields` import; the JavaScript twin of the
// Rust SDK's plugins/sdk/src/fields.rs): declare the top-level JSON fields the plugin reads once,
// in init (`declareFields`), then read them per batch as typed columns (`records.fields()`): the
// host decodes the JSON, so no JSON is parsed in the guest.
//
//   init(config) {
//     ak.declareFields([['user', 'utf8'], ['temp', 'float64']]); // or { user: 'utf8', temp: 'float64' }
//     return { processBatch(ctx, records) {
//       const f = records.fields();                 // one host call per batch
//       const users = f.str('user'), temps = f.f64('temp');
//       for (let i = 0; i < records.length; i++) {
//         const why = f.mismatch(i);                // the host's reason, or undefined
//         const user = users.get(i);                // string | undefined (users.bytes(i): a view)
//         ...
//
// Contract (the Rust SDK's):
// - Types are the WIT `field-type` names: 'boolean', 'int64', 'float64', 'utf8' (also as
//   `FieldType.BOOLEAN` ...). `declareFields` replaces any earlier declaration; the host checks it
//   (at most 64 fields, names non-empty and unique) and its error, or an unknown type, is a
//   PluginError `config` / `bad-fields` (thrown from init, it refuses the plugin).
// - `Fields` holds one column per declared field, indexed by record. `get(i)` is undefined where
//   record `i` lacks the field, holds `null`, has no value, or is in `mismatched()` (its value is
//   not a JSON object, or a declared field holds another type: the host's reason names the field).
// - Columns are looked up by name (`i64`, `f64`, `bool`, `str`); a name that was not declared
//   with that type is `internal` / `undeclared-field`. Look a column up once per batch, then call
//   `get(i)` per record: the views read the buffers the bindings lifted (no copy), and only
//   `Utf8Column.get` allocates (the decoded string; `bytes(i)` is a subarray).
// - int64 values are Numbers while safe integers and BigInts beyond (like counters, state.js);
//   `values` is the raw BigInt64Array.
import { columns as rawColumns, declare as rawDeclare } from 'arkflow:plugin/fields@0.2.0';
import { configError, internal } from './errors.js';

export const FieldType = Object.freeze({ BOOLEAN: 'boolean', INT64: 'int64', FLOAT64: 'float64', UTF8: 'utf8' });
const TYPES = ['boolean', 'int64', 'float64', 'utf8'];

// The declaration in force, as the host got it: [[name, type]] (column j is field j).
let declared = [];

const TWO32 = 4294967296;
// ignoreBOM: a leading U+FEFF is part of the string, not a byte-order mark to drop.
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });

const entriesOf = (fields) => (Array.isArray(fields) ? fields : Object.entries(fields));

/** Declares the fields `records.fields()` returns, replacing an earlier declaration: `fields` is
 * `[[name, type]]` or `{ name: type }` (types: see the top of this file). Call it in init. Throws
 * `config` / `bad-fields` with the host's message. */
export function declareFields(fields) {
  const list = entriesOf(fields);
  const wit = new Array(list.length);
  const names = new Array(list.length);
  for (let j = 0; j < list.length; j++) {
    const [name, type] = list[j];
    if (!TYPES.includes(type)) {
      throw configError('bad-fields', `field \`${name}\`: type \`${type}\` is not boolean, int64, float64 or utf8`);
    }
    wit[j] = { name: String(name), type };
    names[j] = [String(name), type];
  }
  try {
    rawDeclare(wit);
  } catch (e) {
    // The bindings throw an import's `err` (here the host's message) as an Error with `payload`.
    if (e && typeof e.payload === 'string') throw configError('bad-fields', e.payload);
    throw e;
  }
  declared = names;
}

/** An int64 column: `get(i)` is a Number (a BigInt beyond the safe integers) or undefined. */
export class Int64Column {
  constructor(valid, values) {
    this.valid = valid;
    this.values = values; // BigInt64Array
    // The same bytes as 32-bit words: reading a BigInt64Array makes a BigInt per item, slow in
    // the interpreter.
    this.words = new Int32Array(values.buffer, values.byteOffset, values.length * 2);
  }
  has(i) { return (this.valid[i >> 3] & (1 << (i & 7))) !== 0; }
  get(i) {
    if ((this.valid[i >> 3] & (1 << (i & 7))) === 0) return undefined;
    const w = this.words;
    const hi = w[2 * i + 1];
    if (hi >= -2097152 && hi < 2097152) { // -2^53 <= n < 2^53
      const n = hi * TWO32 + (w[2 * i] >>> 0);
      if (n !== -9007199254740992) return n;
    }
    return this.values[i];
  }
}

/** A float64 column: `get(i)` is a Number or undefined. */
export class Float64Column {
  constructor(valid, values) {
    this.valid = valid;
    this.values = values; // Float64Array
  }
  has(i) { return (this.valid[i >> 3] & (1 << (i & 7))) !== 0; }
  get(i) { return (this.valid[i >> 3] & (1 << (i & 7))) !== 0 ? this.values[i] : undefined; }
}

/** A boolean column (`values` is a bitmap): `get(i)` is true, false or undefined. */
export class BooleanColumn {
  constructor(valid, values) {
    this.valid = valid;
    this.values = values;
  }
  has(i) { return (this.valid[i >> 3] & (1 << (i & 7))) !== 0; }
  get(i) {
    if ((this.valid[i >> 3] & (1 << (i & 7))) === 0) return undefined;
    return (this.values[i >> 3] & (1 << (i & 7))) !== 0;
  }
}

/** A UTF-8 column in Arrow's layout (item i is `data[ends[i-1] .. ends[i]]`): `get(i)` is the
 * string, `bytes(i)` a Uint8Array view of its bytes (no copy), undefined where absent. */
export class Utf8Column {
  constructor(valid, data, ends) {
    this.valid = valid;
    this.data = data;
    this.ends = ends; // Uint32Array
  }
  has(i) { return (this.valid[i >> 3] & (1 << (i & 7))) !== 0; }
  bytes(i) {
    if ((this.valid[i >> 3] & (1 << (i & 7))) === 0) return undefined;
    return this.data.subarray(i === 0 ? 0 : this.ends[i - 1], this.ends[i]);
  }
  get(i) {
    if ((this.valid[i >> 3] & (1 << (i & 7))) === 0) return undefined;
    return decoder.decode(this.data.subarray(i === 0 ? 0 : this.ends[i - 1], this.ends[i]));
  }
  /** bytes(i) of every record, in one pass. */
  allBytes() {
    const { valid, data, ends } = this;
    const n = ends.length;
    const out = new Array(n);
    let start = 0;
    for (let i = 0; i < n; i++) {
      const end = ends[i];
      out[i] = (valid[i >> 3] & (1 << (i & 7))) !== 0 ? data.subarray(start, end) : undefined;
      start = end;
    }
    return out;
  }
}

function undeclared(name, type) {
  return internal('undeclared-field', `field \`${name}\` was not declared as ${type} (declareFields)`);
}

/** The declared fields of one batch (`records.fields()`; see the top of this file). */
export class Fields {
  /** `raw`: the WIT `decoded` (`{ columns: [{ valid, values: { tag, val } }], mismatched }`) the
   * host returned for the fields `names` ([[name, type]]); made by `records.fields()`, or
   * directly in unit tests of plugin code (pass it to `Batch.of(records, { fields })`). */
  constructor(raw, names = declared) {
    this.raw = raw;
    this.names = names;
    this.views = new Map(); // `${type}:${name}` -> column view, made on first use
  }

  static fromRaw(raw, names) { return new Fields(raw, entriesOf(names)); }

  /** Asks the host for the running process-batch call's fields (`internal` / `fields` on error). */
  static fetch() {
    let raw;
    try {
      raw = rawColumns();
    } catch (e) {
      if (e && typeof e.payload === 'string') throw internal('fields', e.payload);
      throw e;
    }
    return new Fields(raw, declared);
  }

  column(name, type) {
    const id = `${type}:${name}`;
    let view = this.views.get(id);
    if (view !== undefined) return view;
    const names = this.names;
    let j = 0;
    while (j < names.length && !(names[j][0] === name && names[j][1] === type)) j++;
    const c = this.raw.columns[j];
    if (j === names.length || c === undefined || c.values.tag !== type) throw undeclared(name, type);
    const v = c.values.val;
    if (type === 'int64') view = new Int64Column(c.valid, v);
    else if (type === 'float64') view = new Float64Column(c.valid, v);
    else if (type === 'boolean') view = new BooleanColumn(c.valid, v);
    else view = new Utf8Column(c.valid, v.data, v.ends);
    this.views.set(id, view);
    return view;
  }

  /** The int64 column of the field `name` (an Int64Column). */
  i64(name) { return this.column(name, 'int64'); }
  /** The float64 column of the field `name` (a Float64Column). */
  f64(name) { return this.column(name, 'float64'); }
  /** The boolean column of the field `name` (a BooleanColumn). */
  bool(name) { return this.column(name, 'boolean'); }
  /** The utf8 column of the field `name` (a Utf8Column). */
  str(name) { return this.column(name, 'utf8'); }

  /** [[record index, reason]] of the records whose value did not fit the declaration, ascending. */
  mismatched() { return this.raw.mismatched; }

  /** The reason record `i` did not fit the declaration, or undefined. */
  mismatch(i) {
    const m = this.raw.mismatched;
    let lo = 0;
    let hi = m.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const at = m[mid][0];
      if (at === i) return m[mid][1];
      if (at < i) lo = mid + 1;
      else hi = mid;
    }
    return undefined;
  }
}
