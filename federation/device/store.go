package device

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	_ "github.com/mattn/go-sqlite3" // the SQLite driver

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/schema"
	"github.com/medfed/medfed/node/sealed"
)

// File is the store's file in a centre's data directory.
const File = "devices.db"

// The store holds each registration as the patient signed it, with the
// revocation that ended it, each row MACed and the table sealed (package
// node/sealed): a row changed, added, removed or put back by anything but
// the centre authenticates no device. The batches table keeps each
// batch's (and each patient's note's) nonce until the batch could no longer be fresh, with the index
// of its first record once it is stored: a batch whose records may or
// may not have reached the ledger (a crash between the two) is settled
// from the ledger before the device's next batch.

// ErrTampered is what a row that fails its MAC, or a seal that does not
// match the rows, reads as: the file was changed by something other than
// medfed. It is the centre's fault, not the caller's.
var ErrTampered = errors.New("device store: a registration was changed outside medfed (run medfed check)")

// registrations is the sealed table.
var registrations = sealed.Table{Name: "registrations", Domain: "medfed device seal v1"}

// migrations are the schema's steps (node/schema); the first seals the
// empty table under key.
func migrations(key []byte) []schema.Step {
	return []schema.Step{func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE registrations (
	id            TEXT PRIMARY KEY,  -- the device's ID and the patient's pseudonym, hex, as device/pseudonym
	subject       BLOB NOT NULL,     -- the patient's pseudonym
	statement     BLOB NOT NULL,     -- the registration the patient signed
	entry         INTEGER NOT NULL,  -- its device entry on the ledger
	revocation    BLOB,              -- the revocation the patient signed; NULL while in force
	revoked_entry INTEGER,           -- its device revocation entry on the ledger
	mac           BLOB NOT NULL      -- HMAC-SHA256 of the row (row.mac)
) STRICT;
CREATE INDEX registrations_by_subject ON registrations (subject);
CREATE TABLE seal (
	id  INTEGER PRIMARY KEY CHECK (id = 0),
	mac BLOB NOT NULL                -- HMAC-SHA256 of every registration's ID and MAC
) STRICT;
CREATE TABLE batches (
	device  BLOB NOT NULL,     -- the device's ID, or a note's author (NoteAuthor)
	nonce   BLOB NOT NULL,     -- the batch's
	subject BLOB NOT NULL,     -- the patient's pseudonym
	expires INTEGER NOT NULL,  -- Unix milliseconds: when the row may go (the batch is stale by then)
	size    INTEGER NOT NULL,  -- the ledger's size when the batch was taken
	first   INTEGER,           -- the index of its first record; NULL until it is stored
	mac     BLOB NOT NULL,     -- HMAC-SHA256 of the row (batchMAC)
	PRIMARY KEY (device, nonce)
) STRICT, WITHOUT ROWID;
CREATE INDEX batches_by_expiry ON batches (expires)`); err != nil {
			return err
		}
		return registrations.Reseal(ctx, tx, key)
	}}
}

// row is a registration as stored.
type row struct {
	id         string
	subject    ledger.Pseudonym
	statement  []byte
	entry      int64
	revocation []byte // nil while in force
	revoked    int64  // the revocation's entry
	stored     []byte // the MAC in the row
}

func rowID(d ledger.DeviceID, p ledger.Pseudonym) string {
	return hex.EncodeToString(d[:]) + "/" + hex.EncodeToString(p[:])
}

// mac is the HMAC-SHA256, under key, of every column of the row but the
// MAC, each length-prefixed.
func (r row) mac(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	sealed.Field(m, []byte("medfed device row v1"))
	sealed.Field(m, []byte(r.id))
	sealed.Field(m, r.subject[:])
	sealed.Field(m, r.statement)
	sealed.Field(m, binary.BigEndian.AppendUint64(nil, uint64(r.entry)))
	sealed.Field(m, r.revocation)
	sealed.Field(m, binary.BigEndian.AppendUint64(nil, uint64(r.revoked)))
	return m.Sum(nil)
}

func (r row) valid(key []byte) bool { return hmac.Equal(r.stored, r.mac(key)) }

// querier is a database or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// readRows reads the registrations that tail (a WHERE and ORDER clause)
// selects.
func readRows(ctx context.Context, q querier, tail string, args ...any) ([]row, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, subject, statement, entry, revocation, revoked_entry, mac FROM registrations `+tail, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		var (
			r       row
			subject []byte
			revoked sql.NullInt64
		)
		if err := rows.Scan(&r.id, &subject, &r.statement, &r.entry, &r.revocation, &revoked, &r.stored); err != nil {
			return nil, err
		}
		if len(subject) != len(r.subject) {
			return nil, fmt.Errorf("a pseudonym of %d bytes", len(subject))
		}
		copy(r.subject[:], subject)
		r.revoked = revoked.Int64
		out = append(out, r)
	}
	return out, rows.Err()
}

// put writes r, a new row or a changed one, with its MAC.
func (r row) put(ctx context.Context, tx *sql.Tx, key []byte) error {
	var revocation any
	var revoked any
	if r.revocation != nil {
		revocation, revoked = r.revocation, r.revoked
	}
	_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO registrations (id, subject, statement, entry, revocation, revoked_entry, mac) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.id, r.subject[:], r.statement, r.entry, revocation, revoked, r.mac(key))
	return err
}

// batchMAC is the HMAC-SHA256, under key, of a batch row's columns.
func batchMAC(key []byte, d ledger.DeviceID, nonce []byte, p ledger.Pseudonym, expires, size int64, first sql.NullInt64) []byte {
	m := hmac.New(sha256.New, key)
	sealed.Field(m, []byte("medfed device batch v1"))
	sealed.Field(m, d[:])
	sealed.Field(m, nonce)
	sealed.Field(m, p[:])
	f := int64(-1)
	if first.Valid {
		f = first.Int64
	}
	for _, v := range []int64{expires, size, f} {
		sealed.Field(m, binary.BigEndian.AppendUint64(nil, uint64(v)))
	}
	return m.Sum(nil)
}

// CheckStore checks the MAC of every row of the device store at path, and
// the registrations' seal, under key, the store's row key: the full check
// of devices.db. It opens the file read-only and returns how many
// registrations it holds (revoked ones included). A centre without the
// file has none. What it finds wrong is a *TamperError.
func CheckStore(ctx context.Context, path string, key []byte) (int, error) {
	var n int
	_, err := sealed.Check(ctx, path, func(tx *sql.Tx) error {
		var v int
		if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
			return fmt.Errorf("device check: %w", err)
		}
		if want := len(migrations(key)); v != want {
			return fmt.Errorf("device check: %s has schema version %d, not %d: starting the node with this medfed brings it up to date", path, v, want)
		}
		rs, err := readRows(ctx, tx, "ORDER BY id")
		if err != nil {
			return &TamperError{Table: "registrations", Row: "the rows", Reason: err.Error()}
		}
		for _, r := range rs {
			if !r.valid(key) {
				return &TamperError{Table: "registrations", Row: "registration " + r.id, Reason: "the row fails its MAC: changed or added without the centre's key"}
			}
		}
		if err := registrations.Verify(ctx, tx, key); err != nil {
			return &TamperError{Table: "seal", Row: "the seal", Reason: err.Error()}
		}
		if err := checkBatches(ctx, tx, key); err != nil {
			return err
		}
		n = len(rs)
		return nil
	})
	return n, err
}

// TamperError names what CheckStore found wrong: the table and the row.
type TamperError struct {
	Table, Row, Reason string
}

func (e *TamperError) Error() string {
	return fmt.Sprintf("%s, table %s, %s: %s", File, e.Table, e.Row, e.Reason)
}

// Is makes a TamperError one of kind node.Conflict, as a centre's other
// data found tampered with.
func (e *TamperError) Is(target error) bool { return target == node.ErrConflict }

func checkBatches(ctx context.Context, tx *sql.Tx, key []byte) error {
	rows, err := tx.QueryContext(ctx, `SELECT device, nonce, subject, expires, size, first, mac FROM batches`)
	if err != nil {
		return &TamperError{Table: "batches", Row: "the rows", Reason: err.Error()}
	}
	defer rows.Close()
	for rows.Next() {
		var (
			d                        ledger.DeviceID
			p                        ledger.Pseudonym
			device, nonce, subj, mac []byte
			expires, size            int64
			first                    sql.NullInt64
		)
		if err := rows.Scan(&device, &nonce, &subj, &expires, &size, &first, &mac); err != nil {
			return &TamperError{Table: "batches", Row: "the rows", Reason: err.Error()}
		}
		copy(d[:], device)
		copy(p[:], subj)
		if len(device) != len(d) || len(subj) != len(p) || !hmac.Equal(mac, batchMAC(key, d, nonce, p, expires, size, first)) {
			return &TamperError{Table: "batches", Row: "a batch of device (or a note of patient key) " + hex.EncodeToString(device), Reason: "the row fails its MAC: changed or added without the centre's key"}
		}
	}
	if err := rows.Err(); err != nil {
		return &TamperError{Table: "batches", Row: "the rows", Reason: err.Error()}
	}
	return nil
}
