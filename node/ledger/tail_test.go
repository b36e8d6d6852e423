package ledger_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/medfed/medfed/node/ledger"
)

// TestRecentEntriesReadAsStored reads ranges of a ledger that the
// in-memory tail of recent entries serves, ranges it serves in part and
// ranges it no longer holds, and compares each with what the same
// ledger reopened (its tail empty, every read from SQLite) returns.
func TestRecentEntriesReadAsStored(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	p := ledger.Pseudonym{7}
	const perAppend, appends = 97, 100 // 9,700 entries: past twice the tail
	for a := range appends {
		es := make([]ledger.Entry, perAppend)
		for i := range es {
			es[i] = record(t, p, a*perAppend+i)
		}
		if _, err := f.l.Append(ctx, es...); err != nil {
			t.Fatal(err)
		}
	}
	size := f.l.Size()
	ranges := [][2]int64{{0, 10}, {size - 1, size}, {size - 10, size}, {size - 4096, size}, {size - 5000, size - 4000}, {size - 9000, size}, {size, size}}
	read := func() (got [][]ledger.Entry) {
		for _, r := range ranges {
			es, err := f.l.Entries(ctx, r[0], r[1])
			if err != nil {
				t.Fatalf("Entries(%d, %d): %v", r[0], r[1], err)
			}
			if int64(len(es)) != r[1]-r[0] || (len(es) > 0 && es[0].Index != r[0]) {
				t.Fatalf("Entries(%d, %d): %d entries from %d", r[0], r[1], len(es), es[0].Index)
			}
			got = append(got, es)
		}
		e, err := f.l.Entry(ctx, size-1)
		if err != nil {
			t.Fatal(err)
		}
		return append(got, []ledger.Entry{e})
	}
	recent := read()
	if _, err := f.l.Entries(ctx, size-1, size+1); err == nil {
		t.Fatal("Entries past the size answered")
	}
	f.reopen(t)
	if stored := read(); !reflect.DeepEqual(recent, stored) {
		t.Fatal("the entries read from the tail differ from those stored")
	}
}
