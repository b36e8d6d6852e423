package records_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/mattn/go-sqlite3"

	"github.com/medfed/medfed/node/records"
)

func openStore(t testing.TB, dir string, opts records.Options) *records.Store {
	t.Helper()
	s, err := records.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(t testing.TB, s *records.Store, payload []byte) (records.ID, records.Opening, records.Commitment) {
	t.Helper()
	id, o, c, err := s.Put(context.Background(), payload)
	if err != nil {
		t.Fatalf("Put(%d bytes): %v", len(payload), err)
	}
	return id, o, c
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// rawDB opens dir/records.db directly, bypassing the package, the way an
// attacker with the file or a forensic tool would.
func rawDB(t testing.TB, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "records.db")+"?mode=rw&_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// sealedRow reads the stored blobs of one payload straight from SQLite.
func sealedRow(t testing.TB, db *sql.DB, id records.ID) (wrappedKey, ciphertext []byte) {
	t.Helper()
	err := db.QueryRow(`SELECT wrapped_key, ciphertext FROM sealed WHERE id = ?`, id[:]).Scan(&wrappedKey, &ciphertext)
	if err != nil {
		t.Fatalf("reading sealed row: %v", err)
	}
	return wrappedKey, ciphertext
}

// storeFiles returns the raw contents of every file SQLite keeps for the
// store; a file that does not exist contributes nothing.
func storeFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, name := range []string{"records.db", "records.db-wal", "records.db-shm", "records.db-journal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	return files
}

// findChunk reports the first file holding any 16-byte piece of needle
// (pieces at every 16-byte offset, and the final 16 bytes), so a partial
// remnant is caught as well as a whole copy.
func findChunk(files map[string][]byte, needle []byte) (string, bool) {
	const n = 16
	var chunks [][]byte
	for i := 0; i+n <= len(needle); i += n {
		chunks = append(chunks, needle[i:i+n])
	}
	if len(needle) >= n {
		chunks = append(chunks, needle[len(needle)-n:])
	}
	for name, b := range files {
		for _, c := range chunks {
			if bytes.Contains(b, c) {
				return name, true
			}
		}
	}
	return "", false
}
