package api

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	_ "github.com/mattn/go-sqlite3" // the SQLite driver

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/sealed"
	"github.com/medfed/medfed/node/smart"
)

// StaffFile is the file in a centre's data directory that holds its staff
// credentials: never a token, only its SHA-256.
const StaffFile = "staff.db"

// Roles are the staff roles the API knows; each route names the roles it
// serves. They are the roles a system may act for (node/smart keeps the
// list, below node/api).
var Roles = smart.Roles

// tokenPrefix marks a medfed staff token, so that one pasted into the
// wrong place is recognisable (and secret scanners can find it).
const tokenPrefix = "mfs_"

// Staff is one staff member as the API knows them.
type Staff struct {
	ID      string // 32 hex digits: the pseudonymous staff ID on ledgers
	Role    string
	Label   string // for the centre's own administrators; never on a ledger or in a log
	Created time.Time
	Expires time.Time // when the token stops working, unless renewed
	Revoked time.Time // zero while the credential is valid

	Tampered bool // the row fails its MAC (List): it authenticates no one
}

// A staff token works for a while, then must be renewed (medfed staff
// renew): a token copied somewhere it should not be stops working on its
// own, and an administrator sees who still needs one.
const (
	DefaultTokenLifetime = 12 * time.Hour
	MaxTokenLifetime     = 90 * 24 * time.Hour
)

// ErrUnknownStaff is returned for a token or staff ID the centre did not
// issue, or revoked.
var ErrUnknownStaff = node.E(node.Unauthenticated, "unknown or revoked staff credential")

// ErrExpiredStaff is returned for a token past its lifetime.
var ErrExpiredStaff = node.E(node.Unauthenticated, "the staff credential has expired: an administrator renews it with medfed staff renew")

// StaffStore keeps a centre's staff credentials in SQLite.
//
// No ledger entry vouches for a credential, so the store vouches for its
// own rows: each carries an HMAC of all its columns under a key derived
// from centre.key (Centre.RowKey), and a seal, the HMAC of every row's ID
// and MAC, covers the table. A row added or changed by someone who holds
// the file but not the key (a new administrator, a revocation undone, a
// lifetime stretched) fails its MAC and authenticates no one; a row put
// back as it was before a change passes its own MAC but not the seal; the
// full check (CheckStaff, medfed check) names either. Deleting a row takes
// access away, it never gives any.
//
// Authenticate checks the row it reads, and the seal whenever the file has
// changed since it last did (SQLite's data_version, which any other
// connection's commit moves, a medfed staff command's or a tamperer's): a
// store whose seal does not match authenticates no one until it is put
// right. A credential store changed behind medfed's back fails closed.
type StaffStore struct {
	store *sealed.Store
	key   []byte
}

// staffTable is the staff table and its seal.
var staffTable = sealed.Table{Name: "staff", Domain: "medfed staff seal v1"}

var staffSchema = `CREATE TABLE staff (
	id         TEXT PRIMARY KEY,     -- 32 hex digits
	role       TEXT NOT NULL,
	label      TEXT NOT NULL,
	token_hash BLOB NOT NULL UNIQUE, -- SHA-256 of the bearer token
	created    INTEGER NOT NULL,     -- Unix seconds
	revoked    INTEGER,              -- Unix seconds; NULL while valid
	expires    INTEGER,              -- Unix seconds
	mac        BLOB                  -- HMAC-SHA256 of the row (staffRow.mac)
) STRICT;
CREATE TABLE seal (
	id  INTEGER PRIMARY KEY CHECK (id = 0),
	mac BLOB NOT NULL                -- HMAC-SHA256 of every row's ID and MAC (seal)
) STRICT`

// ErrStaffTampered is what a credential that fails its MAC, or a store
// whose seal does not match its rows, reads as: the file was changed by
// something other than medfed. It is the centre's fault, not the caller's.
var ErrStaffTampered = errors.New("staff store: a credential was changed outside medfed (run medfed check)")

// staffSetUp creates the store's tables in a new file, or brings a store
// made by an older medfed up to date, in one transaction. A store made
// before rows carried MACs has every row MACed and the table sealed, and
// a token made before tokens expired gets the default lifetime from now
// (an upgrade locks no one out and leaves no token valid for ever). That
// happens once, as the mac column is added: once it exists, a row without
// a valid MAC is one that was tampered with.
func staffSetUp(ctx context.Context, db *sql.DB, key []byte) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	columns := map[string]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT name FROM pragma_table_info('staff')`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		columns[name] = true
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	switch {
	case len(columns) == 0:
		if _, err := tx.ExecContext(ctx, staffSchema); err != nil {
			return err
		}
	case !columns["mac"]:
		if !columns["expires"] {
			if _, err := tx.ExecContext(ctx, `ALTER TABLE staff ADD COLUMN expires INTEGER`); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE staff SET expires = ? WHERE expires IS NULL`, time.Now().Add(DefaultTokenLifetime).Unix()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `ALTER TABLE staff ADD COLUMN mac BLOB;
			CREATE TABLE seal (id INTEGER PRIMARY KEY CHECK (id = 0), mac BLOB NOT NULL) STRICT`); err != nil {
			return err
		}
		all, err := staffRows(ctx, tx, "")
		if err != nil {
			return err
		}
		for _, r := range all {
			if _, err := tx.ExecContext(ctx, `UPDATE staff SET mac = ? WHERE id = ?`, r.mac(key), r.ID); err != nil {
				return err
			}
		}
	default:
		return nil // up to date: nothing is written at open
	}
	if err := staffTable.Reseal(ctx, tx, key); err != nil {
		return err
	}
	return tx.Commit()
}

// A data directory's upgrade brings the staff store up to date too.
func init() {
	centre.RegisterFileUpgrade(StaffFile, func(_ context.Context, dir string, key []byte) error {
		s, err := OpenStaff(dir, key)
		if err != nil {
			return err
		}
		return s.Close()
	})
}

// OpenStaff opens (creating it if needed) the staff store of the centre
// whose data directory is dir; key is the centre's row key for StaffFile
// (centre.RowKey). A running node and the medfed command may both have it
// open: SQLite serialises their writes.
func OpenStaff(dir string, key []byte) (*StaffStore, error) {
	st, err := sealed.Open(context.Background(), filepath.Join(dir, StaffFile), staffTable, key, func(ctx context.Context, db *sql.DB) error {
		return staffSetUp(ctx, db, key)
	})
	if err != nil {
		return nil, fmt.Errorf("staff store: %w", err)
	}
	return &StaffStore{store: st, key: key}, nil
}

// checkSeal returns ErrStaffTampered when the seal does not match the
// rows; it reads them only when the file changed since the last call.
func (s *StaffStore) checkSeal(ctx context.Context) error {
	ok, err := s.store.Holds(ctx)
	if err != nil {
		return fmt.Errorf("staff store: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w: the seal does not match the rows", ErrStaffTampered)
	}
	return nil
}

// Close closes the store.
func (s *StaffStore) Close() error {
	return s.store.Close()
}

// ValidRole reports whether role is one of Roles.
func ValidRole(role string) bool { return slices.Contains(Roles, role) }

// Add issues a credential for a new staff member, for the default
// lifetime, and returns its bearer token, which is not kept: only its hash
// is.
func (s *StaffStore) Add(ctx context.Context, role, label string) (token string, st Staff, err error) {
	return s.AddFor(ctx, role, label, DefaultTokenLifetime)
}

// checkLifetime refuses a lifetime outside (0, MaxTokenLifetime].
func checkLifetime(d time.Duration) error {
	if d <= 0 || d > MaxTokenLifetime {
		return fmt.Errorf("%w: a token's lifetime is more than 0 and at most %v, not %v", node.ErrInvalid, MaxTokenLifetime, d)
	}
	return nil
}

// AddFor is Add with a lifetime of the token's own.
func (s *StaffStore) AddFor(ctx context.Context, role, label string, lifetime time.Duration) (token string, st Staff, err error) {
	if err := checkLifetime(lifetime); err != nil {
		return "", Staff{}, fmt.Errorf("staff: %w", err)
	}
	if !ValidRole(role) {
		return "", Staff{}, fmt.Errorf("staff: role %q is not one of %s", role, strings.Join(Roles, ", "))
	}
	if len(label) > 200 || strings.ContainsFunc(label, func(r rune) bool { return r < ' ' }) {
		return "", Staff{}, errors.New("staff: a label is at most 200 printable characters")
	}
	var id [16]byte
	var secret [32]byte
	rand.Read(id[:])
	rand.Read(secret[:])
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
	h := sha256.Sum256([]byte(token))
	r := staffRow{Staff: Staff{ID: hex.EncodeToString(id[:]), Role: role, Label: label, Created: time.Now().UTC().Truncate(time.Second)}, tokenHash: h[:]}
	r.Expires = r.Created.Add(lifetime)
	err = s.write(ctx, func(tx *sql.Tx, intact bool) error {
		if !intact {
			return ErrStaffTampered
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO staff (id, role, label, token_hash, created, expires, mac) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.Role, r.Label, r.tokenHash, r.Created.Unix(), r.Expires.Unix(), r.mac(s.key))
		return err
	})
	if err != nil {
		return "", Staff{}, fmt.Errorf("staff add: %w", err)
	}
	return token, r.Staff, nil
}

// Authenticate returns the staff member a bearer token belongs to. A
// credential whose row fails its MAC, or any credential of a store whose
// seal does not match its rows, is ErrStaffTampered: it authenticates no
// one, and the API answers 500, logging an incident.
func (s *StaffStore) Authenticate(ctx context.Context, token string) (Staff, error) {
	if !strings.HasPrefix(token, tokenPrefix) || len(token) > 128 {
		return Staff{}, ErrUnknownStaff
	}
	if err := s.checkSeal(ctx); err != nil {
		return Staff{}, err
	}
	h := sha256.Sum256([]byte(token))
	rs, err := staffRows(ctx, s.store.DB, "WHERE token_hash = ?", h[:])
	switch {
	case err != nil:
		return Staff{}, err
	case len(rs) == 0:
		return Staff{}, ErrUnknownStaff
	case !rs[0].valid(s.key):
		return Staff{}, fmt.Errorf("%w: staff ID %s", ErrStaffTampered, rs[0].ID)
	case !rs[0].Revoked.IsZero():
		return Staff{}, ErrUnknownStaff
	case !time.Now().Before(rs[0].Expires):
		return rs[0].Staff, ErrExpiredStaff
	}
	return rs[0].Staff, nil
}

// Role returns the role of staff member id, for a system that acts for
// them (an EHR's access token names its user by staff ID: node/smart).
// A revoked credential, or one that fails its MAC, names no one; a token
// past its lifetime does not matter here, since the system, not the
// token, authenticated the person.
func (s *StaffStore) Role(ctx context.Context, id string) (string, error) {
	if err := s.checkSeal(ctx); err != nil {
		return "", err
	}
	r, err := liveRow(ctx, s.store.Reader, id)
	switch {
	case err != nil:
		return "", err
	case !r.valid(s.key):
		return "", fmt.Errorf("%w: staff ID %s", ErrStaffTampered, r.ID)
	}
	return r.Role, nil
}

// Renew gives a staff member's token lifetime from now: the same token
// works on. A revoked credential stays revoked; one that fails its MAC,
// or a store whose seal does not match, is not renewed.
func (s *StaffStore) Renew(ctx context.Context, id string, lifetime time.Duration) (Staff, error) {
	if err := checkLifetime(lifetime); err != nil {
		return Staff{}, fmt.Errorf("staff renew: %w", err)
	}
	var r staffRow
	err := s.write(ctx, func(tx *sql.Tx, intact bool) error {
		var err error
		if r, err = liveRow(ctx, tx, id); err != nil {
			return err
		}
		if !intact || !r.valid(s.key) {
			return ErrStaffTampered
		}
		r.Expires = time.Now().Add(lifetime).UTC().Truncate(time.Second)
		_, err = tx.ExecContext(ctx, `UPDATE staff SET expires = ?, mac = ? WHERE id = ?`, r.Expires.Unix(), r.mac(s.key), id)
		return err
	})
	if err != nil {
		return Staff{}, fmt.Errorf("staff renew: %w", err)
	}
	return r.Staff, nil
}

// List returns every staff member, revoked ones included, oldest first;
// one whose row fails its MAC is marked Tampered.
func (s *StaffStore) List(ctx context.Context) ([]Staff, error) {
	rs, err := staffRows(ctx, s.store.DB, "ORDER BY created, id")
	if err != nil {
		return nil, fmt.Errorf("staff list: %w", err)
	}
	out := make([]Staff, len(rs))
	for i, r := range rs {
		out[i] = r.Staff
		out[i].Tampered = !r.valid(s.key)
	}
	return out, nil
}

// Revoke ends a staff member's credential at once. Revoking is always
// safe, so a row that fails its MAC is revoked too; in a store whose seal
// does not match its rows, the seal is left as it is for CheckStaff to name.
func (s *StaffStore) Revoke(ctx context.Context, id string) error {
	err := s.write(ctx, func(tx *sql.Tx, intact bool) error {
		r, err := liveRow(ctx, tx, id)
		if err != nil {
			return err
		}
		// A row that fails its MAC keeps the MAC it has: revoked, it
		// authenticates no one, and it stays evidence for medfed check.
		valid := r.valid(s.key)
		r.Revoked = time.Now().UTC().Truncate(time.Second)
		mac := r.stored
		if valid {
			mac = r.mac(s.key)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE staff SET revoked = ?, mac = ? WHERE id = ?`, r.Revoked.Unix(), mac, id); err != nil {
			return err
		}
		if !intact {
			return sealed.ErrKeep
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("staff revoke: %w", err)
	}
	return nil
}

// CheckStaff checks the MAC of every row of the staff store of the data
// directory dir, and its seal, under key, the store's row key: the full
// check of staff.db that medfed check runs. It opens the file read-only
// and returns how many credentials it holds, or a *centre.DataError
// naming the row, or the seal. A directory without staff.db has none.
func CheckStaff(ctx context.Context, dir string, key []byte) (int, error) {
	path := filepath.Join(dir, StaffFile)
	var n int
	_, err := sealed.Check(ctx, path, func(tx *sql.Tx) error {
		var macs int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('staff') WHERE name = 'mac'`).Scan(&macs); err != nil {
			return fmt.Errorf("staff check: %w", err)
		}
		if macs == 0 {
			return fmt.Errorf("staff check: %s is from before credentials carried MACs: any medfed staff command, or starting the node, brings it up to date", path)
		}
		rs, err := staffRows(ctx, tx, "ORDER BY id")
		if err != nil { // a row that does not read (a NULL where medfed writes none) was changed too
			return &centre.DataError{File: StaffFile, Table: "staff", Row: "the rows", Reason: err.Error()}
		}
		for _, r := range rs {
			if !r.valid(key) {
				return &centre.DataError{File: StaffFile, Table: "staff", Row: "staff ID " + r.ID, Reason: "the row fails its MAC: changed or added without the centre's key"}
			}
		}
		if err := staffTable.Verify(ctx, tx, key); err != nil {
			return &centre.DataError{File: StaffFile, Table: "seal", Row: "the seal", Reason: err.Error()}
		}
		n = len(rs)
		return nil
	})
	return n, err
}

// write runs change in a transaction and seals the table again
// (sealed.Table.Write): change returns sealed.ErrKeep to commit without.
func (s *StaffStore) write(ctx context.Context, change func(tx *sql.Tx, intact bool) error) error {
	return s.store.Write(ctx, change)
}

// staffRow is a staff row as stored.
type staffRow struct {
	Staff
	tokenHash []byte
	stored    []byte // the MAC in the row
}

// mac is the HMAC-SHA256, under key, of every column of the row but the
// MAC, each length-prefixed.
func (r staffRow) mac(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	field := func(b []byte) { sealed.Field(m, b) }
	revoked := int64(0)
	if !r.Revoked.IsZero() {
		revoked = r.Revoked.Unix()
	}
	field([]byte("medfed staff row v1"))
	field([]byte(r.ID))
	field([]byte(r.Role))
	field([]byte(r.Label))
	field(r.tokenHash)
	for _, t := range []int64{r.Created.Unix(), revoked, r.Expires.Unix()} {
		field(binary.BigEndian.AppendUint64(nil, uint64(t)))
	}
	return m.Sum(nil)
}

func (r staffRow) valid(key []byte) bool { return hmac.Equal(r.stored, r.mac(key)) }

// liveRow reads credential id, refusing one unknown or revoked.
func liveRow(ctx context.Context, q querier, id string) (staffRow, error) {
	rs, err := staffRows(ctx, q, "WHERE id = ?", id)
	switch {
	case err != nil:
		return staffRow{}, err
	case len(rs) == 0 || !rs[0].Revoked.IsZero():
		return staffRow{}, ErrUnknownStaff
	}
	return rs[0], nil
}

// querier is a database or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// staffRows reads the rows that tail (a WHERE and ORDER clause) selects.
func staffRows(ctx context.Context, q querier, tail string, args ...any) ([]staffRow, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, role, label, token_hash, created, revoked, expires, mac FROM staff `+tail, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []staffRow
	for rows.Next() {
		var (
			r                staffRow
			created, expires int64
			revoked          sql.NullInt64
		)
		if err := rows.Scan(&r.ID, &r.Role, &r.Label, &r.tokenHash, &created, &revoked, &expires, &r.stored); err != nil {
			return nil, err
		}
		r.Created = time.Unix(created, 0).UTC()
		r.Expires = time.Unix(expires, 0).UTC()
		if revoked.Valid {
			r.Revoked = time.Unix(revoked.Int64, 0).UTC()
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
