package arkflow

// Host-owned keyed state (WIT interface `state`, resource `store`).
//
// Every call reads/writes the state of the current key group: the batch's during ProcessBatch,
// the checkpoint's during OnCheckpoint; elsewhere (e.g. in Init) reads and writes fail with
// no-scope. Writes are staged per call and dropped when the call returns an error or traps.
// A failed call returns an *Error of class state whose code is the WIT name of the
// state-error case ("unknown-store", "no-scope", "key-too-large", "value-too-large",
// "quota-exceeded", "not-a-counter", "disabled").
//
// Byte slices: a nil []byte always means "absent"; a present empty value is a non-nil empty slice.

import (
	"encoding/binary"
	"fmt"
)

// Entry is one key/value pair.
type Entry struct {
	Key, Value []byte
}

// ScanPage is one page of ScanPrefix, in ascending key order. Next is nil when no more entries
// follow; otherwise pass it as startAfter to get the next page.
type ScanPage struct {
	Entries []Entry
	Next    []byte
}

func errNotACounter() error { return StateFailure("not-a-counter", "StateError::NotACounter") }

// EncodeI64 is the 8-byte little-endian encoding of a counter (what `increment` reads/writes).
func EncodeI64(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }

// DecodeI64 decodes a counter; ok is false when b is not exactly 8 bytes (not-a-counter).
func DecodeI64(b []byte) (v int64, ok bool) {
	if len(b) != 8 {
		return 0, false
	}
	return int64(binary.LittleEndian.Uint64(b)), true
}

// StateCache is a per-call cache over one store, for the "one get-many, compute in memory, one
// put-many" pattern that keeps host calls per batch constant:
//   - LoadCache dedupes the keys (first-seen order) and makes ONE get-many call (none when there
//     are no keys). Keys that were not loaded read as absent.
//   - Writes stay in memory until Flush, which makes ONE put-many of every written key's latest
//     value, in first-write order (no call when nothing was written).
//   - Counters use the increment encoding and wrap like it; a stored value of another length is
//     not-a-counter.
//   - Build a new cache per ProcessBatch/OnCheckpoint call (state is per key group).
type StateCache struct {
	index  map[string]int
	keys   [][]byte
	values [][]byte // nil = absent
	dirty  []bool
	order  []int // written slots, first-write order
}

// LoadCache loads keys (duplicates allowed; nil entries are skipped, so a slice with a nil for
// every record without a key can be passed as is) from store with one get-many.
func LoadCache(store *Store, keys [][]byte) (*StateCache, error) {
	c := &StateCache{index: make(map[string]int, len(keys))}
	for _, k := range keys {
		if k == nil {
			continue
		}
		if _, seen := c.index[string(k)]; !seen {
			c.index[string(k)] = len(c.keys)
			c.keys = append(c.keys, k)
		}
	}
	if len(c.keys) == 0 {
		return c, nil
	}
	values, err := store.GetMany(c.keys)
	if err != nil {
		return nil, err
	}
	return c, c.loaded(values)
}

// NewStateCache builds a cache from keys and the values GetMany returned for them (pure: for
// tests, or for keys loaded some other way). keys must be distinct.
func NewStateCache(keys, values [][]byte) (*StateCache, error) {
	c := &StateCache{index: make(map[string]int, len(keys)), keys: keys}
	for i, k := range keys {
		c.index[string(k)] = i
	}
	return c, c.loaded(values)
}

func (c *StateCache) loaded(values [][]byte) error {
	if len(values) != len(c.keys) {
		return Internal("bad-get-many",
			fmt.Sprintf("get-many returned %d values for %d keys", len(values), len(c.keys)))
	}
	c.values = values
	c.dirty = make([]bool, len(values))
	return nil
}

func (c *StateCache) slot(key []byte) int {
	if i, ok := c.index[string(key)]; ok {
		return i
	}
	i := len(c.keys)
	k := append([]byte{}, key...)
	c.index[string(k)] = i
	c.keys = append(c.keys, k)
	c.values = append(c.values, nil)
	c.dirty = append(c.dirty, false)
	return i
}

func (c *StateCache) mark(i int) {
	if !c.dirty[i] {
		c.dirty[i] = true
		c.order = append(c.order, i)
	}
}

// Get is the current value of key (after this cache's writes); ok is false when absent or not
// loaded.
func (c *StateCache) Get(key []byte) (value []byte, ok bool) {
	if i, found := c.index[string(key)]; found && c.values[i] != nil {
		return c.values[i], true
	}
	return nil, false
}

// Put sets key to value in the cache; written by Flush.
func (c *StateCache) Put(key, value []byte) {
	if value == nil {
		value = []byte{}
	}
	i := c.slot(key)
	c.values[i] = value
	c.mark(i)
}

// GetI64 is the counter at key (ok false when absent), or not-a-counter if it is not 8 bytes.
func (c *StateCache) GetI64(key []byte) (v int64, ok bool, err error) {
	b, found := c.Get(key)
	if !found {
		return 0, false, nil
	}
	if v, ok = DecodeI64(b); !ok {
		return 0, false, errNotACounter()
	}
	return v, true, nil
}

// PutI64 stores v at key as 8 bytes little-endian.
func (c *StateCache) PutI64(key []byte, v int64) { c.Put(key, EncodeI64(v)) }

// Increment is `increment` in the cache: adds delta (absent = 0, wrapping) and returns the new
// value. Updates the stored bytes in place: no allocation once a key is cached.
func (c *StateCache) Increment(key []byte, delta int64) (int64, error) {
	i := c.slot(key)
	b := c.values[i]
	var v int64
	if b == nil {
		v = delta
		c.values[i] = EncodeI64(v)
	} else {
		old, ok := DecodeI64(b)
		if !ok {
			return 0, errNotACounter()
		}
		v = old + delta // Go integer arithmetic wraps
		if !c.dirty[i] {
			b = append([]byte(nil), b...) // don't write into memory the host handed us
			c.values[i] = b
		}
		binary.LittleEndian.PutUint64(b, uint64(v))
	}
	c.mark(i)
	return v, nil
}

// Writes returns the written entries (latest value per key, first-write order) and leaves the
// cache clean.
func (c *StateCache) Writes() []Entry {
	out := make([]Entry, len(c.order))
	for n, i := range c.order {
		c.dirty[i] = false
		out[n] = Entry{Key: c.keys[i], Value: c.values[i]}
	}
	c.order = c.order[:0]
	return out
}

// Flush writes every change to store with one put-many (no call when there is none).
func (c *StateCache) Flush(store *Store) error {
	if len(c.order) == 0 {
		return nil
	}
	return store.PutMany(c.Writes())
}
