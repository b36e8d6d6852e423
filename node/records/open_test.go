package records_test

import (
	"bytes"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medfed/medfed/node/records"
)

func TestOpenCreatesPrivateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "centre") // Open creates the directory too
	s := openStore(t, dir, records.Options{})
	put(t, s, []byte("x"))

	fi, err := os.Stat(filepath.Join(dir, "records.key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Errorf("records.key: mode %v, %d bytes; want -rw------- and 32 bytes", fi.Mode(), fi.Size())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), "tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestOpenTwoStoresHaveDifferentKeys(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	openStore(t, a, records.Options{})
	openStore(t, b, records.Options{})
	ka, _ := os.ReadFile(filepath.Join(a, "records.key"))
	kb, _ := os.ReadFile(filepath.Join(b, "records.key"))
	if bytes.Equal(ka, kb) {
		t.Error("two new stores got the same centre key")
	}
}

// TestOpenRefusesBadKey sets up a working store, damages its key file, and
// expects Open to refuse with an error naming the problem.
func TestOpenRefusesBadKey(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(t *testing.T, keyPath string)
		wantMsg []string
	}{
		{
			name:    "mode 0644",
			damage:  func(t *testing.T, p string) { chmod(t, p, 0o644) },
			wantMsg: []string{"records.key", "0644", "too open"},
		},
		{
			name:    "mode 0640",
			damage:  func(t *testing.T, p string) { chmod(t, p, 0o640) },
			wantMsg: []string{"records.key", "0640", "too open"},
		},
		{
			name:    "mode 0601",
			damage:  func(t *testing.T, p string) { chmod(t, p, 0o601) },
			wantMsg: []string{"records.key", "0601"},
		},
		{
			name: "31 bytes",
			damage: func(t *testing.T, p string) {
				if err := os.WriteFile(p, make([]byte, 31), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantMsg: []string{"records.key", "31 bytes", "want 32"},
		},
		{
			name: "missing while records.db exists",
			damage: func(t *testing.T, p string) {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			},
			wantMsg: []string{"records.key", "missing", "refusing to create a new key"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := records.Open(dir, records.Options{})
			if err != nil {
				t.Fatal(err)
			}
			put(t, s, []byte("x"))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			keyPath := filepath.Join(dir, "records.key")
			tt.damage(t, keyPath)
			damaged, _ := os.ReadFile(keyPath)

			s, err = records.Open(dir, records.Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want it refused")
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("Open error %q does not mention %q", err, m)
				}
			}
			if now, _ := os.ReadFile(keyPath); !bytes.Equal(now, damaged) {
				t.Error("Open changed or created the key file")
			}
		})
	}
}

// TestOpenRefusesForeignFile puts something that is not a records store at
// records.db; Open must refuse it and leave it exactly as it was.
func TestOpenRefusesForeignFile(t *testing.T) {
	tests := []struct {
		name    string
		content func(t *testing.T) []byte
	}{
		{"text file", func(*testing.T) []byte {
			return bytes.Repeat([]byte("these are my notes, not a database\n"), 200)
		}},
		{"shorter than an SQLite header", func(*testing.T) []byte { return []byte("SQLite") }},
		{"SQLite magic then garbage", func(*testing.T) []byte {
			return append([]byte("SQLite format 3\x00"), bytes.Repeat([]byte{0xff}, 4080)...)
		}},
		{"SQLite magic, zero header, then garbage", func(*testing.T) []byte {
			b := append([]byte("SQLite format 3\x00"), make([]byte, 84)...)
			return append(b, bytes.Repeat([]byte{0xff}, 3996)...)
		}},
		{"SQLite of another application", func(t *testing.T) []byte {
			return sqliteFile(t, "PRAGMA application_id = 42", "CREATE TABLE notes (body TEXT)")
		}},
		{"SQLite without an application_id", func(t *testing.T) []byte {
			return sqliteFile(t, "CREATE TABLE notes (body TEXT)", "INSERT INTO notes VALUES ('keep me')")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			content := tt.content(t)
			dbPath := filepath.Join(dir, "records.db")
			if err := os.WriteFile(dbPath, content, 0o600); err != nil {
				t.Fatal(err)
			}

			s, err := records.Open(dir, records.Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want it refused")
			}
			if !strings.Contains(err.Error(), "not a medfed records store") {
				t.Errorf("Open error %q does not say %q", err, "not a medfed records store")
			}
			if now, _ := os.ReadFile(dbPath); !bytes.Equal(now, content) {
				t.Error("Open changed records.db")
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.Name() != "records.db" {
					t.Errorf("Open left %s behind", e.Name())
				}
			}
		})
	}
}

func TestOpenRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts records.Options
	}{
		{"negative MaxPayload", records.Options{MaxPayload: -1}},
		{"MaxPayload beyond SQLite's limits", records.Options{MaxPayload: 1 << 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := records.Open(dir, tt.opts)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want it refused")
			}
			if !strings.Contains(err.Error(), "MaxPayload") {
				t.Errorf("Open error %q does not name the field", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "records.key")); !errors.Is(err, fs.ErrNotExist) {
				t.Error("Open created a key despite refusing its options")
			}
		})
	}
}

func TestOpenWithExistingKeyAndNoDatabase(t *testing.T) {
	dir := t.TempDir()
	key := randomBytes(t, 32)
	keyPath := filepath.Join(dir, "records.key")
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir, records.Options{})
	put(t, s, []byte("x"))
	if now, _ := os.ReadFile(keyPath); !bytes.Equal(now, key) {
		t.Error("Open replaced an existing key")
	}
}

func chmod(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// sqliteFile returns the bytes of a rollback-journal SQLite database built
// by stmts.
func sqliteFile(t *testing.T, stmts ...string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
