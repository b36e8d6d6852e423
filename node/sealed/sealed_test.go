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

// A write seals the table; a row changed or deleted behind the seal's
// back breaks it, which the store sees on its next look and a full check
// names; a change that finds the seal broken and keeps it leaves it
// broken.
func TestASealCoversItsRows(t *testing.T) {
	ctx := context.Background()
	key := make([]byte, 32)
	path := filepath.Join(t.TempDir(), "t.db")
	st, err := sealed.Open(ctx, path, table, key, func(ctx context.Context, db *sql.DB) error {
		_, err := db.ExecContext(ctx, `CREATE TABLE rows (id TEXT PRIMARY KEY, mac BLOB);
			CREATE TABLE seal (id INTEGER PRIMARY KEY CHECK (id = 0), mac BLOB NOT NULL)`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, id := range []string{"a", "b"} {
		err := st.Write(ctx, func(tx *sql.Tx, intact bool) error {
			_, err := tx.Exec(`INSERT INTO rows (id, mac) VALUES (?, ?)`, id, []byte("mac of "+id))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	verify := func() error {
		var v error
		found, err := sealed.Check(ctx, path, func(tx *sql.Tx) error {
			v = table.Verify(ctx, tx, key)
			return nil
		})
		if err != nil || !found {
			t.Fatalf("the full check: %v, found %v", err, found)
		}
		return v
	}
	if ok, err := st.Holds(ctx); !ok || err != nil {
		t.Fatalf("a sealed table: %v %v", ok, err)
	}
	if err := verify(); err != nil {
		t.Fatalf("a sealed table: %v", err)
	}
	for _, tamper := range []string{`UPDATE rows SET mac = x'00' WHERE id = 'a'`, `DELETE FROM rows WHERE id = 'b'`} {
		if _, err := st.DB.Exec(tamper); err != nil {
			t.Fatal(err)
		}
		if ok, err := st.Holds(ctx); ok || err != nil {
			t.Fatalf("after %s: the seal holds (%v)", tamper, err)
		}
		if verify() == nil {
			t.Fatalf("after %s: the full check passes", tamper)
		}
	}
	// A change that finds the seal broken keeps it broken.
	err = st.Write(ctx, func(tx *sql.Tx, intact bool) error {
		if intact {
			t.Error("the change was told the seal holds")
		}
		return sealed.ErrKeep
	})
	if err != nil {
		t.Fatal(err)
	}
	ok, err := st.Holds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Fatal("a kept seal was made whole")
	}
	// Under another key the rows' seal is another.
	tx, err := st.DB.Begin()
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
	if found, err := sealed.Check(ctx, filepath.Join(t.TempDir(), "none.db"), func(*sql.Tx) error { return nil }); found || err != nil {
		t.Fatalf("a file that is not there: found %v, %v", found, err)
	}
}
