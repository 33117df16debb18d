//go:build !wasip1

package arkflow

// Off wasm (go test on the build machine) the host is faked, so plugin logic can be unit tested
// natively (same API as host_wasip1.go, get-column/put-column included): stores are in-memory
// maps shared by every OpenStore of a name (one key group, no staging), Log prints to stderr,
// metrics are dropped. ResetFakeState clears the stores and timers.

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"sort"
	"time"
)

var fakeStores = map[string]map[string][]byte{}

// ResetFakeState empties every fake store and timer (native builds only).
func ResetFakeState() {
	fakeStores = map[string]map[string][]byte{}
	FakeTimers = map[string]Timer{}
	FakeWatermark = math.MinInt64
}

// Store is a handle of a named state store (here: an in-memory fake).
type Store struct {
	name string
	m    map[string][]byte
}

// OpenStore opens the store name.
func OpenStore(name string) (*Store, error) {
	m, ok := fakeStores[name]
	if !ok {
		m = map[string][]byte{}
		fakeStores[name] = m
	}
	return &Store{name: name, m: m}, nil
}

func (s *Store) Name() string { return s.name }

func (s *Store) Get(key []byte) ([]byte, bool, error) {
	v, ok := s.m[string(key)]
	return v, ok, nil
}

func (s *Store) Put(key, value []byte) error {
	s.m[string(key)] = append([]byte{}, value...)
	return nil
}

func (s *Store) Delete(key []byte) (bool, error) {
	_, ok := s.m[string(key)]
	delete(s.m, string(key))
	return ok, nil
}

func (s *Store) GetMany(keys [][]byte) ([][]byte, error) {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if v, ok := s.m[string(k)]; ok {
			out[i] = append([]byte{}, v...)
		}
	}
	return out, nil
}

func (s *Store) GetColumn(keys Column) (Column, error) {
	var out colBuilder
	for i := range keys.Ends {
		k := item(&keys, i)
		if v, ok := s.m[string(k)]; ok {
			out.push(append([]byte{}, v...))
		} else {
			out.push(nil)
		}
	}
	return out.column(), nil
}

func (s *Store) PutColumn(keys, values Column) error {
	if len(keys.Ends) != len(values.Ends) {
		return StateFailure("state-error", "put-column: keys and values differ in length")
	}
	for i := range keys.Ends {
		s.m[string(item(&keys, i))] = append([]byte{}, item(&values, i)...)
	}
	return nil
}

func (s *Store) PutMany(entries []Entry) error {
	for _, e := range entries {
		s.m[string(e.Key)] = append([]byte{}, e.Value...)
	}
	return nil
}

func (s *Store) DeleteMany(keys [][]byte) error {
	for _, k := range keys {
		delete(s.m, string(k))
	}
	return nil
}

func (s *Store) Increment(key []byte, delta int64) (int64, error) {
	v := delta
	if old, ok := s.m[string(key)]; ok {
		n, ok := DecodeI64(old)
		if !ok {
			return 0, errNotACounter()
		}
		v = n + delta
	}
	s.m[string(key)] = EncodeI64(v)
	return v, nil
}

func (s *Store) ScanPrefix(prefix, startAfter []byte, limit uint32) (ScanPage, error) {
	limit = min(limit, 1024)
	var keys []string
	for k := range s.m {
		if bytes.HasPrefix([]byte(k), prefix) && (startAfter == nil || k > string(startAfter)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var page ScanPage
	for i, k := range keys {
		if uint32(i) == limit {
			page.Next = []byte(keys[i-1])
			break
		}
		page.Entries = append(page.Entries, Entry{Key: []byte(k), Value: append([]byte{}, s.m[k]...)})
	}
	return page, nil
}

var levelNames = [...]string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}

func Log(level Level, message string) {
	name := "LEVEL"
	if int(level) < len(levelNames) {
		name = levelNames[level]
	}
	fmt.Fprintf(os.Stderr, "[plugin %s] %s\n", name, message)
}

func CounterAdd(name string, delta uint64)       {}
func GaugeSet(name string, value float64)        {}
func HistogramRecord(name string, value float64) {}

// FakeTimers holds the registered timers by fakeTimerKey; Watermark returns FakeWatermark.
var (
	FakeTimers          = map[string]Timer{}
	FakeWatermark int64 = math.MinInt64
)

func fakeTimerKey(key []byte, timeMs int64, domain TimeDomain) string {
	return fmt.Sprintf("%d/%d/%s", domain, timeMs, key)
}

// RegisterTimer records the timer in FakeTimers.
func RegisterTimer(key []byte, timeMs int64, domain TimeDomain) error {
	FakeTimers[fakeTimerKey(key, timeMs, domain)] = Timer{Key: append([]byte(nil), key...), TimeMs: timeMs, Domain: domain}
	return nil
}

// DeleteTimer removes it from FakeTimers; whether it was there.
func DeleteTimer(key []byte, timeMs int64, domain TimeDomain) (bool, error) {
	k := fakeTimerKey(key, timeMs, domain)
	_, ok := FakeTimers[k]
	delete(FakeTimers, k)
	return ok, nil
}

// Watermark is FakeWatermark.
func Watermark() int64 { return FakeWatermark }

// Now is the wall clock.
func Now() int64 { return time.Now().UnixMilli() }
