package arkflow

// The batch ABI of `arkflow:plugin@0.2.0` as plugin code sees it: [Batch], a read-only view of
// the records the host sent (sub-slices of a few contiguous buffers in the guest's memory,
// nothing copied per record), and [Outcomes], a builder that appends emitted values to one
// buffer (nothing allocated per record) and sends them back as one `outcomes` value.
//
// Contract of Outcomes (the Rust SDK's): say what input i became with Emit/EmitWith/EmitRecord
// or Fail; an input given none is dropped. Inputs must be addressed in ascending order (an input
// may get several emits in a row); out of order, the call fails with internal
// "outcomes-out-of-order" instead of sending the host something it would refuse. Fail after an
// emit of the same input, the reverse, or failing twice, fails the call the same way
// ("outcomes-mixed"). When every input emits exactly one record the reply has an empty `sources`
// list (the host's one-per-input fast path); otherwise it lists each record's input.
//
// Lifetimes: a Batch, its records' byte slices and the Outcomes passed to Process are valid for
// that call only; the SDK reuses their buffers on the next call (copy what you keep). Slices
// handed out are capped at their item's end: appending to one never overwrites its neighbour.

import (
	"fmt"

	types "arkflow.dev/plugin-sdk/wit/imports/arkflow_plugin_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// Column is the WIT `column` (Arrow's variable-size binary layout): item i is
// Data[Ends[i-1]:Ends[i]], present where bit i of Valid is set (an empty Valid: all present).
type Column = types.Column

var empty = []byte{}

// item is item i of c, nil when absent (a present empty item is a non-nil empty slice).
func item(c *Column, i int) []byte {
	if len(c.Valid) != 0 && c.Valid[i>>3]&(1<<(i&7)) == 0 {
		return nil
	}
	start := uint32(0)
	if i > 0 {
		start = c.Ends[i-1]
	}
	end := c.Ends[i]
	if start == end {
		return empty
	}
	return c.Data[start:end:end]
}

// Batch is the records of one batch (see the file's doc). Index records 0..Len()-1.
type Batch struct {
	raw     types.Batch
	records []RecordIn
	built   bool
	// Fields: fetched once per call (fields.go).
	fields        Fields
	fieldsErr     error
	fieldsFetched bool
}

func (b *Batch) reset(raw types.Batch) {
	b.raw, b.built, b.fieldsFetched, b.fieldsErr = raw, false, false, nil
}

// NewBatch builds a batch from records (for unit tests of plugin code).
func NewBatch(records ...RecordIn) *Batch {
	var keys, values colBuilder
	raw := types.Batch{}
	for i, r := range records {
		keys.push(r.Key)
		values.push(r.Value)
		raw.Timestamps = append(raw.Timestamps, r.TimestampMs)
		raw.Partitions = append(raw.Partitions, r.Partition)
		raw.Offsets = append(raw.Offsets, r.Offset)
		for _, h := range r.Headers {
			raw.Headers = append(raw.Headers, witTypes.Tuple2[uint32, Header]{F0: uint32(i), F1: h})
		}
	}
	raw.Keys, raw.Values = keys.column(), values.column()
	return &Batch{raw: raw}
}

// Len is the number of records.
func (b *Batch) Len() int { return len(b.raw.Timestamps) }

// Key is record i's key, nil when absent (the cheapest read: no RecordIn is built).
func (b *Batch) Key(i int) []byte { return item(&b.raw.Keys, i) }

// Value is record i's value, nil for a tombstone.
func (b *Batch) Value(i int) []byte { return item(&b.raw.Values, i) }

// Timestamp is record i's event time (ms since the Unix epoch).
func (b *Batch) Timestamp(i int) int64 { return b.raw.Timestamps[i] }

// Raw is the batch as the generated bindings lifted it.
func (b *Batch) Raw() *types.Batch { return &b.raw }

// Records are views of every record, in order, built once per call (no byte is copied; headers
// are gathered into a slice only for records that have any).
func (b *Batch) Records() []RecordIn {
	if b.built {
		return b.records
	}
	n := b.Len()
	if cap(b.records) < n {
		b.records = make([]RecordIn, n)
	}
	recs, h := b.records[:n], b.raw.Headers
	for i := range recs {
		r := &recs[i]
		*r = RecordIn{Key: b.Key(i), Value: b.Value(i), TimestampMs: b.raw.Timestamps[i]}
		if i < len(b.raw.Partitions) {
			r.Partition = b.raw.Partitions[i]
		}
		if i < len(b.raw.Offsets) {
			r.Offset = b.raw.Offsets[i]
		}
		for len(h) > 0 && int(h[0].F0) == i {
			r.Headers = append(r.Headers, h[0].F1)
			h = h[1:]
		}
		for len(h) > 0 && int(h[0].F0) < i { // out of order: not per the WIT; skip
			h = h[1:]
		}
	}
	b.records, b.built = recs, true
	return recs
}

// Record is a view of record i (see Records).
func (b *Batch) Record(i int) *RecordIn { return &b.Records()[i] }

// colBuilder builds a Column; the validity bitmap is only materialized once an item is absent.
type colBuilder struct {
	data   []byte
	ends   []uint32
	valid  []byte
	absent bool
}

func (c *colBuilder) reset() {
	c.data, c.ends, c.valid, c.absent = c.data[:0], c.ends[:0], c.valid[:0], false
}

func (c *colBuilder) len() int { return len(c.ends) }

// close ends item len(ends) at the current end of data (inlined for the common present item).
func (c *colBuilder) close(present bool) {
	if present && !c.absent {
		c.ends = append(c.ends, uint32(len(c.data)))
		return
	}
	c.closeSlow(present)
}

func (c *colBuilder) closeSlow(present bool) {
	i := len(c.ends)
	if !present && !c.absent {
		c.absent = true
		c.valid = c.valid[:0]
		for j := 0; j < i>>3; j++ {
			c.valid = append(c.valid, 0xff)
		}
		if i&7 != 0 {
			c.valid = append(c.valid, byte(1<<(i&7))-1)
		}
	}
	if c.absent {
		if i&7 == 0 {
			c.valid = append(c.valid, 0)
		}
		if present {
			c.valid[i>>3] |= 1 << (i & 7)
		}
	}
	c.ends = append(c.ends, uint32(len(c.data)))
}

// push appends an item; nil is absent.
func (c *colBuilder) push(b []byte) {
	c.data = AppendBytes(c.data, b)
	c.close(b != nil)
}

func (c *colBuilder) column() Column {
	col := Column{Data: c.data, Ends: c.ends}
	if c.absent {
		col.Valid = c.valid
	}
	return col
}

// Outcomes is what the inputs of one call (records of a batch, or fired timers) became. See
// the file's doc.
type Outcomes struct {
	values     colBuilder
	sources    []uint32
	oneEach    bool // emitted record j is input j's only one so far (sources not written yet)
	keys       colBuilder
	hasKeys    bool
	timestamps []witTypes.Tuple2[uint32, int64]
	headers    []witTypes.Tuple2[uint32, Header]
	outputs    []witTypes.Tuple2[uint32, string]
	failed     []witTypes.Tuple2[uint32, types.Error]
	last       int // the last input addressed, -1 before the first
	lastEmit   bool
	misuse     *Error
}

// NewOutcomes is an empty builder (for unit tests; the SDK passes one to Process and OnTimers).
func NewOutcomes() *Outcomes {
	o := &Outcomes{}
	o.reset()
	return o
}

// Reset empties the builder, keeping its buffers (the SDK does it before each call; for tests).
func (o *Outcomes) Reset() { o.reset() }

func (o *Outcomes) reset() {
	o.values.reset()
	o.keys.reset()
	o.sources, o.timestamps, o.headers = o.sources[:0], o.timestamps[:0], o.headers[:0]
	clear(o.outputs)
	clear(o.failed)
	o.outputs, o.failed = o.outputs[:0], o.failed[:0]
	o.oneEach, o.hasKeys, o.last, o.lastEmit, o.misuse = true, false, -1, false, nil
}

// address records that input i is addressed now (emits: by an emit); false when misused.
func (o *Outcomes) address(i int, emits bool) bool {
	if i > o.last || (i == o.last && emits && o.lastEmit) {
		o.last, o.lastEmit = i, emits
		return true
	}
	var code, msg string
	switch {
	case i < o.last:
		code, msg = "outcomes-out-of-order", fmt.Sprintf("input %d addressed after input %d", i, o.last)
	case i == o.last && o.lastEmit != emits:
		code, msg = "outcomes-mixed", fmt.Sprintf("input %d both emitted records and failed", i)
	case i == o.last && !emits:
		code, msg = "outcomes-mixed", fmt.Sprintf("input %d failed twice", i)
	default:
		code, msg = "outcomes-out-of-order", fmt.Sprintf("input %d", i)
	}
	if o.misuse == nil {
		o.misuse = Internal(code, msg)
	}
	return false
}

// emitted notes that the record just closed in values was emitted for input i.
func (o *Outcomes) emitted(i int) {
	j := o.values.len() - 1
	if o.oneEach {
		if i == j {
			return
		}
		o.oneEach = false
		for k := 0; k < j; k++ {
			o.sources = append(o.sources, uint32(k))
		}
	}
	o.sources = append(o.sources, uint32(i))
}

// EmitWith emits, for input i, one record whose value write appends to buf (the reply buffer:
// write must return buf with the value appended, like append does). The record keeps its
// input's key and timestamp (no headers). The fastest way to emit: the value is written in place.
func (o *Outcomes) EmitWith(i int, write func(buf []byte) []byte) {
	if i > o.last { // the common case, checked here without a call
		o.last, o.lastEmit = i, true
	} else if !o.address(i, true) {
		return
	}
	o.values.data = write(o.values.data)
	o.values.close(true)
	o.emitted(i)
}

// Emit emits, for input i, one record with value (copied; nil counts as empty), keeping the
// input's key and timestamp (no headers).
func (o *Outcomes) Emit(i int, value []byte) {
	if o.address(i, true) {
		o.values.data = AppendBytes(o.values.data, value)
		o.values.close(true)
		o.emitted(i)
	}
}

// EmitRecord emits a prepared record for input i (its Key, TimestampMs, Headers and Output
// override the input's; a nil Value is a tombstone).
func (o *Outcomes) EmitRecord(i int, r RecordOut) {
	if !o.address(i, true) {
		return
	}
	o.values.push(r.Value)
	j := o.values.len() - 1
	if r.Key != nil {
		for o.keys.len() < j {
			o.keys.close(false)
		}
		o.keys.push(r.Key)
		o.hasKeys = true
	}
	if r.HasTimestamp {
		o.timestamps = append(o.timestamps, witTypes.Tuple2[uint32, int64]{F0: uint32(j), F1: r.TimestampMs})
	}
	for _, h := range r.Headers {
		o.headers = append(o.headers, witTypes.Tuple2[uint32, Header]{F0: uint32(j), F1: h})
	}
	if r.Output != "" {
		o.outputs = append(o.outputs, witTypes.Tuple2[uint32, string]{F0: uint32(j), F1: r.Output})
	}
	o.emitted(i)
}

// Pass re-emits input record r (of index i) unchanged: its key, value and headers.
func (o *Outcomes) Pass(i int, r *RecordIn) {
	o.EmitRecord(i, RecordOut{Key: r.Key, Value: r.Value, Headers: r.Headers})
}

// Fail fails input i: the host routes it with err to the stream's error_output (or logs and
// counts it). The batch still succeeds.
func (o *Outcomes) Fail(i int, err error) {
	if o.address(i, false) {
		o.failed = append(o.failed, witTypes.Tuple2[uint32, types.Error]{F0: uint32(i), F1: toWIT(err)})
	}
}

// Invalid fails input i with an invalid-input error.
func (o *Outcomes) Invalid(i int, code, message string) { o.Fail(i, InvalidInput(code, message)) }

// finish is the reply for a call with inputs inputs, or the misuse error.
func (o *Outcomes) finish(inputs int) (types.Outcomes, error) {
	if o.misuse != nil {
		return types.Outcomes{}, o.misuse
	}
	if o.last >= inputs {
		return types.Outcomes{}, Internal("outcomes-out-of-range", fmt.Sprintf("input %d addressed in a call with %d inputs", o.last, inputs))
	}
	m := o.values.len()
	if o.oneEach && m != inputs {
		for k := 0; k < m; k++ { // a tail of inputs emitted nothing: list the sources
			o.sources = append(o.sources, uint32(k))
		}
	}
	out := types.Outcomes{Values: o.values.column(), Sources: o.sources, Timestamps: o.timestamps,
		Headers: o.headers, Outputs: o.outputs, Failed: o.failed}
	if o.oneEach && m == inputs {
		out.Sources = nil
	}
	if o.hasKeys {
		for o.keys.len() < m {
			o.keys.close(false)
		}
		out.Keys = o.keys.column()
	}
	return out, nil
}

// PerInput decodes the builder into one Outcome per input (for unit tests: what the host would
// make of the reply), or the misuse error.
func (o *Outcomes) PerInput(inputs int) ([]Outcome, error) {
	w, err := o.finish(inputs)
	if err != nil {
		return nil, err
	}
	out := make([]Outcome, inputs)
	for j := range w.Values.Ends {
		src := j
		if len(w.Sources) > 0 {
			src = int(w.Sources[j])
		}
		r := RecordOut{Value: item(&w.Values, j)}
		if len(w.Keys.Ends) > 0 {
			r.Key = item(&w.Keys, j)
		}
		for _, t := range w.Timestamps {
			if int(t.F0) == j {
				r.TimestampMs, r.HasTimestamp = t.F1, true
			}
		}
		for _, h := range w.Headers {
			if int(h.F0) == j {
				r.Headers = append(r.Headers, h.F1)
			}
		}
		for _, n := range w.Outputs {
			if int(n.F0) == j {
				r.Output = n.F1
			}
		}
		out[src].kind = OutcomeEmit
		out[src].records = append(out[src].records, r)
	}
	for _, f := range w.Failed {
		e := f.F1
		out[f.F0] = Outcome{kind: OutcomeFail, err: &Error{Class: e.Class, Code: e.Code, Message: e.Message}}
	}
	return out, nil
}

// AddList adds a record-API outcome list: exactly one Outcome per input, in order (what names
// the call in the error when the count is wrong).
func (o *Outcomes) AddList(list []Outcome, inputs int, what string) error {
	if len(list) != inputs {
		return Internal("wrong-outcome-count", fmt.Sprintf("%s returned %d outcomes for %d inputs", what, len(list), inputs))
	}
	for i := range list {
		switch oc := &list[i]; oc.kind {
		case OutcomeEmit:
			if oc.hasOne {
				o.Emit(i, oc.one)
			}
			for _, r := range oc.records {
				o.EmitRecord(i, r)
			}
		case OutcomeFail:
			o.Fail(i, oc.err)
		}
	}
	return nil
}
