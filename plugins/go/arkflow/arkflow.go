// Package arkflow is the Go SDK for ArkFlow processor plugins: WebAssembly components of world
// `plugin` of `arkflow:plugin@0.1.1` (wit/v0.1/plugin.wit).
//
// It wraps the bindings that `wit-bindgen go` generates at build time (plugins/go/build.sh):
//
//   - [Export] registers the plugin ([Plugin]: name, version, state stores, an Init func that
//     returns a [Processor]); call it from the main package's init.
//   - [Store] (state.store), [StateCache] (one get-many, compute, one put-many per batch),
//     [EncodeI64]/[DecodeI64] (the `increment` counter encoding).
//   - [Config] (the YAML `config:` map), [KeyRule] (record key or a JSON member of the value),
//     [JSONField] (a validating top-level member lookup), [AppendJSONEscaped] (JSON string escaping).
//   - Outcomes ([EmitOne], [Emit], [Pass], [Drop], [Fail], [Invalid]) and errors ([NewError],
//     [InvalidInput], [ConfigError], [StateFailure], [Retriable], [Internal]).
//   - [Log], [Logf] and the metrics functions over the host's `log` and `metrics` imports.
//
// Errors: every SDK call returns a Go error; an error that is an *[Error] keeps its class and code
// when it crosses the WIT boundary, any other error becomes class internal, code "error".
package arkflow

import (
	"errors"
	"fmt"

	types "arkflow/wit/imports/arkflow_plugin_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// ABIVersion is the version of the WIT package this SDK is built against (describe().abi).
const ABIVersion = "0.1.1"

// Generated WIT types, re-exported.
type (
	RecordIn          = types.RecordIn
	RecordOut         = types.RecordOut
	Header            = types.Header
	Outcome           = types.RecordOutcome
	BatchContext      = types.BatchContext
	CheckpointContext = types.CheckpointContext
	Info              = types.Info
	StoreFormat       = types.StoreFormat
	ValueFormat       = types.ValueFormat
	ErrorClass        = types.ErrorClass
)

// Error classes (WIT `error-class`).
const (
	ClassInvalidInput ErrorClass = types.ErrorClass_InvalidInput
	ClassConfig       ErrorClass = types.ErrorClass_Config
	ClassState        ErrorClass = types.ErrorClass_State
	ClassRetriable    ErrorClass = types.ErrorClass_Retriable
	ClassInternal     ErrorClass = types.ErrorClass_Internal
)

// Outcome tags (Outcome.Tag()); Outcome.Emit() / Outcome.Fail() read the payload.
const (
	OutcomeEmit = types.RecordOutcome_Emit
	OutcomeDrop = types.RecordOutcome_Drop
	OutcomeFail = types.RecordOutcome_Fail
)

// Value formats of state stores (WIT `value-format`), for Plugin.StateFormats.
const (
	FormatBytes ValueFormat = types.ValueFormat_Bytes
	FormatUTF8  ValueFormat = types.ValueFormat_Utf8
	FormatJSON  ValueFormat = types.ValueFormat_Json
	FormatI64   ValueFormat = types.ValueFormat_I64
)

// Processor processes batches. One value lives per wasm instance, from a successful Init until
// the instance is dropped (the host re-instantiates after a trap and calls Init again, so nothing
// in it survives a trap, retry or restart).
type Processor interface {
	// ProcessBatch must return exactly one outcome per record, in order. An error fails the
	// whole batch (its staged state writes are discarded); use Fail/Invalid for one bad record.
	ProcessBatch(ctx *BatchContext, records []RecordIn) ([]Outcome, error)
}

// Checkpointer is implemented by processors that cache state in memory: OnCheckpoint is called
// per key group at each checkpoint, before the host snapshots state. Optional.
type Checkpointer interface {
	OnCheckpoint(ctx *CheckpointContext) error
}

// Plugin describes a plugin; pass it to Export.
type Plugin struct {
	Name    string // for the host's logs and metrics
	Version string // free form, semver recommended
	// State stores the plugin opens: "default" or names in the stream's state.custom_keys.
	StateStores []string
	// How (some of) those stores' values are encoded, for `arkflow state show`.
	StateFormats []StoreFormat
	// Builds the processor from the YAML config. State reads/writes fail here (no-scope) but
	// OpenStore works: open stores now and keep them.
	Init func(cfg Config) (Processor, error)
}

var (
	plugin   Plugin
	instance Processor
)

// Export registers p as the component's processor. Call it once, from the main package's init().
func Export(p Plugin) { plugin = p }

func describe() Info {
	defer logPanic()
	return Info{
		Name:         plugin.Name,
		Version:      plugin.Version,
		Abi:          ABIVersion,
		StateStores:  plugin.StateStores,
		StateFormats: plugin.StateFormats,
	}
}

type unitResult = witTypes.Result[witTypes.Unit, types.Error]

func initHook(config []witTypes.Tuple2[string, string]) unitResult {
	defer logPanic()
	if plugin.Init == nil {
		return witTypes.Err[witTypes.Unit](types.Error{Class: ClassInternal, Code: "not-exported",
			Message: "the plugin never called arkflow.Export"})
	}
	p, err := plugin.Init(Config{entries: config})
	if err != nil {
		return witTypes.Err[witTypes.Unit](toWIT(err))
	}
	instance = p
	return witTypes.Ok[witTypes.Unit, types.Error](witTypes.Unit{})
}

func notInitialized() types.Error {
	return types.Error{Class: ClassInternal, Code: "not-initialized",
		Message: "the host called the plugin before a successful init"}
}

func processBatchHook(ctx types.BatchContext, records []types.RecordIn) witTypes.Result[[]Outcome, types.Error] {
	defer logPanic()
	if instance == nil {
		return witTypes.Err[[]Outcome](notInitialized())
	}
	out, err := instance.ProcessBatch(&ctx, records)
	if err != nil {
		return witTypes.Err[[]Outcome](toWIT(err))
	}
	return witTypes.Ok[[]Outcome, types.Error](out)
}

func onCheckpointHook(ctx types.CheckpointContext) unitResult {
	defer logPanic()
	if instance == nil {
		return witTypes.Err[witTypes.Unit](notInitialized())
	}
	if c, ok := instance.(Checkpointer); ok {
		if err := c.OnCheckpoint(&ctx); err != nil {
			return witTypes.Err[witTypes.Unit](toWIT(err))
		}
	}
	return witTypes.Ok[witTypes.Unit, types.Error](witTypes.Unit{})
}

// logPanic logs a panic at level error through the host's log, then re-panics (a trap: the host
// discards the call's staged writes and re-instantiates the plugin).
func logPanic() {
	if r := recover(); r != nil {
		Log(LevelError, fmt.Sprintf("plugin panicked: %v", r))
		panic(r)
	}
}

// Error is an error with a WIT error class and a short machine-readable code.
type Error struct {
	Class   ErrorClass
	Code    string // e.g. "bad-json"
	Message string
}

var classNames = [...]string{"invalid-input", "config", "state", "retriable", "internal"}

// ClassName is the WIT name of an error class ("invalid-input", ...).
func ClassName(c ErrorClass) string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("class-%d", c)
}

func (e *Error) Error() string { return ClassName(e.Class) + "/" + e.Code + ": " + e.Message }

// NewError builds an *Error.
func NewError(class ErrorClass, code, message string) *Error {
	return &Error{Class: class, Code: code, Message: message}
}

// InvalidInput: the record or batch is malformed; retrying will not help.
func InvalidInput(code, message string) *Error { return NewError(ClassInvalidInput, code, message) }

// ConfigError: the plugin's configuration is wrong.
func ConfigError(code, message string) *Error { return NewError(ClassConfig, code, message) }

// StateFailure: a state operation failed.
func StateFailure(code, message string) *Error { return NewError(ClassState, code, message) }

// Retriable: a transient failure; the host may retry the batch.
func Retriable(code, message string) *Error { return NewError(ClassRetriable, code, message) }

// Internal: a bug or unexpected condition inside the plugin.
func Internal(code, message string) *Error { return NewError(ClassInternal, code, message) }

// AsError converts any error to an *Error: an *Error (also wrapped) as is, anything else as class
// internal, code "error".
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal("error", err.Error())
}

func toWIT(err error) types.Error {
	e := AsError(err)
	return types.Error{Class: e.Class, Code: e.Code, Message: e.Message}
}

// Outcomes.

// Emit emits the given records.
func Emit(records ...RecordOut) Outcome { return types.MakeRecordOutcomeEmit(records) }

// EmitOne emits one record with this value; its key and timestamp are the input record's.
func EmitOne(value []byte) Outcome {
	return types.MakeRecordOutcomeEmit([]RecordOut{{Value: witTypes.Some(value)}})
}

// Pass re-emits the input record unchanged (key, value, headers; timestamp inherited).
func Pass(r *RecordIn) Outcome {
	return types.MakeRecordOutcomeEmit([]RecordOut{{Key: r.Key, Value: r.Value, Headers: r.Headers}})
}

// Drop consumes the record without output.
func Drop() Outcome { return types.MakeRecordOutcomeDrop() }

// Fail fails one record: the host routes it with this error to the stream's error_output (or
// logs and counts it). The batch still succeeds.
func Fail(err error) Outcome { return types.MakeRecordOutcomeFail(toWIT(err)) }

// Invalid fails one record with an invalid-input error.
func Invalid(code, message string) Outcome { return Fail(InvalidInput(code, message)) }

// NewRecord is a record with this value (key, timestamp: the input's; no headers). Set Key with
// witTypes.Some or use WithKey.
func NewRecord(value []byte) RecordOut { return RecordOut{Value: witTypes.Some(value)} }

// WithKey returns r with its key set.
func WithKey(r RecordOut, key []byte) RecordOut { r.Key = witTypes.Some(key); return r }

// WithTimestamp returns r with its event time set (ms since the Unix epoch).
func WithTimestamp(r RecordOut, ms int64) RecordOut { r.TimestampMs = witTypes.Some(ms); return r }

// WithHeader returns r with one more header.
func WithHeader(r RecordOut, key string, value []byte) RecordOut {
	r.Headers = append(r.Headers, Header{Key: key, Value: value})
	return r
}

// Records.

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

// RecordKey is the record's key; ok is false for an unkeyed record. A present key is never nil.
func RecordKey(r *RecordIn) (key []byte, ok bool) { return present(r.Key) }

// RecordValue is the record's value; ok is false for a tombstone. A present value is never nil.
func RecordValue(r *RecordIn) (value []byte, ok bool) { return present(r.Value) }

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
func (k KeyRule) Key(r *RecordIn) ([]byte, error) {
	if key, ok := RecordKey(r); ok {
		return key, nil
	}
	value, ok := RecordValue(r)
	if !k.HasField || !ok {
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
