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
	for b, records := range batches {
		o := arkflow.NewOutcomes()
		if err := p.Process(&arkflow.BatchContext{BatchId: uint64(b)}, arkflow.NewBatch(records...), o); err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
		out, err := o.PerInput(len(records))
		if err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
		for i, o := range out {
			var got string
			switch o.Tag() {
			case arkflow.OutcomeEmit:
				got = string(o.Emit()[0].Value)
			case arkflow.OutcomeFail:
				got = "fail " + arkflow.ClassName(o.Fail().Class) + "/" + o.Fail().Code
			}
			if got != want[b][i] {
				t.Errorf("batch %d record %d: got %s, want %s", b, i, got, want[b][i])
			}
		}
	}
	store, _ := arkflow.OpenStore("default")
	if v, ok, _ := store.Get([]byte("a")); !ok || string(v) != string(arkflow.EncodeI64(3)) {
		t.Errorf("stored count of a: %v", v)
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
