package arkflow

// Typed fields decoded by the host (WIT interface `fields`): declare the top-level JSON fields
// the plugin reads once, in Init (DeclareFields), then read them per batch as typed columns
// (Batch.Fields): the guest parses no JSON.
//
// Contract (the Rust SDK's fields module):
//   - DeclareFields replaces any earlier declaration; the host checks it (at most 64 fields,
//     names non-empty and unique) and its error becomes a config *Error, code "bad-fields".
//   - Batch.Fields makes one host call per batch (later calls in the same Process return the
//     same *Fields): one column per declared field, one item per record.
//   - Columns are looked up by name and type (Fields.Int64, Float64, Bool, Str); a name that was
//     not declared with that type is an internal *Error, code "undeclared-field", naming it.
//   - A column's Get(i) returns ok == false where record i lacks the field, holds null, has no
//     value (a tombstone), or is mismatched (Fields.Mismatch: its value is not a JSON object, or
//     a declared field holds another type; the host's reason names the field).
//   - Views, not copies: the columns are the buffers the host wrote into guest memory (a Str's
//     strings and byte slices alias them; nothing is allocated per record). Like the Batch, a
//     *Fields and its columns are valid during the Process call only: copy what you keep.
//
// Off wasm (go test), host_fake.go decodes the declared fields of a NewBatch's values with the
// SDK's JSON reader, so plugin code reading fields is unit-tested like the rest.

import (
	"fmt"
	"sort"
	"unsafe"

	wit "arkflow.dev/plugin-sdk/wit/imports/arkflow_plugin_fields"
)

// FieldType is the type a declared field is read as (WIT `fields.field-type`).
type FieldType uint8

const (
	// FieldBool: JSON true / false.
	FieldBool FieldType = iota
	// FieldInt64: a JSON number written as an integer (no fraction, no exponent) within int64.
	FieldInt64
	// FieldFloat64: any JSON number (integers too), as the nearest float64.
	FieldFloat64
	// FieldUTF8: a JSON string (escapes decoded).
	FieldUTF8
)

var fieldTypeNames = [...]string{"boolean", "int64", "float64", "utf8"}

// String is the WIT name of the type ("boolean", "int64", "float64", "utf8").
func (t FieldType) String() string {
	if int(t) < len(fieldTypeNames) {
		return fieldTypeNames[t]
	}
	return fmt.Sprintf("field-type-%d", uint8(t))
}

// Field is one field to declare: a top-level member name of the records' JSON objects and the
// type it is read as.
type Field struct {
	Name string
	Type FieldType
}

// declared is the declaration the host accepted last (the host's column order).
var declared []Field

// DeclareFields declares the fields Batch.Fields returns, replacing an earlier declaration (call
// it in Init; a declaration applies from the next batch). The host's refusal is a config *Error,
// code "bad-fields".
func DeclareFields(fields ...Field) error {
	if msg, ok := declareFields(fields); !ok {
		return ConfigError("bad-fields", msg)
	}
	declared = append([]Field(nil), fields...)
	return nil
}

// Mismatch is a record whose value did not fit the declaration, and the host's reason.
type Mismatch struct {
	Record int
	Reason string
}

// Fields is the declared fields of one batch (see the file's doc).
type Fields struct {
	declared   []Field
	columns    []fieldColumn
	mismatched []Mismatch
	n          int // records
}

// fieldColumn is one lifted typed-column: valid, and the values of its type.
type fieldColumn struct {
	typ    FieldType
	valid  []byte
	bits   []byte    // FieldBool: a bitmap
	ints   []int64   // FieldInt64
	floats []float64 // FieldFloat64
	strs   Column    // FieldUTF8
}

func (f *Fields) reset(n int) {
	clear(f.columns)
	clear(f.mismatched)
	f.declared, f.columns, f.mismatched, f.n = declared, f.columns[:0], f.mismatched[:0], n
}

// lift takes the columns the bindings lifted from the host's reply (d), without copying a
// buffer (host_wasip1.go; the tests).
func (f *Fields) lift(d wit.Decoded) error {
	for _, c := range d.Columns {
		fc := fieldColumn{valid: c.Valid}
		switch v := c.Values; v.Tag() {
		case wit.TypedValues_Boolean:
			fc.typ, fc.bits = FieldBool, v.Boolean()
		case wit.TypedValues_Int64:
			fc.typ, fc.ints = FieldInt64, v.Int64()
		case wit.TypedValues_Float64:
			fc.typ, fc.floats = FieldFloat64, v.Float64()
		case wit.TypedValues_Utf8:
			fc.typ, fc.strs = FieldUTF8, v.Utf8()
		default:
			return Internal("bad-columns", fmt.Sprintf("fields.columns: typed-values case %d", v.Tag()))
		}
		f.columns = append(f.columns, fc)
	}
	for _, m := range d.Mismatched {
		f.mismatched = append(f.mismatched, Mismatch{Record: int(m.F0), Reason: m.F1})
	}
	return nil
}

// check verifies the shape of what the host returned (O(columns)), so a view never indexes out
// of its buffers.
func (f *Fields) check() error {
	if len(f.columns) != len(f.declared) {
		return Internal("bad-columns", fmt.Sprintf("fields.columns returned %d columns for %d declared fields", len(f.columns), len(f.declared)))
	}
	n, bytes := f.n, (f.n+7)/8
	for j := range f.columns {
		c, d := &f.columns[j], f.declared[j]
		ok := c.typ == d.Type && len(c.valid) >= bytes
		switch c.typ {
		case FieldBool:
			ok = ok && len(c.bits) >= bytes
		case FieldInt64:
			ok = ok && len(c.ints) == n
		case FieldFloat64:
			ok = ok && len(c.floats) == n
		case FieldUTF8:
			ok = ok && len(c.strs.Ends) == n && (n == 0 || int(c.strs.Ends[n-1]) <= len(c.strs.Data))
		}
		if !ok {
			return Internal("bad-columns", fmt.Sprintf("fields.columns: column %d (`%s`, %s) does not fit %d records", j, d.Name, d.Type, n))
		}
	}
	return nil
}

// Len is the number of records (of the batch).
func (f *Fields) Len() int { return f.n }

// Declared is the declaration these columns were decoded for, in column order.
func (f *Fields) Declared() []Field { return f.declared }

func (f *Fields) column(name string, t FieldType) (*fieldColumn, error) {
	for j, d := range f.declared {
		if d.Name == name {
			if d.Type == t {
				return &f.columns[j], nil
			}
			break
		}
	}
	return nil, Internal("undeclared-field", "field `"+name+"` was not declared as "+t.String()+" (DeclareFields)")
}

// Int64 is the int64 column of the field name.
func (f *Fields) Int64(name string) (Int64Column, error) {
	c, err := f.column(name, FieldInt64)
	if err != nil {
		return Int64Column{}, err
	}
	return Int64Column{c.valid, c.ints}, nil
}

// Float64 is the float64 column of the field name.
func (f *Fields) Float64(name string) (Float64Column, error) {
	c, err := f.column(name, FieldFloat64)
	if err != nil {
		return Float64Column{}, err
	}
	return Float64Column{c.valid, c.floats}, nil
}

// Bool is the boolean column of the field name.
func (f *Fields) Bool(name string) (BoolColumn, error) {
	c, err := f.column(name, FieldBool)
	if err != nil {
		return BoolColumn{}, err
	}
	return BoolColumn{c.valid, c.bits, f.n}, nil
}

// Str is the utf8 column of the field name.
func (f *Fields) Str(name string) (StrColumn, error) {
	c, err := f.column(name, FieldUTF8)
	if err != nil {
		return StrColumn{}, err
	}
	return StrColumn{c.valid, c.strs.Data, c.strs.Ends}, nil
}

// Mismatched is the records whose value did not fit the declaration, ascending, with the host's
// reasons.
func (f *Fields) Mismatched() []Mismatch { return f.mismatched }

// Mismatch is the reason record i did not fit the declaration; ok is false when it did (or has
// no value).
func (f *Fields) Mismatch(i int) (reason string, ok bool) {
	m := f.mismatched
	k := sort.Search(len(m), func(k int) bool { return m[k].Record >= i })
	if k < len(m) && m[k].Record == i {
		return m[k].Reason, true
	}
	return "", false
}

// bit is bit i of a bitmap (least significant bit first); false past its end.
func bit(bits []byte, i int) bool {
	return uint(i)>>3 < uint(len(bits)) && bits[i>>3]&(1<<(i&7)) != 0
}

// Int64Column is an int64 field of every record.
type Int64Column struct {
	valid  []byte
	values []int64
}

// Len is the number of records.
func (c Int64Column) Len() int { return len(c.values) }

// Has says whether record i has the field (with an int64 value).
func (c Int64Column) Has(i int) bool { return bit(c.valid, i) }

// Get is record i's value; ok is false where it has none.
func (c Int64Column) Get(i int) (v int64, ok bool) {
	if !bit(c.valid, i) {
		return 0, false
	}
	return c.values[i], true
}

// Values is every record's value (0 where Has is false), for loops that check Has themselves.
func (c Int64Column) Values() []int64 { return c.values }

// Float64Column is a float64 field of every record.
type Float64Column struct {
	valid  []byte
	values []float64
}

// Len is the number of records.
func (c Float64Column) Len() int { return len(c.values) }

// Has says whether record i has the field (with a number).
func (c Float64Column) Has(i int) bool { return bit(c.valid, i) }

// Get is record i's value; ok is false where it has none.
func (c Float64Column) Get(i int) (v float64, ok bool) {
	if !bit(c.valid, i) {
		return 0, false
	}
	return c.values[i], true
}

// Values is every record's value (0 where Has is false), for loops that check Has themselves.
func (c Float64Column) Values() []float64 { return c.values }

// BoolColumn is a boolean field of every record.
type BoolColumn struct {
	valid, bits []byte
	n           int
}

// Len is the number of records.
func (c BoolColumn) Len() int { return c.n }

// Has says whether record i has the field (with true or false).
func (c BoolColumn) Has(i int) bool { return bit(c.valid, i) }

// Get is record i's value; ok is false where it has none.
func (c BoolColumn) Get(i int) (v, ok bool) {
	if !bit(c.valid, i) {
		return false, false
	}
	return bit(c.bits, i), true
}

// StrColumn is a utf8 field of every record (Arrow's layout: one buffer of text, one end per
// record).
type StrColumn struct {
	valid []byte
	data  []byte
	ends  []uint32
}

// Len is the number of records.
func (c StrColumn) Len() int { return len(c.ends) }

// Has says whether record i has the field (with a string).
func (c StrColumn) Has(i int) bool { return bit(c.valid, i) }

// Bytes is record i's string as bytes (never nil when ok; capped at its end: appending to it
// never overwrites the next one). It aliases the column: valid during the call only.
func (c StrColumn) Bytes(i int) (b []byte, ok bool) {
	if !bit(c.valid, i) {
		return nil, false
	}
	start := uint32(0)
	if i > 0 {
		start = c.ends[i-1]
	}
	end := c.ends[i]
	if start == end {
		return empty, true
	}
	return c.data[start:end:end], true
}

// Get is record i's string, without a copy (it aliases the column, which nothing writes to:
// valid during the call only, copy it with strings.Clone to keep it); ok is false where the
// record has none.
func (c StrColumn) Get(i int) (s string, ok bool) {
	b, ok := c.Bytes(i)
	if !ok || len(b) == 0 {
		return "", ok
	}
	return unsafe.String(&b[0], len(b)), true
}

// Fields is the fields declared with DeclareFields, decoded by the host for every record of
// this batch: one host call, made on the first call per batch (later calls return the same
// *Fields, or the same error: internal "fields" when the host refuses, e.g. nothing declared).
// Valid during the Process call only.
func (b *Batch) Fields() (*Fields, error) {
	if !b.fieldsFetched {
		b.fields.reset(b.Len())
		b.fieldsErr = fetchFields(b, &b.fields)
		if b.fieldsErr == nil {
			b.fieldsErr = b.fields.check()
		}
		b.fieldsFetched = true
	}
	if b.fieldsErr != nil {
		return nil, b.fieldsErr
	}
	return &b.fields, nil
}
