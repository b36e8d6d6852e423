package ledger_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"golang.org/x/mod/sumdb/tlog"
)

const testOrigin = "medfed/test-federation/centre-a"

// testKey is deterministic so failures reproduce.
func testKey(seed string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte(seed))
	return ed25519.NewKeyFromSeed(s[:])
}

func pseudonym(i int) ledger.Pseudonym {
	return ledger.Pseudonym(sha256.Sum256(fmt.Appendf(nil, "patient %d", i)))
}

// record returns a record entry about patient p; i varies its content.
func record(t testing.TB, p ledger.Pseudonym, i int) ledger.Entry {
	t.Helper()
	r := ledger.Record{
		Occurred:  time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute),
		DataClass: "lab-result",
		Location:  "haematology",
	}
	h := sha256.Sum256(fmt.Appendf(nil, "payload %d", i))
	copy(r.Payload[:], h[:])
	r.Commitment = sha256.Sum256(h[:])
	r.Author[0] = byte(i)
	e, err := ledger.NewRecord(p, r)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type fixture struct {
	path string
	key  ed25519.PrivateKey
	l    *ledger.Ledger
}

func openAt(t testing.TB, path string, key ed25519.PrivateKey) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(context.Background(), path, ledger.Options{Origin: testOrigin, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{path: filepath.Join(t.TempDir(), "ledger.db"), key: testKey("centre-a")}
	f.l = openAt(t, f.path, f.key)
	t.Cleanup(func() { f.l.Close() })
	return f
}

func (f *fixture) reopen(t testing.TB) {
	t.Helper()
	if err := f.l.Close(); err != nil {
		t.Fatal(err)
	}
	f.l = openAt(t, f.path, f.key)
}

func (f *fixture) appendN(t testing.TB, from, n int) {
	t.Helper()
	entries := make([]ledger.Entry, n)
	for i := range entries {
		entries[i] = record(t, pseudonym((from+i)%7), from+i)
	}
	first, err := f.l.Append(context.Background(), entries...)
	if err != nil {
		t.Fatal(err)
	}
	if first != int64(from) {
		t.Fatalf("first index %d, want %d", first, from)
	}
}

func (f *fixture) sign(t testing.TB) ledger.SignedCheckpoint {
	t.Helper()
	sc, err := f.l.Sign(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestConcurrentAppendsGetDistinctContiguousIndexes(t *testing.T) {
	f := newFixture(t)
	const writers, each = 16, 25
	var mu sync.Mutex
	seen := map[int64]ledger.Entry{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				e := record(t, pseudonym(w), w*each+i)
				n, err := f.l.Append(context.Background(), e)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[n] = e
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got := f.l.Size(); got != writers*each {
		t.Fatalf("size %d, want %d", got, writers*each)
	}
	for n, want := range seen {
		got, err := f.l.Entry(context.Background(), n)
		if err != nil {
			t.Fatal(err)
		}
		if got.Index != n || !bytes.Equal(got.Body, want.Body) || got.Subject != want.Subject {
			t.Fatalf("entry %d does not hold what was appended there", n)
		}
		if got.Time.IsZero() {
			t.Fatalf("entry %d has no time", n)
		}
	}
}

func TestInclusionAndConsistencyProofsVerifyWithPublicKeyOnly(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.appendN(t, 0, 13)
	old := f.sign(t)
	f.appendN(t, 13, 100)
	cur := f.sign(t)

	// What another centre has: the note bytes and the public key.
	pub := f.key.Public().(ed25519.PublicKey)
	opened, err := ledger.OpenCheckpoint(cur.Note, testOrigin, pub)
	if err != nil {
		t.Fatal(err)
	}
	if opened.Size != 113 || opened.Root != cur.Root {
		t.Fatalf("opened %+v, want size 113 and the signed root", opened.Checkpoint)
	}
	if _, err := ledger.OpenCheckpoint(cur.Note, testOrigin, testKey("someone else").Public().(ed25519.PublicKey)); !errors.Is(err, ledger.ErrBadCheckpoint) {
		t.Fatalf("checkpoint opened with another key: %v", err)
	}

	for _, n := range []int64{0, 1, 12, 13, 64, 111, 112} {
		e, err := f.l.Entry(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		proof, err := f.l.ProveInclusion(ctx, n, opened.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := ledger.VerifyInclusion(opened.Checkpoint, n, leaf, proof); err != nil {
			t.Errorf("entry %d: %v", n, err)
		}
		leaf[len(leaf)-1] ^= 1
		if err := ledger.VerifyInclusion(opened.Checkpoint, n, leaf, proof); !errors.Is(err, ledger.ErrBadProof) {
			t.Errorf("entry %d altered in transit still verified: %v", n, err)
		}
	}

	proof, err := f.l.ProveConsistency(ctx, old.Size, cur.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.VerifyConsistency(old.Checkpoint, cur.Checkpoint, proof); err != nil {
		t.Fatal(err)
	}
	forged := old.Checkpoint
	forged.Root[0] ^= 1
	if err := ledger.VerifyConsistency(forged, cur.Checkpoint, proof); !errors.Is(err, ledger.ErrBadProof) {
		t.Fatalf("consistency with a forged old root: %v", err)
	}
}

// TestProofsAtEverySize checks every inclusion and consistency proof of a
// small ledger against a tree the test hashes itself: proofs read stored
// hashes from memory and from rows, several rows per query, and a wrong
// row or level breaks some proof here.
func TestProofsAtEverySize(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const n = 70
	var leaves []tlog.Hash
	var stored []tlog.Hash
	storage := tlog.HashReaderFunc(func(xs []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(xs))
		for i, x := range xs {
			out[i] = stored[x]
		}
		return out, nil
	})
	for i := range n {
		f.appendN(t, i, 1)
		e, err := f.l.Entry(ctx, int64(i))
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		hs, err := tlog.StoredHashes(int64(i), leaf, storage)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
		leaves = append(leaves, tlog.RecordHash(leaf))
	}
	roots := make([]tlog.Hash, n+1)
	for size := range roots {
		var err error
		if roots[size], err = tlog.TreeHash(int64(size), storage); err != nil {
			t.Fatal(err)
		}
	}
	for size := int64(1); size <= n; size++ {
		for i := range size {
			p, err := f.l.ProveInclusion(ctx, i, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(p, size, roots[size], i, leaves[i]); err != nil {
				t.Fatalf("entry %d in %d: %v", i, size, err)
			}
		}
		for older := int64(1); older < size; older++ {
			p, err := f.l.ProveConsistency(ctx, older, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckTree(p, size, roots[size], older, roots[older]); err != nil {
				t.Fatalf("%d to %d: %v", older, size, err)
			}
		}
	}
}

func TestReopenKeepsStateAndProofs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.appendN(t, 0, 200)
	before := f.sign(t)
	f.reopen(t)
	if head := f.l.Head(); head.Size != 200 || head.Root != before.Root {
		t.Fatalf("after reopen head is %d/%x, want 200/%x", head.Size, head.Root, before.Root)
	}
	if latest, ok := f.l.LatestCheckpoint(); !ok || !bytes.Equal(latest.Note, before.Note) {
		t.Fatal("latest checkpoint lost on reopen")
	}
	f.appendN(t, 200, 57)
	after := f.sign(t)
	proof, err := f.l.ProveConsistency(ctx, before.Size, after.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.VerifyConsistency(before.Checkpoint, after.Checkpoint, proof); err != nil {
		t.Fatal(err)
	}
	e, _ := f.l.Entry(ctx, 150)
	leaf, _ := e.Encode()
	ip, err := f.l.ProveInclusion(ctx, 150, after.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.VerifyInclusion(after.Checkpoint, 150, leaf, ip); err != nil {
		t.Fatal(err)
	}
}

func TestSignIsIdempotentForAnUnchangedTree(t *testing.T) {
	f := newFixture(t)
	f.appendN(t, 0, 3)
	a, b := f.sign(t), f.sign(t)
	if !bytes.Equal(a.Note, b.Note) {
		t.Fatal("signing an unchanged tree twice gave two notes")
	}
}

// Grown wakes its waiter when entries are appended, not when a
// checkpoint is signed or made final: a publisher woken by its own
// checkpoint's writes waited out its gap before the next append's.
func TestGrownOnlyByAppends(t *testing.T) {
	f := newFixture(t)
	f.appendN(t, 0, 3)
	grown := f.l.Grown()
	sc := f.sign(t)
	if err := f.l.MarkFinal(context.Background(), sc.Size, sc.Note); err != nil {
		t.Fatal(err)
	}
	select {
	case <-grown:
		t.Fatal("signing a checkpoint and making it final woke Grown's waiter")
	default:
	}
	f.appendN(t, 3, 1)
	select {
	case <-grown:
	default:
		t.Fatal("an append did not wake Grown's waiter")
	}
}

// A centre must never sign two inconsistent checkpoints, even when its
// database is rewritten underneath it.
func TestSignRefusesARewrittenHistory(t *testing.T) {
	tests := []struct {
		name    string
		rewrite func(t *testing.T, path string)
		more    int // entries appended after the rewrite
	}{
		{"history truncated below the signed size", func(t *testing.T, path string) {
			execSQL(t, path, "DELETE FROM entries WHERE idx >= 6")
		}, 0},
		{"history truncated and regrown past the signed size", func(t *testing.T, path string) {
			execSQL(t, path, "DELETE FROM entries WHERE idx >= 4")
		}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.appendN(t, 0, 10)
			f.sign(t)
			f.l.Close()
			tt.rewrite(t, f.path)
			f.l = openAt(t, f.path, f.key)
			size := int(f.l.Size())
			for i := range tt.more {
				if _, err := f.l.Append(context.Background(), record(t, pseudonym(99), 1000+size+i)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := f.l.Sign(context.Background()); !errors.Is(err, ledger.ErrInconsistent) {
				t.Fatalf("Sign after a rewrite: %v, want ErrInconsistent", err)
			}
		})
	}
}

func TestEntriesForFindsEveryEntryAboutAPatient(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.appendN(t, 0, 70) // patients 0..6, every 7th entry each
	check := func(when string) {
		t.Helper()
		got, err := f.l.EntriesFor(ctx, pseudonym(3))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 10 {
			t.Fatalf("%s: %d entries for patient 3, want 10", when, len(got))
		}
		for i, e := range got {
			if want := int64(3 + 7*i); e.Index != want || e.Subject != pseudonym(3) {
				t.Fatalf("%s: entry %d is index %d, want %d", when, i, e.Index, want)
			}
		}
		none, err := f.l.EntriesFor(ctx, pseudonym(1000))
		if err != nil || len(none) != 0 {
			t.Fatalf("%s: unknown patient gave %d entries, %v", when, len(none), err)
		}
	}
	check("before reopen")
	f.reopen(t)
	check("after reopen")
}

// EntriesForKinds returns only the kinds asked for, in ledger order.
func TestEntriesForKinds(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.appendN(t, 0, 14) // records: patient 3 at 3 and 10
	p := pseudonym(3)
	for i := range 3 {
		if _, err := f.l.Append(ctx, ledger.Entry{Kind: ledger.KindAccess, Subject: p, Body: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	records, err := f.l.EntriesForKinds(ctx, p, ledger.KindRecord)
	if err != nil || len(records) != 2 || records[0].Index != 3 || records[1].Index != 10 {
		t.Fatalf("records: %v, %v", records, err)
	}
	access, err := f.l.EntriesForKinds(ctx, p, ledger.KindAccess, ledger.KindErasure)
	if err != nil || len(access) != 3 || access[0].Index != 14 {
		t.Fatalf("accesses: %v, %v", access, err)
	}
	if all, err := f.l.EntriesForKinds(ctx, p); err != nil || len(all) != 5 {
		t.Fatalf("all: %d, %v", len(all), err)
	}
}

// The pseudonym index writes full buckets of 65,536 entries to disk; this
// crosses that boundary, reopens, and verifies the index against the entries.
func TestPseudonymIndexAcrossBuckets(t *testing.T) {
	if testing.Short() {
		t.Skip("appends 70,000 entries")
	}
	f := newFixture(t)
	ctx := context.Background()
	const total = 70_000
	for from := 0; from < total; from += 5000 {
		f.appendN(t, from, 5000)
	}
	count := func() int {
		got, err := f.l.EntriesFor(ctx, pseudonym(5))
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	want := total / 7
	if got := count(); got != want {
		t.Fatalf("before reopen: %d entries, want %d", got, want)
	}
	f.sign(t)
	f.reopen(t)
	if got := count(); got != want {
		t.Fatalf("after reopen: %d entries, want %d", got, want)
	}
	f.l.Close()
	rep, err := ledger.Verify(ctx, f.path, f.key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Size != total {
		t.Fatalf("verified size %d, want %d", rep.Size, total)
	}
	// Proofs of entries in the bucket written read its hash blocks, and
	// the entries' rows where the index holds none.
	prove := func() {
		t.Helper()
		proveIn(t, f.l, total, 0, 31, 32, 12_345, 65_535, 65_536, total-1)
	}
	f.l = openAt(t, f.path, f.key)
	prove()
	f.l.Close()
	blocks := ledger.BlocksPath(f.path)
	const blockBytes = 62 * 32
	if fi, err := os.Stat(blocks); err != nil || fi.Size() != 2048*blockBytes {
		t.Fatalf("hash blocks file: %v, %v; want the 2,048 blocks of one bucket", fi, err)
	}
	pub := f.key.Public().(ed25519.PublicKey)
	var te *ledger.TamperError
	tamper := func(what string, change func(path string), index int64) {
		t.Helper()
		path := copyLedger(t, f.path)
		change(path)
		if _, err := ledger.Verify(ctx, path, pub); !errors.As(err, &te) || te.Index != index {
			t.Fatalf("%s: %v, want entry %d", what, err, index)
		}
	}
	// A posting moved to another patient is caught against its entry,
	// and so is a hash block changed.
	tamper("a posting moved", func(path string) {
		execSQL(t, ledger.IndexPath(path), "UPDATE postings SET pseudonym = zeroblob(32) WHERE idx = 12")
	}, 12)
	tamper("a hash block changed", func(path string) {
		writeAt(t, ledger.BlocksPath(path), 385*blockBytes+100, []byte{0xff})
	}, 385*32)

	// A bucket's blocks written before a crash lost its commit lie beyond
	// the watermark: Verify passes them, Open cuts them off.
	writeAt(t, blocks, 2048*blockBytes, make([]byte, 5*blockBytes))
	if _, err := ledger.Verify(ctx, f.path, pub); err != nil {
		t.Fatalf("blocks beyond the watermark: %v", err)
	}
	f.l = openAt(t, f.path, f.key)
	prove()
	f.l.Close()
	if fi, err := os.Stat(blocks); err != nil || fi.Size() != 2048*blockBytes {
		t.Fatalf("hash blocks file after open: %v, %v; want it cut at the watermark", fi, err)
	}

	// A file cut short: Verify passes the blocks it lacks, and Open
	// rebuilds the index, blocks and all.
	if err := os.Truncate(blocks, 100*blockBytes+7); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Verify(ctx, f.path, pub); err != nil {
		t.Fatalf("a blocks file cut short: %v", err)
	}
	f.l = openAt(t, f.path, f.key)
	prove()
	if got := count(); got != want {
		t.Fatalf("after the rebuild: %d entries, want %d", got, want)
	}
	f.l.Close()
	if fi, err := os.Stat(blocks); err != nil || fi.Size() != 2048*blockBytes {
		t.Fatalf("hash blocks file after the rebuild: %v, %v; want one bucket's", fi, err)
	}
	if _, err := ledger.Verify(ctx, f.path, pub); err != nil {
		t.Fatalf("after the rebuild: %v", err)
	}
	f.l = openAt(t, f.path, f.key)
}

// writeAt overwrites the file at path from offset off with b.
func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	file, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestAppendRefusesInvalidEntries(t *testing.T) {
	f := newFixture(t)
	p := pseudonym(1)
	valid := record(t, p, 1)
	tests := []struct {
		name string
		e    ledger.Entry
	}{
		{"unknown kind", ledger.Entry{Kind: 99, Subject: p, Body: []byte{1}}},
		{"record without a patient", ledger.Entry{Kind: ledger.KindRecord, Body: valid.Body}},
		{"charter naming a patient", ledger.Entry{Kind: ledger.KindCharter, Subject: p, Body: []byte("x")}},
		{"record body truncated", ledger.Entry{Kind: ledger.KindRecord, Subject: p, Body: valid.Body[:10]}},
		{"oversized body", ledger.Entry{Kind: ledger.KindConsent, Subject: p, Body: make([]byte, 70_000)}},
		{"empty consent body", ledger.Entry{Kind: ledger.KindConsent, Subject: p}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.l.Append(context.Background(), valid, tt.e); !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("Append: %v, want node.ErrInvalid", err)
			}
			if f.l.Size() != 0 {
				t.Fatal("a refused append wrote entries")
			}
		})
	}
}

func TestOpenRefusesAnotherCentresLedger(t *testing.T) {
	f := newFixture(t)
	f.appendN(t, 0, 2)
	f.l.Close()
	if _, err := ledger.Open(context.Background(), f.path, ledger.Options{Origin: "medfed/test-federation/centre-b", Key: f.key}); err == nil {
		t.Fatal("opened with another origin")
	}
	if _, err := ledger.Open(context.Background(), f.path, ledger.Options{Origin: testOrigin, Key: testKey("thief")}); err == nil {
		t.Fatal("opened with another key")
	}
	f.l = openAt(t, f.path, f.key)
}

func TestAppendAfterCloseFails(t *testing.T) {
	f := newFixture(t)
	f.l.Close()
	if _, err := f.l.Append(context.Background(), record(t, pseudonym(1), 1)); !errors.Is(err, ledger.ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

func TestEntriesOfKind(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.appendN(t, 0, 5)
	charter := ledger.Entry{Kind: ledger.KindCharter, Body: []byte("a charter note")}
	n, err := f.l.Append(ctx, charter)
	if err != nil {
		t.Fatal(err)
	}
	f.appendN(t, 6, 3)
	got, err := f.l.EntriesOfKind(ctx, ledger.KindCharter)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Index != n || string(got[0].Body) != "a charter note" {
		t.Fatalf("charter entries: %+v", got)
	}
	records, err := f.l.EntriesOfKind(ctx, ledger.KindRecord)
	if err != nil || len(records) != 8 {
		t.Fatalf("%d record entries, %v; want 8", len(records), err)
	}
}
