package arkflow

// The plugin's `config` map: the YAML `config:` entry of the processor, values as strings
// (scalars as written, nested YAML as JSON text). Lookups return the LAST value given for a
// key; failures are *Error of class config, code "missing-config" or "bad-config", naming the key.

import (
	"fmt"
	"strconv"
	"strings"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// Config is the list handed to Init.
type Config struct {
	entries []witTypes.Tuple2[string, string]
}

// NewConfig builds a Config from key/value pairs (for tests).
func NewConfig(pairs ...[2]string) Config {
	c := Config{}
	for _, p := range pairs {
		c.entries = append(c.entries, witTypes.Tuple2[string, string]{F0: p[0], F1: p[1]})
	}
	return c
}

// Lookup is the value of key; ok is false when unset.
func (c Config) Lookup(key string) (value string, ok bool) {
	for i := len(c.entries) - 1; i >= 0; i-- {
		if c.entries[i].F0 == key {
			return c.entries[i].F1, true
		}
	}
	return "", false
}

// Get is the value of key, "" when unset.
func (c Config) Get(key string) string {
	v, _ := c.Lookup(key)
	return v
}

// GetOr is the value of key, or def when unset.
func (c Config) GetOr(key, def string) string {
	if v, ok := c.Lookup(key); ok {
		return v
	}
	return def
}

// Require is the value of key, or a missing-config error.
func (c Config) Require(key string) (string, error) {
	if v, ok := c.Lookup(key); ok {
		return v, nil
	}
	return "", ConfigError("missing-config", "config `"+key+"` is required")
}

func badConfig(key, raw, typ string, err error) error {
	return ConfigError("bad-config", fmt.Sprintf("config `%s`: cannot parse %q as %s: %v", key, raw, typ, err))
}

// Int is key parsed as an integer (surrounding spaces ignored), or def when unset.
func (c Config) Int(key string, def int64) (int64, error) {
	raw, ok := c.Lookup(key)
	if !ok {
		return def, nil
	}
	v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
	if err != nil {
		return 0, badConfig(key, raw, "int64", err)
	}
	return v, nil
}

// Uint is key parsed as a non-negative integer, or def when unset.
func (c Config) Uint(key string, def uint64) (uint64, error) {
	raw, ok := c.Lookup(key)
	if !ok {
		return def, nil
	}
	v, err := strconv.ParseUint(strings.TrimSpace(raw), 10, 64)
	if err != nil {
		return 0, badConfig(key, raw, "uint64", err)
	}
	return v, nil
}

// Float is key parsed as a float, or def when unset.
func (c Config) Float(key string, def float64) (float64, error) {
	raw, ok := c.Lookup(key)
	if !ok {
		return def, nil
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
	if err != nil {
		return 0, badConfig(key, raw, "float64", err)
	}
	return v, nil
}

// Bool is key parsed as "true"/"false", or def when unset.
func (c Config) Bool(key string, def bool) (bool, error) {
	raw, ok := c.Lookup(key)
	if !ok {
		return def, nil
	}
	switch strings.TrimSpace(raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, badConfig(key, raw, "bool", fmt.Errorf("expected true or false"))
}

// Entries is every entry, in the order the host passed them.
func (c Config) Entries() [][2]string {
	out := make([][2]string, len(c.entries))
	for i, e := range c.entries {
		out[i] = [2]string{e.F0, e.F1}
	}
	return out
}
