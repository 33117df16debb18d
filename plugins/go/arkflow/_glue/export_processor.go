// Package export_arkflow_plugin_processor is the Go side of the component's
// `arkflow:plugin/processor@0.2.0` export: the generated wit_exports package calls
// Describe/Init/ProcessBatch/OnCheckpoint below.
//
// The build (go_setup in plugins/toolchain/go.sh) copies this file into the generated bindings
// (.build/wit/exports/export_arkflow_plugin_processor/); the directory name
// starts with "_" so the go tool ignores it here. The hooks are set by the
// SDK (host_wasip1.go); this package imports nothing of the SDK, so there is no
// import cycle (SDK -> wit_exports -> this package). ProcessBatch gets the batch as the
// bindings lift it (columns alias the guest memory the host wrote them to) and returns the
// reply `outcomes`.
package export_arkflow_plugin_processor

import (
	types "arkflow.dev/plugin-sdk/wit/imports/arkflow_plugin_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// Hooks, set by the SDK's init.
var (
	DescribeHook     func() types.Info
	InitHook         func(config []witTypes.Tuple2[string, string]) witTypes.Result[witTypes.Unit, types.Error]
	ProcessBatchHook func(ctx types.BatchContext, records types.Batch) witTypes.Result[types.Outcomes, types.Error]
	OnCheckpointHook func(ctx types.CheckpointContext) witTypes.Result[witTypes.Unit, types.Error]
)

func Describe() types.Info { return DescribeHook() }

func Init(config []witTypes.Tuple2[string, string]) witTypes.Result[witTypes.Unit, types.Error] {
	return InitHook(config)
}

func ProcessBatch(ctx types.BatchContext, records types.Batch) witTypes.Result[types.Outcomes, types.Error] {
	return ProcessBatchHook(ctx, records)
}

func OnCheckpoint(ctx types.CheckpointContext) witTypes.Result[witTypes.Unit, types.Error] {
	return OnCheckpointHook(ctx)
}
