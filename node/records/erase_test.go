package records_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/medfed/medfed/node/records"
)

// TestEraseLeavesNoRemnants checks crypto-shredding as a forensic reader of
// the files would: after Erase, no piece of the wrapped data key or of the
// ciphertext is left in records.db or its WAL, before or after Close.
func TestEraseLeavesNoRemnants(t *testing.T) {
	tests := []struct {
		name string
		size int
	}{
		{"64-byte marker, stored inside a page", 64},
		{"100 KiB, stored on overflow pages", 100 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			s, err := records.Open(dir, records.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()

			// Neighbours share pages with the target, so the erasure has to
			// scrub part of a page, not just drop whole pages.
			before, _, _ := put(t, s, []byte("neighbour before"))
			marker := randomBytes(t, tt.size)
			id, _, _ := put(t, s, marker)
			after, _, _ := put(t, s, []byte("neighbour after"))

			wrappedKey, ciphertext := sealedRow(t, rawDB(t, dir), id)
			secrets := map[string][]byte{"wrapped data key": wrappedKey, "ciphertext": ciphertext, "payload": marker}

			// The search must be able to fail: before erasure the sealed
			// blobs are in the files.
			files := storeFiles(t, dir)
			for _, what := range []string{"wrapped data key", "ciphertext"} {
				if _, found := findChunk(files, secrets[what]); !found {
					t.Fatalf("before Erase, the %s is not found in the store's files: the search is broken", what)
				}
			}

			if err := s.Erase(ctx, id); err != nil {
				t.Fatalf("Erase: %v", err)
			}
			assertGone(t, "after Erase", storeFiles(t, dir), secrets)

			err = rawDB(t, dir).QueryRow(`SELECT 1 FROM sealed WHERE id = ?`, id[:]).Scan(new(int))
			if !errors.Is(err, sql.ErrNoRows) {
				t.Errorf("sealed row after Erase: err = %v, want no row", err)
			}
			for _, n := range []records.ID{before, after} {
				if _, _, err := s.Get(ctx, n); err != nil {
					t.Errorf("Get neighbour after Erase: %v", err)
				}
			}

			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			assertGone(t, "after Close", storeFiles(t, dir), secrets)
		})
	}
}

func assertGone(t *testing.T, when string, files map[string][]byte, secrets map[string][]byte) {
	t.Helper()
	for what, b := range secrets {
		if name, found := findChunk(files, b); found {
			t.Errorf("%s: part of the %s is still in %s", when, what, name)
		}
	}
}
