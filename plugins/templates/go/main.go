// {{name}}: counts records per key. Each record emits {"key":"<key>","count":N}, N counting this
// record, kept in state store "default" as an i64. A record without a key fails (invalid-input,
// code "no-key"). The SDK guide: sdk/README.md.
package main

import "arkflow.dev/plugin-sdk/arkflow"

type counter struct {
	store  *arkflow.Store
	counts arkflow.StateCache // the batch's counts: one read and one write of the store per batch
	keys   [][]byte
}

func (c *counter) Process(_ *arkflow.BatchContext, batch *arkflow.Batch, out *arkflow.Outcomes) error {
	c.keys = c.keys[:0]
	for i := 0; i < batch.Len(); i++ {
		c.keys = append(c.keys, batch.Key(i)) // nil: the record has no key
	}
	if err := c.counts.Load(c.store, c.keys); err != nil {
		return err // fails the whole batch
	}
	for i, key := range c.keys {
		if key == nil {
			out.Invalid(i, "no-key", "the record has no key")
			continue
		}
		n, err := c.counts.IncrementAt(i, 1)
		if err != nil {
			out.Fail(i, err)
			continue
		}
		out.EmitWith(i, func(v []byte) []byte { // appends the output value to v
			v = arkflow.AppendJSONEscaped(arkflow.AppendString(v, `{"key":"`), key)
			return append(arkflow.AppendInt(arkflow.AppendString(v, `","count":`), n), '}')
		})
	}
	return c.counts.Flush(c.store)
}

func init() {
	arkflow.Export(arkflow.Plugin{
		Name: "{{name}}", Version: "0.1.0",
		StateStores:  []string{"default"},
		StateFormats: []arkflow.StoreFormat{{Store: "default", Format: arkflow.FormatI64}},
		Init: func(cfg arkflow.Config) (arkflow.Processor, error) {
			store, err := arkflow.OpenStore("default")
			return &counter{store: store}, err
		},
	})
}

func main() {}
