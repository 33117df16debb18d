// Native unit tests of the SDK's batch view, outcomes and state cache (plugins/js/sdk), run by
// plugins/js/test.sh before the counter contract suite; the WIT imports resolve to fake-wit.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ak from '../sdk/arkflow.js';
import { items } from '../sdk/batch.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const texts = (col) => items(col, col.ends.length).map((v) => (v === undefined ? undefined : dec.decode(v)));

test('batch view', () => {
  const b = ak.Batch.of([
    { key: 'k', value: 'v', timestampMs: 5, headers: [['h', '1'], ['h', '2']] },
    { timestampMs: 6 },
    { key: '', value: 'x', timestampMs: 7 },
  ]);
  assert.equal(b.length, 3);
  assert.deepEqual(b.keys().map((k) => k && dec.decode(k)), ['k', undefined, '']);
  assert.deepEqual(b.values().map((v) => v && dec.decode(v)), ['v', undefined, 'x']);
  const r = b.get(0);
  assert.deepEqual([r.index, r.timestampMs, r.partition, r.offset, dec.decode(r.header('h'))], [0, 5n, 0, 0n, '1']);
  assert.equal(r.headers.length, 2);
  assert.equal(ak.header(b.get(1), 'h'), undefined);
  assert.deepEqual([...b].map((x) => x.index), [0, 1, 2]);
  const keys = ak.keysOf(b, undefined);
  assert.equal(dec.decode(keys[0]), 'k');
  assert.equal(keys[1].code, 'no-key');
});

test('outcomes: the fast path and the sparse lists', () => {
  const b = ak.Batch.of([{ key: 'k', value: 'v', headers: [['h', '1']] }, { value: 'w' }, { value: 'x' }, { value: 'y' }]);
  let o = ak.toWit([
    ak.pass(b.get(0)),
    ak.emit(ak.recordOut('x', { key: enc.encode('k2'), timestampMs: 9, headers: [['h', '1']], output: 'side' }), ak.recordOut(undefined)),
    ak.drop(),
    ak.fail(ak.retriable('later', 'try again')),
  ], 4, 'test');
  assert.deepEqual(texts(o.values), ['v', 'x', undefined]);
  assert.deepEqual([Array.from(o.sources), texts(o.keys), o.timestamps, o.outputs], [[0, 1, 1], [undefined, 'k2', undefined], [[1, 9n]], [[1, 'side']]]);
  assert.deepEqual(o.headers.map(([j, h]) => [j, h.key, dec.decode(h.value)]), [[0, 'h', '1'], [1, 'h', '1']]);
  assert.deepEqual(o.failed, [[3, { class: 'retriable', code: 'later', message: 'try again' }]]);
  o = ak.toWit(['é', 'a'], 2, 'test'); // not ASCII: encoded one by one
  assert.deepEqual([texts(o.values), o.sources.length], [['é', 'a'], 0]);
  assert.deepEqual(Array.from(ak.toWit([enc.encode('a'), enc.encode('bc')], 2, 'test').values.ends), [1, 3]);
  assert.throws(() => ak.toWit(['a'], 2, 'processBatch'), (e) => e.code === 'wrong-outcome-count' && e.payload.message === 'processBatch returned 1 outcomes for 2 inputs');
});

test('outcomes builder', () => {
  const out = new ak.Outcomes();
  out.emit(0, 'a');
  out.emit(1, enc.encode('b'));
  assert.deepEqual([out.finish(2).sources.length, Array.from(out.finish(3).sources)], [0, [0, 1]]);
  const misuse = [
    [(o) => { o.emit(1, 'a'); o.emit(0, 'b'); }, 'outcomes-out-of-order'],
    [(o) => { o.emit(1, 'a'); o.fail(1, ak.internal('x', 'y')); }, 'outcomes-mixed'],
    [(o) => { o.fail(1, ak.internal('x', 'y')); o.fail(1, ak.internal('x', 'y')); }, 'outcomes-mixed'],
  ];
  for (const [f, code] of misuse) {
    const o = new ak.Outcomes();
    f(o);
    assert.throws(() => o.finish(2), (e) => e.code === code);
  }
});

test('state cache', () => {
  const c = new ak.StateCache([enc.encode('a'), enc.encode('b')], [ak.encodeI64(5), undefined]);
  assert.deepEqual([c.increment(enc.encode('a'), 2), c.increment(enc.encode('b'), -1), c.getI64(enc.encode('zz'))], [7, -1, undefined]);
  c.put(enc.encode('s'), enc.encode('text'));
  assert.deepEqual(c.writes().map(([k, v]) => [dec.decode(k), Array.from(v)]),
    [['a', Array.from(ak.encodeI64(7))], ['b', Array.from(ak.encodeI64(-1))], ['s', Array.from(enc.encode('text'))]]);
  assert.throws(() => c.increment(enc.encode('s'), 1), (e) => e.code === 'not-a-counter');
  assert.equal(c.increment(enc.encode('big'), 2n ** 62n) + 0n, 2n ** 62n);
});

// --- typed fields (fields.js) ---------------------------------------------------------------------

/** The WIT `decoded` for columns given as [type, valid bits (string, record 0 first), values]. */
const decoded = (cols, mismatched = []) => ({
  columns: cols.map(([type, bits, values]) => {
    const valid = new Uint8Array(Math.max(1, (bits.length + 7) >> 3));
    for (let i = 0; i < bits.length; i++) if (bits[i] === '1') valid[i >> 3] |= 1 << (i & 7);
    return { valid, values: { tag: type, val: values } };
  }),
  mismatched,
});
const utf8Column = (list) => {
  const ends = new Uint32Array(list.length);
  let text = '';
  list.forEach((s, i) => {
    text += s;
    ends[i] = enc.encode(text).length;
  });
  return { data: enc.encode(text), ends, valid: new Uint8Array(0) };
};

test('fields: declare', () => {
  const calls = [];
  globalThis.arkflowFake = { declare: (fields) => calls.push(fields) };
  ak.declareFields([['n', 'int64'], ['s', ak.FieldType.UTF8]]);
  ak.declareFields({ b: 'boolean', f: 'float64' });
  assert.deepEqual(calls, [
    [{ name: 'n', type: 'int64' }, { name: 's', type: 'utf8' }],
    [{ name: 'b', type: 'boolean' }, { name: 'f', type: 'float64' }],
  ]);
  assert.throws(() => ak.declareFields([['n', 'int']]), (e) => {
    assert.deepEqual(e.payload, { class: 'config', code: 'bad-fields', message: 'field `n`: type `int` is not boolean, int64, float64 or utf8' });
    return true;
  });
  assert.equal(calls.length, 2, 'an unknown type is refused before the host is asked');
  globalThis.arkflowFake.declare = () => {
    throw Object.assign(new Error('host'), { payload: 'fields.declare: field `x` is declared twice' });
  };
  assert.throws(() => ak.declareFields([['x', 'utf8'], ['x', 'utf8']]), (e) => {
    assert.deepEqual(e.payload, { class: 'config', code: 'bad-fields', message: 'fields.declare: field `x` is declared twice' });
    return true;
  });
});

test('fields: columns by name and type', () => {
  const raw = decoded([
    ['int64', '10111111', BigInt64Array.from([7n, 0n, -2n, 2n ** 53n + 1n, -(2n ** 53n) + 1n, -(2n ** 63n), -1n, -(2n ** 53n)])],
    ['utf8', '110101', utf8Column(['a', 'bc', '', 'é😀', 'x', '\ufeffA'])],
    ['boolean', '0110', Uint8Array.of(0b0010)],
    ['float64', '101', Float64Array.of(1.5, 0, -0.25)],
  ], [[2, 'field `s`: a number where utf8 was declared'], [5, 'not a JSON object']]);
  const f = ak.Fields.fromRaw(raw, [['n', 'int64'], ['s', 'utf8'], ['b', 'boolean'], ['x', 'float64']]);
  const n = f.i64('n');
  assert.deepEqual(Array.from({ length: 9 }, (_, i) => n.get(i)), // Numbers while safe integers
    [7, undefined, -2, 2n ** 53n + 1n, -(2 ** 53) + 1, -(2n ** 63n), -1, -(2n ** 53n), undefined]);
  assert.equal(f.i64('n'), n, 'one view per column');
  const s = f.str('s');
  assert.deepEqual(Array.from({ length: 7 }, (_, i) => s.get(i)), ['a', 'bc', undefined, 'é😀', undefined, '\ufeffA', undefined]);
  assert.deepEqual(Array.from(s.bytes(3)), Array.from(enc.encode('é😀')));
  assert.deepEqual(s.allBytes().map((b) => b && dec.decode(b)), ['a', 'bc', undefined, 'é😀', undefined, 'A']);
  assert.equal(s.bytes(3).buffer, raw.columns[1].values.val.data.buffer, 'a view, not a copy');
  const b = f.bool('b');
  assert.deepEqual([0, 1, 2, 3].map((i) => b.get(i)), [undefined, true, false, undefined]);
  const x = f.f64('x');
  assert.deepEqual([0, 1, 2].map((i) => x.get(i)), [1.5, undefined, -0.25]);
  assert.deepEqual([x.has(0), x.has(1)], [true, false]);
  assert.throws(() => f.f64('n'), (e) => e.code === 'undeclared-field' && e.class === 'internal'
    && e.payload.message === 'field `n` was not declared as float64 (declareFields)');
  assert.throws(() => f.i64('zz'), (e) => e.code === 'undeclared-field');
  assert.deepEqual([f.mismatch(2), f.mismatch(5), f.mismatch(0), f.mismatch(3), f.mismatch(9)],
    ['field `s`: a number where utf8 was declared', 'not a JSON object', undefined, undefined, undefined]);
  assert.equal(f.mismatched().length, 2);
  const many = ak.Fields.fromRaw(decoded([], Array.from({ length: 50 }, (_, k) => [3 * k, `r${k}`])), []);
  for (let i = 0; i < 150; i++) assert.equal(many.mismatch(i), i % 3 === 0 ? `r${i / 3}` : undefined);
});

test('fields: records.fields() asks the host once per batch', () => {
  let asked = 0;
  globalThis.arkflowFake = {
    declare() {},
    columns: () => {
      asked++;
      return decoded([['utf8', '10', utf8Column(['u', ''])]]);
    },
  };
  ak.declareFields([['user', 'utf8']]);
  const b = ak.Batch.of([{ value: '{"user":"u"}' }, { value: '{}' }]);
  assert.equal(b.fields(), b.fields());
  assert.equal(asked, 1);
  assert.deepEqual([b.fields().str('user').get(0), b.fields().str('user').get(1)], ['u', undefined]);
  globalThis.arkflowFake.columns = () => {
    throw Object.assign(new Error('host'), { payload: 'fields.columns: no fields declared' });
  };
  assert.throws(() => ak.Batch.of([{ value: '{}' }]).fields(), (e) => {
    assert.deepEqual(e.payload, { class: 'internal', code: 'fields', message: 'fields.columns: no fields declared' });
    return true;
  });
  // A test of plugin code hands the batch its fields.
  const given = ak.Fields.fromRaw(decoded([['int64', '1', BigInt64Array.of(3n)]]), { n: 'int64' });
  assert.equal(ak.Batch.of([{ value: '{"n":3}' }], { fields: given }).fields().i64('n').get(0), 3);
});
