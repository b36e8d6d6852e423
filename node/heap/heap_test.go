package heap_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"

	"github.com/medfed/medfed/node/heap"
)

// rssMiB reads this process's resident memory.
func rssMiB(t *testing.T) float64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb / 1024
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// TestTrimReturnsWhatSQLiteFreed fills an in-memory database's page cache
// (C heap), keeps a second database's pages allocated after it, closes
// the first, and trims: the pages the first freed leave resident memory.
// It compares with the memory resident before the fill, not with the
// memory just before the trim: free itself may already have given some
// pages back (the top of an arena), and how many depends on where the
// allocator put them, so only what stays resident at the end is fixed.
func TestTrimReturnsWhatSQLiteFreed(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("malloc_trim is glibc's")
	}
	ctx := context.Background()
	open := func(name string) *sql.DB {
		db, err := sql.Open("sqlite3", "file:"+name+"?mode=memory&cache=shared")
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		if _, err := db.ExecContext(ctx, "CREATE TABLE t (b BLOB)"); err != nil {
			t.Fatal(err)
		}
		return db
	}
	fill := func(db *sql.DB, mib int) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1000)
		for range mib * 1024 {
			rand.Read(b)
			if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (?)", b); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	start := rssMiB(t)
	big := open(t.Name() + "-big")
	fill(big, 64)
	filled := rssMiB(t)
	if filled-start < 48 {
		t.Fatalf("resident memory %.0f MiB before the fill, %.0f after: 64 MiB of pages should be resident", start, filled)
	}
	kept := open(t.Name() + "-kept")
	defer kept.Close()
	fill(kept, 1)
	if err := big.Close(); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	before := rssMiB(t)
	if !heap.Trim() {
		t.Fatalf("Trim returned nothing after 64 MiB of SQLite pages were freed (%.0f MiB resident)", before)
	}
	after := rssMiB(t)
	if after-start > 32 {
		t.Fatalf("resident memory %.0f MiB before the fill, %.0f filled, %.0f before the trim, %.0f after: want at most 32 of the 64 MiB freed still resident", start, filled, before, after)
	}
	t.Logf("resident %.0f MiB before the fill, %.0f filled, %.0f before the trim, %.0f after", start, filled, before, after)
}
