package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	_ "github.com/mattn/go-sqlite3" // the SQLite driver

	"github.com/medfed/medfed/node"
)

// StaffFile is the file in a centre's data directory that holds its staff
// credentials: never a token, only its SHA-256.
const StaffFile = "staff.db"

// Roles are the staff roles the API knows; each route names the roles it
// serves.
var Roles = []string{"admin", "registrar", "clinician", "researcher", "privacy-officer"}

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
type StaffStore struct {
	db *sql.DB
}

var staffSchema = `CREATE TABLE IF NOT EXISTS staff (
	id         TEXT PRIMARY KEY,     -- 32 hex digits
	role       TEXT NOT NULL,
	label      TEXT NOT NULL,
	token_hash BLOB NOT NULL UNIQUE, -- SHA-256 of the bearer token
	created    INTEGER NOT NULL,     -- Unix seconds
	revoked    INTEGER,              -- Unix seconds; NULL while valid
	expires    INTEGER               -- Unix seconds
) STRICT`

// staffExpiry brings a store made before tokens expired up to date: its
// tokens get the default lifetime from now, so that an upgrade locks no
// one out and leaves no token valid for ever.
func staffExpiry(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var has int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('staff') WHERE name = 'expires'`).Scan(&has); err != nil {
		return err
	}
	if has == 0 {
		if _, err := tx.ExecContext(ctx, `ALTER TABLE staff ADD COLUMN expires INTEGER`); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE staff SET expires = ? WHERE expires IS NULL`, time.Now().Add(DefaultTokenLifetime).Unix()); err != nil {
		return err
	}
	return tx.Commit()
}

// OpenStaff opens (creating it if needed) the staff store of the centre
// whose data directory is dir. A running node and the medfed command may
// both have it open: SQLite serialises their writes.
func OpenStaff(dir string) (*StaffStore, error) {
	path := filepath.Join(dir, StaffFile)
	// Created private before SQLite opens it: it holds token hashes and
	// labels (SQLite gives its journal files the same mode).
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("staff store: %w", err)
	}
	// An existing file is made private too: it may hold staff's names.
	if err := errors.Join(f.Chmod(0o600), f.Close()); err != nil {
		return nil, fmt.Errorf("staff store: %w", err)
	}
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath()}
	u.RawQuery = "_journal_mode=WAL&_synchronous=FULL&_busy_timeout=5000&mode=rwc"
	db, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return nil, fmt.Errorf("staff store: %w", err)
	}
	if _, err := db.Exec(staffSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("staff store %s: %w", path, err)
	}
	if err := staffExpiry(context.Background(), db); err != nil {
		db.Close()
		return nil, fmt.Errorf("staff store %s: %w", path, err)
	}
	return &StaffStore{db: db}, nil
}

// Close closes the store.
func (s *StaffStore) Close() error { return s.db.Close() }

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
	st = Staff{ID: hex.EncodeToString(id[:]), Role: role, Label: label, Created: time.Now().UTC().Truncate(time.Second)}
	st.Expires = st.Created.Add(lifetime)
	h := sha256.Sum256([]byte(token))
	if _, err := s.db.ExecContext(ctx, `INSERT INTO staff (id, role, label, token_hash, created, expires) VALUES (?, ?, ?, ?, ?, ?)`,
		st.ID, st.Role, st.Label, h[:], st.Created.Unix(), st.Expires.Unix()); err != nil {
		return "", Staff{}, fmt.Errorf("staff add: %w", err)
	}
	return token, st, nil
}

// Authenticate returns the staff member a bearer token belongs to.
func (s *StaffStore) Authenticate(ctx context.Context, token string) (Staff, error) {
	if !strings.HasPrefix(token, tokenPrefix) || len(token) > 128 {
		return Staff{}, ErrUnknownStaff
	}
	h := sha256.Sum256([]byte(token))
	st, err := s.scan(s.db.QueryRowContext(ctx, `SELECT id, role, label, created, revoked, expires FROM staff WHERE token_hash = ?`, h[:]))
	switch {
	case errors.Is(err, sql.ErrNoRows) || (err == nil && !st.Revoked.IsZero()):
		return Staff{}, ErrUnknownStaff
	case err == nil && !time.Now().Before(st.Expires):
		return st, ErrExpiredStaff
	}
	return st, err
}

// Renew gives a staff member's token lifetime from now: the same token
// works on. A revoked credential stays revoked.
func (s *StaffStore) Renew(ctx context.Context, id string, lifetime time.Duration) (Staff, error) {
	if err := checkLifetime(lifetime); err != nil {
		return Staff{}, fmt.Errorf("staff renew: %w", err)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE staff SET expires = ? WHERE id = ? AND revoked IS NULL`, time.Now().Add(lifetime).Unix(), id)
	if err != nil {
		return Staff{}, fmt.Errorf("staff renew: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return Staff{}, fmt.Errorf("staff renew: %w", err)
	} else if n == 0 {
		return Staff{}, fmt.Errorf("staff renew: %w", ErrUnknownStaff)
	}
	st, err := s.scan(s.db.QueryRowContext(ctx, `SELECT id, role, label, created, revoked, expires FROM staff WHERE id = ?`, id))
	if err != nil {
		return Staff{}, fmt.Errorf("staff renew: %w", err)
	}
	return st, nil
}

// List returns every staff member, revoked ones included, oldest first.
func (s *StaffStore) List(ctx context.Context) ([]Staff, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, role, label, created, revoked, expires FROM staff ORDER BY created, id`)
	if err != nil {
		return nil, fmt.Errorf("staff list: %w", err)
	}
	defer rows.Close()
	var out []Staff
	for rows.Next() {
		st, err := s.scan(rows)
		if err != nil {
			return nil, fmt.Errorf("staff list: %w", err)
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// Revoke ends a staff member's credential at once.
func (s *StaffStore) Revoke(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE staff SET revoked = ? WHERE id = ? AND revoked IS NULL`, time.Now().Unix(), id)
	if err != nil {
		return fmt.Errorf("staff revoke: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("staff revoke: %w", err)
	} else if n == 0 {
		return fmt.Errorf("staff revoke: %w", ErrUnknownStaff)
	}
	return nil
}

type scanner interface{ Scan(...any) error }

func (s *StaffStore) scan(r scanner) (Staff, error) {
	var (
		st               Staff
		created, expires int64
		revoked          sql.NullInt64
	)
	if err := r.Scan(&st.ID, &st.Role, &st.Label, &created, &revoked, &expires); err != nil {
		return Staff{}, err
	}
	st.Created = time.Unix(created, 0).UTC()
	st.Expires = time.Unix(expires, 0).UTC()
	if revoked.Valid {
		st.Revoked = time.Unix(revoked.Int64, 0).UTC()
	}
	return st, nil
}
