// Package arkflow is the Go SDK for ArkFlow processor plugins: WebAssembly components of world
// `timed-plugin` of `arkflow:plugin@0.2.0` (wit/plugin.wit, the batch ABI).
//
// It is the Go module arkflow.dev/plugin-sdk/arkflow, version [SDKVersion] (go.mod). It wraps the
// bindings that `wit-bindgen go` generates at build time (go_setup in toolchain/go.sh, run by
// plugins/go/build.sh and by a plugin project's build.sh: the module arkflow.dev/plugin-sdk/wit,
// plus this SDK's _glue/):
//
//   - [Export] registers the plugin ([Plugin]: name, version, state stores, key_by, an Init func
//     that returns a [Processor]); call it from the main package's init.
//   - [Processor].Process reads a [Batch] in place (views into a few buffers, nothing copied per
//     record) and says what each record became in [Outcomes] (values appended to one reply
//     buffer; [Outcomes.EmitWith] writes a value in place); batch.go. The record API
//     ([RecordProcessor]: one [Outcome] per record, [EmitOne], [Emit], [Pass], [Drop], [Fail],
//     [Invalid]) runs through [PerRecord]; records.go.
//   - [Store] (state.store: get-column/put-column and the single-key calls), [StateCache] (one
//     get-column, compute, one put-column per batch; keys and values in flat buffers),
//     [EncodeI64]/[DecodeI64] (the `increment` counter encoding); state.go.
//   - Typed fields ([DeclareFields] in Init, [Batch.Fields] per batch: the host decodes the
//     declared top-level JSON fields of every record into typed columns, read by name with
//     [Fields.Int64], [Fields.Float64], [Fields.Bool], [Fields.Str]; no JSON parsed in the
//     guest); fields.go. A plugin that never calls them does not import `fields`.
//   - [Config] (the YAML `config:` map), [KeyRule] (record key or a JSON member of the value),
//     [JSONField] (a validating top-level member lookup), [AppendJSONEscaped] (JSON escaping).
//   - Timers ([RegisterTimer], [TimerHandler]), errors ([NewError], [InvalidInput],
//     [ConfigError], [StateFailure], [Retriable], [Internal]), [Log], [Logf] and metrics.
//
// Errors: every SDK call returns a Go error; an error that is an *[Error] keeps its class and code
// when it crosses the WIT boundary, any other error becomes class internal, code "error".
package arkflow

import (
	"errors"
	"fmt"

	types "arkflow.dev/plugin-sdk/wit/imports/arkflow_plugin_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// ABIVersion is the version of the WIT package this SDK is built against (describe().abi).
const ABIVersion = "0.2.0"

// SDKVersion is the version of this SDK module (its go.mod says it too): the WIT package's.
const SDKVersion = "0.2.0"

// Generated WIT types, re-exported.
type (
	Header            = types.Header
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
	// Process reads the records of batch and says what record i became with out.Emit*(i, ..)
	// or out.Fail(i, ..), in ascending i (a record given none is dropped). An error fails the
	// whole batch (its staged state writes are discarded); use out.Fail for one bad record.
	// A RecordProcessor (one Outcome per record) becomes a Processor with PerRecord.
	Process(ctx *BatchContext, batch *Batch, out *Outcomes) error
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
	// The key the plugin's state is grouped by when it is not the record key: a top-level
	// field of the JSON value ("user_id") or "record_key"; the host then routes by it as a YAML
	// `key_by:` would. "": none.
	KeyBy string
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
	info := Info{
		Name:         plugin.Name,
		Version:      plugin.Version,
		Abi:          ABIVersion,
		StateStores:  plugin.StateStores,
		StateFormats: plugin.StateFormats,
	}
	if plugin.KeyBy != "" {
		info.KeyBy = witTypes.Some(plugin.KeyBy)
	}
	return info
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

type outcomesResult = witTypes.Result[types.Outcomes, types.Error]

// The batch and the reply builder, reused from call to call (the host has copied the previous
// reply out before the next call), so a batch allocates next to nothing.
var (
	theBatch    Batch
	theOutcomes Outcomes
)

func reply(out *Outcomes, inputs int) outcomesResult {
	w, err := out.finish(inputs)
	if err != nil {
		return witTypes.Err[types.Outcomes](toWIT(err))
	}
	return witTypes.Ok[types.Outcomes, types.Error](w)
}

func processBatchHook(ctx *types.BatchContext, records types.Batch) outcomesResult {
	defer logPanic()
	if instance == nil {
		return witTypes.Err[types.Outcomes](notInitialized())
	}
	theBatch.reset(records)
	theOutcomes.reset()
	if err := instance.Process(ctx, &theBatch, &theOutcomes); err != nil {
		return witTypes.Err[types.Outcomes](toWIT(err))
	}
	return reply(&theOutcomes, theBatch.Len())
}

// handler is what implements the optional interfaces (Checkpointer, TimerHandler): the
// processor, or the RecordProcessor inside PerRecord.
func handler() any {
	if a, ok := instance.(perRecord); ok {
		return a.p
	}
	return instance
}

func onCheckpointHook(ctx types.CheckpointContext) unitResult {
	defer logPanic()
	if instance == nil {
		return witTypes.Err[witTypes.Unit](notInitialized())
	}
	if c, ok := handler().(Checkpointer); ok {
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
