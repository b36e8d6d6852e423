package records_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/records"
)

func TestPutGetRoundTrip(t *testing.T) {
	s := openStore(t, t.TempDir(), records.Options{})
	ctx := context.Background()
	tests := []struct {
		name string
		size int
	}{
		{"1 byte", 1},
		{"1 KiB", 1 << 10},
		{"1 MiB plus 1", 1<<20 + 1},
		{"MaxPayload", records.DefaultMaxPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := randomBytes(t, tt.size)
			id, o, c := put(t, s, payload)
			got, gotOpening, err := s.Get(ctx, id)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(payload))
			}
			if gotOpening != o {
				t.Error("Get returned a different Opening from Put")
			}
			if !c.Verify(gotOpening, got) {
				t.Error("Put's Commitment does not verify against what Get returned")
			}
		})
	}
}

func TestPutRefuses(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		opts    records.Options
		size    int
		wantIs  error
		wantMsg []string
	}{
		{"empty", records.Options{}, 0, nil, []string{"empty payload"}},
		{"default MaxPayload plus 1", records.Options{}, records.DefaultMaxPayload + 1, records.ErrTooLarge,
			[]string{strconv.Itoa(records.DefaultMaxPayload + 1), strconv.Itoa(records.DefaultMaxPayload)}},
		{"custom MaxPayload plus 1", records.Options{MaxPayload: 100}, 101, records.ErrTooLarge, []string{"101", "100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), tt.opts)
			payload := bytes.Repeat([]byte{'x'}, tt.size)
			_, _, _, err := s.Put(ctx, payload)
			if err == nil {
				t.Fatal("Put succeeded, want an error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Put error %q is not %v", err, tt.wantIs)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("Put error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestPutAcceptsCustomMaxPayload(t *testing.T) {
	s := openStore(t, t.TempDir(), records.Options{MaxPayload: 100})
	put(t, s, make([]byte, 100))
}

func TestSamePayloadTwiceGivesDifferentCommitments(t *testing.T) {
	s := openStore(t, t.TempDir(), records.Options{})
	payload := []byte("HIV test: negative")
	id1, o1, c1 := put(t, s, payload)
	id2, o2, c2 := put(t, s, payload)
	if id1 == id2 {
		t.Error("two Puts returned the same ID")
	}
	if o1 == o2 {
		t.Error("two Puts returned the same Opening")
	}
	if c1 == c2 {
		t.Error("two Puts of the same payload returned the same Commitment: a ledger reader could link them")
	}
}

func TestEraseThenGet(t *testing.T) {
	s := openStore(t, t.TempDir(), records.Options{})
	ctx := context.Background()
	erased, _, _ := put(t, s, []byte("erase me"))
	kept, _, _ := put(t, s, []byte("keep me"))

	if err := s.Erase(ctx, erased); err != nil {
		t.Fatalf("Erase: %v", err)
	}
	if _, _, err := s.Get(ctx, erased); !errors.Is(err, records.ErrErased) {
		t.Errorf("Get after Erase: err = %v, want ErrErased", err)
	}
	if err := s.Erase(ctx, erased); err != nil {
		t.Errorf("second Erase: %v, want nil", err)
	}
	if got, _, err := s.Get(ctx, kept); err != nil || string(got) != "keep me" {
		t.Errorf("Get of another payload after Erase = %q, %v; want it unchanged", got, err)
	}
}

func TestUnknownID(t *testing.T) {
	s := openStore(t, t.TempDir(), records.Options{})
	ctx := context.Background()
	put(t, s, []byte("something else"))
	var unknown records.ID
	copy(unknown[:], randomBytes(t, len(unknown)))

	if _, _, err := s.Get(ctx, unknown); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("Get unknown: err = %v, want node.ErrNotFound", err)
	}
	if err := s.Erase(ctx, unknown); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("Erase unknown: err = %v, want node.ErrNotFound", err)
	}
}

func TestReopenReadsEarlierPayloads(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := records.Open(dir, records.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kept, o, c := put(t, s, []byte("kept across restarts"))
	erased, _, _ := put(t, s, []byte("erased before restart"))
	if err := s.Erase(ctx, erased); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	for i := range 2 { // twice: a reopened store must reopen too
		s = openStore(t, dir, records.Options{})
		got, gotOpening, err := s.Get(ctx, kept)
		if err != nil || string(got) != "kept across restarts" || gotOpening != o || !c.Verify(gotOpening, got) {
			t.Fatalf("reopen %d: Get = %q, %v; want the payload and opening put earlier", i+1, got, err)
		}
		if _, _, err := s.Get(ctx, erased); !errors.Is(err, records.ErrErased) {
			t.Errorf("reopen %d: Get erased: err = %v, want ErrErased", i+1, err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

func TestErasedAtUsesClock(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	s := openStore(t, dir, records.Options{Now: func() time.Time { return at }})
	id, _, _ := put(t, s, []byte("x"))
	if err := s.Erase(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	var ns int64
	if err := rawDB(t, dir).QueryRow(`SELECT erased_at FROM payloads WHERE id = ?`, id[:]).Scan(&ns); err != nil {
		t.Fatal(err)
	}
	if got := time.Unix(0, ns).UTC(); !got.Equal(at) {
		t.Errorf("erased_at = %v, want %v", got, at)
	}
}

func TestClosedStore(t *testing.T) {
	s, err := records.Open(t.TempDir(), records.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, _, _ := put(t, s, []byte("x"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	if _, _, _, err := s.Put(ctx, []byte("y")); err == nil {
		t.Error("Put after Close succeeded")
	}
	if _, _, err := s.Get(ctx, id); err == nil {
		t.Error("Get after Close succeeded")
	}
	if err := s.Erase(ctx, id); err == nil {
		t.Error("Erase after Close succeeded")
	}
}

func TestConcurrentPuts(t *testing.T) {
	s := openStore(t, t.TempDir(), records.Options{})
	ctx := context.Background()
	const workers, each = 16, 8
	type stored struct {
		id      records.ID
		c       records.Commitment
		payload []byte
	}
	results := make([][]stored, workers)
	errs := make(chan error, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				payload := fmt.Appendf(nil, "worker %d payload %d", w, i)
				id, _, c, err := s.Put(ctx, payload)
				if err != nil {
					errs <- err
					continue
				}
				results[w] = append(results[w], stored{id, c, payload})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Put: %v", err)
	}
	seen := map[records.ID]bool{}
	for _, rs := range results {
		for _, r := range rs {
			if seen[r.id] {
				t.Errorf("ID %v returned twice", r.id)
			}
			seen[r.id] = true
			got, o, err := s.Get(ctx, r.id)
			if err != nil || !bytes.Equal(got, r.payload) || !r.c.Verify(o, got) {
				t.Errorf("Get(%v) = %q, %v; want %q", r.id, got, err, r.payload)
			}
		}
	}
	if len(seen) != workers*each {
		t.Errorf("%d payloads stored, want %d", len(seen), workers*each)
	}
}

// TestConcurrentPutGetErase runs whole lifecycles side by side, so Erase's
// checkpoint competes with other readers and writers.
func TestConcurrentPutGetErase(t *testing.T) {
	s := openStore(t, t.TempDir(), records.Options{})
	ctx := context.Background()
	const workers = 16
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			errs <- lifecycle(ctx, s, fmt.Appendf(nil, "worker %d", w))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func lifecycle(ctx context.Context, s *records.Store, payload []byte) error {
	id, _, _, err := s.Put(ctx, payload)
	if err != nil {
		return fmt.Errorf("Put: %w", err)
	}
	if got, _, err := s.Get(ctx, id); err != nil || !bytes.Equal(got, payload) {
		return fmt.Errorf("Get = %q, %v; want %q", got, err, payload)
	}
	if err := s.Erase(ctx, id); err != nil {
		return fmt.Errorf("Erase: %w", err)
	}
	if _, _, err := s.Get(ctx, id); !errors.Is(err, records.ErrErased) {
		return fmt.Errorf("Get after Erase: err = %v, want ErrErased", err)
	}
	return nil
}
