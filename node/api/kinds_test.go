package api_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest"
)

// failing is a centre whose operations fail with one error: the routes'
// answers to each kind of error are the API's own business, and need no
// federation to test. Operations it does not implement panic if called.
type failing struct {
	api.Centre
	err error
}

func (f failing) ShowConsent(context.Context, ledger.Pseudonym) (centre.ConsentView, error) {
	return centre.ConsentView{}, f.err
}

func (f failing) Ready() (centre.Readiness, error) { return centre.Readiness{}, f.err }

// Every kind of error a centre returns reaches an HTTP client as its
// status and an OperationOutcome from which the client reads the same
// kind back: the one mapping, both ways. (Errors of no kind, the centre's
// own failures, are TestAbuseInternalErrorIsAnIncident's.)
func TestErrorKindsAcrossHTTP(t *testing.T) {
	staff, err := api.OpenStaff(t.TempDir(), rowKey(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { staff.Close() })
	tok, _, err := staff.Add(context.Background(), "clinician", "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		err    error
		status int
		kind   node.Kind
	}{
		{"invalid", fmt.Errorf("consent: %w: a bad field", node.ErrInvalid), http.StatusBadRequest, node.Invalid},
		{"forbidden", node.E(node.Forbidden, "consent signature"), http.StatusForbidden, node.Forbidden},
		{"not found", fmt.Errorf("%w: no such entry", node.ErrNotFound), http.StatusNotFound, node.NotFound},
		{"conflict", node.E(node.Conflict, "consent conflict"), http.StatusConflict, node.Conflict},
		{"unavailable", fmt.Errorf("sync: %w", node.ErrUnavailable), http.StatusServiceUnavailable, node.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := api.New(api.Options{Node: failing{err: tt.err}, Staff: staff})
			if err != nil {
				t.Fatal(err)
			}
			hs := httptest.NewServer(srv.Handler())
			defer hs.Close()
			status, body := get(t, hs.URL+"/v1/consent/"+fmt.Sprintf("%064x", 7), tok)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			back := api.ErrorOf(status, body)
			if node.KindOf(back) != tt.kind || !strings.HasPrefix(back.Error(), tt.err.Error()) {
				t.Errorf("read back as %v %q, want %v %q", node.KindOf(back), back, tt.kind, tt.err)
			}
		})
	}
}

// A centre's own failure (an error of no kind, or a deadline passed
// inside it) reaches the caller, authenticated or not, as a 500 or a 504
// with an incident ID and none of the error's text; the centre's log has
// the text under the same ID, for the operator.
func TestAbuseInternalErrorIsAnIncident(t *testing.T) {
	secret := "disk full at /var/lib/medfed/ledger.db"
	tests := []struct {
		name   string
		err    error
		status int
		kind   node.Kind
	}{
		{"no kind", errors.New(secret), http.StatusInternalServerError, node.Internal},
		{"deadline", fmt.Errorf("%s: %w", secret, context.DeadlineExceeded), http.StatusGatewayTimeout, node.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &nodetest.Log{}
			srv, err := api.New(api.Options{Node: failing{err: tt.err}, Staff: openStaff(t), Logger: slog.New(slog.NewTextHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			hs := httptest.NewServer(srv.Handler())
			defer hs.Close()
			status, body := get(t, hs.URL+"/readyz", "") // public: no token at all
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			back := api.ErrorOf(status, body)
			id := regexp.MustCompile(`incident ([0-9a-f]{16})`).FindStringSubmatch(back.Error())
			if node.KindOf(back) != tt.kind || id == nil || strings.Contains(string(body), "disk full") {
				t.Fatalf("the caller read %v %q, want kind %v with an incident and no internal text", node.KindOf(back), back, tt.kind)
			}
			if l := logs.String(); !strings.Contains(l, "incident="+id[1]) || !strings.Contains(l, secret) {
				t.Fatalf("the log does not tell incident %s's error: %s", id[1], l)
			}
		})
	}
}

func openStaff(t *testing.T) *api.StaffStore {
	t.Helper()
	staff, err := api.OpenStaff(t.TempDir(), rowKey(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { staff.Close() })
	return staff
}

// A staff token stops working at the end of its lifetime (401, saying
// so), works again once renewed, and a revoked one stays refused, renewed
// or not. The routes behind the token are never reached meanwhile.
func TestAbuseExpiredStaffToken(t *testing.T) {
	ctx := context.Background()
	staff := openStaff(t)
	srv, err := api.New(api.Options{Node: failing{err: fmt.Errorf("%w: no contract", node.ErrNotFound)}, Staff: staff})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	consentOf := func(tok string) (int, string) {
		t.Helper()
		status, body := get(t, hs.URL+"/v1/consent/"+fmt.Sprintf("%064x", 7), tok)
		return status, string(body)
	}
	for _, d := range []time.Duration{0, -time.Hour, api.MaxTokenLifetime + time.Hour} {
		if _, _, err := staff.AddFor(ctx, "clinician", "", d); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("a token for %v: %v, want it refused", d, err)
		}
	}
	// Dated to the second it was made in, a token of 1 s could expire
	// at once: 5 s leave the fresh token's request time on a loaded
	// machine.
	tok, st, err := staff.AddFor(ctx, "clinician", "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if status, body := consentOf(tok); status != http.StatusNotFound {
		t.Fatalf("a fresh token: %d %s, want the route's own 404", status, body)
	}
	time.Sleep(time.Until(st.Expires) + 50*time.Millisecond)
	if status, body := consentOf(tok); status != http.StatusUnauthorized || !strings.Contains(body, "expired") {
		t.Fatalf("an expired token: %d %s, want 401 saying it expired", status, body)
	}
	if _, err := staff.Renew(ctx, st.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	if status, body := consentOf(tok); status != http.StatusNotFound {
		t.Fatalf("a renewed token: %d %s, want the route's own 404", status, body)
	}
	if err := staff.Revoke(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := staff.Renew(ctx, st.ID, time.Hour); !errors.Is(err, api.ErrUnknownStaff) {
		t.Fatalf("renewing a revoked credential: %v, want it refused", err)
	}
	if status, body := consentOf(tok); status != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
		t.Fatalf("a revoked token: %d %s, want 401", status, body)
	}
}

// A staff store from before tokens expired gives its tokens the default
// lifetime from the upgrade: nobody is locked out, no token lives for ever.
// Its rows get their MACs in the same upgrade.
func TestStaffStoreUpgradeGivesTokensALifetime(t *testing.T) {
	dir, key := t.TempDir(), rowKey(t)
	db, err := sql.Open("sqlite3", filepath.Join(dir, api.StaffFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE staff (id TEXT PRIMARY KEY, role TEXT NOT NULL, label TEXT NOT NULL, token_hash BLOB NOT NULL UNIQUE,
		created INTEGER NOT NULL, revoked INTEGER) STRICT;
		INSERT INTO staff VALUES ('00112233445566778899aabbccddeeff', 'clinician', 'before', x'00', 1700000000, NULL)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	staff, err := api.OpenStaff(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	defer staff.Close()
	list, err := staff.List(context.Background())
	if err != nil || len(list) != 1 {
		t.Fatalf("%+v, %v", list, err)
	}
	if left := time.Until(list[0].Expires); left < api.DefaultTokenLifetime-time.Minute || left > api.DefaultTokenLifetime {
		t.Fatalf("an old token expires in %v, want the default lifetime %v", left, api.DefaultTokenLifetime)
	}
	// Its rows are MACed and the table sealed, once: the full check passes.
	if n, err := api.CheckStaff(context.Background(), dir, key); err != nil || n != 1 || list[0].Tampered {
		t.Fatalf("check after the upgrade: %d rows, %v, tampered %v", n, err, list[0].Tampered)
	}
}

// get reads url with a staff token (none when tok is ""), and returns the
// status and the body.
func get(t *testing.T, url, tok string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}
