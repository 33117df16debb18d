//go:build !wasip1

package arkflow

// Off wasm (go test on the build machine) the host is faked, so plugin logic can be unit tested
// natively (same API as host_wasip1.go, get-column/put-column included): stores are in-memory
// maps shared by every OpenStore of a name (one key group, no staging), Log prints to stderr,
// metrics are dropped. Fields: DeclareFields checks a declaration as the host does, and
// Batch.Fields decodes the declared fields of the batch's values with the SDK's JSON reader, by
// the host's rules (mismatch reasons name the field as the host's do, without its position).
// ResetFakeState clears the stores, timers and the declared fields.

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"time"
)

var fakeStores = map[string]map[string][]byte{}

// ResetFakeState empties every fake store and timer and forgets the declared fields (native
// builds only).
func ResetFakeState() {
	fakeStores = map[string]map[string][]byte{}
	FakeTimers = map[string]Timer{}
	FakeWatermark = math.MinInt64
	declared = nil
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

// declareFields checks a declaration by the host's rules (its messages too).
func declareFields(fields []Field) (string, bool) {
	const maxFields, maxName = 64, 256
	if len(fields) > maxFields {
		return fmt.Sprintf("fields.declare: %d fields, at most %d", len(fields), maxFields), false
	}
	for i, f := range fields {
		if f.Name == "" || len(f.Name) > maxName {
			return fmt.Sprintf("fields.declare: field %d has a name of %d bytes (1 to %d)", i, len(f.Name), maxName), false
		}
		for _, g := range fields[:i] {
			if g.Name == f.Name {
				return fmt.Sprintf("fields.declare: field `%s` is declared twice", f.Name), false
			}
		}
		if f.Type > FieldUTF8 {
			return fmt.Sprintf("fields.declare: field `%s` has an unknown type %d", f.Name, f.Type), false
		}
	}
	return "", true
}

// fetchFields decodes f.declared of b's values as the host's `fields.columns` would.
func fetchFields(b *Batch, f *Fields) error {
	if len(f.declared) == 0 {
		return Internal("fields", "fields.columns: no fields are declared (call fields.declare in init)")
	}
	n := b.Len()
	for _, d := range f.declared {
		c := fieldColumn{typ: d.Type, valid: make([]byte, (n+7)/8)}
		switch d.Type {
		case FieldBool:
			c.bits = make([]byte, (n+7)/8)
		case FieldInt64:
			c.ints = make([]int64, n)
		case FieldFloat64:
			c.floats = make([]float64, n)
		case FieldUTF8:
			c.strs.Ends = make([]uint32, 0, n)
		}
		f.columns = append(f.columns, c)
	}
	slots := make([]rawValue, len(f.declared))
	has := make([]bool, len(f.declared))
	for i := 0; i < n; i++ {
		ok := false
		if v := b.Value(i); v != nil {
			reason := fakeDecode(v, f.declared, slots, has)
			if ok = reason == ""; !ok {
				f.mismatched = append(f.mismatched, Mismatch{Record: i, Reason: reason})
			}
		}
		for j := range f.columns {
			c := &f.columns[j]
			set := ok && has[j]
			if set {
				c.valid[i>>3] |= 1 << (i & 7)
				switch raw := slots[j]; c.typ {
				case FieldBool:
					if string(raw.b) == "true" {
						c.bits[i>>3] |= 1 << (i & 7)
					}
				case FieldInt64:
					c.ints[i], _ = strconv.ParseInt(string(raw.b), 10, 64)
				case FieldFloat64:
					c.floats[i], _ = strconv.ParseFloat(string(raw.b), 64)
				case FieldUTF8:
					c.strs.Data = append(c.strs.Data, raw.b...)
				}
			}
			if c.typ == FieldUTF8 {
				c.strs.Ends = append(c.strs.Ends, uint32(len(c.strs.Data)))
			}
		}
	}
	return nil
}

var fakeKindNames = [...]string{JSONString: "a string", JSONNumber: "a number", JSONBool: "a boolean",
	JSONNull: "null", JSONObject: "an object", JSONArray: "an array"}

// fakeDecode reads the declared members of one value into slots (has[j]: present and not null),
// or says why the value does not fit the declaration ("" when it does).
func fakeDecode(value []byte, fields []Field, slots []rawValue, has []bool) string {
	if _, _, err := jsonField(value, ""); err != nil { // validates the whole value
		return AsError(err).Message
	}
	p := jsonParser{b: value}
	p.ws()
	if p.peek() != '{' {
		kind, _ := p.value()
		return "invalid type: " + fakeKindNames[kind.kind] + ", expected a JSON object"
	}
	for j, f := range fields {
		raw, found, _ := jsonField(value, f.Name)
		has[j], slots[j] = found && raw.kind != JSONNull, raw
		if !has[j] {
			continue
		}
		wrong := func(got string) string {
			return "field `" + f.Name + "`: " + got + " where " + f.Type.String() + " was declared"
		}
		switch f.Type {
		case FieldBool:
			if raw.kind != JSONBool {
				return wrong(fakeKindNames[raw.kind])
			}
		case FieldUTF8:
			if raw.kind != JSONString {
				return wrong(fakeKindNames[raw.kind])
			}
		case FieldInt64, FieldFloat64:
			if raw.kind != JSONNumber {
				return wrong(fakeKindNames[raw.kind])
			}
			integer := !bytes.ContainsAny(raw.b, ".eE")
			if f.Type == FieldFloat64 {
				if _, err := strconv.ParseFloat(string(raw.b), 64); err != nil {
					return "field `" + f.Name + "`: number out of range"
				}
			} else if !integer {
				return wrong("a number with a fraction or an exponent")
			} else if _, err := strconv.ParseInt(string(raw.b), 10, 64); err != nil {
				return wrong("an integer beyond the int64 range")
			}
		}
	}
	return ""
}
