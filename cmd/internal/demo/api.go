package demo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest/harness"
)

// apiChapter is the story as a hospital's systems live it: the EHR and
// the staff's tools call the centre's HTTP API, in FHIR shapes, with a
// bearer token per staff member; the patient's app signs.
func (d *demo) apiChapter(ctx context.Context) (err error) {
	d.chapter(8, "the HTTP API a hospital's EHR and staff use")
	nodes, err := d.startThree(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, nodes.Stop()) }()
	b, c := nodes[1], nodes[2]
	urls := map[*harness.Node]string{}
	staff := map[*harness.Node]*api.StaffStore{}
	pins := x509.NewCertPool() // the client trusts the centres' own certificates, nothing else
	for _, n := range []*harness.Node{b, c} {
		st, serr := api.OpenStaff(d.cfgs[n.Centre.Name].Data.Dir, n.Centre.RowKey(api.StaffFile))
		if serr != nil {
			return serr
		}
		// The deferred closures join into the named result err: nothing in
		// this loop may declare an err of its own.
		defer func() { err = errors.Join(err, st.Close()) }()
		staff[n] = st
		srv, serr := api.New(api.Options{Node: n.Node, Staff: st})
		if serr != nil {
			return serr
		}
		cfg := d.cfgs[n.Centre.Name]
		cert, serr := api.ServerCertificate(cfg.Data.Dir, cfg.API, time.Now())
		if serr != nil {
			return serr
		}
		pins.AddCert(cert.TLS.Certificates[0].Leaf)
		tcp, serr := net.Listen("tcp", "127.0.0.1:0")
		if serr != nil {
			return serr
		}
		ln := tls.NewListener(tcp, cert.TLS)
		sctx, cancel := context.WithCancel(ctx)
		served := make(chan error, 1)
		go func() { served <- srv.Serve(sctx, ln) }()
		defer func() { cancel(); err = errors.Join(err, <-served) }()
		urls[n] = "https://" + ln.Addr().String()
	}
	web := apiClient{&http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pins, MinVersion: tls.VersionTLS12}}}}
	token := func(n *harness.Node, role string) (string, error) {
		tok, _, err := staff[n].Add(ctx, role, "demo")
		return tok, err
	}
	registrar, err := token(b, "registrar")
	if err != nil {
		return err
	}
	clinicianB, err := token(b, "clinician")
	if err != nil {
		return err
	}
	clinicianC, err := token(c, "clinician")
	if err != nil {
		return err
	}
	researcher, err := token(c, "researcher")
	if err != nil {
		return err
	}
	d.say("centre-b and centre-c serve the API over HTTPS (medfed node does, on api.listen),")
	d.say("each with the certificate it made for itself (api.crt in its data directory),")
	d.say("which the client pins; each staff member has a bearer token (medfed staff add")
	d.say("--role …), stored hashed.")

	var pat struct{ ID string }
	if err := web.call(ctx, "POST", urls[b]+"/v1/patients", registrar, map[string]any{"identifier": map[string]string{"system": "nhs", "value": "450 557 7104"}}, 200, &pat); err != nil {
		return err
	}
	d.say("  POST /v1/patients (registrar): a FHIR Patient, id = the pseudonym %s…", pat.ID[:12])
	key, _, err := consent.GenerateKey()
	if err != nil {
		return err
	}
	if err := web.call(ctx, "POST", urls[b]+"/v1/patients/"+pat.ID+"/keys", registrar, map[string]any{"publicKey": consent.FormatPublicKey(key.Public().(ed25519.PublicKey))}, 200, nil); err != nil {
		return err
	}
	subject, err := ledger.ParsePseudonym(pat.ID)
	if err != nil {
		return err
	}
	doc, err := consent.SignContract(key, consent.Contract{ID: consent.NewID(), Version: 1, Federation: b.Membership.Current().Federation, Subject: subject,
		Issued: time.Now().UTC().Truncate(time.Second), Base: consent.OptIn})
	if err != nil {
		return err
	}
	if err := web.call(ctx, "POST", urls[b]+"/v1/consent", "", map[string]any{"document": doc}, 200, nil); err != nil {
		return err
	}
	d.say("  POST /v1/patients/{pseudonym}/keys (registrar) and POST /v1/consent (no token:")
	d.say("  the contract is signed with the patient's key): the patient opts in")
	var ref struct{ ID string }
	if err := web.call(ctx, "POST", urls[b]+"/v1/records", clinicianB, map[string]any{"patient": pat.ID, "class": "discharge-summary", "data": []byte("Discharged home; follow-up in 6 weeks.")}, 201, &ref); err != nil {
		return err
	}
	d.say("  POST /v1/records (clinician at centre-b): a DocumentReference, %s", ref.ID)
	var bundle struct {
		Total int
		Entry []struct{ Resource json.RawMessage }
	}
	if err := harness.WaitFor(ctx, 20*time.Second, "the record released to centre-c", func() bool {
		bundle.Total = 0
		return web.call(ctx, "POST", urls[c]+"/v1/query", clinicianC, map[string]any{"patient": pat.ID, "purpose": "treatment"}, 200, &bundle) == nil && bundle.Total == 1
	}); err != nil {
		return err
	}
	d.say("  POST /v1/query (clinician at centre-c): a FHIR Bundle (searchset) of %d record,", bundle.Total)
	for _, e := range bundle.Entry {
		var r struct {
			ResourceType string
			Content      []struct{ Attachment struct{ Data []byte } }
			Issue        []struct{ Diagnostics string }
		}
		if err := json.Unmarshal(e.Resource, &r); err != nil {
			return err
		}
		switch r.ResourceType {
		case "DocumentReference":
			d.say("    DocumentReference: %q", r.Content[0].Attachment.Data)
		case "OperationOutcome":
			for _, i := range r.Issue {
				d.say("    OperationOutcome: %s", i.Diagnostics)
			}
		}
	}
	err = web.call(ctx, "POST", urls[c]+"/v1/emergency", researcher, map[string]any{"patient": pat.ID, "reason": "unconscious"}, http.StatusOK, nil)
	var refused apiRefusal
	if !errors.As(err, &refused) || refused.status != http.StatusForbidden {
		return fmt.Errorf("demo: a researcher's emergency access was not refused: %v", err)
	}
	d.say("  POST /v1/emergency as a researcher: %d, an OperationOutcome: %s", refused.status, refused.msg)
	var doc3 struct{ Paths map[string]map[string]any }
	if err := web.call(ctx, "GET", urls[c]+"/openapi.json", "", nil, 200, &doc3); err != nil {
		return err
	}
	ops := 0
	for _, p := range doc3.Paths {
		ops += len(p)
	}
	d.say("GET /openapi.json describes all %d operations; /healthz and /readyz serve orchestration.", ops)
	return nil
}

// apiRefusal is an API answer with an unexpected status.
type apiRefusal struct {
	status int
	msg    string
}

func (e apiRefusal) Error() string { return fmt.Sprintf("status %d: %s", e.status, e.msg) }

// apiClient calls the centres' APIs, pinning their certificates.
type apiClient struct{ http *http.Client }

// call sends body as JSON and decodes the answer into out, which must
// come with status want.
func (c apiClient) call(ctx context.Context, method, url, token string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		var oo struct {
			Issue []struct{ Diagnostics string }
		}
		if err := json.Unmarshal(raw, &oo); err != nil {
			return apiRefusal{resp.StatusCode, "not an OperationOutcome: " + string(raw)}
		}
		var msgs []string
		for _, i := range oo.Issue {
			msgs = append(msgs, i.Diagnostics)
		}
		return apiRefusal{resp.StatusCode, strings.Join(msgs, "; ")}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}
