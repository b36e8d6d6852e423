package ledger_test

import (
	"context"
	"testing"

	"github.com/medfed/medfed/node/ledger"
)

// TestProofsFromHashBlocks proves every entry of a ledger whose complete
// blocks of 32 leaves keep their hashes together (in memory until their
// bucket of the index is written; TestPseudonymIndexAcrossBuckets proves
// from the written ones): appended in odd batches, reopened with a block
// half full (rebuilt from its leaves' rows), in the tree of the ledger's
// size and of older ones, then reopened again (every block rebuilt).
func TestProofsFromHashBlocks(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for n := 0; n < 150; n += 7 {
		if n == 70 {
			f.reopen(t) // in the middle of block 2 (64 to 95)
		}
		es := make([]ledger.Entry, min(7, 150-n))
		for i := range es {
			es[i] = record(t, pseudonym(n+i), n+i)
		}
		if _, err := f.l.Append(ctx, es...); err != nil {
			t.Fatal(err)
		}
	}
	proveAll := func(t *testing.T) {
		t.Helper()
		for _, size := range []int64{150, 100, 33} {
			indexes := make([]int64, size)
			for i := range indexes {
				indexes[i] = int64(i)
			}
			proveIn(t, f.l, size, indexes...)
		}
	}
	proveAll(t)
	f.reopen(t)
	proveAll(t)
}

// proveIn proves each entry of indexes in the tree of size entries of l,
// and checks the proof against the tree's root.
func proveIn(t *testing.T, l *ledger.Ledger, size int64, indexes ...int64) {
	t.Helper()
	ctx := context.Background()
	root, err := l.RootAt(ctx, size)
	if err != nil {
		t.Fatal(err)
	}
	cp := ledger.Checkpoint{Origin: testOrigin, Size: size, Root: root}
	for _, i := range indexes {
		e, err := l.Entry(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		p, err := l.ProveInclusion(ctx, i, size)
		if err != nil {
			t.Fatal(err)
		}
		if err := ledger.VerifyInclusion(cp, i, leaf, p); err != nil {
			t.Fatalf("entry %d in the tree of %d: %v", i, size, err)
		}
	}
}
