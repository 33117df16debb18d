"""Native unit tests of the Python SDK (plugins/python/sdk/arkflow) and the counter
(plugins/python/counter), run by plugins/python/test.sh. The WIT bindings are generated into a
temporary directory with `componentize-py bindings` (pure-Python stubs); `state.Store.open` and
`log.log` are replaced by in-memory fakes. JSON answers are checked against the Rust SDK's
(json_cases.json)."""
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
subprocess.run(["componentize-py", "-q", "-d", os.path.join(ROOT, "wit", "v0.1"), "-w", "plugin", "bindings", _BINDINGS],
               check=True)
sys.path[:0] = [_BINDINGS, os.path.join(HERE, "..", "sdk"), os.path.join(HERE, "..", "counter")]

import app  # noqa: E402  (registers the counter with arkflow.export)
import arkflow  # noqa: E402
from componentize_py_types import Err  # noqa: E402
from wit_world.imports import log, state  # noqa: E402
from wit_world.imports.types import (  # noqa: E402
    BatchContext, ErrorClass, RecordIn, RecordOutcome_Emit, RecordOutcome_Fail, ValueFormat,
)


def tearDownModule():
    shutil.rmtree(_BINDINGS, ignore_errors=True)


class FakeStore:
    """One store's state, recording the calls the plugin makes."""

    def __init__(self):
        self.data = {}
        self.calls = []
        self.fail_with = None

    def get_many(self, keys):
        self.calls.append(("get-many", list(keys)))
        if self.fail_with:
            raise Err(self.fail_with)
        return [self.data.get(k) for k in keys]

    def put_many(self, entries):
        self.calls.append(("put-many", list(entries)))
        self.data.update(entries)


def rec(key=None, value=None):
    return RecordIn(key, value, [], 1_700_000_000_000, 0, 0)


CTX = BatchContext(1, 0, 0, 0, 1)
PROCESSOR = app.Processor  # what componentize-py instantiates for every call


class CounterTest(unittest.TestCase):
    def setUp(self):
        self.store = FakeStore()
        self.logged = []
        self._open, self._log = state.Store.open, log.log
        state.Store.open = classmethod(lambda cls, name: self.store if name == "default" else None)
        log.log = lambda level, message: self.logged.append((level, message))
        arkflow._instance = None

    def tearDown(self):
        state.Store.open, log.log = self._open, self._log
        arkflow._instance = None

    def init(self, *pairs, **config):
        PROCESSOR().init(list(pairs) + list(config.items()))

    def run_batch(self, records):
        return PROCESSOR().process_batch(CTX, records)

    def values(self, outcomes):
        return [o.value[0].value.decode() if isinstance(o, RecordOutcome_Emit) else o.value for o in outcomes]

    def test_describe(self):
        info = PROCESSOR().describe()
        self.assertEqual((info.name, info.version, info.abi, info.state_stores), ("counter", "0.1.0", arkflow.ABI_VERSION, ["default"]))
        self.assertEqual([(f.store, f.format) for f in info.state_formats], [("default", ValueFormat.I64)])

    def test_counts_per_key_with_one_get_many_and_one_put_many(self):
        self.init()
        self.store.data[b"b"] = struct.pack("<q", 41)
        out = self.run_batch([rec(b"a"), rec(b"b"), rec(b"a")])
        self.assertEqual(self.values(out), ['{"key":"a","count":1}', '{"key":"b","count":42}', '{"key":"a","count":2}'])
        self.assertEqual(self.store.calls, [
            ("get-many", [b"a", b"b"]),
            ("put-many", [(b"a", struct.pack("<q", 2)), (b"b", struct.pack("<q", 42))]),
        ])
        for o in out:  # key and timestamp are inherited from the input
            self.assertEqual((o.value[0].key, o.value[0].timestamp_ms, o.value[0].output), (None, None, None))

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
            self.assertIsInstance(o, RecordOutcome_Fail)
            self.assertEqual((o.value.class_, o.value.code, o.value.message),
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
            self.assertEqual((o.value.class_, o.value.code), (ErrorClass.INVALID_INPUT, "no-key"), value)
        [o] = self.run_batch([rec(value=b'{"other":"a"}')])
        self.assertEqual(o.value.message, "no string/number field `user`")
        self.init()  # no key_field
        [o] = self.run_batch([rec(value=b'{"user":"a"}')])
        self.assertEqual(o.value.message, "record has no key and no `key_field` value")

    def test_bad_json_fails_the_record_with_the_rust_message(self):
        self.init(key_field="user")
        [o] = self.run_batch([rec(value=b'{"user":"\\ud800"}')])
        self.assertEqual((o.value.class_, o.value.code, o.value.message),
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

    def test_get_many_returning_the_wrong_number_of_values_fails_the_batch(self):
        self.init()
        self.store.get_many = lambda keys: []
        with self.assertRaises(Err) as e:
            self.run_batch([rec(b"a"), rec(b"b")])
        err = e.exception.value
        self.assertEqual((err.class_, err.code, err.message),
                         (ErrorClass.INTERNAL, "bad-get-many", "get-many returned 0 values for 2 keys"))

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
        self.store.get_many = None  # calling it raises TypeError
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

    def test_outcomes(self):
        r = RecordIn(b"k", b"v", [], 5, 0, 0)
        o = arkflow.pass_(r).value[0]
        self.assertEqual((o.key, o.value, o.timestamp_ms), (b"k", b"v", None))
        o = arkflow.emit(arkflow.record_out("x", key=b"k2", timestamp_ms=9, headers=[("h", b"1")])).value[0]
        self.assertEqual((o.key, o.value, o.timestamp_ms, o.headers[0].key), (b"k2", b"x", 9, "h"))
        self.assertEqual(type(arkflow.drop()).__name__, "RecordOutcome_Drop")
        f = arkflow.fail(arkflow.retriable("later", "try again")).value
        self.assertEqual((f.class_, f.code, f.message), (ErrorClass.RETRIABLE, "later", "try again"))


if __name__ == "__main__":
    unittest.main()
