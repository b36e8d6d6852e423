package federation

import (
	"bytes"
	"testing"
)

func FuzzDecodeNotes(f *testing.F) {
	f.Add(encodeNotes([][]byte{[]byte("a note"), []byte("another")}))
	f.Add([]byte{0, 0, 0, 9, 'x'})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		notes, err := decodeNotes(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeNotes(notes), b) {
			t.Fatalf("decodeNotes accepted bytes it would not produce")
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	if err := writeFrame(&buf, opPropose, []byte("payload")); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		op, payload, err := readFrame(bytes.NewReader(b), maxNoteLen)
		if err != nil {
			return
		}
		if len(payload) > maxNoteLen {
			t.Fatalf("frame of %d bytes exceeds the limit", len(payload))
		}
		var again bytes.Buffer
		if err := writeFrame(&again, op, payload); err != nil || !bytes.Equal(again.Bytes(), b[:5+len(payload)]) {
			t.Fatalf("frame does not round-trip: %v", err)
		}
	})
}
