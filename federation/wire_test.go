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
		notes, err := decodeNotes(b, maxNoteLen)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeNotes(notes), b) {
			t.Fatalf("decodeNotes accepted bytes it would not produce")
		}
	})
}
