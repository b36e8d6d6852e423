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
	"hash"
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

// Watch checks a table's seal cheaply enough to do before every use of
// a row: on a connection it keeps, it reads the rows again only when the
// file changed since it last looked (SQLite's data_version, which any
// other connection's commit moves, and which is per connection).
type Watch struct {
	table Table
	key   []byte

	mu      sync.Mutex
	conn    *sql.Conn
	version int64
	checked bool
	ok      bool
}

// NewWatch watches table's seal under key on conn.
func NewWatch(conn *sql.Conn, table Table, key []byte) *Watch {
	return &Watch{table: table, key: key, conn: conn}
}

// Holds reports whether the seal matches the rows.
func (w *Watch) Holds(ctx context.Context) (bool, error) {
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

// Close closes the watched connection.
func (w *Watch) Close() error { return w.conn.Close() }
