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
	Revoked time.Time // zero while the credential is valid
}

// ErrUnknownStaff is returned for a token or staff ID the centre did not
// issue, or revoked.
var ErrUnknownStaff = errors.New("unknown or revoked staff credential")

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
	revoked    INTEGER               -- Unix seconds; NULL while valid
) STRICT`

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
	return &StaffStore{db: db}, nil
}

// Close closes the store.
func (s *StaffStore) Close() error { return s.db.Close() }

// ValidRole reports whether role is one of Roles.
func ValidRole(role string) bool { return slices.Contains(Roles, role) }

// Add issues a credential for a new staff member and returns its bearer
// token, which is not kept: only its hash is.
func (s *StaffStore) Add(ctx context.Context, role, label string) (token string, st Staff, err error) {
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
	h := sha256.Sum256([]byte(token))
	if _, err := s.db.ExecContext(ctx, `INSERT INTO staff (id, role, label, token_hash, created) VALUES (?, ?, ?, ?, ?)`,
		st.ID, st.Role, st.Label, h[:], st.Created.Unix()); err != nil {
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
	st, err := s.scan(s.db.QueryRowContext(ctx, `SELECT id, role, label, created, revoked FROM staff WHERE token_hash = ?`, h[:]))
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !st.Revoked.IsZero()) {
		return Staff{}, ErrUnknownStaff
	}
	return st, err
}

// List returns every staff member, revoked ones included, oldest first.
func (s *StaffStore) List(ctx context.Context) ([]Staff, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, role, label, created, revoked FROM staff ORDER BY created, id`)
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
		st      Staff
		created int64
		revoked sql.NullInt64
	)
	if err := r.Scan(&st.ID, &st.Role, &st.Label, &created, &revoked); err != nil {
		return Staff{}, err
	}
	st.Created = time.Unix(created, 0).UTC()
	if revoked.Valid {
		st.Revoked = time.Unix(revoked.Int64, 0).UTC()
	}
	return st, nil
}
