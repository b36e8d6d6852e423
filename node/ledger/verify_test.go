package ledger_test

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/medfed/medfed/node/ledger"
)

func execSQL(t testing.TB, path, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func queryBlob(t testing.TB, path, query string, args ...any) []byte {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b []byte
	if err := db.QueryRow(query, args...).Scan(&b); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return b
}

// copyLedger copies a closed ledger's files into a new directory.
func copyLedger(t testing.TB, path string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(path))
	for _, p := range []string{path, ledger.IndexPath(path), ledger.BlocksPath(path)} {
		for _, suffix := range []string{"", "-wal"} {
			src, err := os.Open(p + suffix)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			to := filepath.Join(filepath.Dir(dst), filepath.Base(p)+suffix)
			out, err := os.Create(to)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(out, src); err != nil {
				t.Fatal(err)
			}
			src.Close()
			out.Close()
		}
	}
	return dst
}

// flipByte changes one byte of a stored entry.
func flipByte(offset int) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		data := queryBlob(t, path, "SELECT data FROM entries WHERE idx = 37")
		if offset < 0 {
			offset += len(data)
		}
		data[offset] ^= 0x20
		execSQL(t, path, "UPDATE entries SET data = ? WHERE idx = 37", data)
	}
}

// signWith signs a checkpoint body with key under the ledger's origin.
func signWith(t *testing.T, key ed25519.PrivateKey, c ledger.Checkpoint) []byte {
	t.Helper()
	skey, _, err := note.GenerateKey(strings.NewReader(strings.Repeat("x", 64)), testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: c.Text()}, s)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// The tamper catalogue of `medfed ledger verify`: each change to a ledger
// file is caught, naming the first bad entry or the bad checkpoint.
func TestVerifyCatchesTampering(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.appendN(t, 0, 50)
	cp50 := f.sign(t)
	f.appendN(t, 50, 50)
	cp100 := f.sign(t)
	f.l.Close()
	pub := f.key.Public().(ed25519.PublicKey)

	// The same history with entry 37 changed, its tree rebuilt to match:
	// only the signed checkpoints can tell.
	rewritten := filepath.Join(t.TempDir(), "ledger.db")
	{
		l := openAt(t, rewritten, f.key)
		for i := range 100 {
			p, n := pseudonym(i%7), i
			if i == 37 {
				n = 10_037
			}
			if _, err := l.Append(ctx, record(t, p, n)); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
	}

	tests := []struct {
		name       string
		tamper     func(t *testing.T, path string)
		index      int64 // first bad entry, or -1
		checkpoint int64 // bad checkpoint, when index is -1
	}{
		{"one byte changed in an entry's payload commitment", flipByte(-1), 37, -1},
		{"one byte changed in an entry's time", flipByte(12), 37, -1},
		{"one byte changed in an entry's pseudonym", flipByte(30), 37, -1},
		{"one byte changed in an entry's data class", flipByte(-70), 37, -1},
		{"an entry deleted", func(t *testing.T, path string) {
			execSQL(t, path, "DELETE FROM entries WHERE idx = 50")
		}, 50, -1},
		{"the last entry deleted", func(t *testing.T, path string) {
			execSQL(t, path, "DELETE FROM entries WHERE idx = 99")
		}, 99, -1},
		{"two rows swapped", func(t *testing.T, path string) {
			execSQL(t, path, `UPDATE entries SET idx = -1 WHERE idx = 20;
				UPDATE entries SET idx = 20 WHERE idx = 30;
				UPDATE entries SET idx = 30 WHERE idx = -1`)
		}, 20, -1},
		{"two entries' data swapped", func(t *testing.T, path string) {
			a := queryBlob(t, path, "SELECT data FROM entries WHERE idx = 20")
			b := queryBlob(t, path, "SELECT data FROM entries WHERE idx = 30")
			execSQL(t, path, "UPDATE entries SET data = ? WHERE idx = 20", b)
			execSQL(t, path, "UPDATE entries SET data = ? WHERE idx = 30", a)
		}, 20, -1},
		{"a stored tree hash changed", func(t *testing.T, path string) {
			hs := queryBlob(t, path, "SELECT hashes FROM entries WHERE idx = 63")
			hs[3*32+5] ^= 1 // the level-3 hash
			execSQL(t, path, "UPDATE entries SET hashes = ? WHERE idx = 63", hs)
		}, 63, -1},
		{"history rewritten with a consistent tree", func(t *testing.T, path string) {
			execSQL(t, path, "ATTACH DATABASE ? AS other; DELETE FROM entries; INSERT INTO entries SELECT * FROM other.entries", rewritten)
		}, -1, 50},
		{"a checkpoint's signed text altered", func(t *testing.T, path string) {
			msg := queryBlob(t, path, "SELECT note FROM checkpoints WHERE size = 100")
			altered := strings.Replace(string(msg), "\n100\n", "\n101\n", 1)
			execSQL(t, path, "UPDATE checkpoints SET note = ? WHERE size = 100", []byte(altered))
		}, -1, 100},
		{"a checkpoint forged with another key", func(t *testing.T, path string) {
			forged := cp100.Checkpoint
			forged.Root[0] ^= 1
			execSQL(t, path, "UPDATE checkpoints SET root = ?, note = ? WHERE size = 100", forged.Root[:], signWith(t, testKey("forger"), forged))
		}, -1, 100},
		{"a forged checkpoint added", func(t *testing.T, path string) {
			c := ledger.Checkpoint{Origin: testOrigin, Size: 75, Root: cp50.Root}
			execSQL(t, path, "INSERT INTO checkpoints (size, root, note) VALUES (75, ?, ?)", c.Root[:], signWith(t, testKey("forger"), c))
		}, -1, 75},
		{"a checkpoint's stored root changed", func(t *testing.T, path string) {
			execSQL(t, path, "UPDATE checkpoints SET root = ? WHERE size = 50", cp100.Root[:])
		}, -1, 50},
	}
	t.Run("clean ledger passes", func(t *testing.T) {
		rep, err := ledger.Verify(ctx, copyLedger(t, f.path), pub)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Size != 100 || rep.Root != cp100.Root || rep.Checkpoints != 2 || rep.Origin != testOrigin {
			t.Fatalf("report %+v, want size 100, the signed root and 2 checkpoints", rep)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := copyLedger(t, f.path)
			tt.tamper(t, path)
			_, err := ledger.Verify(ctx, path, pub)
			var te *ledger.TamperError
			if !errors.As(err, &te) {
				t.Fatalf("Verify: %v, want a TamperError", err)
			}
			if te.Index != tt.index || (tt.index < 0 && te.Checkpoint != tt.checkpoint) {
				t.Fatalf("Verify: %v; want index %d checkpoint %d", err, tt.index, tt.checkpoint)
			}
		})
	}
	t.Run("wrong public key", func(t *testing.T) {
		_, err := ledger.Verify(ctx, copyLedger(t, f.path), testKey("other").Public().(ed25519.PublicKey))
		if err == nil {
			t.Fatal("verified with another centre's key")
		}
	})
}

func TestVerifyAndOpenRefuseFilesThatAreNotLedgers(t *testing.T) {
	dir := t.TempDir()
	notSQLite := filepath.Join(dir, "notes.db")
	if err := os.WriteFile(notSQLite, []byte("this is a text file, not a database at all, and long enough to be read as one"), 0o600); err != nil {
		t.Fatal(err)
	}
	otherApp := filepath.Join(dir, "other.db")
	execSQL(t, otherApp, "CREATE TABLE patients (name TEXT)")
	for _, path := range []string{notSQLite, otherApp} {
		before, _ := os.ReadFile(path)
		if _, err := ledger.Open(context.Background(), path, ledger.Options{Origin: testOrigin, Key: testKey("a")}); !errors.Is(err, ledger.ErrNotLedger) {
			t.Errorf("Open(%s): %v, want ErrNotLedger", filepath.Base(path), err)
		}
		if _, err := ledger.Verify(context.Background(), path, testKey("a").Public().(ed25519.PublicKey)); !errors.Is(err, ledger.ErrNotLedger) {
			t.Errorf("Verify(%s): %v, want ErrNotLedger", filepath.Base(path), err)
		}
		after, _ := os.ReadFile(path)
		if string(before) != string(after) {
			t.Errorf("%s was modified", filepath.Base(path))
		}
	}
}
