package ledger_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/medfed/medfed/node/ledger"
)

func TestWitnessStateIsCheckedAndStoredTogether(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	const log = "medfed/test-federation/centre-b"
	grow := func(to int64) func(ledger.Witnessed, bool) (ledger.Witnessed, error) {
		return func(prev ledger.Witnessed, _ bool) (ledger.Witnessed, error) {
			return ledger.Witnessed{Size: to, Root: [32]byte{byte(to)}, Note: []byte("note")}, nil
		}
	}
	var sawFound bool
	if err := f.l.Witness(ctx, log, func(prev ledger.Witnessed, found bool) (ledger.Witnessed, error) {
		sawFound = found
		return grow(5)(prev, found)
	}); err != nil || sawFound {
		t.Fatalf("first witness: found=%v, %v", sawFound, err)
	}
	refused := errors.New("refused")
	if err := f.l.Witness(ctx, log, func(ledger.Witnessed, bool) (ledger.Witnessed, error) {
		return ledger.Witnessed{Size: 99}, refused
	}); !errors.Is(err, refused) {
		t.Fatalf("a failing check: %v", err)
	}

	f.reopen(t) // the state outlives the process
	var prev ledger.Witnessed
	if err := f.l.Witness(ctx, log, func(p ledger.Witnessed, found bool) (ledger.Witnessed, error) {
		prev = p
		if !found {
			return p, errors.New("state lost")
		}
		return p, nil
	}); err != nil {
		t.Fatal(err)
	}
	if prev.Size != 5 || prev.Root != ([32]byte{5}) {
		t.Fatalf("held %+v, want size 5 (the refused check stored nothing)", prev)
	}

	// Concurrent updates serialise: none is lost.
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.l.Witness(ctx, log, func(p ledger.Witnessed, _ bool) (ledger.Witnessed, error) {
				return grow(p.Size+1)(p, true)
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	f.l.Witness(ctx, log, func(p ledger.Witnessed, _ bool) (ledger.Witnessed, error) { prev = p; return p, nil })
	if prev.Size != 5+16 {
		t.Fatalf("after 16 concurrent updates the size is %d, want 21", prev.Size)
	}

	if err := f.l.RecordEvidence(ctx, ledger.Evidence{Origin: log, Held: []byte("a"), Offered: []byte("b"), Reason: "two roots for size 21"}); err != nil {
		t.Fatal(err)
	}
	if err := f.l.Witness(ctx, log, grow(30)); !errors.Is(err, ledger.ErrBlocked) {
		t.Fatalf("witnessing a blocked log: %v", err)
	}
	ev, err := f.l.Evidence(ctx)
	if err != nil || len(ev) != 1 || ev[0].Origin != log || string(ev[0].Offered) != "b" {
		t.Fatalf("evidence %+v, %v", ev, err)
	}
	f.l.Close()
	if _, err := ledger.Verify(ctx, f.path, f.key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatalf("witness state broke the ledger's verification: %v", err)
	}
	f.l = openAt(t, f.path, f.key)
}

// WitnessedLogs, kept between writes, shows every cosignature and every
// block as soon as it is stored, however readers and writers interleave;
// a caller changing its map changes nothing held.
func TestWitnessedLogsFollowEveryWrite(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	const log = "medfed/test-federation/centre-b"
	held := func() map[string]ledger.Witnessed {
		t.Helper()
		m, err := f.l.WitnessedLogs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := held(); len(m) != 0 {
		t.Fatalf("a new ledger witnesses %v", m)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 { // readers all along
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := f.l.WitnessedLogs(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for size := int64(1); size <= 50; size++ {
		if err := f.l.Witness(ctx, log, func(ledger.Witnessed, bool) (ledger.Witnessed, error) {
			return ledger.Witnessed{Size: size, Root: [32]byte{byte(size)}, Note: []byte("note")}, nil
		}); err != nil {
			t.Fatal(err)
		}
		if got := held()[log]; got.Size != size || got.Root != ([32]byte{byte(size)}) {
			t.Fatalf("after cosigning size %d WitnessedLogs says %+v", size, got)
		}
	}
	close(stop)
	wg.Wait()

	m := held()
	delete(m, log)
	if _, ok := held()[log]; !ok {
		t.Fatal("deleting from the returned map changed what the ledger holds")
	}
	if err := f.l.RecordEvidence(ctx, ledger.Evidence{Origin: log, Held: []byte("a"), Offered: []byte("b"), Reason: "two roots"}); err != nil {
		t.Fatal(err)
	}
	if !held()[log].Blocked {
		t.Fatal("WitnessedLogs does not show the log blocked after evidence")
	}
}

// A witness's writes go through the ledger's group commit: beside 64
// concurrent appenders, 32 of them, every other one refused by its check,
// share the appends' commits; the refused ones store nothing and fail
// alone, and every append and every accepted write is there after a
// restart.
func TestWritesShareTheAppendsCommitsAndFailAlone(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	const appends, writes = 64 * 8, 32
	refused := errors.New("refused")
	origin := func(i int) string { return fmt.Sprintf("medfed/test-federation/centre-%02d", i) }
	var wg sync.WaitGroup
	for a := range 64 {
		wg.Go(func() {
			for i := range appends / 64 {
				if _, err := f.l.Append(ctx, record(t, pseudonym(a), a*100+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range writes {
		wg.Go(func() {
			err := f.l.Witness(ctx, origin(i), func(ledger.Witnessed, bool) (ledger.Witnessed, error) {
				if i%2 == 1 {
					return ledger.Witnessed{Size: 99}, refused
				}
				return ledger.Witnessed{Size: int64(i + 1), Root: [32]byte{byte(i)}, Note: []byte("note")}, nil
			})
			switch {
			case i%2 == 1 && !errors.Is(err, refused), i%2 == 0 && err != nil:
				t.Errorf("write %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	commits := f.l.Stats().CommitSeconds.Count
	if commits >= writes {
		t.Errorf("%d appends and %d writes took %d commits: the writes did not share them", appends, writes, commits)
	}
	t.Logf("%d appends and %d writes in %d commits", appends, writes, commits)

	f.reopen(t)
	if f.l.Size() != appends {
		t.Fatalf("%d entries after the restart, want %d", f.l.Size(), appends)
	}
	held, err := f.l.WitnessedLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != writes/2 {
		t.Errorf("%d logs witnessed, want the %d accepted", len(held), writes/2)
	}
	for i := 0; i < writes; i += 2 {
		if w := held[origin(i)]; w.Size != int64(i+1) || w.Root != ([32]byte{byte(i)}) {
			t.Errorf("%s: held %+v", origin(i), w)
		}
	}
}
