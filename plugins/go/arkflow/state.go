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
//
// StateCache is the fast path: keys back to back in one buffer (which is also the get-column
// request), values in another (initially the get-column reply itself, updated in place), found
// through an open-addressing table of slot numbers; nothing is allocated per key, and a cache
// reused with Load allocates nothing once its buffers have grown.

import (
	"bytes"
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

// StateCache is a per-call cache over one store, for the "one get-column, compute in memory, one
// put-column" pattern that keeps host calls per batch constant:
//   - LoadCache (or Load, which reuses a cache's buffers) dedupes the keys and makes ONE
//     get-column call (none when there are no keys). Keys that were not loaded read as absent.
//   - Writes stay in memory until Flush, which makes ONE put-column of every written key's latest
//     value, in first-write order (no call when nothing was written).
//   - Counters use the increment encoding and wrap like it; a stored value of another length is
//     not-a-counter.
//   - Load (or build) the cache per ProcessBatch/OnCheckpoint call (state is per key group).
//   - Values returned by Get alias the cache: valid until its next write of that key or Load.
type StateCache struct {
	keys    []byte   // slot keys back to back; slot i ends at keyEnds[i]
	keyEnds []uint32 //
	hashes  []uint32
	vals    []byte
	spans   []span   // slot i's value: vals[start : start+n], absent when n < 0
	table   []uint32 // open addressing: slot+1, 0 = empty; a power of two >= twice the slots
	dirty   []bool
	order   []uint32 // slots written, first-write order
	loaded  []int32  // slot of each key given to Load (-1 for a nil key), for IncrementAt
	scratch colBuilder
}

type span struct {
	start uint32
	n     int32
}

// LoadCache loads keys (duplicates allowed; nil entries are skipped, so a slice with a nil for
// every record without a key can be passed as is) from store with one get-column.
func LoadCache(store *Store, keys [][]byte) (*StateCache, error) {
	c := &StateCache{}
	return c, c.Load(store, keys)
}

// Load empties the cache (dropping unflushed writes) and loads keys as LoadCache does, reusing
// the cache's buffers.
func (c *StateCache) Load(store *Store, keys [][]byte) error {
	c.reset()
	for _, k := range keys {
		s := int32(-1)
		if k != nil {
			s = int32(c.slot(k))
		}
		c.loaded = append(c.loaded, s)
	}
	if len(c.keyEnds) == 0 {
		return nil
	}
	got, err := store.GetColumn(Column{Data: c.keys, Ends: c.keyEnds})
	if err != nil {
		return err
	}
	n := len(c.keyEnds)
	if len(got.Ends) != n || got.Ends[n-1] > uint32(len(got.Data)) ||
		(len(got.Valid) != 0 && len(got.Valid) < (n+7)/8) {
		return Internal("bad-get-column", fmt.Sprintf("get-column returned %d values for %d keys", len(got.Ends), n))
	}
	start := uint32(0)
	for i := 0; i < n; i++ {
		end := got.Ends[i]
		if end < start {
			return Internal("bad-get-column", "get-column returned decreasing ends")
		}
		if len(got.Valid) == 0 || got.Valid[i>>3]&(1<<(i&7)) != 0 {
			c.spans[i] = span{start, int32(end - start)}
		}
		start = end
	}
	c.vals = got.Data // the reply is ours (the host wrote it into memory it had us allocate)
	return nil
}

// NewStateCache builds a cache from distinct keys and the values a read returned for them (nil =
// absent; pure: for tests, or for keys loaded some other way).
func NewStateCache(keys, values [][]byte) (*StateCache, error) {
	if len(values) != len(keys) {
		return nil, Internal("bad-get-column",
			fmt.Sprintf("get-column returned %d values for %d keys", len(values), len(keys)))
	}
	c := &StateCache{}
	for i, k := range keys {
		s := c.slot(k)
		if values[i] != nil {
			c.spans[s] = c.appendValue(values[i])
		}
	}
	return c, nil
}

func (c *StateCache) reset() {
	c.keys, c.keyEnds, c.hashes, c.vals = c.keys[:0], c.keyEnds[:0], c.hashes[:0], nil
	c.spans, c.dirty, c.order, c.loaded = c.spans[:0], c.dirty[:0], c.order[:0], c.loaded[:0]
	clear(c.table)
}

// hashKey is an FxHash-style hash (fast on short keys, no randomness), never 0.
func hashKey(k []byte) uint32 {
	const m = 0x517cc1b727220a95
	h := uint64(len(k))
	for len(k) >= 8 {
		h = (h<<5 | h>>59 ^ binary.LittleEndian.Uint64(k)) * m
		k = k[8:]
	}
	if len(k) >= 4 {
		h = (h<<5 | h>>59 ^ uint64(binary.LittleEndian.Uint32(k))) * m
		k = k[4:]
	}
	for _, b := range k {
		h = (h<<5 | h>>59 ^ uint64(b)) * m
	}
	return uint32(h>>32) | 1
}

func (c *StateCache) key(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = c.keyEnds[i-1]
	}
	return c.keys[start:c.keyEnds[i]]
}

// find is key's slot (found) or the empty table position where it would go.
func (c *StateCache) find(key []byte, h uint32) (slotOrPos int, found bool) {
	mask := uint32(len(c.table) - 1)
	for at := h & mask; ; at = (at + 1) & mask {
		s := c.table[at]
		if s == 0 {
			return int(at), false
		}
		if c.hashes[s-1] == h && bytes.Equal(c.key(int(s-1)), key) {
			return int(s - 1), true
		}
	}
}

func (c *StateCache) grow() {
	size := max(2*len(c.table), 64)
	if cap(c.table) >= size {
		c.table = c.table[:size]
		clear(c.table)
	} else {
		c.table = make([]uint32, size)
	}
	mask := uint32(size - 1)
	for i, h := range c.hashes {
		at := h & mask
		for c.table[at] != 0 {
			at = (at + 1) & mask
		}
		c.table[at] = uint32(i + 1)
	}
}

// lookup is key's slot, or -1.
func (c *StateCache) lookup(key []byte) int {
	if len(c.table) == 0 {
		return -1
	}
	if i, ok := c.find(key, hashKey(key)); ok {
		return i
	}
	return -1
}

// slot is key's slot, added (absent) when new.
func (c *StateCache) slot(key []byte) int {
	h := hashKey(key)
	if 2*(len(c.hashes)+1) > len(c.table) {
		c.grow()
	}
	at, found := c.find(key, h)
	if found {
		return at
	}
	i := len(c.hashes)
	c.table[at] = uint32(i + 1)
	c.keys = AppendBytes(c.keys, key)
	c.keyEnds = append(c.keyEnds, uint32(len(c.keys)))
	c.hashes = append(c.hashes, h)
	c.spans = append(c.spans, span{0, -1})
	c.dirty = append(c.dirty, false)
	return i
}

func (c *StateCache) appendValue(v []byte) span {
	start := len(c.vals)
	c.vals = AppendBytes(c.vals, v)
	return span{uint32(start), int32(len(v))}
}

func (c *StateCache) value(i int) []byte {
	sp := c.spans[i]
	if sp.n < 0 {
		return nil
	}
	end := sp.start + uint32(sp.n)
	return c.vals[sp.start:end:end]
}

// set stores value in slot i: in place when the length is unchanged, else appended.
func (c *StateCache) set(i int, value []byte) {
	if sp := c.spans[i]; sp.n >= 0 && int(sp.n) == len(value) {
		d := c.vals[sp.start : sp.start+uint32(sp.n)]
		if len(d) > shortCopy {
			copy(d, value)
		} else {
			for j := range d {
				d[j] = value[j]
			}
		}
	} else {
		c.spans[i] = c.appendValue(value)
	}
	c.mark(i)
}

func (c *StateCache) mark(i int) {
	if !c.dirty[i] {
		c.dirty[i] = true
		c.order = append(c.order, uint32(i))
	}
}

// Get is the current value of key (after this cache's writes); ok is false when absent or not
// loaded.
func (c *StateCache) Get(key []byte) (value []byte, ok bool) {
	if i := c.lookup(key); i >= 0 {
		if v := c.value(i); v != nil {
			return v, true
		}
	}
	return nil, false
}

// Put sets key to value in the cache (copied); written by Flush.
func (c *StateCache) Put(key, value []byte) { c.set(c.slot(key), value) }

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
func (c *StateCache) PutI64(key []byte, v int64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(v))
	c.Put(key, b[:])
}

// Increment is `increment` in the cache: adds delta (absent = 0, wrapping) and returns the new
// value. Updates the stored bytes in place: no allocation once a key is cached.
func (c *StateCache) Increment(key []byte, delta int64) (int64, error) {
	return c.increment(c.slot(key), delta)
}

// IncrementAt is Increment of keys[i] of the slice last given to Load, without hashing it
// again (the counter's loop). keys[i] must not have been nil.
func (c *StateCache) IncrementAt(i int, delta int64) (int64, error) {
	s := c.loaded[i]
	if s < 0 {
		return 0, Internal("no-key", fmt.Sprintf("IncrementAt(%d): that key was nil", i))
	}
	return c.increment(int(s), delta)
}

func (c *StateCache) increment(i int, delta int64) (int64, error) {
	b := c.value(i)
	if b == nil {
		var e [8]byte
		binary.LittleEndian.PutUint64(e[:], uint64(delta))
		c.set(i, e[:])
		return delta, nil
	}
	old, ok := DecodeI64(b)
	if !ok {
		return 0, errNotACounter()
	}
	v := old + delta // Go integer arithmetic wraps
	binary.LittleEndian.PutUint64(b, uint64(v))
	c.mark(i)
	return v, nil
}

// Writes returns copies of the written entries (latest value per key, first-write order) and
// leaves the cache clean.
func (c *StateCache) Writes() []Entry {
	out := make([]Entry, len(c.order))
	for n, i := range c.order {
		c.dirty[i] = false
		out[n] = Entry{Key: append([]byte{}, c.key(int(i))...), Value: append([]byte{}, c.value(int(i))...)}
	}
	c.order = c.order[:0]
	return out
}

// Flush writes every change to store with one put-column (no call when there is none) and
// leaves the cache clean. When every slot was written in slot order (a counter whose keys all
// counted), the key buffer itself is the request's key column.
func (c *StateCache) Flush(store *Store) error {
	if len(c.order) == 0 {
		return nil
	}
	identity := len(c.order) == len(c.keyEnds)
	vals := &c.scratch
	vals.reset()
	for n, i := range c.order {
		identity = identity && int(i) == n
		c.dirty[i] = false
		vals.data = AppendBytes(vals.data, c.value(int(i)))
		vals.ends = append(vals.ends, uint32(len(vals.data)))
	}
	keys := Column{Data: c.keys, Ends: c.keyEnds}
	if !identity {
		var kb colBuilder
		for _, i := range c.order {
			kb.push(c.key(int(i)))
		}
		keys = kb.column()
	}
	c.order = c.order[:0]
	return store.PutColumn(keys, Column{Data: vals.data, Ends: vals.ends})
}
