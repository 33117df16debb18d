// counter: a per-key running count in state store "default" (the Go twin of plugins/counter).
//
// Contract: the key of a record is its record key (bytes; rendered as UTF-8, lossily) or, when
// the record has no key, the JSON string/number member named by config `key_field` of its value;
// with neither the record fails (invalid-input, code "no-key"). Config `read`: "json" (the
// default) parses each value in the guest for `key_field`; "fields" declares `key_field` as a
// utf8 field and reads it from the host's typed column (Batch.Fields): then only a string member
// is a key, and a value that is not a JSON object or whose `key_field` holds another type fails
// with code "bad-field" and the host's reason. Each record emits one record
// {"key":"<key>","count":N} (N includes this record; key/timestamp of the input kept). The count
// is stored as an 8-byte LE i64 (the `increment` encoding). Per batch: one get-column of the
// distinct keys, counting in order in memory, one put-column; the records are read in place and
// the outputs written into one reply buffer (the batch API: Process, Outcomes.EmitWith).
package main

import "arkflow.dev/plugin-sdk/arkflow"

type counter struct {
	store  *arkflow.Store
	keyOf  arkflow.KeyRule
	typed  bool               // read: fields (keyOf.Field comes from the host's typed column)
	counts arkflow.StateCache // reused from batch to batch (Load empties it)
	keys   [][]byte
	errs   []error
}

func (c *counter) Process(_ *arkflow.BatchContext, batch *arkflow.Batch, out *arkflow.Outcomes) error {
	n := batch.Len()
	c.keys, c.errs = append(c.keys[:0], make([][]byte, n)...), append(c.errs[:0], make([]error, n)...)
	if c.typed {
		if err := c.typedKeys(batch); err != nil {
			return err
		}
	} else {
		for i := 0; i < n; i++ {
			c.keys[i], c.errs[i] = c.keyOf.KeyOf(batch.Key(i), batch.Value(i))
		}
	}
	if err := c.counts.Load(c.store, c.keys); err != nil { // one get-column; nil keys skipped
		return err
	}
	for i, key := range c.keys {
		n, err := int64(0), c.errs[i]
		if err == nil {
			n, err = c.counts.IncrementAt(i, 1) // keys[i], without hashing it again
		}
		if err != nil {
			out.Fail(i, err)
			continue
		}
		out.EmitWith(i, func(v []byte) []byte { // Append*: no memory.copy call per piece
			v = arkflow.AppendJSONEscaped(arkflow.AppendString(v, `{"key":"`), key)
			return append(arkflow.AppendInt(arkflow.AppendString(v, `","count":`), n), '}')
		})
	}
	return c.counts.Flush(c.store) // one put-column
}

// typedKeys fills keys/errs from the record keys and, for records without one, the host's utf8
// column of key_field (one fields call per batch; the keys alias the column).
func (c *counter) typedKeys(batch *arkflow.Batch) error {
	fields, err := batch.Fields()
	if err != nil {
		return err
	}
	col, colErr := fields.Str(c.keyOf.Field)
	for i := range c.keys {
		if k := batch.Key(i); k != nil {
			c.keys[i] = k
		} else if why, bad := fields.Mismatch(i); bad {
			c.errs[i] = arkflow.InvalidInput("bad-field", why)
		} else if colErr != nil {
			c.errs[i] = colErr
		} else if k, ok := col.Bytes(i); ok {
			c.keys[i] = k
		} else {
			c.errs[i] = arkflow.InvalidInput("no-key", "no string field `"+c.keyOf.Field+"`")
		}
	}
	return nil
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
	keyOf := arkflow.KeyFromConfig(cfg, "key_field")
	var typed bool
	switch read := cfg.GetOr("read", "json"); read {
	case "json":
	case "fields":
		typed = true
	default:
		return nil, arkflow.ConfigError("bad-config", "config `read`: `"+read+"` (json or fields)")
	}
	if typed && keyOf.HasField {
		if err := arkflow.DeclareFields(arkflow.Field{Name: keyOf.Field, Type: arkflow.FieldUTF8}); err != nil {
			return nil, err
		}
	}
	store, err := arkflow.OpenStore("default")
	if err != nil {
		return nil, err
	}
	return &counter{store: store, keyOf: keyOf, typed: typed && keyOf.HasField}, nil
}

func main() {}
