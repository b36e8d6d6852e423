package directory

import (
	"context"
	"path/filepath"
	"testing"

	ds "github.com/ipfs/go-datastore"
	dstest "github.com/ipfs/go-datastore/test"
)

func openTestStore(t *testing.T) *store {
	t.Helper()
	s, err := openStore(filepath.Join(t.TempDir(), "directory.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestStoreSuite runs go-datastore's conformance suite on the SQLite store.
func TestStoreSuite(t *testing.T) {
	dstest.SubtestAll(t, openTestStore(t))
}

func TestStoreBatches(t *testing.T) {
	dstest.RunBatchTest(t, openTestStore(t))
	dstest.RunBatchDeleteTest(t, openTestStore(t))
	dstest.RunBatchPutAndDeleteTest(t, openTestStore(t))
}

// TestStoreSurvivesReopen checks that synced writes, flushed or not when
// Sync is called, are on disk, and that deletions are too.
func TestStoreSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "directory.db")
	s, err := openStore(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"/a/1", "/a/2", "/b/1"} {
		if err := s.Put(ctx, ds.NewKey(k), []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(ctx, ds.NewKey("/")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, ds.NewKey("/a/2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = openStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for k, want := range map[string]bool{"/a/1": true, "/a/2": false, "/b/1": true} {
		got, err := s.Has(ctx, ds.NewKey(k))
		if err != nil || got != want {
			t.Errorf("Has(%s) = %v, %v; want %v", k, got, err, want)
		}
	}
}
