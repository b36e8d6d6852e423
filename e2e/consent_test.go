package e2e

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A patient's consent through real medfed processes, as a registrar and a
// patient use the CLI: records registered at two centres; a key made and
// attested; a contract granted at
// centre-a that the other centres enforce (permit treatment, deny research
// but at centre-c); the contract revoked while centre-c is down, which
// centre-c learns before it answers again; a token; a key that is not the
// patient's refused.
func TestConsentAcrossCentres(t *testing.T) {
	root := t.TempDir()
	all := foundThree(t, root)
	a, b, c := all[0], all[1], all[2]
	file := func(name string) string { return filepath.Join(root, name) }
	p := pseudonymsOf(a, 1, "--nhs", nhsNumber)[0]

	code, out, errOut := medfedCmd(t, "patient", "keygen", "--out", file("patient.key"))
	pub := strings.TrimSpace(out)
	if code != 0 {
		t.Fatalf("keygen exited %d: %s", code, errOut)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(pub) {
		t.Fatalf("keygen printed %q, want the public key", out)
	}
	if fi, err := os.Stat(file("patient.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the key file: %v, %v", fi, err)
	}
	if code, _, errOut := medfedCmd(t, "patient", "keygen", "--out", file("patient.key")); code == 0 {
		t.Fatalf("keygen overwrote a key file: %s", errOut)
	}
	// The patient's records are at centre-b and centre-c.
	const payload = "synthetic lab result: potassium 4.1 mmol/L"
	if err := os.WriteFile(file("result.txt"), []byte(payload), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*centre{b, c} {
		if out := x.run("record", "add", "--nhs", nhsNumber, "--class", "lab-result", "--file", file("result.txt"), "--occurred", "2025-05-01"); !strings.HasSuffix(out, " for "+p+"\n") {
			t.Fatalf("%s: record add printed %q", x.name, out)
		}
	}
	if code, _, errOut := b.try("record", "add", "--pseudonym", p, "--nhs", nhsNumber, "--class", "lab-result", "--file", file("result.txt")); code != 2 {
		t.Fatalf("record add naming the patient twice: exited %d: %s", code, errOut)
	}
	waitFor(t, 15*time.Second, "the directory lists both holders", func() bool {
		code, out, _ := a.try("directory", "lookup", "--pseudonym", p)
		return code == 0 && strings.Contains(out, "centre-b") && strings.Contains(out, "centre-c")
	})
	a.run("patient", "attest", "--pseudonym", p, "--public-key", pub)

	// The example terms in configs/: opt-in, no research but by centre-c's
	// researchers on lab results.
	terms := filepath.Join("..", "configs", "consent-example.json")
	out = a.run("consent", "grant", "--key", file("patient.key"), "--pseudonym", p, "--terms", terms)
	if !strings.Contains(out, "version 1 accepted") || !strings.Contains(out, "holders:      centre-b, centre-c\n") || !strings.Contains(out, "delivered to: centre-b, centre-c\n") {
		t.Fatalf("grant printed %q", out)
	}
	// A clinician at centre-a queries: both holders answer with the
	// record, proven and checked (once it is in a final checkpoint).
	waitFor(t, 15*time.Second, "both holders release the record", func() bool {
		code, out, _ := a.try("query", "--pseudonym", p, "--purpose", "treatment")
		return code == 0 && strings.Count(out, "1 record(s), proven in final checkpoint") == 2 && strings.Count(out, "potassium 4.1") == 2
	})
	out = b.run("consent", "show", "--pseudonym", p)
	if !strings.Contains(out, "standing:  in force") || !strings.Contains(out, `"centre": "centre-c"`) || !strings.Contains(out, pub) {
		t.Fatalf("centre-b shows %q", out)
	}
	check := func(x *centre, wantCode int, want string, args ...string) {
		t.Helper()
		code, out, errOut := x.try(append([]string{"consent", "check", "--pseudonym", p, "--class", "lab-result"}, args...)...)
		if code != wantCode || !strings.HasPrefix(out, want) {
			t.Fatalf("%s: consent check %v exited %d, printed %q, want %d and %q; %s", x.name, args, code, out, wantCode, want, errOut)
		}
	}
	check(b, 0, "permit (contract)", "--centre", "centre-a")
	check(c, 1, "deny (contract): provision 1 of the contract", "--centre", "centre-b", "--role", "researcher", "--purpose", "research")
	check(b, 0, "permit (contract): provision 1.1", "--centre", "centre-c", "--role", "researcher", "--purpose", "research")
	check(b, 0, "permit (emergency)", "--centre", "centre-a", "--purpose", "emergency", "--reason", "unconscious")
	check(b, 1, "deny (emergency): emergency access needs a stated reason", "--centre", "centre-a", "--purpose", "emergency")
	if code, _, errOut := b.try("consent", "check", "--pseudonym", p, "--centre", "centre-z", "--class", "lab-result"); code != 1 || !strings.Contains(errOut, "not a member centre") {
		t.Fatalf("a request from a non-member centre: exited %d: %s", code, errOut)
	}

	// A new version replaces the first, under the same ID.
	if err := os.WriteFile(file("terms2.json"), []byte(`{"base": "opt-out", "provision": [{"type": "permit", "purpose": ["treatment"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := a.run("consent", "grant", "--key", file("patient.key"), "--pseudonym", p, "--terms", file("terms2.json")); !strings.Contains(out, "version 2 accepted") {
		t.Fatalf("second grant printed %q", out)
	}
	check(c, 1, "deny (contract): no provision applies; the contract's base policy is opt-out", "--centre", "centre-c", "--role", "researcher", "--purpose", "research")

	// Revoked while centre-c is down: centre-b denies at once; centre-c,
	// restarted, syncs before it answers, and denies.
	c.stop()
	out = b.run("consent", "revoke", "--key", file("patient.key"), "--pseudonym", p)
	if !strings.Contains(out, "accepted") {
		t.Fatalf("revoke printed %q", out)
	}
	check(a, 1, "deny (withdrawn): the patient revoked their consent", "--centre", "centre-b")
	// The query names the holder that is down, and the one that denies.
	code, out, _ = a.try("query", "--pseudonym", p, "--purpose", "treatment")
	if code != 1 || !strings.Contains(out, "centre-b: denied (withdrawn): the patient revoked their consent") || !strings.Contains(out, "centre-c: failed:") {
		t.Fatalf("query with centre-c down: exited %d, printed %q", code, out)
	}
	c.start()
	waitFor(t, 15*time.Second, "centre-c reconnects", connectedTo(c, "centre-a", "centre-b"))
	check(c, 1, "deny (withdrawn): the patient revoked their consent", "--centre", "centre-a")
	if out := c.run("consent", "show", "--pseudonym", p); !strings.Contains(out, "standing:  withdrawn") || !strings.Contains(out, "revocation") {
		t.Fatalf("centre-c shows %q", out)
	}

	// A token for centre-b's research, within the charter's 24 h.
	if code, _, errOut := a.try("consent", "token", "--key", file("patient.key"), "--pseudonym", p, "--grantee", "centre-b", "--purpose", "research", "--expires", "48h"); code != 2 || !strings.Contains(errOut, "the charter allows up to 24h") {
		t.Fatalf("a 48 h token: exited %d: %s", code, errOut)
	}
	out = a.run("consent", "token", "--key", file("patient.key"), "--pseudonym", p, "--grantee", "centre-b", "--purpose", "research", "--class", "lab-result", "--uses", "2")
	if tok, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out)); err != nil || len(tok) < 100 {
		t.Fatalf("token printed %q (%v)", out, err)
	}

	// Another key is not the patient's: nothing is signed with it.
	if code, _, errOut := medfedCmd(t, "patient", "keygen", "--out", file("other.key")); code != 0 {
		t.Fatalf("keygen exited %d: %s", code, errOut)
	}
	if code, _, errOut := a.try("consent", "grant", "--key", file("other.key"), "--pseudonym", p, "--terms", terms); code != 1 || !strings.Contains(errOut, "is not the key attested for this patient") {
		t.Fatalf("grant with another key: exited %d: %s", code, errOut)
	}

	for _, x := range all {
		x.stop()
		if bytes.Contains(x.logs.Bytes(), []byte(nhsNumber)) || bytes.Contains(x.logs.Bytes(), []byte("potassium")) {
			t.Errorf("%s's node logged the NHS number or the payload", x.name)
		}
	}
}
