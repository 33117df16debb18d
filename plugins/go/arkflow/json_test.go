package arkflow

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
)

func field(t *testing.T, doc, name string) (JSONValue, bool) {
	t.Helper()
	v, ok, err := JSONField([]byte(doc), name)
	if err != nil {
		t.Fatalf("JSONField(%q, %q): %v", doc, name, err)
	}
	return v, ok
}

func TestJSONFieldFindsTopLevelMembers(t *testing.T) {
	doc := ` {"a": "x", "n": -12.5e2, "b": true, "z": null, "o": {"a": [1, {"q": 2}]}, "arr": [ ] } `
	for _, c := range []struct {
		name string
		want JSONValue
	}{
		{"a", JSONValue{JSONString, "x"}},
		{"n", JSONValue{JSONNumber, "-12.5e2"}},
		{"b", JSONValue{JSONBool, "true"}},
		{"z", JSONValue{JSONNull, "null"}},
		{"o", JSONValue{JSONObject, `{"a": [1, {"q": 2}]}`}},
		{"arr", JSONValue{JSONArray, "[ ]"}},
	} {
		if v, ok := field(t, doc, c.name); !ok || v != c.want {
			t.Errorf("%s: got %+v %v, want %+v", c.name, v, ok, c.want)
		}
	}
	for _, c := range [][2]string{{doc, "q"}, {doc, "missing"}, {"[1,2]", "a"}, {`"s"`, "a"}} {
		if _, ok := field(t, c[0], c[1]); ok {
			t.Errorf("%q in %q: found", c[1], c[0])
		}
	}
	if v, _ := field(t, `{"a":1,"a":2}`, "a"); v.Text != "1" {
		t.Errorf("duplicates: first must win, got %q", v.Text)
	}
}

func TestJSONUnescapes(t *testing.T) {
	v, ok := field(t, `{"k\u0041":"a\"b\\c\/\n\t\u00e9\ud83d\ude00"}`, "kA")
	if !ok || v.Text != "a\"b\\c/\n\té😀" {
		t.Fatalf("got %q", v.Text)
	}
	if k, _ := field(t, `{"k":"héllo"}`, "k"); k.Text != "héllo" {
		t.Fatalf("got %q", k.Text)
	}
}

func TestJSONRejectsInvalidDocuments(t *testing.T) {
	for _, bad := range []string{
		"", "{", `{"a"}`, `{"a":}`, `{"a":1,}`, "{a:1}", `{"a":01}`, `{"a":1.}`,
		`{"a":-}`, `{"a":1e}`, `{"a":tru}`, `{"a":"x}`, `{"a":"\x"}`,
		`{"a":"\ud800"}`, `{"a":"\udc00"}`, `{"a":"\u12"}`, `{"a":1} x`,
		`{"a":[1,]}`, "{\"a\":\"tab\there\"}", "[1 2]", "nul", `{"a":NaN}`, "{\"a\":\"\xff\"}",
		strings.Repeat("[", JSONMaxDepth+1) + strings.Repeat("]", JSONMaxDepth+1),
	} {
		_, _, err := JSONField([]byte(bad), "a")
		var e *Error
		if !errors.As(err, &e) || e.Class != ClassInvalidInput || e.Code != "bad-json" {
			t.Errorf("%q: got %v, want an invalid-input/bad-json error", bad, err)
		}
	}
	if err := ValidateJSON([]byte(strings.Repeat("[", JSONMaxDepth) + strings.Repeat("]", JSONMaxDepth))); err != nil {
		t.Error(err)
	}
	for _, good := range []string{"0", "-0", "1.5E+3", "true", "null", `""`, "{}", " [ {} , [] ] "} {
		if err := ValidateJSON([]byte(good)); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
}

func TestJSONErrorMessagesMatchRust(t *testing.T) {
	for _, c := range [][2]string{
		{`{"a":1,}`, "invalid JSON at byte 7: expected a member name"},
		{"{\"a\":\"\xff\"}", "invalid JSON at byte 6: not UTF-8"},
		{`{"a":1} x`, "invalid JSON at byte 8: trailing characters"},
		{"", "invalid JSON at byte 0: unexpected end of input"},
	} {
		_, _, err := JSONField([]byte(c[0]), "a")
		if err == nil || AsError(err).Message != c[1] {
			t.Errorf("%q: got %v, want %q", c[0], err, c[1])
		}
	}
}

func TestEscapingRoundTrips(t *testing.T) {
	if got := EscapeJSON("a\"b\\c\nd\x01é"); got != `a\"b\\c\nd\u0001é` {
		t.Errorf("got %q", got)
	}
	for _, s := range []string{"", "x", "\"\\/\x00\x1f\x7f\r\t\b\f😀 é", "end\\"} {
		v, ok := field(t, `{"k":"`+EscapeJSON(s)+`"}`, "k")
		if !ok || v.Text != s {
			t.Errorf("%q: round trip gave %q", s, v.Text)
		}
	}
}

// Invalid UTF-8 is replaced like Rust's String::from_utf8_lossy: one U+FFFD per maximal
// invalid subpart.
func TestEscapeIsLossyLikeRust(t *testing.T) {
	for _, c := range [][2]string{
		{"a\xffb", "a\uFFFDb"},
		{"\xf0\x9f\x98", "\uFFFD"},                       // truncated 4-byte sequence: one
		{"\xf0\x9f\x98x", "\uFFFDx"},                     // ... followed by ASCII
		{"\xe0\x80\x80", "\uFFFD\uFFFD\uFFFD"},           // overlong: E0 then 80 80
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"},           // surrogate
		{"\xc0\xaf", "\uFFFD\uFFFD"},                     // C0 never valid
		{"\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"}, // > U+10FFFF
		{"\xe2\x82", "\uFFFD"},
		{"é\xe2\x82\xac", "é€"},
	} {
		if got := string(AppendJSONEscaped(nil, []byte(c[0]))); got != c[1] {
			t.Errorf("%q: got %q, want %q", c[0], got, c[1])
		}
	}
}

func TestKeyRule(t *testing.T) {
	rec := func(key, value *string) *RecordIn {
		r := &RecordIn{}
		if key != nil {
			r.Key = []byte(*key)
		}
		if value != nil {
			r.Value = []byte(*value)
		}
		return r
	}
	s := func(v string) *string { return &v }
	rule := KeyFromConfig(NewConfig([2]string{"key_field", "user"}), "key_field")
	for _, c := range []struct {
		r    *RecordIn
		want string
		code string
	}{
		{rec(s("k1"), s(`{"user":"u"}`)), "k1", ""},
		{rec(s(""), nil), "", ""},
		{rec(nil, s(`{"user":"u\"1"}`)), "u\"1", ""},
		{rec(nil, s(`{"user":-1.5e3}`)), "-1.5e3", ""},
		{rec(nil, s(`{"user":true}`)), "", "no-key"},
		{rec(nil, s(`{"other":1}`)), "", "no-key"},
		{rec(nil, nil), "", "no-key"},
		{rec(nil, s(`{"user":`)), "", "bad-json"},
	} {
		k, err := rule.Key(c.r)
		if c.code != "" {
			if err == nil || AsError(err).Code != c.code || AsError(err).Class != ClassInvalidInput {
				t.Errorf("%+v: got %q %v, want %s", c.r, k, err, c.code)
			}
			continue
		}
		if err != nil || k == nil || string(k) != c.want {
			t.Errorf("%+v: got %q %v, want %q", c.r, k, err, c.want)
		}
	}
	if _, err := (KeyRule{}).Key(rec(nil, s(`{"user":"u"}`))); err == nil ||
		AsError(err).Message != "record has no key and no `key_field` value" {
		t.Errorf("no key_field: got %v", err)
	}
	if _, err := rule.Key(rec(nil, s(`{}`))); err == nil || AsError(err).Message != "no string/number field `user`" {
		t.Errorf("missing field: got %v", err)
	}
}

func TestAppendHelpersMatchTheStandardLibrary(t *testing.T) {
	for _, v := range []int64{0, 7, -7, 10, 99, 100, 123456789, math.MaxInt64, math.MinInt64} {
		if got, want := string(AppendInt([]byte("x"), v)), "x"+strconv.FormatInt(v, 10); got != want {
			t.Errorf("AppendInt %d: %q, want %q", v, got, want)
		}
	}
	long := strings.Repeat("ab", 40)
	for _, s := range []string{"", "a", "0123456789abcdef0123456789abcdef", long} {
		small := make([]byte, 1, 4)
		if got := string(AppendString(small, s)); got != "\x00"+s {
			t.Errorf("AppendString %q: %q", s, got)
		}
		if got := string(AppendBytes(make([]byte, 2, 100), []byte(s))); got != "\x00\x00"+s {
			t.Errorf("AppendBytes %q: %q", s, got)
		}
	}
}
