//go:build !wasip1

package main

// Native unit test (go test; the SDK fakes the host's state off wasm): plugins/go/build.sh --test

import (
	"strconv"
	"testing"

	"arkflow.dev/plugin-sdk/arkflow"
)

func record(key, value string) arkflow.RecordIn {
	var r arkflow.RecordIn
	if key != "" {
		r.Key = []byte(key)
	}
	if value != "" {
		r.Value = []byte(value)
	}
	return r
}

// outcomes runs the batches through p and renders each record's outcome: the emitted value, or
// "fail <class>/<code>" (with ": <message>" when full).
func outcomes(t *testing.T, p arkflow.Processor, batches [][]arkflow.RecordIn, full bool) [][]string {
	t.Helper()
	var got [][]string
	for b, records := range batches {
		o := arkflow.NewOutcomes()
		if err := p.Process(&arkflow.BatchContext{BatchId: uint64(b)}, arkflow.NewBatch(records...), o); err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
		out, err := o.PerInput(len(records))
		if err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
		var row []string
		for _, o := range out {
			var s string
			switch o.Tag() {
			case arkflow.OutcomeEmit:
				s = string(o.Emit()[0].Value)
			case arkflow.OutcomeFail:
				s = "fail " + arkflow.ClassName(o.Fail().Class) + "/" + o.Fail().Code
				if full {
					s += ": " + o.Fail().Message
				}
			}
			row = append(row, s)
		}
		got = append(got, row)
	}
	return got
}

func compare(t *testing.T, got, want [][]string) {
	t.Helper()
	for b := range want {
		for i := range want[b] {
			if got[b][i] != want[b][i] {
				t.Errorf("batch %d record %d: got %s, want %s", b, i, got[b][i], want[b][i])
			}
		}
	}
}

func TestCounter(t *testing.T) {
	arkflow.ResetFakeState()
	p, err := newCounter(arkflow.NewConfig([2]string{"key_field", "user"}))
	if err != nil {
		t.Fatal(err)
	}
	batches := [][]arkflow.RecordIn{
		{record("", `{"user":"a"}`), record("", `{"user":7}`), record("", `{"x":1}`), record("", `{"user":"a"}`)},
		{record("k\"\xff", ""), record("", `{"user":"a"}`), record("", `{"user":`), record("", "")},
	}
	want := [][]string{
		{`{"key":"a","count":1}`, `{"key":"7","count":1}`, "fail invalid-input/no-key", `{"key":"a","count":2}`},
		{`{"key":"k\"` + "\uFFFD" + `","count":1}`, `{"key":"a","count":3}`, "fail invalid-input/bad-json", "fail invalid-input/no-key"},
	}
	compare(t, outcomes(t, p, batches, false), want)
	store, _ := arkflow.OpenStore("default")
	if v, ok, _ := store.Get([]byte("a")); !ok || string(v) != string(arkflow.EncodeI64(3)) {
		t.Errorf("stored count of a: %v", v)
	}
}

// read: fields: the key comes from the host's utf8 column (here the fake host's), a record key
// still wins; a mismatched record fails with bad-field and the host's reason.
func TestCounterReadFields(t *testing.T) {
	arkflow.ResetFakeState()
	p, err := newCounter(arkflow.NewConfig([2]string{"key_field", "user"}, [2]string{"read", "fields"}))
	if err != nil {
		t.Fatal(err)
	}
	batches := [][]arkflow.RecordIn{
		{record("", `{"user":"a"}`), record("", `{"user":7}`), record("", `{"x":1}`), record("", `{"user":"a\"b"}`)},
		{record("k", `{"user":7}`), record("", `{"user":"a"}`), record("", `{"user":`), record("", ""), record("", `"a"`)},
	}
	want := [][]string{
		{`{"key":"a","count":1}`, "fail invalid-input/bad-field: field `user`: a number where utf8 was declared",
			"fail invalid-input/no-key: no string field `user`", `{"key":"a\"b","count":1}`},
		{`{"key":"k","count":1}`, `{"key":"a","count":2}`, "fail invalid-input/bad-field: invalid JSON at byte 8: unexpected end of input",
			"fail invalid-input/no-key: no string field `user`", "fail invalid-input/bad-field: invalid type: a string, expected a JSON object"},
	}
	compare(t, outcomes(t, p, batches, true), want)

	// Without key_field nothing is declared: record keys only, as with read: json.
	p, err = newCounter(arkflow.NewConfig([2]string{"read", "fields"}))
	if err != nil {
		t.Fatal(err)
	}
	compare(t, outcomes(t, p, [][]arkflow.RecordIn{{record("k", ""), record("", `{"user":"a"}`)}}, true),
		[][]string{{`{"key":"k","count":2}`, "fail invalid-input/no-key: record has no key and no `key_field` value"}})
}

func TestCounterReadBogus(t *testing.T) {
	_, err := newCounter(arkflow.NewConfig([2]string{"key_field", "user"}, [2]string{"read", "bogus"}))
	if e := arkflow.AsError(err); err == nil || e.Class != arkflow.ClassConfig || e.Code != "bad-config" || e.Message != "config `read`: `bogus` (json or fields)" {
		t.Errorf("read: bogus: %v", err)
	}
}

// BenchmarkCounter: batches of 256 keyed records over 10,000 keys, as the host bench sends
// (go test -bench . ./counter; the fake store's maps are part of the cost here).
func BenchmarkCounter(b *testing.B) {
	arkflow.ResetFakeState()
	p, _ := newCounter(arkflow.NewConfig())
	batches := make([]*arkflow.Batch, 64)
	for n := range batches {
		records := make([]arkflow.RecordIn, 256)
		for i := range records {
			records[i] = record(strconv.Itoa((n*256+i*7919)%10000), `{"payload":"0123456789abcdef"}`)
		}
		batches[n] = arkflow.NewBatch(records...)
	}
	o := arkflow.NewOutcomes()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		o.Reset()
		if err := p.Process(nil, batches[n%len(batches)], o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*256)/b.Elapsed().Seconds(), "records/s")
}
