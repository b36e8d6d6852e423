package directory

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	dstest "github.com/ipfs/go-datastore/test"
)

func openTestStore(t *testing.T) *store {
	t.Helper()
	s, err := openStore(filepath.Join(t.TempDir(), "directory.db"), testRowKey)
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

// TestStorePageSize checks that a new directory database has pageSize
// pages in WAL mode, and that one created before with SQLite's 4 KiB
// pages keeps them and reads and writes as before.
func TestStorePageSize(t *testing.T) {
	ctx := context.Background()
	pages := func(path string) (size int, mode string) {
		t.Helper()
		db, err := sql.Open("sqlite3", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.QueryRow("PRAGMA page_size").Scan(&size); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		return size, mode
	}
	openClose := func(path string) {
		t.Helper()
		s, err := openStore(path, testRowKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh.db")
	openClose(fresh)
	if size, mode := pages(fresh); size != pageSize || mode != "wal" {
		t.Fatalf("a new store has %d-byte pages in %s mode, want %d in wal", size, mode, pageSize)
	}

	// An empty file, left by a creation that failed, is created afresh.
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	openClose(empty)
	if size, _ := pages(empty); size != pageSize {
		t.Fatalf("a store opened on an empty file has %d-byte pages, want %d", size, pageSize)
	}

	old := filepath.Join(dir, "old.db")
	if err := createStore(old, 4096); err != nil {
		t.Fatal(err)
	}
	s, err := openStore(old, testRowKey)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := providerKey(t)
	if err := s.Put(ctx, ds.NewKey(k), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if size, _ := pages(old); size != 4096 {
		t.Fatalf("a store created with 4096-byte pages has %d-byte pages once opened", size)
	}
	s, err = openStore(old, testRowKey)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.Get(ctx, ds.NewKey(k)); err != nil || string(v) != "v" {
		t.Fatalf("a provider record in a store with 4096-byte pages reads back as %q, %v", v, err)
	}
}

// TestStoreSurvivesReopen checks that synced writes, flushed or not when
// Sync is called, are on disk, and that deletions are too.
func TestStoreSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "directory.db")
	s, err := openStore(path, testRowKey)
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
	s, err = openStore(path, testRowKey)
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

var testRowKey = []byte("a row key of the tests: 32 bytes")

// Every row the store writes carries its MAC, a store from before MACs
// gets them once as it opens, and CheckStore names a row changed or added
// behind the store's back.
func TestStoreRowsCarryMACs(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "directory.db")
	old, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(`CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
		INSERT INTO kv VALUES ('/old/1', x'01')`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	s, err := openStore(path, testRowKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"/a/1", "/a/2", "/b/1"} {
		if err := s.Put(ctx, ds.NewKey(k), []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := CheckStore(ctx, path, testRowKey); err != nil || n != 4 {
		t.Fatalf("check: %d rows, %v; want 4, nil", n, err)
	}
	var te *TamperError
	if _, err := CheckStore(ctx, path, []byte("another centre's key, 32 bytes.")); !errors.As(err, &te) {
		t.Fatalf("check with another key: %v, want a TamperError", err)
	}
	for _, tamper := range []string{
		`UPDATE kv SET v = x'00' WHERE k = '/a/2'`,
		`INSERT INTO kv SELECT '/a/3', v, mac FROM kv WHERE k = '/a/2'`,
		`UPDATE kv SET mac = NULL WHERE k = '/a/2'`,
	} {
		copied := filepath.Join(t.TempDir(), "directory.db")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(copied, b, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("sqlite3", "file:"+copied)
		if err != nil {
			t.Fatal(err)
		}
		_, err = db.Exec(tamper)
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := CheckStore(ctx, copied, testRowKey); !errors.As(err, &te) || !strings.HasPrefix(te.Key, "/a/") {
			t.Fatalf("%s: check says %v, want the row named", tamper, err)
		}
	}
}

// BenchmarkStoreWrites measures the store's write path, a provider
// record's: Puts into the overlay, flushed in grouped transactions, each
// row with its MAC.
func BenchmarkStoreWrites(b *testing.B) {
	ctx := context.Background()
	s, err := openStore(filepath.Join(b.TempDir(), "directory.db"), testRowKey)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	v := make([]byte, 10)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := ds.NewKey("/records/providers/CIQ" + strconv.Itoa(i*7919%1000003) + "/12D3KooWabcdefghijklmnopqrstuvwxyz" + strconv.Itoa(i%5))
		if err := s.Put(ctx, k, v); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.flush(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkStoreFlush measures what a replica's flush costs a provider
// record once its table is large: 120,000 random records inserted into a
// table of 600,000, flushed every batch records (6,000 is about a
// second's worth at a replica while a centre announces a million
// patients, 30,000 five seconds': flushEvery). Its figure is µs/row.
func BenchmarkStoreFlush(b *testing.B) {
	ctx := context.Background()
	const table, added = 600_000, 120_000
	base := filepath.Join(b.TempDir(), "base.db")
	s, err := openStore(base, testRowKey)
	if err != nil {
		b.Fatal(err)
	}
	v := make([]byte, 9)
	for i := range table {
		k, _ := providerKey(b)
		if err := s.Put(ctx, ds.NewKey(k), v); err != nil {
			b.Fatal(err)
		}
		if i%flushAt == 0 {
			if err := s.flush(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	keys := make([]ds.Key, added)
	for i := range keys {
		k, _ := providerKey(b)
		keys[i] = ds.NewKey(k)
	}
	for _, batch := range []int{6_000, 30_000, 60_000} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			var took time.Duration
			for range b.N {
				path := filepath.Join(b.TempDir(), "directory.db")
				blob, err := os.ReadFile(base)
				if err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(path, blob, 0o600); err != nil {
					b.Fatal(err)
				}
				s, err := openStore(path, testRowKey)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				for i, k := range keys {
					if err := s.Put(ctx, k, v); err != nil {
						b.Fatal(err)
					}
					if (i+1)%batch == 0 {
						if err := s.flush(); err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := s.flush(); err != nil {
					b.Fatal(err)
				}
				took += time.Since(start)
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(took.Microseconds())/float64(b.N*added), "µs/row")
		})
	}
}

// BenchmarkStoreQueryOverlaid measures a lookup's read at a replica while
// a centre's announcements wait in its overlay: one key's provider
// records read among 60,000 overlaid (under flushAt, so none flushed).
func BenchmarkStoreQueryOverlaid(b *testing.B) {
	ctx := context.Background()
	s, err := openStore(filepath.Join(b.TempDir(), "directory.db"), testRowKey)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	prefixes := make([]string, 60_000)
	for i := range prefixes {
		var k string
		k, prefixes[i] = providerKey(b)
		if err := s.Put(ctx, ds.NewKey(k), []byte("v")); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		res, err := s.Query(ctx, dsq.Query{Prefix: prefixes[i%len(prefixes)]})
		if err != nil {
			b.Fatal(err)
		}
		if entries, err := res.Rest(); err != nil || len(entries) != 1 {
			b.Fatalf("%d records read (%v), want 1", len(entries), err)
		}
	}
	b.StopTimer() // not the flush as the store closes
}
