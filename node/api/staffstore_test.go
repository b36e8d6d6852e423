package api_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/nodetest"
)

// rowKey is a row key for a staff store of a test's own, in a directory
// with no centre.key.
func rowKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// The staff store's own writes, from this store and from another one on
// the same file (a medfed staff command beside the running node), keep
// every row's MAC and the seal good: the full check passes and tokens
// work.
func TestStaffStoreWritesKeepItSealed(t *testing.T) {
	ctx := context.Background()
	dir, key := t.TempDir(), rowKey(t)
	node, err := api.OpenStaff(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	tok, st, err := node.Add(ctx, "clinician", "on the ward")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.Authenticate(ctx, tok); err != nil {
		t.Fatal(err)
	}
	cli, err := api.OpenStaff(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	other, _, err := cli.Add(ctx, "registrar", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Renew(ctx, st.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, tk := range []string{tok, other} {
		if _, err := node.Authenticate(ctx, tk); err != nil {
			t.Fatalf("after another store's writes: %v", err)
		}
	}
	if n, err := api.CheckStaff(ctx, dir, key); err != nil || n != 2 {
		t.Fatalf("check: %d rows, %v; want 2, nil", n, err)
	}
	wrong, err := api.OpenStaff(dir, rowKey(t))
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	if _, err := wrong.Authenticate(ctx, tok); !errors.Is(err, api.ErrStaffTampered) {
		t.Fatalf("another centre's key: %v, want ErrStaffTampered", err)
	}
}

// TestAbuseStaffStoreTampered: someone with write access to staff.db but
// not centre.key raises a role, adds a credential, stretches a lifetime,
// undoes a revocation by putting the row back as it was, or deletes a
// row. The credential authenticates no one (a broken seal makes the whole
// store fail closed): the API answers a 500 with an incident ID and logs
// why; it cannot be renewed into a good one, and the full check names the
// table.
func TestAbuseStaffStoreTampered(t *testing.T) {
	ctx := context.Background()
	planted := "mfs_" + strings.Repeat("A", 43)
	plantedHash := sha256.Sum256([]byte(planted))
	for _, tt := range []struct {
		name, table string
		tamper      func(db *sql.DB, clinician string) error
		victim      func(clinicianTok string) string // the token that must not work
	}{
		{"role raised", "staff", func(db *sql.DB, id string) error {
			return exec1(db, `UPDATE staff SET role = 'admin' WHERE id = ?`, id)
		}, func(tok string) string { return tok }},
		{"lifetime stretched", "staff", func(db *sql.DB, id string) error {
			return exec1(db, `UPDATE staff SET expires = expires + 86400*365 WHERE id = ?`, id)
		}, func(tok string) string { return tok }},
		{"credential planted", "staff", func(db *sql.DB, id string) error {
			return exec1(db, `INSERT INTO staff SELECT 'ffeeddccbbaa99887766554433221100', 'admin', '', ?, created, NULL, expires, mac FROM staff WHERE id = ?`, plantedHash[:], id)
		}, func(string) string { return planted }},
		{"revocation undone", "seal", func(db *sql.DB, id string) error {
			return nil // see below: the store revokes, then the old row is put back
		}, func(tok string) string { return tok }},
		{"row deleted", "seal", func(db *sql.DB, id string) error {
			return exec1(db, `DELETE FROM staff WHERE id = ?`, id)
		}, func(tok string) string { return tok }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, key := t.TempDir(), rowKey(t)
			staff, err := api.OpenStaff(dir, key)
			if err != nil {
				t.Fatal(err)
			}
			defer staff.Close()
			tok, st, err := staff.Add(ctx, "clinician", "")
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := staff.Add(ctx, "admin", ""); err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, api.StaffFile)+"?_busy_timeout=5000")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if tt.name == "revocation undone" {
				var before []any
				row := db.QueryRow(`SELECT role, label, token_hash, created, expires, mac FROM staff WHERE id = ?`, st.ID)
				before = make([]any, 6)
				for i := range before {
					before[i] = new(any)
				}
				if err := row.Scan(before...); err != nil {
					t.Fatal(err)
				}
				if err := staff.Revoke(ctx, st.ID); err != nil {
					t.Fatal(err)
				}
				if err := exec1(db, `UPDATE staff SET role = ?, label = ?, token_hash = ?, created = ?, revoked = NULL, expires = ?, mac = ? WHERE id = ?`,
					append(derefAll(before), st.ID)...); err != nil {
					t.Fatal(err)
				}
			} else if err := tt.tamper(db, st.ID); err != nil {
				t.Fatal(err)
			}

			victim := tt.victim(tok)
			if _, err := staff.Authenticate(ctx, victim); !errors.Is(err, api.ErrStaffTampered) {
				t.Fatalf("authenticate: %v, want ErrStaffTampered", err)
			}
			// Over HTTP: a 500 with an incident ID, never the route, and
			// the log says what happened.
			logs := &nodetest.Log{}
			srv, err := api.New(api.Options{Node: failing{err: errors.New("the route was reached")}, Staff: staff, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			hs := httptest.NewServer(srv.Handler())
			defer hs.Close()
			status, body := get(t, hs.URL+"/v1/consent/"+fmt.Sprintf("%064x", 7), victim)
			if status != http.StatusInternalServerError || !strings.Contains(string(body), "incident") || strings.Contains(string(body), "staff") || !strings.Contains(logs.String(), "changed outside medfed") {
				t.Fatalf("a tampered credential: %d %s, want a 500 incident, logged: %s", status, body, logs)
			}
			if _, err := staff.Renew(ctx, st.ID, time.Hour); err == nil {
				t.Fatal("the tampered credential was renewed")
			}
			_, err = api.CheckStaff(ctx, dir, key)
			var de *centre.DataError
			if !errors.As(err, &de) || !errors.Is(err, centre.ErrTampered) || de.File != api.StaffFile || de.Table != tt.table {
				t.Fatalf("check: %v, want staff.db table %s named", err, tt.table)
			}
			if tt.table == "staff" && !strings.Contains(err.Error(), "staff ID ") {
				t.Fatalf("check: %v, want the row named", err)
			}
			if tt.table == "seal" {
				if _, _, err := staff.Add(ctx, "admin", ""); !errors.Is(err, api.ErrStaffTampered) {
					t.Fatalf("adding to a store whose seal is broken: %v, want ErrStaffTampered", err)
				}
			}
			// Revoking a row that fails its MAC, what medfed staff list
			// advises, keeps the evidence.
			if tt.table == "staff" {
				if err := staff.Revoke(ctx, st.ID); err != nil {
					t.Fatal(err)
				}
				if _, err := api.CheckStaff(ctx, dir, key); !errors.As(err, &de) || de.Table != tt.table {
					t.Fatalf("check after the revocation: %v, want table %s still named", err, tt.table)
				}
			}
		})
	}
}

// exec1 runs a statement that must change exactly one row.
func exec1(db *sql.DB, q string, args ...any) error {
	res, err := db.Exec(q, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errors.Join(err, errors.New(q+": not exactly one row changed"))
	}
	return nil
}

func derefAll(ps []any) []any {
	out := make([]any, len(ps))
	for i, p := range ps {
		out[i] = *(p.(*any))
	}
	return out
}
