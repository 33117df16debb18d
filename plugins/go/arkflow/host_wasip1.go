//go:build wasip1

package arkflow

// The host side of the SDK in the component (arkflow:plugin@0.2.0): the processor and
// timer-handler export glue, the state.store resource (get-column/put-column pass Columns
// through as is), timers, fields (declare; columns lifted as is, see Fields.lift), log and
// metrics. An import the plugin never calls is dropped by the Go linker. (Off wasm, host_fake.go stands in, for unit tests.)

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"

	glue "arkflow.dev/plugin-sdk/wit/exports/export_arkflow_plugin_processor"
	timerGlue "arkflow.dev/plugin-sdk/wit/exports/export_arkflow_plugin_timer_handler"
	_ "arkflow.dev/plugin-sdk/wit/exports/wit_exports" // the component's exported entry points
	hostfields "arkflow.dev/plugin-sdk/wit/imports/arkflow_plugin_fields"
	hostlog "arkflow.dev/plugin-sdk/wit/imports/arkflow_plugin_log"
	"arkflow.dev/plugin-sdk/wit/imports/arkflow_plugin_metrics"
	state "arkflow.dev/plugin-sdk/wit/imports/arkflow_plugin_state"
	"arkflow.dev/plugin-sdk/wit/imports/arkflow_plugin_timers"
	types "arkflow.dev/plugin-sdk/wit/imports/arkflow_plugin_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

func init() {
	// The garbage collector must never start inside cabi_realloc (the host calls it to copy a
	// call's arguments into guest memory): a GC cycle there can enter the scheduler, which polls
	// through a WASI import, and calling an import from cabi_realloc is forbidden: the host traps
	// with "cannot leave component instance". So automatic GC is off and the SDK collects at
	// the end of each export call instead (see collectGarbage).
	debug.SetGCPercent(-1)
	glue.DescribeHook = describe
	glue.InitHook = func(config []witTypes.Tuple2[string, string]) unitResult {
		defer collectGarbage()
		return initHook(config)
	}
	glue.ProcessBatchHook = func(ctx types.BatchContext, records types.Batch) outcomesResult {
		defer collectGarbage()
		return processBatchHook(&ctx, records)
	}
	glue.OnCheckpointHook = func(ctx types.CheckpointContext) unitResult {
		defer collectGarbage()
		return onCheckpointHook(ctx)
	}
	timerGlue.OnTimersHook = func(ctx types.TimerContext, fired []types.Timer) outcomesResult {
		defer collectGarbage()
		return onTimersHook(&ctx, fired)
	}
}

// RegisterTimer registers a timer for key at timeMs on domain's clock (WIT `register-timer`), in
// the key group of the current call, staged with its state writes.
func RegisterTimer(key []byte, timeMs int64, domain TimeDomain) error {
	r := arkflow_plugin_timers.RegisterTimer(key, timeMs, domain)
	if r.IsErr() {
		return stateErr(r.Err())
	}
	return nil
}

// DeleteTimer deletes that timer (WIT `delete-timer`); whether it was registered.
func DeleteTimer(key []byte, timeMs int64, domain TimeDomain) (bool, error) {
	r := arkflow_plugin_timers.DeleteTimer(key, timeMs, domain)
	if r.IsErr() {
		return false, stateErr(r.Err())
	}
	return r.Ok(), nil
}

// Watermark is the stream's watermark (WIT `watermark`; math.MinInt64 before the first): an event
// at or before it is late.
func Watermark() int64 { return arkflow_plugin_timers.Watermark() }

// Now is the host's wall clock, ms since the Unix epoch (WIT `now`).
func Now() int64 { return arkflow_plugin_timers.Now() }

// GCMinBytes is the least a plugin allocates between two collections (like GOGC=100 otherwise:
// a collection runs at the end of the export call during which the bytes allocated since the
// last one reached the live heap, or GCMinBytes if that is larger). The guest's memory peaks at
// about live heap + max(live heap, GCMinBytes) + what one call allocates: see limits.memory_mb.
var GCMinBytes uint64 = 4 << 20

var (
	gcSamples = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}}
	gcNext    uint64
)

func collectGarbage() {
	metrics.Read(gcSamples[:1])
	if gcSamples[0].Value.Uint64() < gcNext {
		return
	}
	runtime.GC() // a full, blocking cycle: nothing of it is left for cabi_realloc
	metrics.Read(gcSamples)
	gcNext = gcSamples[0].Value.Uint64() + max(gcSamples[1].Value.Uint64(), GCMinBytes)
}

// declareFields is WIT `fields.declare`: false and the host's message when it refuses.
func declareFields(fields []Field) (string, bool) {
	list := make([]hostfields.Field, len(fields))
	for i, f := range fields {
		list[i] = hostfields.Field{Name: f.Name, Type: uint8(f.Type)}
	}
	if r := hostfields.Declare(list); r.IsErr() {
		return r.Err(), false
	}
	return "", true
}

// fetchFields is WIT `fields.columns` of the running call, into f (reset for the batch).
func fetchFields(_ *Batch, f *Fields) error {
	r := hostfields.Columns()
	if r.IsErr() {
		return Internal("fields", r.Err())
	}
	return f.lift(r.Ok())
}

// Log writes one line (WIT `log.log`).
func Log(level Level, message string) { hostlog.Log(level, message) }

// CounterAdd adds delta to the counter metric name (WIT `metrics.counter-add`).
func CounterAdd(name string, delta uint64) { arkflow_plugin_metrics.CounterAdd(name, delta) }

// GaugeSet sets the gauge metric name (WIT `metrics.gauge-set`).
func GaugeSet(name string, value float64) { arkflow_plugin_metrics.GaugeSet(name, value) }

// HistogramRecord records one observation in the histogram metric name
// (WIT `metrics.histogram-record`).
func HistogramRecord(name string, value float64) { arkflow_plugin_metrics.HistogramRecord(name, value) }

// Store is a handle of a named state store ("default" or one of the stream's custom_keys).
type Store struct {
	raw  *state.Store
	name string
}

var stateErrorCodes = [...]string{"unknown-store", "no-scope", "key-too-large", "value-too-large",
	"quota-exceeded", "not-a-counter", "disabled"}
var stateErrorNames = [...]string{"UnknownStore", "NoScope", "KeyTooLarge", "ValueTooLarge",
	"QuotaExceeded", "NotACounter", "Disabled"}

// stateErr converts a WIT state-error into an *Error of class state (message as the Rust SDK's).
func stateErr(e state.StateError) error {
	t := e.Tag()
	if int(t) >= len(stateErrorCodes) {
		return StateFailure("state-error", fmt.Sprintf("StateError(%d)", t))
	}
	msg := "StateError::" + stateErrorNames[t]
	switch t {
	case state.StateError_UnknownStore:
		msg += fmt.Sprintf("(%q)", e.UnknownStore())
	case state.StateError_QuotaExceeded:
		msg += fmt.Sprintf("(%q)", e.QuotaExceeded())
	case state.StateError_KeyTooLarge:
		msg += fmt.Sprintf("(%d)", e.KeyTooLarge())
	case state.StateError_ValueTooLarge:
		msg += fmt.Sprintf("(%d)", e.ValueTooLarge())
	}
	return StateFailure(stateErrorCodes[t], msg)
}

// OpenStore opens the store name (WIT `store.open`). Open stores in Init and keep the handle;
// list every store you open in Plugin.StateStores.
func OpenStore(name string) (*Store, error) {
	r := state.StoreOpen(name)
	if r.IsErr() {
		return nil, stateErr(r.Err())
	}
	return &Store{raw: r.Ok(), name: name}, nil
}

// Name is the store's name.
func (s *Store) Name() string { return s.name }

// Raw is the generated binding of the handle, for anything this wrapper lacks.
func (s *Store) Raw() *state.Store { return s.raw }

func present(o witTypes.Option[[]byte]) ([]byte, bool) {
	if !o.IsSome() {
		return nil, false
	}
	b := o.Some()
	if b == nil {
		b = []byte{} // present but empty: never nil, so nil always means absent
	}
	return b, true
}

func opt(b witTypes.Option[[]byte]) []byte {
	v, _ := present(b)
	return v
}

// Get is the value of key (WIT `get`); ok is false when absent or expired.
func (s *Store) Get(key []byte) (value []byte, ok bool, err error) {
	r := s.raw.Get(key)
	if r.IsErr() {
		return nil, false, stateErr(r.Err())
	}
	value, ok = present(r.Ok())
	return value, ok, nil
}

// Put sets key to value (WIT `put`).
func (s *Store) Put(key, value []byte) error {
	if r := s.raw.Put(key, value); r.IsErr() {
		return stateErr(r.Err())
	}
	return nil
}

// Delete removes key (WIT `delete`) and says whether it was present.
func (s *Store) Delete(key []byte) (bool, error) {
	r := s.raw.Delete(key)
	if r.IsErr() {
		return false, stateErr(r.Err())
	}
	return r.Ok(), nil
}

// GetMany is Get for many keys at once (WIT `get-many`): one value per key, in order, nil when
// absent.
func (s *Store) GetMany(keys [][]byte) ([][]byte, error) {
	r := s.raw.GetMany(keys)
	if r.IsErr() {
		return nil, stateErr(r.Err())
	}
	got := r.Ok()
	out := make([][]byte, len(got))
	for i, o := range got {
		out[i] = opt(o)
	}
	return out, nil
}

// GetColumn is Get for a column of keys (WIT `get-column`; every key present): one item per key,
// absent where the key is absent or expired. The reply's buffers are the caller's.
func (s *Store) GetColumn(keys Column) (Column, error) {
	r := s.raw.GetColumn(keys)
	if r.IsErr() {
		return Column{}, stateErr(r.Err())
	}
	return r.Ok(), nil
}

// PutColumn is Put for a column of keys and a column of values, item by item (WIT `put-column`;
// the same number of items, every item present).
func (s *Store) PutColumn(keys, values Column) error {
	if r := s.raw.PutColumn(keys, values); r.IsErr() {
		return stateErr(r.Err())
	}
	return nil
}

// PutMany is Put for many entries at once (WIT `put-many`).
func (s *Store) PutMany(entries []Entry) error {
	t := make([]witTypes.Tuple2[[]byte, []byte], len(entries))
	for i, e := range entries {
		t[i] = witTypes.Tuple2[[]byte, []byte]{F0: e.Key, F1: e.Value}
	}
	if r := s.raw.PutMany(t); r.IsErr() {
		return stateErr(r.Err())
	}
	return nil
}

// DeleteMany is Delete for many keys at once (WIT `delete-many`).
func (s *Store) DeleteMany(keys [][]byte) error {
	if r := s.raw.DeleteMany(keys); r.IsErr() {
		return stateErr(r.Err())
	}
	return nil
}

// Increment adds delta to the counter at key (absent = 0; 8-byte little-endian, wrapping) and
// returns the new value (WIT `increment`). Another value there is not-a-counter.
func (s *Store) Increment(key []byte, delta int64) (int64, error) {
	r := s.raw.Increment(key, delta)
	if r.IsErr() {
		return 0, stateErr(r.Err())
	}
	return r.Ok(), nil
}

// ScanPrefix returns up to limit (at most 1024) entries whose key starts with prefix, after
// startAfter (nil: from the start), in ascending key order (WIT `scan-prefix`).
func (s *Store) ScanPrefix(prefix, startAfter []byte, limit uint32) (ScanPage, error) {
	var after witTypes.Option[[]byte]
	if startAfter != nil {
		after = witTypes.Some(startAfter)
	}
	r := s.raw.ScanPrefix(prefix, after, limit)
	if r.IsErr() {
		return ScanPage{}, stateErr(r.Err())
	}
	page := r.Ok()
	out := ScanPage{Entries: make([]Entry, len(page.Entries)), Next: opt(page.Next)}
	for i, e := range page.Entries {
		v := e.F1
		if v == nil {
			v = []byte{}
		}
		out.Entries[i] = Entry{Key: e.F0, Value: v}
	}
	return out, nil
}
