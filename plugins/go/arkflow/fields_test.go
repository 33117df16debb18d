package arkflow

// Unit tests of the typed fields (fields.go): the views over lifted columns, and the fake host's
// declare/columns (host_fake.go), native.

import (
	"fmt"
	"strings"
	"testing"

	wit "arkflow.dev/plugin-sdk/wit/imports/arkflow_plugin_fields"
	types "arkflow.dev/plugin-sdk/wit/imports/arkflow_plugin_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

func TestFieldsLiftedColumnsByNameAndType(t *testing.T) {
	declared = []Field{{"n", FieldInt64}, {"s", FieldUTF8}, {"b", FieldBool}, {"x", FieldFloat64}}
	defer func() { declared = nil }()
	var f Fields
	f.reset(3)
	err := f.lift(wit.Decoded{
		Columns: []wit.TypedColumn{
			{Valid: []byte{0b101}, Values: wit.MakeTypedValuesInt64([]int64{7, 0, -2})},
			{Valid: []byte{0b011}, Values: wit.MakeTypedValuesUtf8(types.Column{Data: []byte("abc"), Ends: []uint32{1, 3, 3}})},
			{Valid: []byte{0b110}, Values: wit.MakeTypedValuesBoolean([]byte{0b010})},
			{Valid: []byte{0b001}, Values: wit.MakeTypedValuesFloat64([]float64{1.5, 0, 0})},
		},
		Mismatched: []witTypes.Tuple2[uint32, string]{{F0: 2, F1: "field `s`: a number where utf8 was declared"}},
	})
	if err == nil {
		err = f.check()
	}
	if err != nil {
		t.Fatal(err)
	}
	n, err := f.Int64("n")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := f.Str("s")
	b, _ := f.Bool("b")
	x, _ := f.Float64("x")
	var got []string
	for i := 0; i < f.Len(); i++ {
		nv, nok := n.Get(i)
		sv, sok := s.Get(i)
		bv, bok := b.Get(i)
		xv, xok := x.Get(i)
		got = append(got, strings.Join([]string{fmtOpt(nv, nok), fmtOpt(sv, sok), fmtOpt(bv, bok), fmtOpt(xv, xok)}, " "))
	}
	want := []string{"7 a - 1.5", "- bc true -", "-2 - false -"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
	if bs, ok := s.Bytes(1); !ok || string(append(bs, 'x')) != "bcx" || string(s.data) != "abc" {
		t.Errorf("Bytes(1) %q %v (appending must not write into the column)", bs, ok)
	}
	if _, err := f.Float64("n"); AsError(err).Code != "undeclared-field" || !strings.Contains(err.Error(), "`n` was not declared as float64") {
		t.Errorf("n asked as float64: %v", err)
	}
	if _, err := f.Str("zz"); AsError(err).Code != "undeclared-field" || AsError(err).Class != ClassInternal {
		t.Errorf("undeclared zz: %v", err)
	}
	if r, ok := f.Mismatch(2); !ok || r != "field `s`: a number where utf8 was declared" {
		t.Errorf("Mismatch(2) = %q %v", r, ok)
	}
	if _, ok := f.Mismatch(1); ok || len(f.Mismatched()) != 1 {
		t.Errorf("Mismatch(1) or Mismatched %v", f.Mismatched())
	}
	if v := n.Values(); len(v) != 3 || !n.Has(2) || n.Has(1) || n.Has(-1) || n.Has(99) {
		t.Errorf("Values/Has: %v", v)
	}

	// A reply that does not fit the batch is refused, not indexed out of range.
	f.reset(9)
	_ = f.lift(wit.Decoded{Columns: []wit.TypedColumn{
		{Valid: []byte{1}, Values: wit.MakeTypedValuesInt64([]int64{1})},
		{Valid: []byte{1, 0}, Values: wit.MakeTypedValuesUtf8(types.Column{})},
		{Valid: []byte{1, 0}, Values: wit.MakeTypedValuesBoolean([]byte{1})},
		{Valid: []byte{1, 0}, Values: wit.MakeTypedValuesFloat64(make([]float64, 9))},
	}})
	if err := f.check(); AsError(err).Code != "bad-columns" {
		t.Errorf("short columns: %v", err)
	}
}

func fmtOpt[T any](v T, ok bool) string {
	if !ok {
		return "-"
	}
	return fmt.Sprint(v)
}

func TestFieldsDeclareChecks(t *testing.T) {
	defer ResetFakeState()
	for _, c := range []struct {
		fields []Field
		msg    string
	}{
		{[]Field{{"", FieldUTF8}}, "field 0 has a name of 0 bytes"},
		{[]Field{{"a", FieldUTF8}, {"a", FieldInt64}}, "field `a` is declared twice"},
		{make([]Field, 65), "65 fields, at most 64"},
	} {
		err := DeclareFields(c.fields...)
		if e := AsError(err); err == nil || e.Class != ClassConfig || e.Code != "bad-fields" || !strings.Contains(e.Message, c.msg) {
			t.Errorf("declare %d fields: %v, want config/bad-fields %q", len(c.fields), err, c.msg)
		}
	}
	// Nothing declared: the host's error, as internal "fields".
	if _, err := NewBatch(RecordIn{Value: []byte(`{}`)}).Fields(); AsError(err).Code != "fields" {
		t.Errorf("columns without a declaration: %v", err)
	}
}

// The fake host decodes by the host's rules: what the plugin code under test sees.
func TestFieldsFakeHostDecodes(t *testing.T) {
	ResetFakeState()
	defer ResetFakeState()
	if err := DeclareFields(Field{"user", FieldUTF8}, Field{"n", FieldInt64}, Field{"x", FieldFloat64}, Field{"ok", FieldBool}); err != nil {
		t.Fatal(err)
	}
	b := NewBatch(
		RecordIn{Value: []byte(`{"user":"a\u00e9","n":-3,"x":2,"ok":true,"user":"dup"}`)},
		RecordIn{Value: []byte(`{"user":null,"n":1,"x":0.25}`)},
		RecordIn{Value: []byte(`{"user":7}`)},
		RecordIn{Value: []byte(`[1]`)},
		RecordIn{Key: []byte("k")}, // tombstone: all clear, not listed
		RecordIn{Value: []byte(`{"n":1.5}`)},
		RecordIn{Value: []byte(`{"user":`)},
		RecordIn{Value: []byte(`{"ok":false,"user":""}`)},
		RecordIn{Value: []byte(`{"n":9223372036854775808}`)},
	)
	f, err := b.Fields()
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := b.Fields(); again != f {
		t.Error("a second Fields in the same call fetched again")
	}
	user, _ := f.Str("user")
	n, _ := f.Int64("n")
	x, _ := f.Float64("x")
	ok, _ := f.Bool("ok")
	var got []string
	for i := 0; i < b.Len(); i++ {
		uv, uok := user.Get(i)
		nv, nok := n.Get(i)
		xv, xok := x.Get(i)
		bv, bok := ok.Get(i)
		got = append(got, strings.Join([]string{fmtOpt(uv, uok), fmtOpt(nv, nok), fmtOpt(xv, xok), fmtOpt(bv, bok)}, " "))
	}
	want := []string{"aé -3 2 true", "- 1 0.25 -", "- - - -", "- - - -", "- - - -", "- - - -", "- - - -", " - - false", "- - - -"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	var mis []string
	for _, m := range f.Mismatched() {
		mis = append(mis, fmt.Sprintf("%d: %s", m.Record, m.Reason))
	}
	wantMis := []string{
		"2: field `user`: a number where utf8 was declared",
		"3: invalid type: an array, expected a JSON object",
		"5: field `n`: a number with a fraction or an exponent where int64 was declared",
		"6: invalid JSON at byte 8: unexpected end of input",
		"8: field `n`: an integer beyond the int64 range where int64 was declared",
	}
	if strings.Join(mis, "|") != strings.Join(wantMis, "|") {
		t.Errorf("mismatched\n got  %q\n want %q", mis, wantMis)
	}
	if s, ok := user.Get(7); !ok || s != "" {
		t.Errorf("present empty string: %q %v", s, ok)
	}
	if bs, ok := user.Bytes(7); !ok || bs == nil {
		t.Error("a present empty string's Bytes is nil")
	}

	// The next call (reset) fetches again.
	b.reset(NewBatch(RecordIn{Value: []byte(`{"user":"z"}`)}).raw)
	f2, err := b.Fields()
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := f2.Str("user"); f2.Len() != 1 || len(f2.Mismatched()) != 0 {
		t.Errorf("after reset: len %d, mismatched %v", f2.Len(), f2.Mismatched())
	} else if s, ok := u.Get(0); !ok || s != "z" {
		t.Errorf("after reset: %q %v", s, ok)
	}
}
