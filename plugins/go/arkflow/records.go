package arkflow

// Records and the record API.
//
//   - RecordIn is one input record: views into the batch's buffers (Batch.Records), nothing
//     copied. A nil Key/Value means absent; a present empty one is a non-nil empty slice.
//   - RecordOut is an emitted record: nil Key keeps the input's key, nil Value is a tombstone,
//     HasTimestamp says whether TimestampMs overrides the input's, Output names a named output.
//   - The record API: a RecordProcessor returns one Outcome per record (EmitOne, Emit, Pass,
//     Drop, Fail, Invalid); PerRecord adapts it to a Processor. Simpler than the batch API
//     (Process with Outcomes), slower only by the []Outcome list it builds per batch.
//   - KeyRule: a record's key, or a JSON member of its value (the counters' key_field).

import "fmt"

// RecordIn is one record of a batch (see the file's doc). Its slices alias the batch: valid
// during the call only.
type RecordIn struct {
	Key         []byte // nil: unkeyed
	Value       []byte // nil: tombstone
	Headers     []Header
	TimestampMs int64 // event time, ms since the Unix epoch
	Partition   uint32
	Offset      uint64
}

// RecordOut is a record to emit (see the file's doc).
type RecordOut struct {
	Key          []byte // nil: the input's key
	Value        []byte // nil: a tombstone
	TimestampMs  int64
	HasTimestamp bool // TimestampMs is set (else the input's timestamp)
	Headers      []Header
	Output       string // a named output of the stream; "" for the next stage
}

// OutcomeKind says what an input became in the record API.
type OutcomeKind uint8

const (
	OutcomeDrop OutcomeKind = iota
	OutcomeEmit
	OutcomeFail
)

// Outcome is what one input became (record API).
type Outcome struct {
	kind    OutcomeKind
	one     []byte // EmitOne's value (no slice allocated for it)
	hasOne  bool
	records []RecordOut
	err     *Error
}

// Tag is the kind of outcome.
func (o Outcome) Tag() OutcomeKind { return o.kind }

// Emit is the emitted records (nil unless Tag is OutcomeEmit).
func (o Outcome) Emit() []RecordOut {
	if o.hasOne {
		return append([]RecordOut{{Value: o.one}}, o.records...)
	}
	return o.records
}

// Fail is the error (nil unless Tag is OutcomeFail).
func (o Outcome) Fail() *Error { return o.err }

func (o Outcome) String() string {
	switch o.kind {
	case OutcomeEmit:
		return fmt.Sprintf("emit %d", len(o.Emit()))
	case OutcomeFail:
		return "fail " + o.err.Error()
	}
	return "drop"
}

// Emit emits the given records.
func Emit(records ...RecordOut) Outcome { return Outcome{kind: OutcomeEmit, records: records} }

// EmitOne emits one record with this value; its key and timestamp are the input record's.
func EmitOne(value []byte) Outcome {
	if value == nil {
		value = empty
	}
	return Outcome{kind: OutcomeEmit, one: value, hasOne: true}
}

// Pass re-emits the input record unchanged (key, value, headers; timestamp inherited).
func Pass(r *RecordIn) Outcome {
	return Emit(RecordOut{Key: r.Key, Value: r.Value, Headers: r.Headers})
}

// Drop consumes the record without output.
func Drop() Outcome { return Outcome{} }

// Fail fails one record: the host routes it with this error to the stream's error_output (or
// logs and counts it). The batch still succeeds.
func Fail(err error) Outcome { return Outcome{kind: OutcomeFail, err: AsError(err)} }

// Invalid fails one record with an invalid-input error.
func Invalid(code, message string) Outcome { return Fail(InvalidInput(code, message)) }

// NewRecord is a record with this value (key, timestamp: the input's; no headers).
func NewRecord(value []byte) RecordOut {
	if value == nil {
		value = empty
	}
	return RecordOut{Value: value}
}

// WithKey returns r with its key set.
func WithKey(r RecordOut, key []byte) RecordOut {
	if key == nil {
		key = empty
	}
	r.Key = key
	return r
}

// WithTimestamp returns r with its event time set (ms since the Unix epoch).
func WithTimestamp(r RecordOut, ms int64) RecordOut {
	r.TimestampMs, r.HasTimestamp = ms, true
	return r
}

// WithHeader returns r with one more header.
func WithHeader(r RecordOut, key string, value []byte) RecordOut {
	r.Headers = append(r.Headers, Header{Key: key, Value: value})
	return r
}

// WithOutput returns r routed to the stream's named output name.
func WithOutput(r RecordOut, name string) RecordOut { r.Output = name; return r }

// RecordProcessor is a processor written against the record API: ProcessBatch must return
// exactly one outcome per record, in order (another count fails the batch with internal
// "wrong-outcome-count"). An error fails the whole batch. Wrap it with PerRecord.
type RecordProcessor interface {
	ProcessBatch(ctx *BatchContext, records []RecordIn) ([]Outcome, error)
}

type perRecord struct{ p RecordProcessor }

// PerRecord makes a Processor of a RecordProcessor (its OnCheckpoint and OnTimers, if any, are
// still called).
func PerRecord(p RecordProcessor) Processor { return perRecord{p} }

func (a perRecord) Process(ctx *BatchContext, batch *Batch, out *Outcomes) error {
	list, err := a.p.ProcessBatch(ctx, batch.Records())
	if err != nil {
		return err
	}
	return out.AddList(list, batch.Len(), "ProcessBatch")
}

// RecordKey is the record's key; ok is false for an unkeyed record. A present key is never nil.
func RecordKey(r *RecordIn) (key []byte, ok bool) { return r.Key, r.Key != nil }

// RecordValue is the record's value; ok is false for a tombstone. A present value is never nil.
func RecordValue(r *RecordIn) (value []byte, ok bool) { return r.Value, r.Value != nil }

// RecordHeader is the value of the first header named name.
func RecordHeader(r *RecordIn, name string) ([]byte, bool) {
	for _, h := range r.Headers {
		if h.Key == name {
			return h.Value, true
		}
	}
	return nil, false
}

// KeyRule finds the key of a record: its record key or, when the record has no key, the JSON
// string/number member Field of its value (a string unescaped, a number as its JSON text).
type KeyRule struct {
	Field    string
	HasField bool
}

// KeyFromConfig is the KeyRule of the config entry `name` (e.g. "key_field"); unset = record
// keys only.
func KeyFromConfig(cfg Config, name string) KeyRule {
	f, ok := cfg.Lookup(name)
	return KeyRule{Field: f, HasField: ok}
}

// Key is the record's key (never nil), or an invalid-input error: code "no-key" when there is
// neither a record key nor a string/number member, "bad-json" when the value is not JSON.
func (k KeyRule) Key(r *RecordIn) ([]byte, error) { return k.KeyOf(r.Key, r.Value) }

// KeyOf is Key for a record given by its key and value (nil = absent), e.g. Batch.Key(i) and
// Batch.Value(i): no RecordIn needed.
func (k KeyRule) KeyOf(key, value []byte) ([]byte, error) {
	if key != nil {
		return key, nil
	}
	return k.fromValue(value)
}

func (k KeyRule) fromValue(value []byte) ([]byte, error) {
	if !k.HasField || value == nil {
		return nil, InvalidInput("no-key", "record has no key and no `key_field` value")
	}
	key, ok, err := JSONKey(value, k.Field)
	if err != nil {
		return nil, err
	}
	if ok {
		return key, nil
	}
	return nil, InvalidInput("no-key", "no string/number field `"+k.Field+"`")
}
