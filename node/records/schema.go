package records

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"

	"github.com/medfed/medfed/node/schema"

	"github.com/mattn/go-sqlite3"
)

// applicationID marks an SQLite file as a medfed records store ("MFRC"), so
// Open never mistakes another database for one, or writes into it.
const applicationID = 0x4D465243

// migrations are applied in order, each in its own transaction that also
// sets user_version to its 1-based position. Never edit one that has
// shipped; append a new one.
var migrations = []string{
	// 1: payload index with tombstones, and the sealed material kept apart
	// so that erasure is a plain DELETE of one row.
	fmt.Sprintf(`
PRAGMA application_id = %d;

-- One row per payload ever stored; after erasure it is the tombstone.
CREATE TABLE payloads (
	id         BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
	created_at INTEGER NOT NULL, -- Unix nanoseconds
	erased_at  INTEGER           -- Unix nanoseconds; NULL while stored
) STRICT;

-- The secret material of a payload that has not been erased. Both blobs are
-- AES-256-GCM output, nonce first, with the payload ID as additional data.
CREATE TABLE sealed (
	id          BLOB NOT NULL PRIMARY KEY REFERENCES payloads (id),
	wrapped_key BLOB NOT NULL, -- the data key sealed under the centre key
	ciphertext  BLOB NOT NULL  -- Opening || payload sealed under the data key
) STRICT;
`, applicationID),
}

// sqliteMagic starts every SQLite 3 database file.
const sqliteMagic = "SQLite format 3\x00"

func notStore(path, why string) error {
	return fmt.Errorf("records: %s is not a medfed records store (%s)", path, why)
}

// checkHeader rejects a file that is plainly not ours by reading its header,
// before SQLite touches it. An empty file passes: to SQLite it is an empty
// database. A header application_id of 0 passes too and is settled by
// checkIdentity: in WAL mode the newest page 1 may still be in the log.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("records: %w", err)
	}
	defer f.Close()
	var hdr [100]byte
	n, err := io.ReadFull(f, hdr[:])
	switch {
	case n == 0 && err == io.EOF:
		return nil
	case errors.Is(err, io.ErrUnexpectedEOF):
		return notStore(path, "too short to be an SQLite database")
	case err != nil:
		return fmt.Errorf("records: %w", err)
	}
	if !bytes.Equal(hdr[:len(sqliteMagic)], []byte(sqliteMagic)) {
		return notStore(path, "not an SQLite database")
	}
	if id := binary.BigEndian.Uint32(hdr[68:72]); id != 0 && id != applicationID {
		return notStore(path, fmt.Sprintf("SQLite application_id %#x, want %#x", id, applicationID))
	}
	return nil
}

// dsn builds the go-sqlite3 data source name. Every pooled connection gets
// these per-connection settings; journal_mode is a property of the file and
// is set once, after checkIdentity. create=false opens an existing file
// without ever creating one.
func dsn(path string, create bool) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("records: %w", err)
	}
	mode := "rw"
	if create {
		mode = "rwc"
	}
	// A URI filename, escaped so that '?', '#' or '%' in the path survive.
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	q := url.Values{
		"mode":           {mode},
		"_busy_timeout":  {"10000"},
		"_foreign_keys":  {"on"},
		"_secure_delete": {"on"},
		"_synchronous":   {"FULL"},
		// Writers take the write lock at BEGIN, so two writers queue on the
		// busy timeout instead of one failing to upgrade a read lock.
		"_txlock": {"immediate"},
		// Each connection keeps its last 32 statements prepared: a
		// record read skips SQLite's parse and plan.
		"_stmt_cache_size": {"32"},
	}
	return u.String() + "?" + q.Encode(), nil
}

// checkIdentity accepts a database that is a records store or is empty
// (no schema at all: a file created by a crashed first Open), and only
// reads, so anything else is left as it was.
func checkIdentity(ctx context.Context, db *sql.DB, path string) error {
	var appID int32
	var version, objects int
	err := db.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID)
	if err == nil {
		err = db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version)
	}
	if err == nil {
		err = db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&objects)
	}
	var serr sqlite3.Error
	if errors.As(err, &serr) && serr.Code == sqlite3.ErrNotADB {
		return notStore(path, "not an SQLite database")
	}
	if err != nil {
		return fmt.Errorf("records: reading %s: %w", path, err)
	}
	switch {
	case uint32(appID) == applicationID:
		return nil
	case appID == 0 && version == 0 && objects == 0:
		return nil
	case appID == 0:
		return notStore(path, "SQLite database of another application")
	default:
		return notStore(path, fmt.Sprintf("SQLite application_id %#x, want %#x", uint32(appID), applicationID))
	}
}

// migrate brings the schema up to date, a migration a transaction.
func migrate(ctx context.Context, db *sql.DB) error {
	steps := make([]schema.Step, len(migrations))
	for i, m := range migrations {
		steps[i] = schema.SQL(m)
	}
	if err := schema.Migrate(ctx, db, steps); err != nil {
		return fmt.Errorf("records migrate: %w", err)
	}
	return nil
}
