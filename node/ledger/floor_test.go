package ledger

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// WriteFloor writes every row it counts, durably, into a file laid out as
// a ledger's, and refuses a file that exists.
func TestWriteFloorWritesItsRows(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "floor.db")
	rate, err := WriteFloor(ctx, path, 1000, 64, 300)
	if err != nil || rate <= 0 {
		t.Fatalf("WriteFloor: %v, %v", rate, err)
	}
	db, err := sql.Open("sqlite3", dsn(path, readFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows, bytes int64
	if err := db.QueryRow("SELECT count(*), sum(length(data)) FROM entries").Scan(&rows, &bytes); err != nil {
		t.Fatal(err)
	}
	if rows != 1000 || bytes != 300_000 {
		t.Errorf("the floor wrote %d rows of %d bytes, want 1000 of 300,000", rows, bytes)
	}
	if _, err := WriteFloor(ctx, path, 10, 1, 10); err == nil {
		t.Error("WriteFloor wrote into an existing file")
	}
}
