package federation

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/medfed/medfed/node/ledger"
)

// mirrorSamples seals three entries of a log from index 7.
func mirrorSamples(tb testing.TB) (*MirrorSealer, ledger.MirrorChunk, [][]byte) {
	tb.Helper()
	key := sha256.Sum256([]byte("mirror test key"))
	s, err := NewMirrorSealer(key[:], "medfed-test/centre-a")
	if err != nil {
		tb.Fatal(err)
	}
	var encs [][]byte
	for i := range 3 {
		e := ledger.Entry{Index: 7 + int64(i), Time: time.Unix(1_780_000_000+int64(i), 0).UTC(), Kind: ledger.KindCharter, Body: []byte{byte(i)}}
		b, err := e.Encode()
		if err != nil {
			tb.Fatal(err)
		}
		encs = append(encs, b)
	}
	c, err := s.Seal(7, encs)
	if err != nil {
		tb.Fatal(err)
	}
	return s, c, encs
}

// A sealed chunk opens to the same entries, and to nothing once any byte
// of it, or its place in the log, changed.
func TestMirrorSealOpens(t *testing.T) {
	s, c, encs := mirrorSamples(t)
	got, err := s.Open(c)
	if err != nil || len(got) != len(encs) {
		t.Fatalf("open: %d entries, %v", len(got), err)
	}
	for i := range encs {
		if !bytes.Equal(got[i], encs[i]) {
			t.Fatalf("entry %d changed in the mirror", i)
		}
	}
	for i := range c.Blob {
		bad := c
		bad.Blob = bytes.Clone(c.Blob)
		bad.Blob[i] ^= 1
		if _, err := s.Open(bad); !errors.Is(err, ledger.ErrRecovered) {
			t.Fatalf("a chunk changed at byte %d opened: %v", i, err)
		}
	}
	moved := c
	moved.Start = 8
	if _, err := s.Open(moved); err == nil {
		t.Fatal("a chunk opened at another place in the log")
	}
	other, err := NewMirrorSealer(make([]byte, 32), "medfed-test/centre-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Open(c); err == nil {
		t.Fatal("a chunk opened under another centre's key")
	}
}

func FuzzDecodeChunks(f *testing.F) {
	_, c, _ := mirrorSamples(f)
	next := ledger.MirrorChunk{Start: c.Start + c.Count, Count: 1, Blob: []byte("sealed")}
	two := encodeChunks([]ledger.MirrorChunk{c, next})
	f.Add(two, int64(7))
	f.Add(two, int64(9))
	f.Add(two[:len(two)-1], int64(7))
	f.Add(encodeChunks([]ledger.MirrorChunk{next, c}), int64(7))
	f.Add([]byte{}, int64(0))
	f.Fuzz(func(t *testing.T, b []byte, from int64) {
		chunks, err := decodeChunks(b, from)
		if err != nil {
			return
		}
		if again := encodeChunks(chunks); !bytes.Equal(again, b) {
			t.Fatalf("mirror chunks re-encode differently:\n in  %x\n out %x", b, again)
		}
		for i, c := range chunks {
			switch {
			case c.Count <= 0 || c.Count > maxMirrorEntries:
				t.Fatalf("a chunk of %d entries", c.Count)
			case i == 0 && (c.Start > from || c.Start+c.Count <= from):
				t.Fatalf("a read from %d answered from %d", from, c.Start)
			case i > 0 && c.Start != chunks[i-1].Start+chunks[i-1].Count:
				t.Fatal("a gap accepted")
			}
		}
	})
}
