// counter: a per-key running count in state store "default" (the Go twin of plugins/counter).
//
// Contract: the key of a record is its record key (bytes; rendered as UTF-8, lossily) or, when
// the record has no key, the JSON string/number member named by config `key_field` of its value;
// with neither the record fails (invalid-input, code "no-key"). Each record emits one record
// {"key":"<key>","count":N} (N includes this record; key/timestamp of the input kept). The count
// is stored as an 8-byte LE i64 (the `increment` encoding). Per batch: one get-many of the
// distinct keys, counting in order in memory, one put-many.
package main

import (
	"strconv"

	"arkflow/plugins/go/arkflow"
)

type counter struct {
	store *arkflow.Store
	keyOf arkflow.KeyRule
}

func (c *counter) ProcessBatch(_ *arkflow.BatchContext, records []arkflow.RecordIn) ([]arkflow.Outcome, error) {
	keys, errs := make([][]byte, len(records)), make([]error, len(records))
	for i := range records {
		keys[i], errs[i] = c.keyOf.Key(&records[i])
	}
	counts, err := arkflow.LoadCache(c.store, keys) // one get-many; nil keys skipped
	if err != nil {
		return nil, err
	}
	out := make([]arkflow.Outcome, len(records))
	for i, key := range keys {
		n, err := int64(0), errs[i]
		if err == nil {
			n, err = counts.Increment(key, 1)
		}
		if err != nil {
			out[i] = arkflow.Fail(err)
			continue
		}
		v := arkflow.AppendJSONEscaped(append(make([]byte, 0, len(key)+32), `{"key":"`...), key)
		out[i] = arkflow.EmitOne(append(strconv.AppendInt(append(v, `","count":`...), n, 10), '}'))
	}
	return out, counts.Flush(c.store) // one put-many
}

func init() {
	arkflow.Export(arkflow.Plugin{
		Name: "counter", Version: "0.1.0",
		StateStores:  []string{"default"},
		StateFormats: []arkflow.StoreFormat{{Store: "default", Format: arkflow.FormatI64}},
		Init:         newCounter,
	})
}

func newCounter(cfg arkflow.Config) (arkflow.Processor, error) {
	store, err := arkflow.OpenStore("default")
	if err != nil {
		return nil, err
	}
	return &counter{store: store, keyOf: arkflow.KeyFromConfig(cfg, "key_field")}, nil
}

func main() {}
