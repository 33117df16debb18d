package arkflow

// Appending without memory.copy: on wasm every Go copy/append of a slice or string compiles to
// runtime.memmove, which is the wasm `memory.copy` instruction, which the host's runtime
// executes as a call out of the guest: tens of nanoseconds even for three bytes. The SDK's hot
// paths (and plugins that build output values, see AppendString/AppendInt) copy short
// pieces byte by byte instead and leave long ones to append. Same results as append and
// strconv.AppendInt, on every platform.

// shortCopy is the longest piece copied byte by byte.
const shortCopy = 32

// AppendBytes is append(dst, src...), copying a short src byte by byte.
func AppendBytes(dst, src []byte) []byte {
	n := len(dst)
	if len(src) > shortCopy || cap(dst)-n < len(src) {
		return append(dst, src...)
	}
	dst = dst[:n+len(src)]
	d := dst[n:]
	for i := range d {
		d[i] = src[i]
	}
	return dst
}

// AppendString is append(dst, s...), copying a short s byte by byte.
func AppendString(dst []byte, s string) []byte {
	n := len(dst)
	if len(s) > shortCopy || cap(dst)-n < len(s) {
		return append(dst, s...)
	}
	dst = dst[:n+len(s)]
	d := dst[n:]
	for i := range d {
		d[i] = s[i]
	}
	return dst
}

// AppendInt is strconv.AppendInt(dst, v, 10) without a copy call.
func AppendInt(dst []byte, v int64) []byte {
	u := uint64(v)
	if v < 0 {
		dst = append(dst, '-')
		u = -u
	}
	var buf [20]byte
	i := len(buf)
	for u >= 10 {
		i--
		q := u / 10
		buf[i] = byte('0' + u - q*10)
		u = q
	}
	i--
	buf[i] = byte('0' + u)
	return AppendBytes(dst, buf[i:])
}
