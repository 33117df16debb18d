"""Native unit tests of the Python SDK (plugins/python/sdk/arkflow) and the counter
(plugins/python/counter), run by plugins/python/test.sh. The WIT bindings are generated into a
temporary directory with `componentize-py bindings` (pure-Python stubs); `state.Store.open` and
`log.log` are replaced by in-memory fakes. JSON answers are checked against the Rust SDK's
(json_cases.json). Batches cross as the 0.2.0 `batch` / `outcomes` records, as in the component."""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "..")
_BINDINGS = tempfile.mkdtemp(prefix="arkflow-py-bindings-")
subprocess.run(["componentize-py", "-q", "-d", os.path.join(ROOT, "wit"), "-w", "plugin", "bindings", _BINDINGS],
               check=True)
sys.path[:0] = [_BINDINGS, os.path.join(HERE, "..", "sdk"), os.path.join(HERE, "..", "counter")]

import app  # noqa: E402  (registers the counter with arkflow.export)
import arkflow  # noqa: E402
from componentize_py_types import Err  # noqa: E402
from wit_world.imports import fields as wit_fields, log, state  # noqa: E402
from wit_world.imports.types import BatchContext, Column, ErrorClass, ValueFormat  # noqa: E402
from arkflow.batch import column, items  # noqa: E402


def tearDownModule():
    shutil.rmtree(_BINDINGS, ignore_errors=True)


class FakeStore:
    """One store's state, recording the calls the plugin makes."""

    def __init__(self):
        self.data = {}
        self.calls = []
        self.fail_with = None

    def get_column(self, keys: Column):
        keys = items(keys, len(keys.ends))
        self.calls.append(("get-column", keys))
        if self.fail_with:
            raise Err(self.fail_with)
        return column([self.data.get(k) for k in keys])

    def put_column(self, keys: Column, values: Column):
        entries = list(zip(items(keys, len(keys.ends)), items(values, len(values.ends))))
        self.calls.append(("put-column", entries))
        self.data.update(entries)


class FakeFields:
    """The host side of the `fields` import: `declare` records the declaration, `columns` decodes
    the values of the batch being processed (set by the test) like the host does (a sketch of
    host/src/processor/wasm/fields.rs: same layout, reasons in the same form)."""

    KINDS = {wit_fields.FieldType.BOOLEAN: (bool,), wit_fields.FieldType.INT64: (int,),
             wit_fields.FieldType.FLOAT64: (int, float), wit_fields.FieldType.UTF8: (str,)}
    NAMES = {bool: "a boolean", int: "a number", float: "a number", str: "a string", dict: "an object", list: "an array"}

    def __init__(self):
        self.declared = None
        self.values = []
        self.calls = []

    def declare(self, fields):
        self.calls.append(("declare", [(f.name, f.type) for f in fields]))
        names = [f.name for f in fields]
        if len(set(names)) != len(names):
            raise Err(f"fields.declare: field `{names[0]}` is declared twice")
        self.declared = [(f.name, f.type) for f in fields]

    def columns(self):
        self.calls.append(("columns",))
        if not self.declared:
            raise Err("fields.columns: no fields declared")
        n, mismatched = len(self.values), []
        cols = [[None] * n for _ in self.declared]
        for i, v in enumerate(self.values):
            if v is None:
                continue
            doc = json.loads(v)
            if not isinstance(doc, dict):
                mismatched.append((i, "invalid type: not a JSON object, expected a JSON object"))
                continue
            row = []
            for name, t in self.declared:
                x = doc.get(name)
                if x is not None and (type(x) not in self.KINDS[t] or (t != wit_fields.FieldType.BOOLEAN and type(x) is bool)):
                    mismatched.append((i, f"field `{name}`: {self.NAMES[type(x)]} where {t.name.lower()} was declared"))
                    break
                row.append(x)
            else:
                for c, x in zip(cols, row):
                    c[i] = x
        bits = lambda xs: sum(1 << i for i, x in enumerate(xs) if x).to_bytes((n + 7) // 8 or 1, "little")  # noqa: E731
        out = []
        for (name, t), c in zip(self.declared, cols):
            valid = bits([x is not None for x in c])
            if t == wit_fields.FieldType.UTF8:
                values = wit_fields.TypedValues_Utf8(column([(x or "").encode() for x in c]))
            elif t == wit_fields.FieldType.BOOLEAN:
                values = wit_fields.TypedValues_Boolean(bits([bool(x) for x in c]))
            elif t == wit_fields.FieldType.INT64:
                values = wit_fields.TypedValues_Int64([x or 0 for x in c])
            else:
                values = wit_fields.TypedValues_Float64([float(x or 0) for x in c])
            out.append(wit_fields.TypedColumn(valid, values))
        return wit_fields.Decoded(out, mismatched)


def rec(key=None, value=None):
    return (key, value, 1_700_000_000_000)


def outcomes(o, inputs):
    """One entry per input: the emitted value (str), the failure (wit Error), or None (dropped)."""
    values = [None if v is None else v.decode() for v in items(o.values, len(o.values.ends))]
    out = [None] * inputs
    for j, v in enumerate(values):
        out[o.sources[j] if o.sources else j] = v
    for i, e in o.failed:
        out[i] = e
    return out


CTX = BatchContext(1, 0, 0, 0, 1)
PROCESSOR = app.Processor  # what componentize-py instantiates for every call


class CounterTest(unittest.TestCase):
    def setUp(self):
        self.store = FakeStore()
        self.logged = []
        self.fields = FakeFields()
        self._open, self._log = state.Store.open, log.log
        self._declare, self._columns = wit_fields.declare, wit_fields.columns
        state.Store.open = classmethod(lambda cls, name: self.store if name == "default" else None)
        log.log = lambda level, message: self.logged.append((level, message))
        wit_fields.declare, wit_fields.columns = self.fields.declare, self.fields.columns
        arkflow._instance = None

    def tearDown(self):
        state.Store.open, log.log = self._open, self._log
        wit_fields.declare, wit_fields.columns = self._declare, self._columns
        arkflow._instance = None

    def init(self, *pairs, **config):
        PROCESSOR().init(list(pairs) + list(config.items()))

    def run_batch(self, records, raw=False):
        self.fields.values = [r[1] for r in records]
        o = PROCESSOR().process_batch(CTX, arkflow.Batch.of(records).raw)
        return o if raw else outcomes(o, len(records))

    def values(self, outcomes):
        return outcomes

    def test_describe(self):
        info = PROCESSOR().describe()
        self.assertEqual((info.name, info.version, info.abi, info.state_stores), ("counter", "0.1.0", arkflow.ABI_VERSION, ["default"]))
        self.assertEqual([(f.store, f.format) for f in info.state_formats], [("default", ValueFormat.I64)])

    def test_counts_per_key_with_one_get_column_and_one_put_column(self):
        self.init()
        self.store.data[b"b"] = struct.pack("<q", 41)
        o = self.run_batch([rec(b"a"), rec(b"b"), rec(b"a")], raw=True)
        self.assertEqual(outcomes(o, 3), ['{"key":"a","count":1}', '{"key":"b","count":42}', '{"key":"a","count":2}'])
        self.assertEqual(self.store.calls, [
            ("get-column", [b"a", b"b"]),
            ("put-column", [(b"a", struct.pack("<q", 2)), (b"b", struct.pack("<q", 42))]),
        ])
        # The fast path: one value per input, no per-record list; key and timestamp inherited.
        self.assertEqual((o.values.ends, o.values.valid, o.sources, o.keys.ends, o.timestamps, o.headers, o.outputs, o.failed),
                         ([21, 43, 64], b"", [], [], [], [], [], []))

    def test_a_failed_record_takes_the_sources_path(self):
        self.init()
        o = self.run_batch([rec(b"a"), rec(), rec(b"a")], raw=True)
        self.assertEqual((o.sources, [i for i, _ in o.failed]), ([0, 2], [1]))
        self.assertEqual(items(o.values, 2), [b'{"key":"a","count":1}', b'{"key":"a","count":2}'])

    def test_an_empty_batch_makes_no_state_call(self):
        self.init()
        self.assertEqual(self.run_batch([]), [])
        self.assertEqual(self.store.calls, [])

    def test_wraps_like_the_hosts_increment(self):
        self.init()
        self.store.data[b"k"] = struct.pack("<q", 2**63 - 1)
        self.assertEqual(self.values(self.run_batch([rec(b"k")])), ['{"key":"k","count":-9223372036854775808}'])

    def test_a_value_that_is_not_a_counter_fails_its_records_only(self):
        self.init()
        self.store.data[b"bad"] = b"xyz"
        out = self.run_batch([rec(b"bad"), rec(b"ok"), rec(b"bad")])
        for o in (out[0], out[2]):
            self.assertIsInstance(o, arkflow.errors.WitError)
            self.assertEqual((o.class_, o.code, o.message),
                             (ErrorClass.STATE, "not-a-counter", "StateError::NotACounter"))
        self.assertEqual(self.values([out[1]]), ['{"key":"ok","count":1}'])
        self.assertEqual(self.store.data[b"bad"], b"xyz")

    def test_key_field_fallback_and_the_last_config_value_wins(self):
        self.init(("key_field", "nope"), ("key_field", "user"))
        docs = [b'{"user":"a"}', b'{"user":1.50e3}', b'{"user":"x","user":"y"}']
        self.assertEqual(self.values(self.run_batch([rec(value=d) for d in docs])), [
            '{"key":"a","count":1}', '{"key":"1.50e3","count":1}', '{"key":"x","count":1}'])

    def test_no_key(self):
        self.init(key_field="user")
        for value in [None, b'{"user":null}', b'[1]', b'{"other":"a"}']:
            [o] = self.run_batch([rec(value=value)])
            self.assertEqual((o.class_, o.code), (ErrorClass.INVALID_INPUT, "no-key"), value)
        [o] = self.run_batch([rec(value=b'{"other":"a"}')])
        self.assertEqual(o.message, "no string/number field `user`")
        self.init()  # no key_field
        [o] = self.run_batch([rec(value=b'{"user":"a"}')])
        self.assertEqual(o.message, "record has no key and no `key_field` value")

    def test_bad_json_fails_the_record_with_the_rust_message(self):
        self.init(key_field="user")
        [o] = self.run_batch([rec(value=b'{"user":"\\ud800"}')])
        self.assertEqual((o.class_, o.code, o.message),
                         (ErrorClass.INVALID_INPUT, "bad-json", "invalid JSON at byte 15: lone surrogate"))

    def test_key_escaping_matches_the_rust_sdk(self):
        self.init()
        keys = [b'q"uo\\te', b"\n\t\r\x08\x0c\x01\x1f\x7f", "é😀".encode(), b"\xff\xfeA", b"\xef\xbb\xbfA"]
        self.assertEqual(self.values(self.run_batch([rec(k) for k in keys])), [
            '{"key":"q\\"uo\\\\te","count":1}',
            '{"key":"\\n\\t\\r\\b\\f\\u0001\\u001f\x7f","count":1}',
            '{"key":"é😀","count":1}',
            '{"key":"\ufffd\ufffdA","count":1}',
            '{"key":"\ufeffA","count":1}'])

    def test_read_fields_takes_the_key_from_the_hosts_utf8_column(self):
        self.init(key_field="user", read="fields")
        self.assertEqual(self.fields.calls, [("declare", [("user", wit_fields.FieldType.UTF8)])])
        docs = [b'{"user":"a"}', b'{"id":1,"user":"\\u00e9"}', b'{"user":"a","x":[1]}']
        self.assertEqual(self.run_batch([rec(value=d) for d in docs]),
                         ['{"key":"a","count":1}', '{"key":"é","count":1}', '{"key":"a","count":2}'])
        self.assertEqual(self.fields.calls[1:], [("columns",)], "one host call per batch")
        self.assertEqual(self.store.calls[0], ("get-column", [b"a", "é".encode()]))

    def test_read_fields_failures_and_record_keys(self):
        self.init(key_field="user", read="fields")
        out = self.run_batch([rec(value=b'{"user":7}'), rec(value=b'{"name":"no user"}'), rec(b"k", b'{"user":7}'),
                              rec(value=b'[1]'), rec(value=None), rec(value=b'{"user":null}'), rec(value=b'{"user":"b"}')])
        self.assertEqual([(o.class_, o.code, o.message) for o in out[:2]], [
            (ErrorClass.INVALID_INPUT, "bad-field", "field `user`: a number where utf8 was declared"),
            (ErrorClass.INVALID_INPUT, "no-key", "no string field `user`")])
        self.assertEqual(out[2], '{"key":"k","count":1}', "the record key first, as before")
        self.assertEqual((out[3].code, out[3].message), ("bad-field", "invalid type: not a JSON object, expected a JSON object"))
        self.assertEqual([(o.code, o.message) for o in out[4:6]], [("no-key", "no string field `user`")] * 2)
        self.assertEqual(out[6], '{"key":"b","count":1}')
        # Every record with a key: the fields are still fetched once (as the Rust counter does).
        self.fields.calls.clear()
        self.assertEqual(self.run_batch([rec(b"k", b'{"user":"z"}')]), ['{"key":"k","count":2}'])
        self.assertEqual(self.fields.calls, [("columns",)])

    def test_read_json_is_the_default_and_counts_a_number_as_its_text(self):
        for read in ((), (("read", "json"),)):
            self.init(("key_field", "user"), *read)
            self.assertEqual(self.run_batch([rec(value=b'{"user":7}')])[0].split(",")[0], '{"key":"7"')
            self.assertEqual(self.fields.calls, [], "no fields declared or fetched")

    def test_read_fields_without_key_field_declares_nothing(self):
        self.init(read="fields")
        [o] = self.run_batch([rec(value=b'{"user":"a"}')])
        self.assertEqual((o.code, o.message), ("no-key", "record has no key and no `key_field` value"))
        self.assertEqual(self.fields.calls, [])

    def test_an_unknown_read_is_refused_at_init(self):
        with self.assertRaises(Err) as e:
            self.init(key_field="user", read="bogus")
        err = e.exception.value
        self.assertEqual((err.class_, err.code, err.message),
                         (ErrorClass.CONFIG, "bad-config", "config `read`: `bogus` (json or fields)"))
        self.assertEqual(self.store.calls, [])

    def test_state_errors_fail_the_batch_with_class_state(self):
        self.init()
        self.store.fail_with = state.StateError_QuotaExceeded("max_batch_state_bytes")
        with self.assertRaises(Err) as e:
            self.run_batch([rec(b"a")])
        err = e.exception.value
        self.assertEqual((err.class_, err.code, err.message),
                         (ErrorClass.STATE, "quota-exceeded", 'StateError::QuotaExceeded("max_batch_state_bytes")'))
        self.store.fail_with = state.StateError_KeyTooLarge(4096)
        with self.assertRaises(Err) as e:
            self.run_batch([rec(b"a")])
        self.assertEqual((e.exception.value.code, e.exception.value.message), ("key-too-large", "StateError::KeyTooLarge(4096)"))
        self.assertEqual(self.logged, [], "an expected error is not logged")

    def test_get_column_returning_the_wrong_number_of_values_fails_the_batch(self):
        self.init()
        self.store.get_column = lambda keys: column([])
        with self.assertRaises(Err) as e:
            self.run_batch([rec(b"a"), rec(b"b")])
        err = e.exception.value
        self.assertEqual((err.class_, err.code, err.message),
                         (ErrorClass.INTERNAL, "bad-get-column", "get-column returned 0 values for 2 keys"))

    def test_init_failure_and_calls_before_init(self):
        def refuse(cls, name):
            raise Err(state.StateError_Disabled())
        state.Store.open = classmethod(refuse)
        with self.assertRaises(Err) as e:
            self.init()
        self.assertEqual((e.exception.value.class_, e.exception.value.code), (ErrorClass.STATE, "disabled"))
        for call in (lambda: self.run_batch([rec(b"a")]), lambda: PROCESSOR().on_checkpoint(None)):
            with self.assertRaises(Err) as e:
                call()
            self.assertEqual((e.exception.value.class_, e.exception.value.code), (ErrorClass.INTERNAL, "not-initialized"))

    def test_an_unexpected_exception_is_logged_then_raised(self):
        self.init()
        self.store.get_column = None  # calling it raises TypeError
        with self.assertRaises(TypeError):
            self.run_batch([rec(b"a")])
        self.assertEqual(self.logged[0][0], log.Level.ERROR)
        self.assertIn("counter: process-batch raised", self.logged[0][1])
        self.assertIn("TypeError", self.logged[0][1])


class SdkTest(unittest.TestCase):
    def test_json_key_answers_what_the_rust_sdk_answers(self):
        with open(os.path.join(HERE, "json_cases.json")) as f:
            cases = json.load(f)["cases"]
        self.assertGreater(len(cases), 50)
        for c in cases:
            doc = bytes.fromhex(c["doc_hex"]) if "doc_hex" in c else c["doc"].encode("utf-8", "surrogatepass")
            try:
                got = {"key": arkflow.json_key(doc, c["field"])}
            except arkflow.Error as e:
                self.assertEqual((e.class_, e.code), (ErrorClass.INVALID_INPUT, "bad-json"))
                got = {"error": e.message}
            want = {k: c[k] for k in ("key", "error") if k in c}
            self.assertEqual(got, want, c)

    def test_config(self):
        cfg = arkflow.Config([("n", "5"), ("b", "true"), ("x", "1"), ("x", "2"), ("bad", "five")])
        self.assertEqual((cfg.get("x"), cfg.get("missing"), cfg.get("missing", "d")), ("2", None, "d"))
        self.assertEqual((cfg.get_int("n"), cfg.get_int("missing", 7), cfg.get_bool("b"), cfg.get_bool("missing")), (5, 7, True, False))
        for f, code in [(lambda: cfg.require("missing"), "missing-config"), (lambda: cfg.get_int("bad"), "bad-config"),
                        (lambda: cfg.get_bool("bad"), "bad-config")]:
            with self.assertRaises(arkflow.Error) as e:
                f()
            self.assertEqual((e.exception.class_, e.exception.code), (ErrorClass.CONFIG, code))

    def test_state_cache(self):
        c = arkflow.StateCache([b"a", b"b"], [arkflow.encode_i64(5), None])
        self.assertEqual((c.increment(b"a", 2), c.increment(b"b", -1), c.get_i64(b"zz")), (7, -1, None))
        c.put(b"s", b"text")
        self.assertEqual(c.writes(), [(b"a", arkflow.encode_i64(7)), (b"b", arkflow.encode_i64(-1)), (b"s", b"text")])
        with self.assertRaises(arkflow.Error) as e:
            c.increment(b"s", 1)
        self.assertEqual(e.exception.code, "not-a-counter")

    def test_batch_view(self):
        b = arkflow.Batch.of([(b"k", b"v", 5, [("h", b"1"), ("h", b"2")]), (None, None, 6), (b"", b"x", 7)])
        self.assertEqual((len(b), b.keys(), b.values(), b.timestamps()), (3, [b"k", None, b""], [b"v", None, b"x"], [5, 6, 7]))
        r = b[0]
        self.assertEqual((r.index, r.key, r.value, r.timestamp_ms, r.partition, r.offset), (0, b"k", b"v", 5, 0, 0))
        self.assertEqual((r.headers, r.header("h"), arkflow.header(b[1], "h")), ([("h", b"1"), ("h", b"2")], b"1", None))
        self.assertEqual([x.key for x in b], [b"k", None, b""])
        self.assertEqual(arkflow.keys_of(b, None)[0], b"k")
        self.assertEqual(arkflow.keys_of(b, None)[1].code, "no-key")

    def test_outcomes(self):
        b = arkflow.Batch.of([(b"k", b"v", 5, [("h", b"1")]), (b"k", b"w", 6), (b"k", b"x", 7), (b"k", b"y", 8)])
        o = arkflow.to_wit([
            arkflow.pass_(b[0]),
            arkflow.emit(arkflow.record_out("x", key=b"k2", timestamp_ms=9, headers=[("h", b"1")], output="side"),
                         arkflow.record_out(None)),
            arkflow.drop(),
            arkflow.fail(arkflow.retriable("later", "try again")),
        ], 4, "test")
        self.assertEqual(items(o.values, 3), [b"v", b"x", None])
        self.assertEqual((o.sources, items(o.keys, 3), o.timestamps, o.outputs), ([0, 1, 1], [None, b"k2", None], [(1, 9)], [(1, "side")]))
        self.assertEqual([(j, h.key, h.value) for j, h in o.headers], [(0, "h", b"1"), (1, "h", b"1")])
        [(i, f)] = o.failed
        self.assertEqual((i, f.class_, f.code, f.message), (3, ErrorClass.RETRIABLE, "later", "try again"))
        # Non-ASCII values on the fast path; bytes too.
        o = arkflow.to_wit(["é", "a"], 2, "test")
        self.assertEqual((items(o.values, 2), o.sources), (["é".encode(), b"a"], []))
        self.assertEqual(arkflow.to_wit([b"a", b"bc"], 2, "test").values.ends, [1, 3])
        with self.assertRaises(arkflow.Error) as e:
            arkflow.to_wit(["a"], 2, "process_batch")
        self.assertEqual((e.exception.code, e.exception.message), ("wrong-outcome-count", "process_batch returned 1 outcomes for 2 inputs"))

    def test_outcomes_builder(self):
        out = arkflow.Outcomes()
        out.emit(0, "a")
        out.emit(1, b"b")
        self.assertEqual((out.finish(2).sources, out.finish(3).sources), ([], [0, 1]))
        for misuse, code in [(lambda o: (o.emit(1, "a"), o.emit(0, "b")), "outcomes-out-of-order"),
                             (lambda o: (o.emit(1, "a"), o.fail(1, arkflow.internal("x", "y"))), "outcomes-mixed"),
                             (lambda o: [o.fail(1, arkflow.internal("x", "y")) for _ in "ab"], "outcomes-mixed")]:
            o = arkflow.Outcomes()
            misuse(o)
            with self.assertRaises(arkflow.Error) as e:
                o.finish(2)
            self.assertEqual(e.exception.code, code)

class FieldsTest(unittest.TestCase):
    def setUp(self):
        self.host = FakeFields()
        self._declare, self._columns = wit_fields.declare, wit_fields.columns
        wit_fields.declare, wit_fields.columns = self.host.declare, self.host.columns

    def tearDown(self):
        wit_fields.declare, wit_fields.columns = self._declare, self._columns

    def test_columns_are_read_by_name_and_type(self):
        raw = wit_fields.Decoded([
            wit_fields.TypedColumn(bytes([0b101]), wit_fields.TypedValues_Int64([7, 0, -2])),
            wit_fields.TypedColumn(bytes([0b011]), wit_fields.TypedValues_Utf8(Column(b"abc", [1, 3, 3], b""))),
            wit_fields.TypedColumn(bytes([0b110]), wit_fields.TypedValues_Boolean(bytes([0b010]))),
            wit_fields.TypedColumn(bytes([0b001]), wit_fields.TypedValues_Float64([1.5, 0.0, 0.0])),
        ], [(2, "field `s`: a number where utf8 was declared")])
        f = arkflow.Fields(raw, [("n", arkflow.fields.INT64), ("s", "utf8"), ("b", arkflow.FieldType.BOOLEAN), ("x", "float64")])
        n, s, b, x = f.int64("n"), f.utf8("s"), f.boolean("b"), f.float64("x")
        self.assertEqual([n.get(i) for i in range(3)], [7, None, -2])
        self.assertEqual([s.get(i) for i in range(3)], ["a", "bc", None])
        self.assertEqual([s.get_bytes(i) for i in range(3)], [b"a", b"bc", None])
        self.assertEqual([b.get(i) for i in range(3)], [None, True, False])
        self.assertEqual([x.get(i) for i in range(3)], [1.5, None, None])
        self.assertEqual((n.to_list(), s.to_list(), s.to_bytes_list(), b.to_list(), list(x)),
                         ([7, None, -2], ["a", "bc", None], [b"a", b"bc", None], [None, True, False], [1.5, None, None]))
        self.assertEqual((len(f), len(n), len(s), len(b), len(x)), (3, 3, 3, 3, 3))
        self.assertEqual(s.data, b"abc", "a view over the lifted buffer")
        for ask in (lambda: f.float64("n"), lambda: f.int64("zz"), lambda: f.utf8("b")):
            with self.assertRaises(arkflow.Error) as e:
                ask()
            self.assertEqual((e.exception.class_, e.exception.code), (ErrorClass.INTERNAL, "undeclared-field"))
        self.assertEqual(e.exception.message, "field `b` was not declared as utf8 (arkflow.fields.declare)")
        self.assertEqual((f.mismatch(2), f.mismatch(1), f.mismatched), ("field `s`: a number where utf8 was declared", None,
                                                                        [(2, "field `s`: a number where utf8 was declared")]))

    def test_bitmaps_past_one_byte_and_all_valid(self):
        n = 21
        absent = {0, 8, 9, 20}
        valid = sum(1 << i for i in range(n) if i not in absent).to_bytes(3, "little")
        col = arkflow.Int64Column(valid, list(range(n)))
        self.assertEqual(col.to_list(), [None if i in absent else i for i in range(n)])
        self.assertEqual([col.get(i) for i in range(n)], col.to_list())
        full = arkflow.Utf8Column(b"\xff" * 3, b"x" * n, list(range(1, n + 1)))
        self.assertEqual(full.to_bytes_list(), [b"x"] * n)
        self.assertEqual(arkflow.Utf8Column(b"\x00", b"", []).to_list(), [])

    def test_declare_and_batch_fields(self):
        arkflow.fields.declare({"user": "utf8", "n": arkflow.fields.INT64})
        self.assertEqual(self.host.calls, [("declare", [("user", wit_fields.FieldType.UTF8), ("n", wit_fields.FieldType.INT64)])])
        self.host.values = [b'{"user":"a","n":1}', b'{"n":"x"}', None]
        b = arkflow.Batch.of([(None, v) for v in self.host.values])
        f = b.fields()
        self.assertIs(b.fields(), f, "fetched once per batch")
        self.assertEqual(self.host.calls[1:], [("columns",)])
        self.assertEqual((f.utf8("user").to_list(), f.int64("n").to_list()), (["a", None, None], [1, None, None]))
        self.assertEqual(f.mismatch(1), "field `n`: a string where int64 was declared")
        # A test can hand the batch its fields.
        self.assertIs(arkflow.Batch.of([(b"k", b"{}")], fields=f).fields(), f)
        for bad, msg in [([("a", "utf8"), ("a", "int64")], "fields.declare: field `a` is declared twice"),
                         ([("a", "text")], "field `a`: type must be boolean, int64, float64 or utf8")]:
            with self.assertRaises(arkflow.Error) as e:
                arkflow.fields.declare(bad)
            self.assertEqual((e.exception.class_, e.exception.code, e.exception.message), (ErrorClass.CONFIG, "bad-fields", msg))
        self.host.values = [b'{"user":"z"}']
        self.assertEqual(arkflow.Batch.of([(None, b"{}")]).fields().utf8("user").get(0), "z", "a refused declaration keeps the last")
        self.host.declared = None
        with self.assertRaises(arkflow.Error) as e:
            arkflow.Batch.of([(None, b"{}")]).fields()
        self.assertEqual((e.exception.class_, e.exception.code, e.exception.message),
                         (ErrorClass.INTERNAL, "fields", "fields.columns: no fields declared"))


if __name__ == "__main__":
    unittest.main()
