package wire_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/wire"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := wire.Write(&buf, 7, []byte("payload")); err != nil {
		t.Fatal(err)
	}
	kind, payload, err := wire.Read(&buf, 100)
	if err != nil || kind != 7 || string(payload) != "payload" {
		t.Fatalf("Read = %d %q %v", kind, payload, err)
	}
}

func TestReadRefusesOversizedFrame(t *testing.T) {
	var buf bytes.Buffer
	if err := wire.Write(&buf, 1, make([]byte, 101)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := wire.Read(&buf, 100); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("Read of 101 bytes with limit 100: %v, want node.ErrInvalid", err)
	}
	if _, _, err := wire.Read(bytes.NewReader([]byte{1, 0, 0, 0, 9, 'x'}), 100); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("Read of a truncated frame: %v, want node.ErrInvalid", err)
	}
}

func FuzzRead(f *testing.F) {
	var buf bytes.Buffer
	if err := wire.Write(&buf, 2, []byte("payload")); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff})
	const limit = 1 << 10
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, payload, err := wire.Read(bytes.NewReader(b), limit)
		if err != nil {
			return
		}
		if len(payload) > limit {
			t.Fatalf("frame of %d bytes exceeds the limit", len(payload))
		}
		var again bytes.Buffer
		if err := wire.Write(&again, kind, payload); err != nil || !bytes.Equal(again.Bytes(), b[:5+len(payload)]) {
			t.Fatalf("frame does not round-trip: %v", err)
		}
	})
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"rate limit reached":    "rate limit reached",
		"bell\a and\nnewline":   "bell? and?newline",
		"del\x7f bad\xff utf-8": "del? bad? utf-8",
		"café":                  "café",
	} {
		if got := wire.Printable([]byte(in)); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}
