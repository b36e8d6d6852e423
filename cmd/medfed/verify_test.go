package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	_ "github.com/mattn/go-sqlite3"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/device"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/smart"
	"github.com/medfed/medfed/node/wire"
)

var (
	demoOnce sync.Once
	demoDir  string
	demoErr  string
)

// keptDemo runs medfed demo --keep once per test binary and returns a
// copy of what it kept, the test's own to change (TestMain removes the
// original).
func keptDemo(t *testing.T) string {
	t.Helper()
	demoOnce.Do(func() {
		dir, err := os.MkdirTemp("", "medfed-kept-demo-")
		if err != nil {
			demoErr = err.Error()
			return
		}
		demoDir = filepath.Join(dir, "kept")
		if code, _, errOut := runCLI(t, "demo", "--keep", demoDir); code != exitOK {
			demoErr = errOut
		}
	})
	if demoErr != "" {
		t.Fatalf("demo --keep: %s", demoErr)
	}
	dst := filepath.Join(t.TempDir(), "kept")
	copyDir(t, demoDir, dst)
	return dst
}

// copyDir copies the tree src to dst, keeping each file's mode (a
// centre's keys must stay 0600).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(to, info.Mode().Perm())
		}
		if !info.Mode().IsRegular() {
			return nil // the admin socket of a stopped node, if any
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAbuseLedgerRewrittenAndResigned: centre-b, holding its own key,
// rebuilds its ledger without one access entry (hiding it), signs every
// checkpoint again and keeps the notes its witnesses cosigned (or drops
// them). An auditor holding a copy of ledger.db and the charter chain,
// and no private key, catches it either way; the copy as it was verifies.
func TestAbuseLedgerRewrittenAndResigned(t *testing.T) {
	kept := keptDemo(t)
	src := filepath.Join(kept, "centre-b")
	ctx := context.Background()
	chain, err := centre.ChainOnLedger(ctx, filepath.Join(src, centre.LedgerFile))
	if err != nil || len(chain) == 0 {
		t.Fatalf("the charter chain on centre-b's ledger: %d versions, %v", len(chain), err)
	}
	audit := t.TempDir() // the auditor's: no centre.key in it
	charter := filepath.Join(audit, "charter.txt")
	if err := os.WriteFile(charter, federation.EncodeChain(chain), 0o644); err != nil {
		t.Fatal(err)
	}
	copyOf := filepath.Join(audit, "copy.db")
	copyFile(t, filepath.Join(src, centre.LedgerFile), copyOf)
	code, out, errOut := runCLI(t, "ledger", "verify", "--ledger", copyOf, "--charter", charter)
	if code != exitOK || !strings.Contains(out, "cosigned by the witness quorum") {
		t.Fatalf("the intact copy: exit %d: %s%s", code, out, errOut)
	}

	for _, keepCosigned := range []bool{true, false} {
		forged := filepath.Join(t.TempDir(), "ledger.db")
		rewrite(t, src, forged, keepCosigned)
		if !keepCosigned {
			// Against the centre's own key alone, the forgery holds: what
			// verify trusted before it read the charter.
			pub := readCentreKey(t, filepath.Join(src, "centre.key")).Public().(ed25519.PublicKey)
			if _, err := ledger.Verify(ctx, forged, pub); err != nil {
				t.Fatalf("the forgery does not even hold against the centre's key: %v", err)
			}
		}
		for _, args := range [][]string{{"--charter", charter}, nil} {
			code, out, errOut := runCLI(t, append([]string{"ledger", "verify", "--ledger", forged}, args...)...)
			want := "the witnesses cosigned another checkpoint"
			if !keepCosigned {
				want = "no checkpoint cosigned by the witnesses"
			}
			if code != exitFailure || !strings.Contains(errOut, want) {
				t.Fatalf("rewritten (cosigned notes kept: %v), verify %v: exit %d, %s%s; want 1 and %q", keepCosigned, args, code, out, errOut, want)
			}
		}
	}
}

// rewrite rebuilds the ledger of data directory dir at dst, as its centre
// could: the same origin and key, every entry but the first access entry
// after the first record, a checkpoint signed at each size the original
// signed one, and, with keepCosigned, the original cosigned notes copied
// beside the checkpoints of the same sizes.
func rewrite(t *testing.T, dir, dst string, keepCosigned bool) {
	t.Helper()
	ctx := context.Background()
	key := readCentreKey(t, filepath.Join(dir, "centre.key"))
	orig := filepath.Join(dir, centre.LedgerFile)
	db, err := sql.Open("sqlite3", "file:"+orig+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var origin string
	if err := db.QueryRow("SELECT value FROM meta WHERE key = 'origin'").Scan(&origin); err != nil {
		t.Fatal(err)
	}
	sizes := map[int64][]byte{}
	rows, err := db.Query("SELECT size, cosigned FROM checkpoints")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var (
			size     int64
			cosigned []byte
		)
		if err := rows.Scan(&size, &cosigned); err != nil {
			t.Fatal(err)
		}
		sizes[size] = cosigned
	}
	rows.Close()
	var entries []ledger.Entry
	erows, err := db.Query("SELECT data FROM entries ORDER BY idx")
	if err != nil {
		t.Fatal(err)
	}
	hidden := false
	for erows.Next() {
		var data []byte
		if err := erows.Scan(&data); err != nil {
			t.Fatal(err)
		}
		e, err := ledger.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if !hidden && e.Kind == ledger.KindAccess {
			hidden = true // the access the centre would rather nobody saw
			continue
		}
		entries = append(entries, e)
	}
	erows.Close()
	if !hidden {
		t.Fatal("centre-b's ledger has no access entry to hide")
	}
	l, err := ledger.Open(ctx, dst, ledger.Options{Origin: origin, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		e.Index, e.Time = 0, e.Time.Truncate(0)
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if _, ok := sizes[int64(i+1)]; ok {
			if _, err := l.Sign(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !keepCosigned {
		return
	}
	w, err := sql.Open("sqlite3", "file:"+dst)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for size, cosigned := range sizes {
		if cosigned == nil {
			continue
		}
		if _, err := w.Exec("UPDATE checkpoints SET cosigned = ? WHERE size = ?", cosigned, size); err != nil {
			t.Fatal(err)
		}
	}
}

func readCentreKey(t *testing.T, path string) ed25519.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(ed25519.PrivateKey)
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, fs.FileMode(0o600)); err != nil {
		t.Fatal(err)
	}
}

// TestAbuseCentreDataTampered: one row of one table of centre-b's data
// directory is changed, as someone with the disk (and not the keys) would
// change it, every table of every SQLite file in turn; medfed check names
// the file and table each time, and passes the data as it was. (It checks
// ledger-index.db as found, before the centre opens it: a centre
// rebuilds an index that does not match its ledger.)
func TestAbuseCentreDataTampered(t *testing.T) {
	// A copy of the demo's centres: a device's registration and batch
	// append to its ledger, which other tests read as the demo left it.
	kept := t.TempDir()
	copyDir(t, filepath.Join(keptDemo(t), "centre-b"), filepath.Join(kept, "centre-b"))
	config := func(dir string) string {
		path := filepath.Join(t.TempDir(), "centre-b.yaml")
		if err := os.WriteFile(path, []byte("centre:\n  name: centre-b\nfederation:\n  id: medfed-demo\ndata:\n  dir: "+dir+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	registerSystem(t, filepath.Join(kept, "centre-b"))
	registerDevice(t, filepath.Join(kept, "centre-b"))
	if code, out, errOut := runCLI(t, "check", "--config", config(filepath.Join(kept, "centre-b"))); code != exitOK || !strings.Contains(out, "ok") {
		t.Fatalf("the intact data: exit %d: %s%s", code, out, errOut)
	}
	cases := []struct {
		file, table, sql string
	}{
		{"ledger.db", "meta", "UPDATE meta SET value = zeroblob(32) WHERE key = 'public_key'"},
		// A byte of the entry's time, changed to another value: on some
		// days it is 0x5a already.
		{"ledger.db", "entries", "UPDATE entries SET data = CAST(substr(data, 1, 12) || CASE WHEN substr(data, 13, 1) = x'5a' THEN x'a5' ELSE x'5a' END || substr(data, 14) AS BLOB) WHERE idx = 5"},
		{"ledger.db", "checkpoints", "UPDATE checkpoints SET root = zeroblob(32) WHERE size = (SELECT max(size) FROM checkpoints)"},
		{"ledger.db", "witnessed", "UPDATE witnessed SET size = size + 1 WHERE rowid = (SELECT min(rowid) FROM witnessed)"},
		{"ledger.db", "evidence", "UPDATE evidence SET offered = held"},
		{"ledger.db", "mirrors", "UPDATE mirrors SET blob = CAST(blob || x'00' AS BLOB) WHERE rowid = (SELECT min(rowid) FROM mirrors)"},
		// The first chunk of the log mirrored in the most: the chunk after
		// it then starts past the mirror's start. (A log's last chunk
		// deleted goes unnoticed; the recovery then reads the next
		// witness's mirror, and never appends what fails the root.)
		{"ledger.db", "mirrors", "DELETE FROM mirrors WHERE rowid = (SELECT min(rowid) FROM mirrors WHERE origin = (SELECT origin FROM mirrors GROUP BY origin ORDER BY count(*) DESC LIMIT 1))"},
		{"records.db", "payloads/sealed", "UPDATE sealed SET ciphertext = CAST(substr(ciphertext, 1, 20) || CASE WHEN substr(ciphertext, 21, 1) = x'00' THEN x'ff' ELSE x'00' END || substr(ciphertext, 22) AS BLOB) WHERE rowid = (SELECT min(rowid) FROM sealed)"},
		{"records.db", "payloads/sealed", "UPDATE payloads SET erased_at = 1 WHERE erased_at IS NULL"},
		{"ledger-index.db", "postings", "INSERT INTO postings VALUES (0, zeroblob(32), 3)"},
		{"ledger-index.db", "watermark", "UPDATE watermark SET size = 65536"},
		{"directory.db", "kv", "UPDATE kv SET v = CAST(v || x'00' AS BLOB) WHERE k = (SELECT min(k) FROM kv)"},
		{"directory.db", "kv", "INSERT INTO kv SELECT k || '0', v, mac FROM kv WHERE k = (SELECT max(k) FROM kv)"},
		{"staff.db", "staff", "UPDATE staff SET role = 'admin' WHERE id = (SELECT min(id) FROM staff)"},
		{"staff.db", "seal", "DELETE FROM staff WHERE id = (SELECT max(id) FROM staff)"},
		{"staff.db", "seal", "UPDATE seal SET mac = zeroblob(32)"},
		{"clients.db", "clients", "UPDATE clients SET roles = 'clinician,admin' WHERE id = (SELECT min(id) FROM clients)"},
		{"clients.db", "seal", "UPDATE seal SET mac = zeroblob(32)"},
		{"clients.db", "jtis", "UPDATE jtis SET expires = expires - 86400"},
		{"devices.db", "registrations", "UPDATE registrations SET entry = entry + 1"},
		{"devices.db", "seal", "DELETE FROM registrations"},
		{"devices.db", "batches", "UPDATE batches SET first = first + 1"},
	}
	// Every table of every SQLite file of the data directory is tampered
	// with above: a table added later without a case fails here.
	covered := map[string]bool{}
	for _, tt := range cases {
		for _, table := range strings.Split(tt.table, "/") {
			covered[tt.file+" "+table] = true
		}
	}
	files, err := filepath.Glob(filepath.Join(kept, "centre-b", "*.db"))
	if err != nil || len(files) < 5 {
		t.Fatalf("the data directory's SQLite files: %v, %v", files, err)
	}
	for _, f := range files {
		db, err := sql.Open("sqlite3", "file:"+f+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		rows, err := db.Query(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var table string
			if err := rows.Scan(&table); err != nil {
				t.Fatal(err)
			}
			if !covered[filepath.Base(f)+" "+table] {
				t.Errorf("%s, table %s: no case tampers with it", filepath.Base(f), table)
			}
		}
		if err := errors.Join(rows.Err(), rows.Close(), db.Close()); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range cases {
		t.Run(tt.file+" "+tt.sql[:strings.IndexAny(tt.sql[7:], " ")+7], func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "centre-b")
			copyDir(t, filepath.Join(kept, "centre-b"), dir)
			// A plain path, not a file: URI: a second case of the same
			// name runs in a directory named with '#', a URI's fragment.
			db, err := sql.Open("sqlite3", filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			res, err := db.Exec(tt.sql)
			if err == nil {
				var n int64
				if n, err = res.RowsAffected(); err == nil && n == 0 {
					err = errors.New("no row changed")
				}
			}
			if cerr := db.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatalf("%s: %v", tt.sql, err)
			}
			code, out, errOut := runCLI(t, "check", "--config", config(dir))
			if code != exitFailure || !strings.Contains(errOut, "tampered") || !strings.Contains(errOut, tt.file+", table "+tt.table) {
				t.Fatalf("exit %d: %s%s; want 1 naming table %s", code, out, errOut, tt.table)
			}
		})
	}
}

// anyPatient takes any statement that verifies as the patient's: the
// centre is not running, and its consent service is not asked.
type anyPatient struct{}

func (anyPatient) Authenticate(_ context.Context, _ ledger.Pseudonym, key ed25519.PublicKey, signed wire.Opened, _ time.Time) error {
	if !signed.Verify(key) {
		return device.ErrSignature
	}
	return nil
}

// registerDevice registers a patient's device in the centre of data
// directory dir and has it post a reading, as the running node would:
// devices.db then holds a row in each of its tables.
func registerDevice(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	cfg := centre.DefaultConfig()
	cfg.Centre.Name, cfg.Federation.ID, cfg.Data.Dir = "centre-b", "medfed-demo", dir
	c, err := centre.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := device.Open(ctx, device.Options{Federation: "medfed-demo", Centre: c.ID(), Path: filepath.Join(dir, device.File), RowKey: c.RowKey(device.File),
		Ledger: c.Ledger, Consent: anyPatient{}, Classes: []string{"observation"},
		AddRecords: func(ctx context.Context, p ledger.Pseudonym, recs []ledger.Record, payloads [][]byte) (int64, error) {
			first := int64(-1)
			for i := range recs {
				n, err := c.AddRecord(ctx, p, recs[i], payloads[i])
				if err != nil {
					return 0, err
				}
				if first < 0 {
					first = n
				}
			}
			return first, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, patientKey, _ := ed25519.GenerateKey(rand.Reader)
	meterPub, meterKey, _ := ed25519.GenerateKey(rand.Reader)
	p := ledger.Pseudonym{0xde, 0x71, 0xce}
	now := time.Now().UTC()
	reg, err := device.Registration{Federation: "medfed-demo", Centre: c.ID(), Subject: p, Device: meterPub, Type: device.Scale, Classes: []string{"observation"},
		NotBefore: now.Add(-time.Hour).Truncate(time.Second), Expires: now.Add(time.Hour).Truncate(time.Second), Nonce: [16]byte{1}, Time: now}.Sign(patientKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(ctx, reg); err != nil {
		t.Fatal(err)
	}
	batch, err := device.Batch{Federation: "medfed-demo", Centre: c.ID(), Subject: p, Nonce: [16]byte{2}, Time: now, Readings: [][]byte{[]byte(`{"a reading"}`)}}.Sign(meterKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Take(ctx, batch, []device.Reading{{Class: "observation", Occurred: now}}); err != nil {
		t.Fatal(err)
	}
}

// registerSystem registers an EHR in the centre of data directory dir
// and has it get one access token, as medfed client add and the token
// endpoint would: clients.db then holds a row in each of its tables.
func registerSystem(t *testing.T, dir string) {
	t.Helper()
	key, err := centre.RowKey(dir, smart.ClientsFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := smart.Open(smart.Options{Dir: dir, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ec, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &ec.PublicKey, KeyID: "k1", Algorithm: "ES384", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Add(context.Background(), "ehr", set, []string{"system/Organization.rs"}, []string{"clinician"})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: ec}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	const tokenURL = "https://127.0.0.1:8102/auth/token"
	assertion, err := jwt.Signed(signer).Claims(map[string]any{"iss": c.ID, "sub": c.ID, "aud": tokenURL, "exp": time.Now().Add(time.Minute).Unix(), "jti": "one"}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {smart.GrantType}, "client_assertion_type": {smart.AssertionType}, "client_assertion": {assertion}, "scope": {"system/Organization.rs"}}
	if _, err := s.Token(context.Background(), form, tokenURL); err != nil {
		t.Fatal(err)
	}
}

// medfed backup copies a stopped centre into a directory, medfed restore
// brings it back into an empty data directory and the full check passes
// there; a backup is not restored over a data directory, nor into another
// centre's configuration, nor once a file of it was changed.
func TestBackupAndRestoreCommands(t *testing.T) {
	kept := keptDemo(t)
	dir := filepath.Join(t.TempDir(), "centre-b")
	copyDir(t, filepath.Join(kept, "centre-b"), dir)
	config := func(name, dir string) string {
		path := filepath.Join(t.TempDir(), name+".yaml")
		if err := os.WriteFile(path, []byte("centre:\n  name: "+name+"\nfederation:\n  id: medfed-demo\ndata:\n  dir: "+dir+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	backup := filepath.Join(t.TempDir(), "backup")
	if code, out, errOut := runCLI(t, "backup", "--config", config("centre-b", dir), "--to", backup); code != exitOK || !strings.Contains(out, "backup of centre-b") {
		t.Fatalf("backup: exit %d: %s%s", code, out, errOut)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	if code, out, errOut := runCLI(t, "restore", "--config", config("centre-b", restored), "--from", backup); code != exitOK || !strings.Contains(out, "restored centre-b") {
		t.Fatalf("restore: exit %d: %s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "check", "--config", config("centre-b", restored)); code != exitOK || !strings.Contains(out, "ok") {
		t.Fatalf("check of the restored centre: exit %d: %s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(restored, centre.RestoredFile)); err != nil {
		t.Fatalf("the restored directory is not marked: %v", err)
	}
	if code, _, errOut := runCLI(t, "restore", "--config", config("centre-b", restored), "--from", backup); code == exitOK || !strings.Contains(errOut, "not empty") {
		t.Fatalf("a restore over a data directory: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "restore", "--config", config("centre-c", filepath.Join(t.TempDir(), "c")), "--from", backup); code == exitOK || !strings.Contains(errOut, "a backup of centre-b") {
		t.Fatalf("centre-b's backup as centre-c: exit %d: %s", code, errOut)
	}
	// Encrypted to an age key kept away from the centre: one file, which
	// only that key's identity opens.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(t.TempDir(), "backup-key.txt")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sealed := filepath.Join(t.TempDir(), "centre-b.age")
	if code, out, errOut := runCLI(t, "backup", "--config", config("centre-b", dir), "--to", sealed, "--recipient", id.Recipient().String()); code != exitOK || !strings.Contains(out, "encrypted to 1 recipient") {
		t.Fatalf("an encrypted backup: exit %d: %s%s", code, out, errOut)
	}
	raw, err := os.ReadFile(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("medfed backup v1")) || bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Fatal("the encrypted backup shows its contents")
	}
	if entries, _ := os.ReadDir(filepath.Dir(sealed)); len(entries) != 1 {
		t.Fatalf("the plain copy was left beside the encrypted backup: %v", entries)
	}
	other, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(t.TempDir(), "other-key.txt")
	if err := os.WriteFile(otherFile, []byte(other.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "restore", "--config", config("centre-b", filepath.Join(t.TempDir(), "x")), "--from", sealed, "--identity", otherFile); code == exitOK || !strings.Contains(errOut, "did not match any of the recipients") {
		t.Fatalf("an encrypted backup opened with another key: exit %d: %s", code, errOut)
	}
	fromSealed := filepath.Join(t.TempDir(), "from-sealed")
	if code, out, errOut := runCLI(t, "restore", "--config", config("centre-b", fromSealed), "--from", sealed, "--identity", idFile); code != exitOK {
		t.Fatalf("restore of an encrypted backup: exit %d: %s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "check", "--config", config("centre-b", fromSealed)); code != exitOK {
		t.Fatalf("check of the centre restored from an encrypted backup: exit %d: %s%s", code, out, errOut)
	}

	if err := os.WriteFile(filepath.Join(backup, "records.key"), make([]byte, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "restore", "--config", config("centre-b", filepath.Join(t.TempDir(), "b")), "--from", backup); code == exitOK || !strings.Contains(errOut, "does not match the manifest") {
		t.Fatalf("a changed backup: exit %d: %s", code, errOut)
	}
}
