package arkflow

// Logging and metrics through the host's `log` and `metrics` imports (Log, CounterAdd, GaugeSet,
// HistogramRecord are in host_wasip1.go). The host tags log lines with the stream and plugin and
// truncates them at its cap (4 KiB by default); metrics are exported with the labels stream,
// processor and name.

import "fmt"

// Level is a log level (WIT `log.level`).
type Level = uint8

const (
	LevelTrace Level = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
)

// Logf formats like fmt.Sprintf and writes one line.
func Logf(level Level, format string, args ...any) { Log(level, fmt.Sprintf(format, args...)) }
