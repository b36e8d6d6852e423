package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/wire"
)

// header returns a frame header claiming n payload bytes.
func header(op byte, n uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{op}, n)
}

// A peer that claims a frame of the largest size and then sends a few
// bytes (or none, or sends them slowly) costs the reader what arrived, not
// what it claimed: otherwise a few hundred streams, each claiming 16 MiB
// and sending nothing, would take gigabytes before a byte of payload.
func TestAbuseClaimedFrameIsNotAllocatedUpFront(t *testing.T) {
	sent := bytes.Repeat([]byte{'x'}, 1000)
	r := io.MultiReader(bytes.NewReader(header(1, wire.MaxFrame)), bytes.NewReader(sent))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := wire.Read(r, wire.MaxFrame)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("a frame cut short: %v, want node.ErrInvalid", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > wire.MaxFrame/16 {
		t.Fatalf("reading 1000 bytes of a frame claiming %d allocated %d bytes", wire.MaxFrame, got)
	}
	// Over the limit: refused from the header alone, whatever follows.
	if _, _, err := wire.Read(bytes.NewReader(header(1, 0xffffffff)), wire.MaxFrame); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("a frame claiming 4 GiB: %v, want node.ErrInvalid", err)
	}
}

// Frames read in steps arrive whole, however the bytes trickle in, and
// are held in at most twice their size.
func TestReadInStepsReturnsWholeFrames(t *testing.T) {
	for _, n := range []int{0, 1, 64<<10 - 1, 64 << 10, 64<<10 + 1, 300 << 10, wire.MaxFrame} {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		var buf bytes.Buffer
		if err := wire.Write(&buf, 3, payload); err != nil {
			t.Fatal(err)
		}
		var r io.Reader = &buf
		if n < 1<<20 {
			r = iotest.HalfReader(r)
		}
		op, got, err := wire.Read(r, wire.MaxFrame)
		if err != nil || op != 3 || !bytes.Equal(got, payload) {
			t.Fatalf("frame of %d bytes: op %d, %d bytes back, %v", n, op, len(got), err)
		}
		if len(got) > 0 && cap(got) > 2*len(got) {
			t.Errorf("frame of %d bytes held in %d", n, cap(got))
		}
	}
}
