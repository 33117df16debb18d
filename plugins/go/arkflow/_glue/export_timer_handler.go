// Package export_arkflow_plugin_timer_handler is the Go side of the component's
// `arkflow:plugin/timer-handler@0.2.0` export: the generated wit_exports package calls OnTimers
// below, which returns the `outcomes` of the fired timers.
//
// The build (go_setup in plugins/toolchain/go.sh) copies this file into the generated bindings
// (.build/wit/exports/export_arkflow_plugin_timer_handler/). The hook is set by the SDK
// (host_wasip1.go); this package imports nothing of the SDK, so there is no import cycle.
package export_arkflow_plugin_timer_handler

import (
	types "arkflow.dev/plugin-sdk/wit/imports/arkflow_plugin_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// OnTimersHook is set by the SDK's init.
var OnTimersHook func(ctx types.TimerContext, fired []types.Timer) witTypes.Result[types.Outcomes, types.Error]

func OnTimers(ctx types.TimerContext, fired []types.Timer) witTypes.Result[types.Outcomes, types.Error] {
	return OnTimersHook(ctx, fired)
}
