package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/nodetest"
)

// outCentre is a running centre of a two-member federation, with its
// configuration file for the commands and its HTTP API.
type outCentre struct {
	config string // the file
	api    string // the API's URL
}

func startOutCentre(t *testing.T) outCentre {
	t.Helper()
	clearConfigEnv(t)
	root := t.TempDir()
	a, b := nodetest.Config(t, root, "centre-a"), nodetest.Config(t, root, "centre-b")
	nodetest.Found(t, a, b)
	n := nodetest.Start(t, a)
	nodetest.Start(t, b)
	nodetest.Eventually(t, 10*time.Second, "the founders connect", func() bool {
		_, err := n.Ready()
		return err == nil
	})
	staff, err := api.OpenStaff(a.Data.Dir, n.Centre.RowKey(api.StaffFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { staff.Close() })
	srv, err := api.New(api.Options{Node: n, Staff: staff})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	config := writeConfig(t, fmt.Sprintf("centre:\n  name: %s\nfederation:\n  id: %s\ndata:\n  dir: %s\np2p:\n  listen:\n    - %s\n",
		a.Centre.Name, a.Federation.ID, a.Data.Dir, a.P2P.Listen[0]))
	return outCentre{config: config, api: hs.URL}
}

// medfedOK runs a command that must succeed and returns its output.
func (c outCentre) medfedOK(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := medfed(t, append(args, "--config", c.config)...)
	if code != exitOK {
		t.Fatalf("medfed %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// post sends a file --out wrote, as it is, to route, as curl
// --data-binary @FILE does.
func (c outCentre) post(t *testing.T, route, file string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(c.api+route, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s with %s: %d: %s", route, filepath.Base(file), resp.StatusCode, raw)
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("POST %s: %v: %s", route, err, raw)
	}
	return body
}

// keygen makes a patient key file and returns its public key.
func keygen(t *testing.T, file string) string {
	t.Helper()
	code, out, errOut := medfed(t, "patient", "keygen", "--out", file)
	if code != exitOK {
		t.Fatalf("patient keygen: exit %d: %s", code, errOut)
	}
	return strings.TrimSpace(out)
}

func (c outCentre) consent(t *testing.T, p string) api.ConsentView {
	t.Helper()
	var v api.ConsentView
	if err := json.Unmarshal([]byte(c.medfedOK(t, "consent", "show", "--json", "--pseudonym", p)), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// A patient's signing commands with --out write, instead of sending, the
// JSON body of the API route that takes what they sign: posted as it
// is, each is accepted; until then the federation has nothing of it. A
// file is never overwritten.
func TestSigningCommandsWriteTheRouteBodyWithOut(t *testing.T) {
	c := startOutCentre(t)
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	var raw [32]byte
	rand.Read(raw[:])
	p := hex.EncodeToString(raw[:])
	pub := keygen(t, file("patient.key"))
	c.medfedOK(t, "patient", "attest", "--pseudonym", p, "--public-key", pub)
	if err := os.WriteFile(file("terms.json"), []byte(`{"base": "opt-in"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	signer := []string{"--key", file("patient.key"), "--pseudonym", p}

	// writes checks what a command wrote: the file, mode 0600, one JSON
	// object of the route's body type with the signed bytes in field.
	writes := func(t *testing.T, out, name, field string) []byte {
		t.Helper()
		if !strings.Contains(out, "signed, not submitted") || !strings.Contains(out, name) {
			t.Errorf("the command says %q", out)
		}
		info, err := os.Stat(file(name))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, info.Mode().Perm())
		}
		b, _ := os.ReadFile(file(name))
		var body map[string][]byte
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&body); err != nil || len(body) != 1 || body[field] == nil || dec.More() {
			t.Fatalf("%s is not one JSON object with %s alone: %v: %s", name, field, err, b)
		}
		return body[field]
	}
	document := func(t *testing.T, out, name string, kind consent.Kind) consent.Document {
		t.Helper()
		d, err := consent.Parse(writes(t, out, name, "document"))
		if err != nil || d.Kind != kind || d.Subject().String() != p || consent.FormatPublicKey(d.Signer) != pub {
			t.Fatalf("%s: a %v about %s by %x (%v), want a %v the patient signed", name, d.Kind, d.Subject(), d.Signer, err, kind)
		}
		return d
	}

	t.Run("consent grant", func(t *testing.T) {
		out := c.medfedOK(t, append(signer, "consent", "grant", "--terms", file("terms.json"), "--out", file("grant.json"))...)
		document(t, out, "grant.json", consent.KindContract)
		if v := c.consent(t, p); v.Contract != nil {
			t.Fatalf("the contract was submitted: %+v", v.Contract)
		}
		if code, _, errOut := medfed(t, append(signer, "consent", "grant", "--terms", file("terms.json"), "--out", file("grant.json"), "--config", c.config)...); code == exitOK || !strings.Contains(errOut, "exists") {
			t.Fatalf("a second grant into the same file: exit %d: %s", code, errOut)
		}
		if got := c.post(t, "/v1/consent", file("grant.json")); got["Confirmed"] != true {
			t.Fatalf("the contract posted: %v", got)
		}
		if v := c.consent(t, p); v.Standing != "in force" {
			t.Fatalf("after posting the contract, the standing is %q", v.Standing)
		}
	})
	t.Run("consent revoke", func(t *testing.T) {
		out := c.medfedOK(t, append(signer, "consent", "revoke", "--out", file("revoke.json"))...)
		d := document(t, out, "revoke.json", consent.KindRevocation)
		if v := c.consent(t, p); v.Standing != "in force" || d.Revocation.Target.String() != v.Contract.ID {
			t.Fatalf("the revocation of %s was submitted, or is not of the contract in force: %+v", d.Revocation.Target, v)
		}
		c.post(t, "/v1/consent", file("revoke.json"))
		if v := c.consent(t, p); v.Standing != "withdrawn" {
			t.Fatalf("after posting the revocation, the standing is %q", v.Standing)
		}
	})
	t.Run("consent veto", func(t *testing.T) {
		other := keygen(t, file("other.key"))
		time.Sleep(time.Second) // attestations are dated to the second: a replacement is a newer one
		c.medfedOK(t, "patient", "attest", "--pseudonym", p, "--public-key", other)
		var pending string
		for _, k := range c.consent(t, p).Keys {
			if k.Key == other {
				pending = k.Attestation
			}
		}
		out := c.medfedOK(t, append(signer, "consent", "veto", "--attestation", pending, "--out", file("veto.json"))...)
		document(t, out, "veto.json", consent.KindVeto)
		status := func() string {
			for _, k := range c.consent(t, p).Keys {
				if k.Attestation == pending {
					return k.Status
				}
			}
			return ""
		}
		if s := status(); strings.Contains(s, "veto") {
			t.Fatalf("the veto was submitted: %s", s)
		}
		c.post(t, "/v1/consent", file("veto.json"))
		if s := status(); !strings.Contains(s, "veto") {
			t.Fatalf("after posting the veto, the replacement is %q", s)
		}
	})
	t.Run("patient view", func(t *testing.T) {
		out := c.medfedOK(t, append(signer, "patient", "view", "--out", file("view.json"))...)
		q, err := patient.ParseRequest(writes(t, out, "view.json", "request"))
		if err != nil || q.Op != patient.View || q.Subject.String() != p {
			t.Fatalf("view.json: a %v request about %s: %v", q.Op, q.Subject, err)
		}
		if got := c.post(t, "/v1/patient/view", file("view.json")); got["resourceType"] != "Bundle" {
			t.Fatalf("the view posted: %v", got)
		}
	})
	t.Run("patient erase", func(t *testing.T) {
		if code, _, errOut := medfed(t, append(signer, "patient", "erase", "--erasure-out", file("x"), "--config", c.config)...); code != exitUsage {
			t.Fatalf("--erasure-out without --out: exit %d: %s", code, errOut)
		}
		nodetest.SettleKey() // an erasure needs a key in force for the key notice
		out := c.medfedOK(t, append(signer, "patient", "erase", "--out", file("erase.json"))...)
		q, err := patient.ParseRequest(writes(t, out, "erase.json", "request"))
		if err != nil || q.Op != patient.Erase {
			t.Fatalf("erase.json: a %v request: %v", q.Op, err)
		}
		document(t, out, "erase.json.erasure", consent.KindErasure)
		if got := c.post(t, "/v1/patient/erase", file("erase.json")); got["Op"] != "erase" {
			t.Fatalf("the erasure posted: %v", got)
		}
		c.post(t, "/v1/consent", file("erase.json.erasure"))
	})
}
