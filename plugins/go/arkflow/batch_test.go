package arkflow

// Unit tests of the batch ABI helpers (batch.go) and the column state cache (state.go), native.

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestBatchViews(t *testing.T) {
	b := NewBatch(
		RecordIn{Key: []byte("k"), Value: []byte("v0"), TimestampMs: 5, Partition: 2, Offset: 9},
		RecordIn{Value: []byte{}, Headers: []Header{{Key: "h", Value: []byte("1")}, {Key: "h", Value: []byte("2")}}},
		RecordIn{Key: []byte{}},
	)
	if b.Len() != 3 || len(b.Raw().Keys.Valid) == 0 {
		t.Fatalf("len %d, key validity %v", b.Len(), b.Raw().Keys.Valid)
	}
	r := b.Records()
	if string(r[0].Key) != "k" || string(r[0].Value) != "v0" || r[0].TimestampMs != 5 || r[0].Partition != 2 || r[0].Offset != 9 {
		t.Errorf("record 0: %+v", r[0])
	}
	if r[1].Key != nil || r[1].Value == nil || len(r[1].Value) != 0 || len(r[1].Headers) != 2 {
		t.Errorf("record 1: %+v", r[1])
	}
	if v, ok := RecordHeader(&r[1], "h"); !ok || string(v) != "1" {
		t.Errorf("first header h: %q", v)
	}
	if r[2].Key == nil || r[2].Value != nil || r[2].Headers != nil {
		t.Errorf("record 2: %+v", r[2])
	}
	if k := append(b.Key(0), 'x'); string(b.Value(0)) != "v0" || string(k) != "kx" {
		t.Error("appending to an item overwrote its neighbour")
	}
}

// wire is the wire form of o for inputs inputs.
func wire(t *testing.T, o *Outcomes, inputs int) (values []string, sources []uint32) {
	t.Helper()
	w, err := o.finish(inputs)
	if err != nil {
		t.Fatal(err)
	}
	for j := range w.Values.Ends {
		if v := item(&w.Values, j); v == nil {
			values = append(values, "<absent>")
		} else {
			values = append(values, string(v))
		}
	}
	return values, w.Sources
}

func TestOutcomesOnePerInputHasNoSources(t *testing.T) {
	o := NewOutcomes()
	o.Emit(0, []byte("a"))
	o.EmitWith(1, func(b []byte) []byte { return append(b, "bb"...) })
	o.Emit(2, nil)
	values, sources := wire(t, o, 3)
	if len(sources) != 0 || len(values) != 3 || values[1] != "bb" || values[2] != "" {
		t.Errorf("values %q sources %v", values, sources)
	}
	// The builder is reused: a reset leaves nothing behind.
	o.reset()
	if values, sources := wire(t, o, 2); len(values) != 0 || len(sources) != 0 {
		t.Errorf("after reset: %q %v", values, sources)
	}
}

func TestOutcomesSourcesWhenNotOneEach(t *testing.T) {
	for _, c := range []struct {
		name string
		run  func(o *Outcomes)
		want []uint32
	}{
		{"drop first", func(o *Outcomes) { o.Emit(1, nil); o.Emit(2, nil) }, []uint32{1, 2}},
		{"two for one", func(o *Outcomes) { o.Emit(0, nil); o.Emit(0, nil); o.Emit(2, nil) }, []uint32{0, 0, 2}},
		{"tail dropped", func(o *Outcomes) { o.Emit(0, nil); o.Emit(1, nil) }, []uint32{0, 1}},
		{"failed middle", func(o *Outcomes) { o.Emit(0, nil); o.Invalid(1, "x", "y"); o.Emit(2, nil) }, []uint32{0, 2}},
	} {
		o := NewOutcomes()
		c.run(o)
		if _, sources := wire(t, o, 3); !equalU32(sources, c.want) {
			t.Errorf("%s: sources %v, want %v", c.name, sources, c.want)
		}
	}
}

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOutcomesRecordsAndSparseFields(t *testing.T) {
	o := NewOutcomes()
	for i := 0; i < 10; i++ {
		o.Emit(i, []byte{byte('0' + i)})
	}
	o.EmitRecord(10, WithOutput(WithHeader(WithTimestamp(WithKey(RecordOut{}, []byte("K")), 7), "h", []byte("v")), "side"))
	w, err := o.finish(11)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Sources) != 0 || item(&w.Values, 10) != nil || item(&w.Values, 9)[0] != '9' {
		t.Errorf("values: %+v", w.Values)
	}
	if len(w.Keys.Ends) != 11 || item(&w.Keys, 3) != nil || string(item(&w.Keys, 10)) != "K" {
		t.Errorf("keys: %+v", w.Keys)
	}
	if len(w.Timestamps) != 1 || w.Timestamps[0].F0 != 10 || w.Timestamps[0].F1 != 7 ||
		len(w.Headers) != 1 || len(w.Outputs) != 1 || w.Outputs[0].F1 != "side" {
		t.Errorf("sparse: %+v", w)
	}
}

func TestOutcomesMisuse(t *testing.T) {
	for name, run := range map[string]func(o *Outcomes){
		"outcomes-out-of-order": func(o *Outcomes) { o.Emit(2, nil); o.Emit(1, nil) },
		"outcomes-mixed":        func(o *Outcomes) { o.Emit(1, nil); o.Invalid(1, "a", "b") },
		"outcomes-out-of-range": func(o *Outcomes) { o.Emit(3, nil) },
	} {
		o := NewOutcomes()
		run(o)
		if _, err := o.finish(3); err == nil || AsError(err).Code != name || AsError(err).Class != ClassInternal {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestRecordAPIThroughOutcomes(t *testing.T) {
	o := NewOutcomes()
	list := []Outcome{EmitOne([]byte("x")), Drop(), Invalid("bad", "m"), Emit(NewRecord([]byte("y")), NewRecord([]byte("z")))}
	if err := o.AddList(list, 4, "ProcessBatch"); err != nil {
		t.Fatal(err)
	}
	got, err := o.PerInput(4)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Tag() != OutcomeEmit || string(got[0].Emit()[0].Value) != "x" || got[1].Tag() != OutcomeDrop ||
		got[2].Fail().Code != "bad" || len(got[3].Emit()) != 2 || string(got[3].Emit()[1].Value) != "z" {
		t.Errorf("got %v", got)
	}
	if err := NewOutcomes().AddList(list, 3, "ProcessBatch"); err == nil || AsError(err).Code != "wrong-outcome-count" {
		t.Errorf("wrong count: %v", err)
	}
}

func TestStateCacheLoadFlushThroughColumns(t *testing.T) {
	ResetFakeState()
	store, _ := OpenStore("default")
	_ = store.Put([]byte("a"), EncodeI64(10))
	_ = store.Put([]byte("odd"), []byte("xyz"))
	var c StateCache
	for round := 0; round < 2; round++ {
		keys := [][]byte{[]byte("a"), nil, []byte("b"), []byte("a")}
		if err := c.Load(store, keys); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if k != nil {
				if _, err := c.Increment(k, 1); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := c.Flush(store); err != nil { // every slot written in slot order: key buffer as is
			t.Fatal(err)
		}
	}
	if v, _, _ := store.Get([]byte("a")); !bytes.Equal(v, EncodeI64(14)) {
		t.Errorf("a = %v", v)
	}
	if v, _, _ := store.Get([]byte("b")); !bytes.Equal(v, EncodeI64(2)) {
		t.Errorf("b = %v", v)
	}
	// Out of slot order, and a key loaded but never written.
	if err := c.Load(store, [][]byte{[]byte("a"), []byte("b"), []byte("odd")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Increment([]byte("odd"), 1); err == nil || AsError(err).Code != "not-a-counter" {
		t.Errorf("odd: %v", err)
	}
	c.PutI64([]byte("b"), -1)
	c.Put([]byte("new"), []byte("longer value"))
	if err := c.Flush(store); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := store.Get([]byte("b")); !bytes.Equal(v, EncodeI64(-1)) {
		t.Errorf("b = %v", v)
	}
	if v, _, _ := store.Get([]byte("new")); string(v) != "longer value" {
		t.Errorf("new = %q", v)
	}
	if v, _, _ := store.Get([]byte("a")); !bytes.Equal(v, EncodeI64(14)) {
		t.Errorf("a changed: %v", v)
	}
}

func TestStateCacheManyKeysAndResizedValues(t *testing.T) {
	c, _ := NewStateCache(nil, nil)
	var k [4]byte
	for i := 0; i < 5000; i++ {
		binary.LittleEndian.PutUint32(k[:], uint32(i))
		if n, err := c.Increment(k[:], int64(i)); err != nil || n != int64(i) {
			t.Fatalf("%d: %d %v", i, n, err)
		}
	}
	c.Put([]byte("x"), []byte("short"))
	c.Put([]byte("x"), []byte("much longer"))
	c.Put([]byte("x"), []byte("same length"))
	if v, _ := c.Get([]byte("x")); string(v) != "same length" {
		t.Errorf("x = %q", v)
	}
	binary.LittleEndian.PutUint32(k[:], 4321)
	if v, ok, _ := c.GetI64(k[:]); !ok || v != 4321 {
		t.Errorf("4321: %d %v", v, ok)
	}
	if w := c.Writes(); len(w) != 5001 {
		t.Errorf("%d writes", len(w))
	}
}
