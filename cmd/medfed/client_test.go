package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/medfed/medfed/node/centre"
)

// clientCentre writes a centre's key and a configuration naming its data
// directory, all medfed client needs, and returns the configuration's
// path and the directory.
func clientCentre(t *testing.T) (config, dir string) {
	t.Helper()
	dir = t.TempDir()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, centre.KeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	config = filepath.Join(t.TempDir(), "centre-a.yaml")
	if err := os.WriteFile(config, []byte("centre:\n  name: centre-a\nfederation:\n  id: medfed-test\ndata:\n  dir: "+dir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return config, dir
}

// writeJWKS writes a JWK Set of key, as its public half unless private.
func writeJWKS(t *testing.T, key *ecdsa.PrivateKey, private bool) string {
	t.Helper()
	k := jose.JSONWebKey{Key: key, KeyID: "ehr-1", Algorithm: "ES384"}
	if !private {
		k = k.Public()
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestClientAddListRevoke(t *testing.T) {
	config, _ := clientCentre(t)
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	public, private := writeJWKS(t, key, false), writeJWKS(t, key, true)

	code, out, errOut := runCLI(t, "client", "add", "--config", config, "--jwks", public,
		"--scope", "system/Patient.rs system/DocumentReference.crs", "--role", "clinician,registrar", "--label", "ward 7 EHR")
	id := strings.TrimSpace(out)
	if code != exitOK || len(id) != 32 || strings.Count(out, "\n") != 1 {
		t.Fatalf("add exited %d, stdout %q (want the client ID alone): %s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "client", "list", "--config", config)
	if code != exitOK || !strings.Contains(out, id) || !strings.Contains(out, "ehr-1 (ES384)") || !strings.Contains(out, "clinician,registrar") || !strings.Contains(out, "ward 7 EHR") {
		t.Fatalf("list exited %d: %s%s", code, out, errOut)
	}

	refused := []struct {
		name string
		args []string
		code int
		says string
	}{
		{"a private key", []string{"add", "--jwks", private, "--scope", "system/Patient.rs", "--role", "clinician"}, exitUsage, "private"},
		{"no --jwks", []string{"add", "--scope", "system/Patient.rs", "--role", "clinician"}, exitUsage, "--jwks"},
		{"no --scope", []string{"add", "--jwks", public, "--role", "clinician"}, exitUsage, "--scope"},
		{"no --role", []string{"add", "--jwks", public, "--scope", "system/Patient.rs"}, exitUsage, "--role"},
		{"an unknown role", []string{"add", "--jwks", public, "--scope", "system/Patient.rs", "--role", "nurse"}, exitUsage, "nurse"},
		{"a patient scope", []string{"add", "--jwks", public, "--scope", "patient/Patient.rs", "--role", "clinician"}, exitUsage, "system/"},
		{"revoke without --id", []string{"revoke"}, exitUsage, "--id"},
		{"revoke of no ID", []string{"revoke", "--id", "ward-7"}, exitUsage, "32 hex"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append(append([]string{"client"}, tt.args[:1]...), append([]string{"--config", config}, tt.args[1:]...)...)...)
			if code != tt.code || !strings.Contains(errOut, tt.says) || out != "" {
				t.Fatalf("exited %d, stdout %q, stderr %q", code, out, errOut)
			}
		})
	}

	if code, out, errOut := runCLI(t, "client", "revoke", "--config", config, "--id", id); code != exitOK || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke exited %d: %s%s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "client", "revoke", "--config", config, "--id", id); code != exitFailure || !strings.Contains(errOut, "unknown or revoked client") {
		t.Fatalf("revoke again exited %d: %s", code, errOut)
	}
	// The list shows when it was revoked: CLIENT ID, ADDED (a date and a
	// time), then REVOKED.
	code, out, _ = runCLI(t, "client", "list", "--config", config)
	var line []string
	for l := range strings.Lines(out) {
		if strings.HasPrefix(l, id) {
			line = strings.Fields(l)
		}
	}
	if code != exitOK || len(line) < 4 || line[3] == "-" {
		t.Fatalf("list after revoke exited %d: %s", code, out)
	}
}

func TestClientListReportsATamperedRow(t *testing.T) {
	config, dir := clientCentre(t)
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "client", "add", "--config", config, "--jwks", writeJWKS(t, key, false), "--scope", "system/Patient.rs", "--role", "clinician")
	if code != exitOK {
		t.Fatalf("add exited %d: %s", code, errOut)
	}
	id := strings.TrimSpace(out)
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "clients.db")+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE clients SET roles = 'clinician,admin' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, "client", "list", "--config", config)
	if code != exitFailure || !strings.Contains(out, id+" (TAMPERED") || !strings.Contains(errOut, "changed outside medfed") {
		t.Fatalf("list exited %d: %s%s", code, out, errOut)
	}
}
