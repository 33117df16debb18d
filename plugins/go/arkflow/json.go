package arkflow

// A small, allocation-light JSON reader and string escaper for record values (no encoding/json:
// no reflection, no tree per record). Same contract as the Rust SDK's json module:
//   - JSONField validates the WHOLE document (RFC 8259, UTF-8, nesting at most JSONMaxDepth) and
//     returns the value of a top-level object member; found is false when the member is absent or
//     the document is not an object. With duplicate names the first wins.
//   - Strings are unescaped; numbers, objects and arrays are their raw text.
//   - Invalid JSON is an invalid-input *Error with code "bad-json" and message
//     "invalid JSON at byte N: reason".

import (
	"strconv"
	"unicode/utf8"
)

// JSONMaxDepth is the deepest nesting of objects/arrays JSONField accepts.
const JSONMaxDepth = 128

// JSONKind is the kind of a JSONValue.
type JSONKind uint8

const (
	JSONString JSONKind = iota
	JSONNumber
	JSONBool
	JSONNull
	JSONObject
	JSONArray
)

// JSONValue is a value read from a document. Text is a string's unescaped contents, or the raw
// JSON text of anything else ("-1.5e3", "true", "null", "{...}", "[...]").
type JSONValue struct {
	Kind JSONKind
	Text string
}

// AsKey is a string's contents or a number's text: what can serve as a key or id.
func (v JSONValue) AsKey() (string, bool) {
	if v.Kind == JSONString || v.Kind == JSONNumber {
		return v.Text, true
	}
	return "", false
}

// JSONError says why a document is not valid JSON.
type JSONError struct {
	Offset int // byte offset where the problem was found
	Reason string
}

func (e *JSONError) Error() string {
	return "invalid JSON at byte " + strconv.Itoa(e.Offset) + ": " + e.Reason
}

func badJSON(e *JSONError) error { return InvalidInput("bad-json", e.Error()) }

// JSONField is the top-level member `name` of the JSON document doc (see above). The error is an
// invalid-input *Error with code "bad-json".
func JSONField(doc []byte, name string) (JSONValue, bool, error) {
	raw, found, err := jsonField(doc, name)
	if err != nil || !found {
		return JSONValue{}, false, err
	}
	return JSONValue{Kind: raw.kind, Text: string(raw.b)}, true, nil
}

// JSONKey is the string/number member `name` of doc as bytes (a string unescaped, a number as
// its text), without copying when it holds no escapes: the bytes may alias doc.
func JSONKey(doc []byte, name string) (key []byte, ok bool, err error) {
	raw, found, err := jsonField(doc, name)
	if err != nil || !found || (raw.kind != JSONString && raw.kind != JSONNumber) {
		return nil, false, err
	}
	if raw.b == nil {
		raw.b = []byte{}
	}
	return raw.b, true, nil
}

func jsonField(doc []byte, name string) (raw rawValue, found bool, err error) {
	if !utf8.Valid(doc) {
		i := 0
		for i < len(doc) {
			r, n := utf8.DecodeRune(doc[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return raw, false, badJSON(&JSONError{Offset: i, Reason: "not UTF-8"})
	}
	p := jsonParser{b: doc}
	p.ws()
	if p.peek() == '{' {
		raw, found, err = p.objectMembers(name, true)
	} else {
		_, err = p.value()
	}
	if err != nil {
		return rawValue{}, false, err
	}
	p.ws()
	if p.pos != len(p.b) {
		return rawValue{}, false, p.err("trailing characters")
	}
	return raw, found, nil
}

// ValidateJSON checks that doc is one valid JSON document.
func ValidateJSON(doc []byte) error {
	_, _, err := JSONField(doc, "")
	return err
}

// AppendJSONEscaped appends s JSON-escaped, without quotes. Invalid UTF-8 is replaced by U+FFFD
// (one per maximal invalid subsequence, like Rust's String::from_utf8_lossy), so output keys match
// the Rust plugins byte for byte.
func AppendJSONEscaped(out []byte, s []byte) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		out = AppendBytes(out, s[start:i])
		if c >= utf8.RuneSelf {
			n, ok := utf8Seq(s[i:])
			if ok {
				out = AppendBytes(out, s[i:i+n])
			} else {
				out = append(out, "\uFFFD"...)
			}
			i += n
			start = i
			continue
		}
		switch c {
		case '"':
			out = append(out, '\\', '"')
		case '\\':
			out = append(out, '\\', '\\')
		case '\n':
			out = append(out, '\\', 'n')
		case '\r':
			out = append(out, '\\', 'r')
		case '\t':
			out = append(out, '\\', 't')
		case '\b':
			out = append(out, '\\', 'b')
		case '\f':
			out = append(out, '\\', 'f')
		default:
			const hex = "0123456789abcdef"
			out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	return AppendBytes(out, s[start:])
}

// EscapeJSON is s JSON-escaped, without quotes.
func EscapeJSON(s string) string { return string(AppendJSONEscaped(nil, []byte(s))) }

// utf8Seq measures the UTF-8 sequence at the start of s (s[0] >= 0x80): (length, true) for a
// valid character, or (length of the maximal invalid subpart, at least 1, false) — Unicode's
// "substitution of maximal subparts", which Rust's from_utf8_lossy follows.
func utf8Seq(s []byte) (int, bool) {
	c := s[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF) // allowed range of the second byte
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 2
	case c == 0xE0:
		need, lo = 3, 0xA0
	case c == 0xED:
		need, hi = 3, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		need = 3
	case c == 0xF0:
		need, lo = 4, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 4
	case c == 0xF4:
		need, hi = 4, 0x8F
	default:
		return 1, false
	}
	for i := 1; i < need; i++ {
		if i >= len(s) || s[i] < lo || s[i] > hi {
			return i, false
		}
		lo, hi = 0x80, 0xBF
	}
	return need, true
}

// rawValue is a value as parsed: b borrows from the document (or, for a string with escapes,
// from a fresh buffer), so skipping members allocates nothing.
type rawValue struct {
	kind JSONKind
	b    []byte
}

type jsonParser struct {
	b     []byte
	pos   int
	depth int
}

func (p *jsonParser) err(reason string) error {
	return badJSON(&JSONError{Offset: p.pos, Reason: reason})
}

func (p *jsonParser) peek() int {
	if p.pos < len(p.b) {
		return int(p.b[p.pos])
	}
	return -1
}

func (p *jsonParser) ws() {
	for p.pos < len(p.b) {
		switch p.b[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) expect(c int, reason string) error {
	if p.peek() == c {
		p.pos++
		return nil
	}
	return p.err(reason)
}

func (p *jsonParser) value() (rawValue, error) {
	p.ws()
	start := p.pos
	switch c := p.peek(); {
	case c == '"':
		s, err := p.string()
		return rawValue{JSONString, s}, err
	case c == '{':
		_, _, err := p.objectMembers("", false)
		return rawValue{JSONObject, p.b[start:p.pos]}, err
	case c == '[':
		err := p.array()
		return rawValue{JSONArray, p.b[start:p.pos]}, err
	case c == 't':
		return p.literal("true", JSONBool)
	case c == 'f':
		return p.literal("false", JSONBool)
	case c == 'n':
		return p.literal("null", JSONNull)
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c < 0:
		return rawValue{}, p.err("unexpected end of input")
	default:
		return rawValue{}, p.err("unexpected character")
	}
}

func (p *jsonParser) literal(word string, kind JSONKind) (rawValue, error) {
	if len(p.b)-p.pos >= len(word) && string(p.b[p.pos:p.pos+len(word)]) == word {
		p.pos += len(word)
		return rawValue{kind, p.b[p.pos-len(word) : p.pos]}, nil
	}
	return rawValue{}, p.err("invalid literal")
}

func (p *jsonParser) enter() error {
	p.depth++
	if p.depth > JSONMaxDepth {
		return p.err("nesting too deep")
	}
	return nil
}

// objectMembers parses an object at pos; with want, returns the first member named name.
func (p *jsonParser) objectMembers(name string, want bool) (found rawValue, ok bool, err error) {
	if err = p.enter(); err != nil {
		return
	}
	if err = p.expect('{', "expected '{'"); err != nil {
		return
	}
	p.ws()
	if p.peek() == '}' {
		p.pos++
		p.depth--
		return
	}
	for {
		p.ws()
		if p.peek() != '"' {
			return found, false, p.err("expected a member name")
		}
		var member []byte
		if member, err = p.string(); err != nil {
			return found, false, err
		}
		p.ws()
		if err = p.expect(':', "expected ':'"); err != nil {
			return found, false, err
		}
		var v rawValue
		if v, err = p.value(); err != nil {
			return found, false, err
		}
		if !ok && want && string(member) == name {
			found, ok = v, true
		}
		p.ws()
		switch p.peek() {
		case ',':
			p.pos++
		case '}':
			p.pos++
			p.depth--
			return found, ok, nil
		default:
			return found, false, p.err("expected ',' or '}'")
		}
	}
}

func (p *jsonParser) array() error {
	if err := p.enter(); err != nil {
		return err
	}
	if err := p.expect('[', "expected '['"); err != nil {
		return err
	}
	p.ws()
	if p.peek() == ']' {
		p.pos++
		p.depth--
		return nil
	}
	for {
		if _, err := p.value(); err != nil {
			return err
		}
		p.ws()
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
			p.pos++
			p.depth--
			return nil
		default:
			return p.err("expected ',' or ']'")
		}
	}
}

func (p *jsonParser) digits() int {
	start := p.pos
	for p.pos < len(p.b) && p.b[p.pos] >= '0' && p.b[p.pos] <= '9' {
		p.pos++
	}
	return p.pos - start
}

func (p *jsonParser) number() (rawValue, error) {
	start := p.pos
	if p.peek() == '-' {
		p.pos++
	}
	switch c := p.peek(); {
	case c == '0':
		p.pos++
	case c >= '1' && c <= '9':
		p.digits()
	default:
		return rawValue{}, p.err("invalid number")
	}
	if p.peek() == '.' {
		p.pos++
		if p.digits() == 0 {
			return rawValue{}, p.err("invalid number")
		}
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.pos++
		if c := p.peek(); c == '+' || c == '-' {
			p.pos++
		}
		if p.digits() == 0 {
			return rawValue{}, p.err("invalid number")
		}
	}
	return rawValue{JSONNumber, p.b[start:p.pos]}, nil
}

func hexVal(c byte) (uint32, bool) {
	switch {
	case c >= '0' && c <= '9':
		return uint32(c - '0'), true
	case c >= 'a' && c <= 'f':
		return uint32(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return uint32(c-'A') + 10, true
	}
	return 0, false
}

// hex4 reads the 4 hex digits of a \u escape.
func (p *jsonParser) hex4() (uint32, error) {
	if len(p.b)-p.pos < 4 {
		return 0, p.err("truncated \\u escape")
	}
	h := p.b[p.pos : p.pos+4]
	var v uint32
	for _, c := range h {
		d, ok := hexVal(c)
		if !ok {
			return 0, p.err("invalid \\u escape")
		}
		v = v<<4 | d
	}
	p.pos += 4
	return v, nil
}

// string parses a string at pos (which is '"') and returns its unescaped contents (borrowed from
// the document when it holds no escapes).
func (p *jsonParser) string() ([]byte, error) {
	p.pos++
	start := p.pos
	// Fast path: no escapes.
	for {
		c := p.peek()
		switch {
		case c < 0:
			return nil, p.err("unterminated string")
		case c == '"':
			s := p.b[start:p.pos]
			p.pos++
			return s, nil
		case c == '\\':
		case c < 0x20:
			return nil, p.err("control character in string")
		default:
			p.pos++
			continue
		}
		break
	}
	out := append([]byte(nil), p.b[start:p.pos]...)
	for {
		run := p.pos
	scan:
		for {
			c := p.peek()
			switch {
			case c < 0:
				return nil, p.err("unterminated string")
			case c == '"' || c == '\\':
				break scan
			case c < 0x20:
				return nil, p.err("control character in string")
			}
			p.pos++
		}
		out = append(out, p.b[run:p.pos]...)
		if p.peek() == '"' {
			p.pos++
			return out, nil
		}
		p.pos++ // the backslash
		c := p.peek()
		if c < 0 {
			return nil, p.err("unterminated string")
		}
		p.pos++
		switch c {
		case '"', '\\', '/':
			out = append(out, byte(c))
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			hi, err := p.hex4()
			if err != nil {
				return nil, err
			}
			cp := hi
			switch {
			case hi >= 0xD800 && hi < 0xDC00:
				if len(p.b)-p.pos < 2 || p.b[p.pos] != '\\' || p.b[p.pos+1] != 'u' {
					return nil, p.err("lone surrogate")
				}
				p.pos += 2
				lo, err := p.hex4()
				if err != nil {
					return nil, err
				}
				if lo < 0xDC00 || lo >= 0xE000 {
					return nil, p.err("lone surrogate")
				}
				cp = 0x10000 + (hi-0xD800)<<10 + (lo - 0xDC00)
			case hi >= 0xDC00 && hi < 0xE000:
				return nil, p.err("lone surrogate")
			}
			out = utf8.AppendRune(out, rune(cp))
		default:
			return nil, p.err("invalid escape")
		}
	}
}
