// Package sealed keeps a SQLite table whose rows no ledger entry vouches
// for (a centre's staff credentials, the systems it registered) from
// being changed behind the centre's back by someone who holds the file
// but not the key: each row carries its own MAC, which its store computes
// and checks, and a seal, the HMAC of every row's ID and MAC in ID order,
// covers the table, so that a row put back as it was before a change, or
// deleted, is caught too.
//
// The seal lives in a table of its own, seal (id INTEGER PRIMARY KEY
// CHECK (id = 0), mac BLOB NOT NULL); the rows' table has the columns id
// (TEXT) and mac (BLOB).
package sealed

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"net/url"
	"os"
	"sync"
)

// Field writes b to a MAC, length-prefixed: one column of a row.
func Field(m hash.Hash, b []byte) {
	m.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
	m.Write(b)
}

// Table is a table of MACed rows and how its seal is computed.
type Table struct {
	Name   string // the rows' table
	Domain string // what the seal's HMAC starts with, e.g. "medfed staff seal v1"
}

// Sum is the seal of the rows as they stand: the HMAC-SHA256, under key,
// of the domain and every row's ID and MAC, in ID order.
func (t Table) Sum(ctx context.Context, tx *sql.Tx, key []byte) ([]byte, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, ifnull(mac, x'') FROM `+t.Name+` ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := hmac.New(sha256.New, key)
	m.Write([]byte(t.Domain))
	for rows.Next() {
		var id string
		var mac []byte
		if err := rows.Scan(&id, &mac); err != nil {
			return nil, err
		}
		Field(m, []byte(id))
		Field(m, mac)
	}
	return m.Sum(nil), rows.Err()
}

// Reseal stores the seal of the rows as they stand.
func (t Table) Reseal(ctx context.Context, tx *sql.Tx, key []byte) error {
	mac, err := t.Sum(ctx, tx, key)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO seal (id, mac) VALUES (0, ?)`, mac)
	return err
}

// Holds reports whether the stored seal matches the rows.
func (t Table) Holds(ctx context.Context, tx *sql.Tx, key []byte) (bool, error) {
	var stored []byte
	err := tx.QueryRowContext(ctx, `SELECT mac FROM seal WHERE id = 0`).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	want, err := t.Sum(ctx, tx, key)
	return err == nil && hmac.Equal(stored, want), err
}

// ErrKeep, returned by a Write's change, commits the change without
// sealing the table again.
var ErrKeep = errors.New("keep the seal")

// Write runs change in a transaction of db, telling it whether the seal
// matches the rows as they stand, then seals the table again, unless
// change returned ErrKeep, and commits. A change that finds the seal
// broken returns ErrKeep (or fails): sealing it again would make a row
// put back as it was pass.
func (t Table) Write(ctx context.Context, db *sql.DB, key []byte, change func(tx *sql.Tx, sealed bool) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ok, err := t.Holds(ctx, tx, key)
	if err != nil {
		return err
	}
	switch err := change(tx, ok); {
	case errors.Is(err, ErrKeep):
	case err != nil:
		return err
	default:
		if err := t.Reseal(ctx, tx, key); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Verify says what is wrong with the seal, for a full check: nil when
// it matches the rows.
func (t Table) Verify(ctx context.Context, tx *sql.Tx, key []byte) error {
	switch ok, err := t.Holds(ctx, tx, key); {
	case err != nil: // a seal table dropped or changed in shape
		return err
	case !ok:
		return errors.New("it does not match the rows: a row was put back as it was, or removed")
	}
	return nil
}

// Store is the SQLite file of a sealed table, open: a writer whose
// transactions are immediate (a write reads the rows it seals, and no
// other writer may change them in between), a reader whose transactions
// take no write lock, and a watch on the seal.
type Store struct {
	DB     *sql.DB
	Reader *sql.DB
	table  Table
	key    []byte
	watch  *watch
}

// Open opens the SQLite file at path, whose table is sealed under key,
// creating it if needed. The file is made private (mode 0600) before
// SQLite opens it, an existing one too: it holds labels and hashes (SQLite
// gives its journal files the same mode). setUp brings its schema up to
// date in the writer before anything reads it. A running node and a
// medfed command may both have it open: SQLite serialises their writes.
func Open(ctx context.Context, path string, table Table, key []byte, setUp func(ctx context.Context, db *sql.DB) error) (*Store, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("a row key is 32 bytes, not %d", len(key))
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(f.Chmod(0o600), f.Close()); err != nil {
		return nil, err
	}
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath()}
	u.RawQuery = "_journal_mode=WAL&_synchronous=FULL&_busy_timeout=5000&_txlock=immediate&mode=rwc"
	db, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return nil, err
	}
	if err := setUp(ctx, db); err != nil {
		return nil, errors.Join(fmt.Errorf("%s: %w", path, err), db.Close())
	}
	u.RawQuery = "_busy_timeout=5000&mode=ro"
	reader, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	// One connection of the reader, kept: data_version is per connection.
	conn, err := reader.Conn(ctx)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("%s: %w", path, err), reader.Close(), db.Close())
	}
	return &Store{DB: db, Reader: reader, table: table, key: key, watch: &watch{table: table, key: key, conn: conn}}, nil
}

// Holds reports whether the seal matches the rows; it reads them only
// when the file changed since it last looked.
func (s *Store) Holds(ctx context.Context) (bool, error) { return s.watch.holds(ctx) }

// Write runs change in a transaction of the writer and seals the table
// again (Table.Write): change returns ErrKeep to commit without.
func (s *Store) Write(ctx context.Context, change func(tx *sql.Tx, intact bool) error) error {
	return s.table.Write(ctx, s.DB, s.key, change)
}

// Close closes the file.
func (s *Store) Close() error {
	return errors.Join(s.watch.conn.Close(), s.Reader.Close(), s.DB.Close())
}

// Check runs a full check of the file at path: check, in one read
// transaction of the file opened read-only. It reports false when there is
// no such file.
func Check(ctx context.Context, path string, check func(tx *sql.Tx) error) (bool, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: "mode=ro&_busy_timeout=5000"}
	db, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return true, err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return true, err
	}
	defer tx.Rollback()
	return true, check(tx)
}

// watch checks a table's seal cheaply enough to do before every use of
// a row: on a connection it keeps, it reads the rows again only when the
// file changed since it last looked (SQLite's data_version, which any
// other connection's commit moves, and which is per connection).
type watch struct {
	table Table
	key   []byte

	mu      sync.Mutex
	conn    *sql.Conn
	version int64
	checked bool
	ok      bool
}

// holds reports whether the seal matches the rows.
func (w *watch) holds(ctx context.Context) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var v int64
	if err := w.conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v); err != nil {
		return false, err
	}
	if !w.checked || v != w.version {
		tx, err := w.conn.BeginTx(ctx, nil)
		if err != nil {
			return false, err
		}
		ok, err := w.table.Holds(ctx, tx, w.key)
		if err := errors.Join(err, tx.Rollback()); err != nil {
			return false, err
		}
		w.version, w.checked, w.ok = v, true, ok
	}
	return w.ok, nil
}
