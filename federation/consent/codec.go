package consent

import (
	"encoding/binary"
	"fmt"
	"time"
)

// The documents' encodings are built from a few fields, all big-endian:
// fixed-size byte strings, u8/u16/u32 integers, times as i64 Unix seconds
// (zero: unset), and short strings as u8 length and bytes. A reader
// accepts only what the writer produces, so a document's signature covers
// its meaning and nothing else.

// writer appends fields to a buffer.
type writer struct{ b []byte }

func (w *writer) u8(v uint8)     { w.b = append(w.b, v) }
func (w *writer) u16(v uint16)   { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *writer) u32(v uint32)   { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *writer) bytes(v []byte) { w.b = append(w.b, v...) }
func (w *writer) str(v string)   { w.u8(uint8(len(v))); w.b = append(w.b, v...) }
func (w *writer) time(t time.Time) {
	var s int64
	if !t.IsZero() {
		s = t.Unix()
	}
	w.b = binary.BigEndian.AppendUint64(w.b, uint64(s))
}

// reader consumes fields from a buffer; the first failure sticks, so a
// decoder checks err once at the end (and before using a count).
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail("truncated %s", what)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8(what string) uint8 {
	if b := r.take(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16(what string) uint16 {
	if b := r.take(2, what); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if b := r.take(4, what); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) fixed(dst []byte, what string) {
	if b := r.take(len(dst), what); b != nil {
		copy(dst, b)
	}
}

func (r *reader) str(what string) string {
	n := int(r.u8(what))
	return string(r.take(n, what))
}

// time reads a time written by writer.time: zero stays the zero time, and
// anything outside 1970 to 2261 is refused (a far-future value would wrap).
func (r *reader) time(what string) time.Time {
	b := r.take(8, what)
	if b == nil {
		return time.Time{}
	}
	s := int64(binary.BigEndian.Uint64(b))
	if s == 0 {
		return time.Time{}
	}
	if s < 0 || s >= maxUnix {
		r.fail("%s out of range", what)
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// end fails unless every byte was read.
func (r *reader) end(what string) {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes after %s", len(r.b), what)
	}
}

// maxUnix is 2262-01-01 in Unix seconds: times beyond do not fit the
// ledger's nanosecond clock.
var maxUnix = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
