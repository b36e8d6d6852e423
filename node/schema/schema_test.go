package schema_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"

	"github.com/medfed/medfed/node/schema"
)

// Each step runs once, in order, however often the file is migrated; a
// failing step leaves the version where it was; a file of a newer
// version is refused.
func TestStepsRunOnceInOrder(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	steps := []schema.Step{
		schema.SQL(`CREATE TABLE log (step INTEGER)`),
		schema.SQL(`INSERT INTO log VALUES (2)`),
		func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO log VALUES (3)`)
			return err
		},
	}
	for range 2 {
		if err := schema.Migrate(ctx, db, steps); err != nil {
			t.Fatal(err)
		}
	}
	var n, version int
	if err := db.QueryRow(`SELECT count(*) FROM log`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d rows logged (%v), want 2: a step ran twice or not at all", n, err)
	}
	bad := append(steps, schema.SQL(`INSERT INTO log VALUES (4); NOT SQL`))
	if err := schema.Migrate(ctx, db, bad); err == nil || !strings.Contains(err.Error(), "to version 4") {
		t.Fatalf("a failing step: %v", err)
	}
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil || version != 3 {
		t.Fatalf("version %d after a failing step (%v), want 3", version, err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM log`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("a failing step left %d rows (%v)", n, err)
	}
	if err := schema.Migrate(ctx, db, steps[:2]); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("a file of a newer version: %v", err)
	}
}
