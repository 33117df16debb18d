module arkflow/plugins/go

go 1.27.1

// The SDK is a module of its own (plugins/go/arkflow), used here as a plugin project uses its sdk/.
require arkflow.dev/plugin-sdk/arkflow v0.2.0

replace arkflow.dev/plugin-sdk/arkflow => ./arkflow
