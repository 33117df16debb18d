//go:build !wasip1

package main

// Native unit test (go test; the SDK fakes the host's state off wasm): plugins/go/build.sh --test

import (
	"testing"

	"arkflow/plugins/go/arkflow"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

func record(key, value string) arkflow.RecordIn {
	var r arkflow.RecordIn
	if key != "" {
		r.Key = witTypes.Some([]byte(key))
	}
	if value != "" {
		r.Value = witTypes.Some([]byte(value))
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
		out, err := p.ProcessBatch(&arkflow.BatchContext{BatchId: uint64(b)}, records)
		if err != nil || len(out) != len(records) {
			t.Fatalf("batch %d: %d outcomes, %v", b, len(out), err)
		}
		for i, o := range out {
			var got string
			switch o.Tag() {
			case arkflow.OutcomeEmit:
				got = string(o.Emit()[0].Value.Some())
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
