// window_count: a keyed tumbling-window count on host timers (the Go twin of plugins/window-count).
//
// Contract: config size_ms (required, > 0), key_field, domain (event | processing). A record
// counts in [start, start+size_ms) of its timestamp (the event time) or, for processing, of the
// host clock; the count lives in store "default" under [start: i64 BE][key], with a timer on
// that key at start+size_ms-1. A fired timer emits {"key","window_start","window_end","count"}
// keyed by the key, timestamped window_end-1, and deletes the count. An event-time record whose
// window already fired fails with code "late"; one without a key with "no-key".
package main

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"arkflow.dev/plugin-sdk/arkflow"
)

type windowCount struct {
	store  *arkflow.Store
	keyOf  arkflow.KeyRule
	sizeMs int64
	domain arkflow.TimeDomain
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// add counts one record in its window and registers the window's timer.
func (w *windowCount) add(r *arkflow.RecordIn) error {
	key, err := w.keyOf.Key(r)
	if err != nil {
		return err
	}
	t := r.TimestampMs
	if w.domain == arkflow.ProcessingTime {
		t = arkflow.Now()
	}
	start := floorDiv(t, w.sizeMs) * w.sizeMs
	fireAt := start + w.sizeMs - 1
	if w.domain == arkflow.EventTime && fireAt <= arkflow.Watermark() {
		return arkflow.InvalidInput("late", fmt.Sprintf("event time %d is behind the watermark %d: window [%d, %d) has closed", t, arkflow.Watermark(), start, start+w.sizeMs))
	}
	skey := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(key)), uint64(start))
	skey = append(skey, key...)
	if err := arkflow.RegisterTimer(skey, fireAt, w.domain); err != nil {
		return err
	}
	_, err = w.store.Increment(skey, 1)
	return err
}

func (w *windowCount) Process(_ *arkflow.BatchContext, batch *arkflow.Batch, out *arkflow.Outcomes) error {
	for i := range batch.Records() {
		if err := w.add(batch.Record(i)); err != nil {
			out.Fail(i, err) // a counted record emits nothing
		}
	}
	return nil
}

func (w *windowCount) OnTimers(_ *arkflow.TimerContext, fired []arkflow.Timer, out *arkflow.Outcomes) error {
	for i, t := range fired {
		if len(t.Key) < 8 {
			continue
		}
		start := int64(binary.BigEndian.Uint64(t.Key[:8]))
		v, _, err := w.store.Get(t.Key)
		if err != nil {
			return err
		}
		count, _ := arkflow.DecodeI64(v)
		if _, err := w.store.Delete(t.Key); err != nil {
			return err
		}
		key := t.Key[8:]
		b := arkflow.AppendJSONEscaped(append(make([]byte, 0, len(key)+80), `{"key":"`...), key)
		b = strconv.AppendInt(append(b, `","window_start":`...), start, 10)
		b = strconv.AppendInt(append(b, `,"window_end":`...), start+w.sizeMs, 10)
		b = append(strconv.AppendInt(append(b, `,"count":`...), count, 10), '}')
		out.EmitRecord(i, arkflow.WithTimestamp(arkflow.WithKey(arkflow.NewRecord(b), key), start+w.sizeMs-1))
	}
	return nil
}

func init() {
	arkflow.Export(arkflow.Plugin{
		Name: "window_count", Version: "0.1.0",
		StateStores:  []string{"default"},
		StateFormats: []arkflow.StoreFormat{{Store: "default", Format: arkflow.FormatI64}},
		Init:         newWindowCount,
	})
}

func newWindowCount(cfg arkflow.Config) (arkflow.Processor, error) {
	size, err := cfg.Int("size_ms", 0)
	if err != nil {
		return nil, err
	}
	if size <= 0 {
		return nil, arkflow.ConfigError("bad-size", "config `size_ms` is required and must be > 0")
	}
	w := &windowCount{sizeMs: size, keyOf: arkflow.KeyFromConfig(cfg, "key_field"), domain: arkflow.EventTime}
	switch d, _ := cfg.Lookup("domain"); d {
	case "", "event":
	case "processing":
		w.domain = arkflow.ProcessingTime
	default:
		return nil, arkflow.ConfigError("bad-domain", "`domain` must be `event` or `processing`, got `"+d+"`")
	}
	if w.store, err = arkflow.OpenStore("default"); err != nil {
		return nil, err
	}
	return w, nil
}

func main() {}
