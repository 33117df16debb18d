package arkflow

// Timers (WIT interface `timers` and export `timer-handler`): the types, the handler a processor
// implements, and the export hook. RegisterTimer, DeleteTimer, Watermark and Now are in
// host_wasip1.go (host_fake.go off wasm). A plugin that never calls them does not import `timers`
// (the Go linker drops the unused import), so it is a plain plugin to the host.

import (
	types "arkflow/wit/imports/arkflow_plugin_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

type (
	// Timer is a fired timer: its key, time and clock.
	Timer = types.Timer
	// TimerContext is the context of one OnTimers call (key group, watermark, now, attempt,
	// epoch).
	TimerContext = types.TimerContext
	// TimeDomain is the clock a timer follows.
	TimeDomain = types.TimeDomain
)

const (
	// EventTime: the timer fires once the stream's watermark reaches its time.
	EventTime TimeDomain = types.TimeDomain_Event
	// ProcessingTime: the timer fires once the host's wall clock has passed its time.
	ProcessingTime TimeDomain = types.TimeDomain_Processing
)

// TimerHandler is implemented by processors that register timers: OnTimers gets the due timers
// of one key group, in time order, with that key group's state in scope, and returns one outcome
// per timer (an emitted record without a key is keyed by the timer's key). A fired timer is
// deleted unless the call registers it again. An error fails the call (retried like a batch).
type TimerHandler interface {
	OnTimers(ctx *TimerContext, fired []Timer) ([]Outcome, error)
}

func onTimersHook(ctx types.TimerContext, fired []types.Timer) witTypes.Result[[]Outcome, types.Error] {
	defer logPanic()
	if instance == nil {
		return witTypes.Err[[]Outcome](notInitialized())
	}
	h, ok := instance.(TimerHandler)
	if !ok {
		return witTypes.Err[[]Outcome](types.Error{Class: ClassInternal, Code: "no-timer-handler",
			Message: "the plugin registered timers but its processor has no OnTimers"})
	}
	out, err := h.OnTimers(&ctx, fired)
	if err != nil {
		return witTypes.Err[[]Outcome](toWIT(err))
	}
	return witTypes.Ok[[]Outcome, types.Error](out)
}
