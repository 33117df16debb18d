package arkflow

// Timers (WIT interface `timers` and export `timer-handler`): the types, the handler a processor
// implements (OnTimers says what each fired timer became in an Outcomes, like Process does for
// records; the reply is `outcomes` whose inputs are the timers), and the export hook. RegisterTimer, DeleteTimer, Watermark and Now are in
// host_wasip1.go (host_fake.go off wasm). A plugin that never calls them does not import `timers`
// (the Go linker drops the unused import), so it is a plain plugin to the host.

import (
	types "arkflow.dev/plugin-sdk/wit/imports/arkflow_plugin_types"

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
// of one key group, in time order, with that key group's state in scope, and says what timer i
// became in out, like Process does for records (out.Emit*(i, ..), out.Fail(i, ..); a timer
// given none emits nothing). A record emitted without a key is keyed by the timer's key. A fired
// timer is deleted unless the call registers it again. An error fails the call (retried like a
// batch). Timer keys alias the call's arguments: valid during the call only.
type TimerHandler interface {
	OnTimers(ctx *TimerContext, fired []Timer, out *Outcomes) error
}

func onTimersHook(ctx *types.TimerContext, fired []types.Timer) outcomesResult {
	defer logPanic()
	if instance == nil {
		return witTypes.Err[types.Outcomes](notInitialized())
	}
	h, ok := handler().(TimerHandler)
	if !ok {
		return witTypes.Err[types.Outcomes](types.Error{Class: ClassInternal, Code: "no-timer-handler",
			Message: "the plugin registered timers but its processor has no OnTimers"})
	}
	theOutcomes.reset()
	if err := h.OnTimers(ctx, fired, &theOutcomes); err != nil {
		return witTypes.Err[types.Outcomes](toWIT(err))
	}
	return reply(&theOutcomes, len(fired))
}
