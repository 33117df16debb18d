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
