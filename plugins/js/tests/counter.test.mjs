// The counter contract suite, run by plugins/js/test.sh with node's test runner; the WIT imports
// resolve to the in-memory fakes of fake-wit.mjs. By default it tests the JavaScript counter
// (plugins/js/counter + sdk) natively; with ARKFLOW_COUNTER_MODULE set it tests a built component
// transpiled by jco -- counter_js.wasm or counter_python.wasm, which have the same contract. The
// binding conventions are the same on both sides: s64/u64 are BigInt, absent options undefined,
// `err` results are thrown as an Error whose `payload` is the error. Batches cross as the 0.2.0
// `batch` / `outcomes` records (columns of bytes: data, ends, valid); `run` turns the outcomes back
// into one `{ tag, val }` per input for the assertions. JSON answers are checked against the Rust
// SDK's (plugins/python/tests/json_cases.json).
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const target = process.env.ARKFLOW_COUNTER_MODULE;
const { processor } = await import(target ? new URL(target, `file://${process.cwd()}/`).href : '../counter/app.js');
const COMPONENT = Boolean(target);
const JSON_CASES = JSON.parse(readFileSync(new URL('../../python/tests/json_cases.json', import.meta.url))).cases;

const enc = new TextEncoder();
const dec = new TextDecoder();
const bytes = (s) => (typeof s === 'string' ? enc.encode(s) : Uint8Array.from(s));
const i64 = (n) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigInt64(0, BigInt(n), true);
  return b;
};
const hex = (b) => Buffer.from(b).toString('hex');

/** The items of a column (Uint8Array, undefined where absent). */
const items = ({ data, ends, valid }) => Array.from(ends, (end, i) => {
  if (valid.length > 0 && (valid[i >> 3] & (1 << (i & 7))) === 0) return undefined;
  return data.slice(i === 0 ? 0 : ends[i - 1], end);
});
/** A column of byte strings (undefined: absent). */
const column = (list) => {
  const ends = new Uint32Array(list.length);
  const valid = new Uint8Array((list.length + 7) >> 3);
  let size = 0;
  list.forEach((b, i) => {
    if (b !== undefined) {
      size += b.length;
      valid[i >> 3] |= 1 << (i & 7);
    }
    ends[i] = size;
  });
  const data = new Uint8Array(size);
  let at = 0;
  for (const b of list) if (b !== undefined) data.set(b, (at += b.length) - b.length);
  return { data, ends, valid: list.includes(undefined) ? valid : new Uint8Array(0) };
};

class FakeStore {
  constructor() {
    this.data = new Map(); // hex(key) -> value
    this.calls = [];
    this.failWith = undefined;
  }
  getColumn(keys) {
    keys = items(keys);
    this.calls.push(['get-column', keys.map((k) => dec.decode(k))]);
    if (this.failWith) throw Object.assign(new Error('state error'), { payload: this.failWith });
    return column(keys.map((k) => this.data.get(hex(k))));
  }
  putColumn(keys, values) {
    const entries = items(keys).map((k, i) => [k, items(values)[i]]);
    this.calls.push(['put-column', entries.map(([k, v]) => [dec.decode(k), hex(v)])]);
    for (const [k, v] of entries) this.data.set(hex(k), v);
  }
}

/** The host's side of `fields.columns` for the JSON `values` (Uint8Array or undefined) of a batch
 * and the declared [[name, type]]: typed columns, and the records that do not fit (reasons in the
 * host's style; the counter passes them through). */
const FIELD_TYPE = { boolean: 'boolean', int64: 'number', float64: 'number', utf8: 'string' };
function decodeFields(values, declared) {
  const n = values.length;
  const got = declared.map(() => new Array(n).fill(undefined));
  const mismatched = [];
  values.forEach((v, i) => {
    if (v === undefined) return;
    let doc;
    try {
      doc = JSON.parse(dec.decode(v));
    } catch {
      doc = undefined;
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
      mismatched.push([i, 'invalid type: expected a JSON object']);
      return;
    }
    const row = [];
    for (const [name, type] of declared) {
      const x = Object.hasOwn(doc, name) ? doc[name] : null;
      if (x !== null && (typeof x !== FIELD_TYPE[type] || (type === 'int64' && !Number.isInteger(x)))) {
        mismatched.push([i, `field \`${name}\`: a ${Array.isArray(x) ? 'sequence' : typeof x} where ${type} was declared`]);
        return;
      }
      row.push(x);
    }
    row.forEach((x, j) => (got[j][i] = x === null ? undefined : x));
  });
  const columns = declared.map(([, type], j) => {
    const list = got[j];
    const valid = new Uint8Array(Math.max(1, (n + 7) >> 3));
    list.forEach((x, i) => x !== undefined && (valid[i >> 3] |= 1 << (i & 7)));
    let val;
    if (type === 'utf8') val = column(list.map((x) => (x === undefined ? bytes('') : bytes(x))));
    else if (type === 'int64') val = BigInt64Array.from(list, (x) => BigInt(x ?? 0));
    else if (type === 'float64') val = Float64Array.from(list, (x) => x ?? 0);
    else {
      val = new Uint8Array(valid.length);
      list.forEach((x, i) => x && (val[i >> 3] |= 1 << (i & 7)));
    }
    return { valid, values: { tag: type, val } };
  });
  return { columns, mismatched };
}

let store;
let logged;
let host; // the fields import: what was declared, the running batch's values, calls to columns
beforeEach(() => {
  store = new FakeStore();
  logged = [];
  host = { declared: undefined, values: undefined, columnsCalls: 0 };
  globalThis.arkflowFake = {
    open: (name) => {
      assert.equal(name, 'default');
      return store;
    },
    log: (level, message) => logged.push([level, message]),
    declare: (fields) => {
      host.declared = fields.map((f) => [f.name, f.type]);
    },
    columns: () => {
      host.columnsCalls++;
      if (host.declared === undefined) throw Object.assign(new Error('fields'), { payload: 'fields.columns: no fields declared' });
      return decodeFields(host.values, host.declared);
    },
  };
});

const init = (config = {}) => processor.init(Object.entries(config));
const rec = (key, value) => ({ key: key === undefined ? undefined : bytes(key), value: value === undefined ? undefined : bytes(value) });
const batch = (records) => ({
  keys: column(records.map((r) => r.key)),
  values: column(records.map((r) => r.value)),
  timestamps: BigInt64Array.from(records, () => 1700000000000n),
  partitions: new Uint32Array(records.length),
  offsets: new BigUint64Array(records.length),
  headers: [],
});
const CTX = { batchId: 1n, keyGroup: 0, partition: 0, attempt: 0, checkpointEpoch: 1n };
/** The raw outcomes of a batch of `records`. */
const runRaw = (records) => {
  host.values = records.map((r) => r.value);
  return processor.processBatch(CTX, batch(records));
};
/** One `{ tag: 'emit', val: [record] }` / `{ tag: 'fail', val: error }` / `{ tag: 'drop' }` per input. */
const run = (records) => {
  const o = runRaw(records);
  const list = records.map(() => ({ tag: 'drop' }));
  const sources = Array.from(o.sources);
  items(o.values).forEach((value, j) => {
    const i = sources.length ? sources[j] : j;
    if (list[i].tag !== 'emit') list[i] = { tag: 'emit', val: [] };
    list[i].val.push({ value, key: o.keys.ends.length ? items(o.keys)[j] : undefined });
  });
  for (const [i, error] of o.failed) list[i] = { tag: 'fail', val: error };
  return list;
};
const values = (outcomes) => outcomes.map((o) => (o.tag === 'emit' ? dec.decode(o.val[0].value) : o.val));

test('describe', () => {
  assert.deepEqual(processor.describe(), {
    name: 'counter', version: '0.1.0', abi: '0.2.0',
    stateStores: ['default'], stateFormats: [{ store: 'default', format: 'i64' }], keyBy: undefined,
  });
});

test('counts per key with one get-column and one put-column', () => {
  init();
  store.data.set(hex(bytes('b')), i64(41));
  const o = runRaw([rec('a'), rec('b'), rec('a')]);
  assert.deepEqual(items(o.values).map((v) => dec.decode(v)), ['{"key":"a","count":1}', '{"key":"b","count":42}', '{"key":"a","count":2}']);
  assert.deepEqual(store.calls, [
    ['get-column', ['a', 'b']],
    ['put-column', [['a', hex(i64(2))], ['b', hex(i64(42))]]],
  ]);
  // The fast path: one value per input, no per-record list; key and timestamp inherited.
  assert.deepEqual([Array.from(o.values.ends), o.values.valid.length, o.sources.length, o.keys.ends.length],
    [[21, 43, 64], 0, 0, 0]);
  assert.deepEqual([o.timestamps, o.headers, o.outputs, o.failed], [[], [], [], []]);
});

test('a failed record takes the sources path', () => {
  init();
  const o = runRaw([rec('a'), rec(), rec('a')]);
  assert.deepEqual([Array.from(o.sources), o.failed.map(([i]) => i)], [[0, 2], [1]]);
  assert.deepEqual(values(run([rec('b'), rec(), rec('b')])), ['{"key":"b","count":1}', o.failed[0][1], '{"key":"b","count":2}']);
});

test("wraps like the host's increment", () => {
  init();
  store.data.set(hex(bytes('k')), i64(2n ** 63n - 1n));
  assert.deepEqual(values(run([rec('k')])), ['{"key":"k","count":-9223372036854775808}']);
});

test('a value that is not a counter fails its records only', () => {
  init();
  store.data.set(hex(bytes('bad')), bytes('xyz'));
  const out = run([rec('bad'), rec('ok'), rec('bad')]);
  for (const o of [out[0], out[2]]) {
    assert.deepEqual(o, { tag: 'fail', val: { class: 'state', code: 'not-a-counter', message: 'StateError::NotACounter' } });
  }
  assert.deepEqual(values([out[1]]), ['{"key":"ok","count":1}']);
  assert.equal(dec.decode(store.data.get(hex(bytes('bad')))), 'xyz');
});

test('key_field fallback', () => {
  init({ key_field: 'user' });
  const docs = ['{"user":"a"}', '{"user":1.50e3}', '{"user":-0}', '{"user":"x","user":"y"}',
    '{"other":[1,{"user":"n"}], "user" : "\\u00e9\\ud83d\\ude00"}', '{"u\\u0073er":"esc"}',
    '{"a":"}\\"{","user":"after"}', ' {"user" :\t2 } ', '{"user":"a\\"b"}', '{"__proto__":1,"user":"p"}'];
  assert.deepEqual(values(run(docs.map((d) => rec(undefined, d)))), [
    '{"key":"a","count":1}', '{"key":"1.50e3","count":1}', '{"key":"-0","count":1}',
    '{"key":"x","count":1}', '{"key":"é😀","count":1}', '{"key":"esc","count":1}',
    '{"key":"after","count":1}', '{"key":"2","count":1}', '{"key":"a\\"b","count":1}', '{"key":"p","count":1}']);
});

test('no key', () => {
  init({ key_field: 'user' });
  for (const v of [undefined, '{"user":null}', '{"user":{"a":1}}', '[1]', '"s"', '{"other":"a"}',
    '{"a":{"user":"x"}}', '{"user":true}', '{"user":[1]}']) {
    const [o] = run([rec(undefined, v)]);
    assert.equal(o.tag, 'fail', v);
    assert.deepEqual([o.val.class, o.val.code], ['invalid-input', 'no-key'], v);
  }
  processor.init([['key_field', 'nope'], ['key_field', 'user']]); // the last occurrence wins
  assert.equal(values(run([rec(undefined, '{"user":"last"}')]))[0], '{"key":"last","count":1}');
  init(); // no key_field
  const [o] = run([rec(undefined, '{"user":"a"}')]);
  assert.equal(o.val.message, 'record has no key and no `key_field` value');
});

test('key_field answers what the Rust SDK answers (json_cases.json)', () => {
  assert.ok(JSON_CASES.length > 50);
  for (const c of JSON_CASES) {
    processor.init([['key_field', c.field]]);
    store.data.clear();
    const doc = c.doc_hex !== undefined ? Buffer.from(c.doc_hex, 'hex') : enc.encode(c.doc);
    const [o] = run([rec(undefined, doc)]);
    const what = JSON.stringify(c);
    if (c.error !== undefined) {
      assert.deepEqual(o, { tag: 'fail', val: { class: 'invalid-input', code: 'bad-json', message: c.error } }, what);
    } else if (c.key === null) {
      assert.deepEqual([o.tag, o.val.code], ['fail', 'no-key'], what);
    } else {
      assert.equal(values([o])[0], `{"key":${JSON.stringify(c.key)},"count":1}`, what);
    }
  }
});

test('bad json', () => {
  init({ key_field: 'user' });
  const deep = (n) => '['.repeat(n) + ']'.repeat(n);
  const bad = ['{"user":"a"', '{"user":NaN}', '{"user":Infinity}', '{"user":01}', [0xff],
    '{"user":"a"} x', '{"user":"\\ud800"}', '{"x":"\\udc00","user":"a"}', '{"user":"a","user":"\\ud800"}',
    deep(129), `{"user":${deep(129)}}`, '', '{"user":"a",}', [0xef, 0xbb, 0xbf, ...bytes('{"user":"a"}')]];
  const out = run(bad.map((d) => rec(undefined, d)));
  bad.forEach((d, i) => {
    assert.equal(out[i].tag, 'fail', String(d));
    assert.deepEqual([out[i].val.class, out[i].val.code], ['invalid-input', 'bad-json'], String(d));
  });
  assert.equal(run([rec(undefined, deep(128))])[0].val.code, 'no-key'); // valid, not an object
  assert.equal(run([rec(undefined, `{"user":"a","x":${deep(127)}}`)])[0].tag, 'emit');
});

test('key escaping matches the Rust SDK', () => {
  init();
  const keys = ['q"uo\\te', [10, 9, 13, 8, 12, 1, 31, 127], 'é😀', [0xff, 0xfe, 0x41], [0xef, 0xbb, 0xbf, 0x41]];
  assert.deepEqual(values(run(keys.map((k) => rec(k)))), [
    '{"key":"q\\"uo\\\\te","count":1}',
    '{"key":"\\n\\t\\r\\b\\f\\u0001\\u001f\x7f","count":1}',
    '{"key":"é😀","count":1}',
    '{"key":"\ufffd\ufffdA","count":1}',
    '{"key":"\ufeffA","count":1}']);
});

test('state errors fail the batch with class state', () => {
  init();
  store.failWith = { tag: 'quota-exceeded', val: 'max_batch_state_bytes' };
  assert.throws(() => run([rec('a')]), (e) => {
    assert.deepEqual(e.payload, { class: 'state', code: 'quota-exceeded', message: 'StateError::QuotaExceeded("max_batch_state_bytes")' });
    return true;
  });
  store.failWith = { tag: 'key-too-large', val: 4096n };
  assert.throws(() => run([rec('a')]), (e) => e.payload.message === 'StateError::KeyTooLarge(4096)');
  assert.equal(logged.length, 0, 'an expected error is not logged');
});

test('init failure', () => {
  globalThis.arkflowFake.open = () => {
    throw Object.assign(new Error('state error'), { payload: { tag: 'disabled' } });
  };
  assert.throws(() => init(), (e) => e.payload.class === 'state' && e.payload.code === 'disabled');
});

test('get-column returning the wrong number of values fails the batch', () => {
  init();
  store.getColumn = () => column([]);
  assert.throws(() => run([rec('a'), rec('b')]), (e) => {
    assert.deepEqual(e.payload, { class: 'internal', code: 'bad-get-column', message: 'get-column returned 0 values for 2 keys' });
    return true;
  });
});

// Only natively: through jco's glue an exception thrown by a fake import unwinds the component
// without reaching the guest's handler (in the host it would be a trap of the host call).
test('an unexpected exception is logged, then thrown', { skip: COMPONENT && 'native only' }, () => {
  init();
  store.getColumn = () => {
    throw new TypeError('boom');
  };
  assert.throws(() => run([rec('a')]), TypeError);
  assert.equal(logged[0][0], 'error');
  assert.match(logged[0][1], /TypeError: boom/);
});

test('config read: json (the default) or fields', () => {
  assert.throws(() => init({ key_field: 'user', read: 'bogus' }), (e) => {
    assert.deepEqual(e.payload, { class: 'config', code: 'bad-config', message: 'config `read`: `bogus` (json or fields)' });
    return true;
  });
  init({ key_field: 'user', read: 'json' });
  assert.equal(host.declared, undefined);
  assert.deepEqual(values(run([rec(undefined, '{"user":7}'), rec(undefined, '{"user":"7"}')])),
    ['{"key":"7","count":1}', '{"key":"7","count":2}']);
  assert.equal(host.columnsCalls, 0);
});

test('read: fields takes key_field from the typed column', () => {
  init({ key_field: 'user', read: 'fields' });
  assert.deepEqual(host.declared, [['user', 'utf8']]);
  store.data.set(hex(bytes('a')), i64(10));
  const out = run([
    rec(undefined, '{"id":1,"user":"a"}'),
    rec('k', '{"user":"not this"}'), // the record key wins
    rec(undefined, '{"id":-2,"user":7}'),
    rec(undefined, '{"id":-1,"name":"no user"}'),
    rec(undefined, '{"user":null}'),
    rec(undefined, '[1]'),
    rec(),
    rec(undefined, '{"user":"q\\"é\\ud83d\\ude00"}'),
    rec(undefined, '{"user":"a"}'),
  ]);
  assert.deepEqual(values(out), [
    '{"key":"a","count":11}',
    '{"key":"k","count":1}',
    { class: 'invalid-input', code: 'bad-field', message: 'field `user`: a number where utf8 was declared' },
    { class: 'invalid-input', code: 'no-key', message: 'no string field `user`' },
    { class: 'invalid-input', code: 'no-key', message: 'no string field `user`' },
    { class: 'invalid-input', code: 'bad-field', message: 'invalid type: expected a JSON object' },
    { class: 'invalid-input', code: 'no-key', message: 'no string field `user`' },
    '{"key":"q\\"é😀","count":1}',
    '{"key":"a","count":12}',
  ]);
  assert.equal(host.columnsCalls, 1, 'one columns call per batch');
  assert.deepEqual(store.calls, [
    ['get-column', ['a', 'k', 'q"é😀']],
    ['put-column', [['a', hex(i64(12))], ['k', hex(i64(1))], ['q"é😀', hex(i64(1))]]],
  ]);
  // No record key in the batch (the whole column in one pass).
  assert.deepEqual(values(run([rec(undefined, '{"user":"b"}'), rec(undefined, '{"user":1.5}'), rec(undefined, '{}'), rec(undefined, '{"user":"a"}')])), [
    '{"key":"b","count":1}',
    { class: 'invalid-input', code: 'bad-field', message: 'field `user`: a number where utf8 was declared' },
    { class: 'invalid-input', code: 'no-key', message: 'no string field `user`' },
    '{"key":"a","count":13}',
  ]);
  assert.equal(host.columnsCalls, 2);
});

test('read: fields without key_field declares nothing', () => {
  init({ read: 'fields' });
  assert.equal(host.declared, undefined);
  const [a, b] = run([rec('k'), rec(undefined, '{"user":"a"}')]);
  assert.equal(values([a])[0], '{"key":"k","count":1}');
  assert.equal(b.val.message, 'record has no key and no `key_field` value');
  assert.equal(host.columnsCalls, 0);
});

test('read: fields, a declaration the host refuses refuses the plugin', () => {
  globalThis.arkflowFake.declare = () => {
    throw Object.assign(new Error('fields'), { payload: 'fields.declare: a field name is empty' });
  };
  assert.throws(() => init({ key_field: '', read: 'fields' }), (e) => {
    assert.deepEqual(e.payload, { class: 'config', code: 'bad-fields', message: 'fields.declare: a field name is empty' });
    return true;
  });
});
