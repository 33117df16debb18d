package arkflow

import (
	"bytes"
	"math"
	"testing"
)

func TestCodec(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 42, math.MinInt64, math.MaxInt64} {
		if got, ok := DecodeI64(EncodeI64(v)); !ok || got != v {
			t.Errorf("%d: round trip gave %d %v", v, got, ok)
		}
	}
	if !bytes.Equal(EncodeI64(-2), []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
		t.Error("encoding is not 8-byte little-endian")
	}
	for _, b := range [][]byte{{}, {1, 2, 3}, make([]byte, 9)} {
		if _, ok := DecodeI64(b); ok {
			t.Errorf("%v decoded", b)
		}
	}
}

func TestStateCacheCountsAndWrites(t *testing.T) {
	c, err := NewStateCache([][]byte{[]byte("a"), []byte("b"), []byte("bad")},
		[][]byte{EncodeI64(41), nil, []byte("xyz")})
	if err != nil {
		t.Fatal(err)
	}
	step := func(key string, want int64) {
		t.Helper()
		if n, err := c.Increment([]byte(key), 1); err != nil || n != want {
			t.Fatalf("increment %s: %d %v, want %d", key, n, err, want)
		}
	}
	step("b", 1)
	step("a", 42)
	step("b", 2)
	if _, err := c.Increment([]byte("bad"), 1); err == nil || AsError(err).Code != "not-a-counter" || AsError(err).Class != ClassState {
		t.Fatalf("bad: %v", err)
	}
	c.Put([]byte("new"), []byte("v"))
	w := c.Writes()
	want := []Entry{{[]byte("b"), EncodeI64(2)}, {[]byte("a"), EncodeI64(42)}, {[]byte("new"), []byte("v")}}
	if len(w) != len(want) {
		t.Fatalf("writes %v", w)
	}
	for i := range w {
		if !bytes.Equal(w[i].Key, want[i].Key) || !bytes.Equal(w[i].Value, want[i].Value) {
			t.Errorf("write %d: %q=%v, want %q=%v", i, w[i].Key, w[i].Value, want[i].Key, want[i].Value)
		}
	}
	if len(c.Writes()) != 0 {
		t.Error("Writes did not leave the cache clean")
	}
	if v, ok, err := c.GetI64([]byte("a")); v != 42 || !ok || err != nil {
		t.Errorf("GetI64: %d %v %v", v, ok, err)
	}
	if _, ok := c.Get([]byte("never")); ok {
		t.Error("unloaded key read as present")
	}
}

func TestStateCacheWrapsLikeIncrement(t *testing.T) {
	c, _ := NewStateCache([][]byte{[]byte("m")}, [][]byte{EncodeI64(math.MaxInt64)})
	if n, _ := c.Increment([]byte("m"), 1); n != math.MinInt64 {
		t.Errorf("got %d", n)
	}
}

func TestStateCacheMismatchedGetColumnIsInternal(t *testing.T) {
	_, err := NewStateCache([][]byte{[]byte("a")}, nil)
	if err == nil || AsError(err).Class != ClassInternal {
		t.Errorf("got %v", err)
	}
}

func TestConfig(t *testing.T) {
	c := NewConfig([2]string{"n", "1"}, [2]string{"n", " 7 "}, [2]string{"b", "yes"})
	if v, _ := c.Lookup("n"); v != " 7 " {
		t.Errorf("last value must win, got %q", v)
	}
	if n, err := c.Int("n", 0); n != 7 || err != nil {
		t.Errorf("Int: %d %v", n, err)
	}
	if n, err := c.Int("unset", 5); n != 5 || err != nil {
		t.Errorf("Int default: %d %v", n, err)
	}
	if _, err := c.Bool("b", false); err == nil || AsError(err).Code != "bad-config" || AsError(err).Class != ClassConfig {
		t.Errorf("Bool: %v", err)
	}
	if _, err := c.Require("x"); err == nil || AsError(err).Code != "missing-config" {
		t.Errorf("Require: %v", err)
	}
}
