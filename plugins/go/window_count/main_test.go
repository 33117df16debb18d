//go:build !wasip1

package main

// Native unit test (go test; the SDK fakes the host's state and timers off wasm):
// plugins/go/build.sh --test

import (
	"testing"

	"arkflow/plugins/go/arkflow"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

func at(ts int64, value string) arkflow.RecordIn {
	return arkflow.RecordIn{Value: witTypes.Some([]byte(value)), TimestampMs: ts}
}

func TestWindowCount(t *testing.T) {
	arkflow.ResetFakeState()
	p, err := newWindowCount(arkflow.NewConfig([2]string{"key_field", "user"}, [2]string{"size_ms", "1000"}))
	if err != nil {
		t.Fatal(err)
	}
	w := p.(*windowCount)
	out, err := w.ProcessBatch(nil, []arkflow.RecordIn{at(100, `{"user":"a"}`), at(900, `{"user":"a"}`), at(1500, `{"user":"a"}`), at(5, `{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Tag() != arkflow.OutcomeDrop || out[3].Tag() != arkflow.OutcomeFail || out[3].Fail().Code != "no-key" {
		t.Fatalf("outcomes: %v", out)
	}
	if len(arkflow.FakeTimers) != 2 {
		t.Fatalf("one timer per window: %v", arkflow.FakeTimers)
	}
	var first arkflow.Timer
	for _, tm := range arkflow.FakeTimers {
		if tm.TimeMs == 999 {
			first = tm
		}
	}
	fired, err := w.OnTimers(nil, []arkflow.Timer{first})
	if err != nil {
		t.Fatal(err)
	}
	got := string(fired[0].Emit()[0].Value.Some())
	if want := `{"key":"a","window_start":0,"window_end":1000,"count":2}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	arkflow.FakeWatermark = 999
	late, _ := w.ProcessBatch(nil, []arkflow.RecordIn{at(10, `{"user":"a"}`)})
	if late[0].Tag() != arkflow.OutcomeFail || late[0].Fail().Code != "late" {
		t.Fatalf("a record of a fired window is late: %v", late)
	}
}
