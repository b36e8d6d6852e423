package ledger_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

// A witness keeps a log's mirror only as a run from index 0, never past
// the size it cosigned, and finds a row changed on its disk.
func TestMirrorKeepsARunWithinWhatWasCosigned(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	const log = "medfed/test-federation/centre-b"
	if err := f.l.Witness(ctx, log, func(ledger.Witnessed, bool) (ledger.Witnessed, error) {
		return ledger.Witnessed{Size: 10, Root: [32]byte{1}, Note: []byte("note")}, nil
	}); err != nil {
		t.Fatal(err)
	}
	chunk := func(start, count int64) ledger.MirrorChunk {
		return ledger.MirrorChunk{Start: start, Count: count, Blob: []byte("sealed")}
	}
	if end, err := f.l.AddMirror(ctx, log, chunk(4, 2)); !errors.Is(err, ledger.ErrMirrorGap) || end != 0 {
		t.Fatalf("a chunk past the end: %d, %v", end, err)
	}
	if end, err := f.l.AddMirror(ctx, log, chunk(0, 6)); err != nil || end != 6 {
		t.Fatalf("the first chunk: %d, %v", end, err)
	}
	if _, err := f.l.AddMirror(ctx, log, chunk(6, 5)); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("a chunk past the 10 entries cosigned: %v", err)
	}
	if end, err := f.l.AddMirror(ctx, log, chunk(6, 4)); err != nil || end != 10 {
		t.Fatalf("the second chunk: %d, %v", end, err)
	}
	got, err := f.l.MirrorChunks(ctx, log, 7, 1)
	if err != nil || len(got) != 1 || got[0].Start != 6 {
		t.Fatalf("the chunks from 7: %+v, %v", got, err)
	}
	if err := f.l.CheckMirrors(ctx); err != nil {
		t.Fatal(err)
	}
}

// Recover appends a halted ledger's lost entries as they were, and only
// if they rebuild the cosigned root.
func TestRecoverRebuildsTheCosignedHistory(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	p := ledger.Pseudonym(sha256.Sum256([]byte("recover")))
	for i := range 5 {
		if _, err := f.l.Append(ctx, record(t, p, i)); err != nil {
			t.Fatal(err)
		}
	}
	root, err := f.l.RootAt(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	es, err := f.l.Entries(ctx, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	var lost [][]byte
	for _, e := range es {
		b, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		lost = append(lost, b)
	}

	// The same centre, restored with its first three entries.
	g := newFixture(t)
	g.l.Close()
	g.l = openAt(t, g.path, f.key)
	t.Cleanup(func() { g.l.Close() })
	first, err := f.l.Entries(ctx, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	var kept [][]byte
	for _, e := range first {
		b, _ := e.Encode()
		kept = append(kept, b)
	}
	g.l.Halt(errors.New("behind"))
	if err := g.l.Recover(ctx, kept, mustRoot(t, f.l, 3)); err != nil {
		t.Fatal(err)
	}
	if err := g.l.Recover(ctx, lost[:1], root); !errors.Is(err, ledger.ErrRecovered) || g.l.Size() != 3 {
		t.Fatalf("entries short of the cosigned size: %v, size %d", err, g.l.Size())
	}
	if err := g.l.Recover(ctx, lost[1:], root); err == nil || g.l.Size() != 3 {
		t.Fatalf("entries at the wrong index: %v, size %d", err, g.l.Size())
	}
	g.l.Resume()
	if err := g.l.Recover(ctx, lost, root); err == nil {
		t.Fatal("recovered into a ledger that is not halted")
	}
	g.l.Halt(errors.New("behind"))
	if err := g.l.Recover(ctx, lost, root); err != nil || g.l.Size() != 5 {
		t.Fatalf("recover: %v, size %d", err, g.l.Size())
	}
	if got, _ := g.l.RootAt(ctx, 5); got != root {
		t.Fatal("the recovered root differs")
	}
	if got, err := g.l.EntriesFor(ctx, p); err != nil || len(got) != 5 {
		t.Fatalf("the recovered entries are not indexed by pseudonym: %d, %v", len(got), err)
	}
}

func mustRoot(t *testing.T, l *ledger.Ledger, size int64) [32]byte {
	t.Helper()
	r, err := l.RootAt(context.Background(), size)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
