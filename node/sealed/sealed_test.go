package sealed_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	_ "github.com/mattn/go-sqlite3"

	"github.com/medfed/medfed/node/sealed"
)

var table = sealed.Table{Name: "rows", Domain: "medfed test seal v1"}

func open(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "t.db")+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE rows (id TEXT PRIMARY KEY, mac BLOB);
		CREATE TABLE seal (id INTEGER PRIMARY KEY CHECK (id = 0), mac BLOB NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// A write seals the table; a row changed, put back or deleted behind the
// seal's back breaks it, which a watch sees on its next look; a change
// that finds the seal broken and keeps it leaves it broken.
func TestASealCoversItsRows(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	key := make([]byte, 32)
	add := func(id string) error {
		return table.Write(ctx, db, key, func(tx *sql.Tx, intact bool) error {
			_, err := tx.Exec(`INSERT INTO rows (id, mac) VALUES (?, ?)`, id, []byte("mac of "+id))
			return err
		})
	}
	for _, id := range []string{"a", "b"} {
		if err := add(id); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := sealed.NewWatch(conn, table, key)
	defer w.Close()
	if ok, err := w.Holds(ctx); !ok || err != nil {
		t.Fatalf("a sealed table: %v %v", ok, err)
	}
	for _, tamper := range []string{`UPDATE rows SET mac = x'00' WHERE id = 'a'`, `DELETE FROM rows WHERE id = 'b'`} {
		if _, err := db.Exec(tamper); err != nil {
			t.Fatal(err)
		}
		if ok, err := w.Holds(ctx); ok || err != nil {
			t.Fatalf("after %s: the seal holds (%v)", tamper, err)
		}
	}
	// A change that finds the seal broken keeps it broken.
	err = table.Write(ctx, db, key, func(tx *sql.Tx, intact bool) error {
		if intact {
			t.Error("the change was told the seal holds")
		}
		return sealed.ErrKeep
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := w.Holds(ctx); ok {
		t.Fatal("a kept seal was made whole")
	}
	// Under another key the rows' seal is another.
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	one, err := table.Sum(ctx, tx, key)
	if err != nil {
		t.Fatal(err)
	}
	other, err := table.Sum(ctx, tx, append(make([]byte, 31), 1))
	if err != nil || string(one) == string(other) {
		t.Fatalf("two keys, one seal: %v", err)
	}
}
