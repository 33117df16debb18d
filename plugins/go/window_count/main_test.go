//go:build !wasip1

package main

// Native unit test (go test; the SDK fakes the host's state and timers off wasm):
// plugins/go/build.sh --test

import (
	"testing"

	"arkflow.dev/plugin-sdk/arkflow"
)

func at(ts int64, value string) arkflow.RecordIn {
	return arkflow.RecordIn{Value: []byte(value), TimestampMs: ts}
}

// process runs Process (or OnTimers, when fired is not nil) and decodes its outcomes.
func process(t *testing.T, w *windowCount, records []arkflow.RecordIn, fired []arkflow.Timer) []arkflow.Outcome {
	t.Helper()
	o, n := arkflow.NewOutcomes(), len(records)
	var err error
	if fired != nil {
		n, err = len(fired), w.OnTimers(nil, fired, o)
	} else {
		err = w.Process(nil, arkflow.NewBatch(records...), o)
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := o.PerInput(n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWindowCount(t *testing.T) {
	arkflow.ResetFakeState()
	p, err := newWindowCount(arkflow.NewConfig([2]string{"key_field", "user"}, [2]string{"size_ms", "1000"}))
	if err != nil {
		t.Fatal(err)
	}
	w := p.(*windowCount)
	out := process(t, w, []arkflow.RecordIn{at(100, `{"user":"a"}`), at(900, `{"user":"a"}`), at(1500, `{"user":"a"}`), at(5, `{}`)}, nil)
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
	fired := process(t, w, nil, []arkflow.Timer{first})
	rec := fired[0].Emit()[0]
	if want := `{"key":"a","window_start":0,"window_end":1000,"count":2}`; string(rec.Value) != want {
		t.Fatalf("got %s, want %s", rec.Value, want)
	}
	if string(rec.Key) != "a" || !rec.HasTimestamp || rec.TimestampMs != 999 {
		t.Fatalf("key %q, timestamp %v %d", rec.Key, rec.HasTimestamp, rec.TimestampMs)
	}
	arkflow.FakeWatermark = 999
	late := process(t, w, []arkflow.RecordIn{at(10, `{"user":"a"}`)}, nil)
	if late[0].Tag() != arkflow.OutcomeFail || late[0].Fail().Code != "late" {
		t.Fatalf("a record of a fired window is late: %v", late)
	}
}
