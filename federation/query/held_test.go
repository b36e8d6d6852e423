package query

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/medfed/medfed/node/ledger"
)

// The held-records cache answers as a read of the ledger would, however
// the patient's records changed since they were kept: a record, an
// amendment or an erasure appended by anyone is in the next answer, and
// another patient's entries never are.
func TestHeldCacheFollowsTheLedger(t *testing.T) {
	ctx := context.Background()
	p := ledger.Pseudonym(sha256.Sum256([]byte("held cache patient")))
	other := ledger.Pseudonym(sha256.Sum256([]byte("another patient")))
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, l *ledger.Ledger, first int64) []ledger.Entry // appends; returns what of p's it appended
	}{
		{"a new record", func(t *testing.T, l *ledger.Ledger, _ int64) []ledger.Entry {
			return []ledger.Entry{appendEntry(t, l, record(t, p, 0))}
		}},
		{"an amendment", func(t *testing.T, l *ledger.Ledger, first int64) []ledger.Entry {
			return []ledger.Entry{appendEntry(t, l, record(t, p, first))}
		}},
		{"an erasure", func(t *testing.T, l *ledger.Ledger, first int64) []ledger.Entry {
			x, err := ledger.NewErasure(p, ledger.Erasure{Target: first, Payload: [16]byte{1}})
			if err != nil {
				t.Fatal(err)
			}
			return []ledger.Entry{appendEntry(t, l, x)}
		}},
		{"another patient's record", func(t *testing.T, l *ledger.Ledger, _ int64) []ledger.Entry {
			appendEntry(t, l, record(t, other, 0))
			return nil
		}},
		{"more than a catch-up reads at once", func(t *testing.T, l *ledger.Ledger, _ int64) []ledger.Entry {
			for range heldChunk {
				appendEntry(t, l, record(t, other, 0))
			}
			return []ledger.Entry{appendEntry(t, l, record(t, p, 0))}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openLedger(t)
			first := appendEntry(t, l, record(t, p, 0))
			appendEntry(t, l, record(t, other, 0))
			c := newHeldCache(l)
			if got, err := c.entries(ctx, p); err != nil || !sameIndexes(got, []ledger.Entry{first}) {
				t.Fatalf("before: %v, %v", indexes(got), err)
			}
			if _, kept := c.patients[p]; !kept {
				t.Fatal("the patient is not kept: the test tests no cache")
			}
			want := append([]ledger.Entry{first}, tc.change(t, l, first.Index)...)
			got, err := c.entries(ctx, p)
			if err != nil || !sameIndexes(got, want) {
				t.Fatalf("after: entries %v, %v; want %v", indexes(got), err, indexes(want))
			}
			if fresh, _ := l.EntriesForKinds(ctx, p, heldKinds...); !sameIndexes(got, fresh) {
				t.Fatalf("after: entries %v; the ledger says %v", indexes(got), indexes(fresh))
			}
		})
	}
}

// A record appended while a patient is read for the first time is kept
// with them, not lost between the read and the cache.
func TestHeldCacheKeepsWhatIsAppendedDuringTheFirstRead(t *testing.T) {
	ctx := context.Background()
	p := ledger.Pseudonym(sha256.Sum256([]byte("held cache patient")))
	l := openLedger(t)
	first := appendEntry(t, l, record(t, p, 0))
	var during ledger.Entry
	racing := &appendingReader{Ledger: l, during: func() { during = appendEntry(t, l, record(t, p, 0)) }}
	c := newHeldCache(racing)
	if got, err := c.entries(ctx, p); err != nil || len(got) == 0 || got[0].Index != first.Index {
		t.Fatalf("first read: %v, %v", indexes(got), err)
	}
	if _, kept := c.patients[p]; !kept {
		t.Fatal("the patient is not kept: the test tests no cache")
	}
	if got, err := c.entries(ctx, p); err != nil || !sameIndexes(got, []ledger.Entry{first, during}) {
		t.Fatalf("second read: %v, %v; want %d and %d", indexes(got), err, first.Index, during.Index)
	}
}

// appendingReader appends, once, right after its first read of a
// patient's entries: as another writer would between the read and its
// use.
type appendingReader struct {
	*ledger.Ledger
	during func()
}

func (r *appendingReader) EntriesForKinds(ctx context.Context, p ledger.Pseudonym, kinds ...ledger.Kind) ([]ledger.Entry, error) {
	es, err := r.Ledger.EntriesForKinds(ctx, p, kinds...)
	if r.during != nil {
		r.during()
		r.during = nil
	}
	return es, err
}

func openLedger(t *testing.T) *ledger.Ledger {
	t.Helper()
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	l, err := ledger.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"), ledger.Options{Origin: ledger.Origin("test", "holder"), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// record returns a record entry about p, an amendment of replaces when
// it is not zero.
func record(t *testing.T, p ledger.Pseudonym, replaces int64) ledger.Entry {
	t.Helper()
	r := ledger.Record{Occurred: time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC), DataClass: "lab-result", Payload: [16]byte{1}, Replaces: replaces}
	e, err := ledger.NewRecord(p, r)
	if replaces != 0 {
		e, err = ledger.NewAmendment(p, r)
	}
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func appendEntry(t *testing.T, l *ledger.Ledger, e ledger.Entry) ledger.Entry {
	t.Helper()
	i, err := l.Append(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	e.Index = i
	return e
}

func indexes(es []ledger.Entry) []int64 {
	out := []int64{}
	for _, e := range es {
		out = append(out, e.Index)
	}
	return out
}

func sameIndexes(a, b []ledger.Entry) bool { return slices.Equal(indexes(a), indexes(b)) }

// A holder proves its answers in the checkpoint it pinned while that
// covers every record held, under the same charter, for checkpointReuse;
// otherwise in its latest final checkpoint, which it pins instead.
func TestProvenInPinsAFinalCheckpointWhileItCoversTheRecords(t *testing.T) {
	pinned := ledger.SignedCheckpoint{Checkpoint: ledger.Checkpoint{Size: 10}}
	latest := ledger.SignedCheckpoint{Checkpoint: ledger.Checkpoint{Size: 12}}
	heldAt := func(indexes ...int64) []heldRecord {
		var out []heldRecord
		for _, i := range indexes {
			out = append(out, heldRecord{entry: ledger.Entry{Index: i}})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		version uint64
		age     time.Duration
		held    []heldRecord
		want    int64
	}{
		{"covered, young, same charter", 1, 0, heldAt(3, 9), 10},
		{"nothing held", 1, 0, nil, 10},
		{"a record the pinned one does not cover", 1, 0, heldAt(3, 10), 12},
		{"a new charter version", 2, 0, heldAt(3), 12},
		{"pinned too long", 1, checkpointReuse, heldAt(3), 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Holder{pinned: pinnedFinal{cp: pinned, version: 1, at: time.Now().Add(-tc.age)}}
			if got := s.provenIn(tc.version, latest, tc.held); got.Size != tc.want {
				t.Fatalf("proven in the checkpoint of size %d, want %d", got.Size, tc.want)
			}
			if got := s.provenIn(tc.version, latest, tc.held); got.Size != tc.want {
				t.Fatalf("then in the checkpoint of size %d, want %d again", got.Size, tc.want)
			}
		})
	}
}
