module {{name}}

go 1.27.1

// The Go plugin SDK {{sdk_version}}, the copy in sdk/ (build.sh adds the bindings it needs).
require arkflow.dev/plugin-sdk/arkflow v{{sdk_version}}

replace arkflow.dev/plugin-sdk/arkflow => ./sdk
