// The ArkFlow Go plugin SDK, version 0.2.0 (arkflow.SDKVersion; = the WIT package
// arkflow:plugin@0.2.0). Plugins use it through a `replace` to this directory: plugins/go/go.mod
// in the repository, a project's go.mod (`replace arkflow.dev/plugin-sdk/arkflow => ./sdk`).
module arkflow.dev/plugin-sdk/arkflow

go 1.27.1

// Both come from the workspace the build writes (.build/go.work, by go_setup in
// toolchain/go.sh), whatever the version here; nothing is fetched (GOPROXY=off).
require (
	arkflow.dev/plugin-sdk/wit v0.2.0 // the bindings wit-bindgen go generates from wit/, plus _glue/
	go.bytecodealliance.org/pkg v0.0.0 // src/pkg of the wit-bindgen-go 0.63.0 crate
)
