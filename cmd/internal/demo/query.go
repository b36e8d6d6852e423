package demo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest/harness"
	"github.com/medfed/medfed/pseudonym"
)

// queryChapter is the whole story of the federation's Fig. 3: records at
// centres 1 and 2, centre 3 (joined in chapter 5) queries with consent and
// gets proven records, the patient revokes and the next query is refused,
// an emergency access with its reason, the patient's own view of all of
// it; then the patient switches to centre 3 and has the old copies erased.
func (d *demo) queryChapter(ctx context.Context) (err error) {
	d.chapter(7, "the cross-centre query and the patient's journeys")
	nodes, err := d.startThree(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, nodes.Stop()) }()
	a, b, c := nodes[0], nodes[1], nodes[2]
	id, err := pseudonym.ParseNHS("401 023 2137")
	if err != nil {
		return err
	}
	ps, err := a.Pseudonyms(ctx, []pseudonym.Identifier{id})
	if err != nil {
		return err
	}
	p := ledger.Pseudonym(ps[0])
	fed := a.Membership.Current().Federation
	records := []struct {
		at    *harness.Node
		class string
		text  string
	}{
		{b, "lab-result", "HbA1c 48 mmol/mol"},
		{c, "clinic-letter", "Reviewed in diabetes clinic; metformin continued."},
		{c, "imaging", "Chest X-ray: no acute findings."},
	}
	for i, r := range records {
		res, err := r.at.AddRecord(ctx, centre.RecordRequest{
			Pseudonym: p, Class: r.class, Occurred: time.Date(2025, 4, 1+i, 10, 0, 0, 0, time.UTC), Payload: []byte(r.text),
		})
		if err != nil {
			return err
		}
		if res.Announce != nil {
			return fmt.Errorf("demo: the record at %s is stored but not announced: %w", r.at.Centre.Name, res.Announce)
		}
		if err := harness.WaitFor(ctx, 20*time.Second, "the record is in a final checkpoint", func() bool {
			f, ok := r.at.Centre.Ledger.LatestFinal()
			return ok && f.Size > res.Index
		}); err != nil {
			return err
		}
	}
	d.say("Fig. 3 of the design, end to end. (centre-a's witnesses still refuse it since")
	d.say("chapter 3, so centre-b and centre-c play Centres 1 and 2.) A new patient (%s)", short(p))
	d.say("has a lab result at centre-b, and a clinic letter and an X-ray at centre-c")
	d.say("(medfed record add): payloads encrypted at rest, record entries on each")
	d.say("ledger, each centre announced in the directory, the entries witnessed.")

	dnode, err := d.admit(ctx, "centre-d", b, c)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, dnode.Stop()) }()
	d.say("\ncentre-d, a new hospital (Centre 3), joins: centre-b and centre-c approve its")
	d.say("join request, it installs charter version %d and connects.", dnode.Membership.Current().Version)

	key, _, err := consent.GenerateKey()
	if err != nil {
		return err
	}
	if _, err := b.Consent.Attest(ctx, p, key.Public().(ed25519.PublicKey), false, ledger.StaffID{}); err != nil {
		return err
	}
	settled := time.Now().Add(demoKeyNotice + time.Second) // attestations are dated to the second
	contract := consent.Contract{
		ID: consent.NewID(), Version: 1, Federation: fed, Subject: p, Issued: now(), Base: consent.OptOut,
		Provisions: []consent.Provision{{Type: consent.Permit, Purposes: consent.Treatment, Actors: []consent.Actor{{Role: consent.Clinician}}}},
	}
	signed, err := consent.SignContract(key, contract)
	if err != nil {
		return err
	}
	if _, err := b.Consent.Submit(ctx, signed); err != nil {
		return err
	}
	d.say("The patient's key is attested at centre-b; they sign a contract: opt-out, but")
	d.say("clinicians may see everything for treatment.")

	var staff ledger.StaffID
	copy(staff[:], bytes.Repeat([]byte{0x5e, 0xed}, len(staff)/2))
	ask := func(purpose consent.Purpose, reason consent.Reason) (centre.QueryResult, error) {
		return dnode.QueryRecords(ctx, centre.QueryRequest{Pseudonym: p, Asker: centre.Asker{Role: consent.Clinician, Staff: staff, Purpose: purpose, Reason: reason}})
	}
	res, err := ask(consent.Treatment, 0)
	if err != nil {
		return err
	}
	d.say("\nA clinician at centre-d queries for treatment (medfed query): %.1f ms.", millis(res.Elapsed))
	if err := d.showQuery(res, 3); err != nil {
		return err
	}

	revoke, err := consent.SignRevocation(key, consent.Revocation{Federation: fed, Subject: p, Target: contract.ID, Issued: now()})
	if err != nil {
		return err
	}
	if _, err := b.Consent.Submit(ctx, revoke); err != nil {
		return err
	}
	if res, err = ask(consent.Treatment, 0); err != nil {
		return err
	}
	d.say("\nThe patient revokes the contract (medfed consent revoke). The same query again:")
	for _, h := range res.Holders {
		if h.Outcome != centre.Denied {
			return fmt.Errorf("demo: after the revocation %s answered %s", h.Name, h.Outcome)
		}
		d.say("  %s: denied (%s), audited as access entry %d", h.Name, h.Reason, h.Access)
	}

	if res, err = ask(consent.Emergency, consent.Unconscious); err != nil {
		return err
	}
	d.say("\nThe patient is brought in unconscious to centre-d. Emergency access, with its")
	d.say("reason, is allowed by the charter (the patient never opted out of it): %.1f ms.", millis(res.Elapsed))
	if err := d.showQuery(res, 3); err != nil {
		return err
	}
	d.say("  (each holder notified the patient and its privacy officer)")

	view, err := centre.PatientRequest(d.cfgs["centre-b"], patient.View, p, key)
	if err != nil {
		return err
	}
	seen, err := b.PatientRelay(ctx, view)
	if err != nil {
		return err
	}
	d.say("\nThe patient's own view (medfed patient view, signed with their key, relayed by")
	d.say("centre-b to every member; each checks the key was attested for the patient):")
	for _, h := range seen.Holders {
		if h.Outcome != centre.Answered {
			return fmt.Errorf("demo: %s did not answer the patient: %w", h.Name, h.Err)
		}
	}
	d.say("  asked %d centres: %d hold entries about the patient, %d hold nothing", seen.Asked, len(seen.Holders), seen.HoldNothing)
	for _, h := range seen.Holders {
		d.say("  %s holds %d record(s); accesses:", h.Name, len(h.Records))
		for _, x := range h.Accesses {
			verdict := "denied"
			if x.Permitted {
				verdict = "permitted"
			}
			role, staff := "", ""
			if x.Role != 0 {
				role = x.Role.String()
			}
			if x.Staff != (ledger.StaffID{}) {
				staff = x.Staff.String()
			}
			line := fmt.Sprintf("    %s %s by %s (%s %.8s…) for %s: %s", x.Time.Format(time.TimeOnly), x.Event, x.Centre, role, staff, x.Purpose, verdict)
			if x.Purpose == consent.Emergency {
				line += ", EMERGENCY (" + x.Reason.String() + ")"
			}
			if x.Released > 0 {
				line += fmt.Sprintf(", %d record(s) released", x.Released)
			}
			d.say("%s", line)
		}
	}

	tok, err := consent.SignToken(key, consent.Token{
		ID: consent.NewID(), Federation: fed, Subject: p, Grantee: consent.Actor{Centre: dnode.Centre.ID()},
		Purposes: consent.Treatment, Actions: consent.Copy, Issued: now(), Expires: now().Add(time.Hour), Uses: 1,
	})
	if err != nil {
		return err
	}
	moved, err := dnode.Transfer(ctx, centre.TransferRequest{Pseudonym: p, Role: consent.Clinician, Staff: staff, Token: tok})
	if err != nil {
		return err
	}
	d.say("\nThe patient moves to centre-d and gives it a token to copy their records")
	d.say("(medfed transfer): each copy goes on centre-d's ledger with its provenance,")
	d.say("the source's entry and its proof; each source records the transfer.")
	for _, s := range moved.Sources {
		if s.Outcome != centre.Copied || !s.Recorded {
			return fmt.Errorf("demo: the transfer from %s: %+v", s.Name, s)
		}
		d.say("  from %s: %d record(s) copied, the transfer on both ledgers", s.Name, len(s.Copies))
	}

	// The key has to have been in force for the charter's key notice.
	select {
	case <-time.After(time.Until(settled)):
	case <-ctx.Done():
		return ctx.Err()
	}
	erase, err := centre.PatientRequest(d.cfgs["centre-d"], patient.Erase, p, key)
	if err != nil {
		return err
	}
	erased, err := dnode.PatientRelay(ctx, erase)
	if err != nil {
		return err
	}
	d.say("\nLater they ask for everything to be erased (medfed patient erase):")
	for _, h := range erased.Holders {
		if h.Outcome != centre.Answered || !h.Withdrawn {
			return fmt.Errorf("demo: %s did not erase: %+v", h.Name, h)
		}
		d.say("  %s: %d payload(s) crypto-shredded, erasure entries appended, withdrawn", h.Name, len(h.Erasures))
	}
	for _, r := range []*harness.Node{a, b, c, dnode} {
		if _, err := centre.Verify(ctx, d.cfgs[r.Centre.Name].Data.Dir); err != nil {
			return err
		}
	}
	d.say("Every ledger still verifies: the record entries stay; only the payloads are gone.")
	return nil
}

// showQuery prints a query's answers, which must release want records in
// all.
func (d *demo) showQuery(res centre.QueryResult, want int) error {
	got := 0
	for _, h := range res.Holders {
		if h.Outcome != centre.Answered {
			return fmt.Errorf("demo: %s answered %s: %s %v", h.Name, h.Outcome, h.Reason, h.Err)
		}
		d.say("  %s (%s; access entry %d, then the answer), proven in final checkpoint %d:", h.Name, h.Basis, h.Access, h.Size)
		for _, r := range h.Records {
			d.say("    %s %d: %s", r.Record.DataClass, r.Index, r.Payload)
			got++
		}
	}
	if got != want {
		return fmt.Errorf("demo: %d records released, want %d", got, want)
	}
	return nil
}

// admit has the members approvers admit the centre name (harness.Admit),
// and waits until it is in the directory's routing tables.
func (d *demo) admit(ctx context.Context, name string, approvers ...*harness.Node) (*harness.Node, error) {
	cfg, err := harness.Config(d.root, name, federationID)
	if err != nil {
		return nil, err
	}
	n, err := harness.Admit(ctx, cfg, approvers...)
	if err != nil {
		return nil, err
	}
	d.cfgs[name] = cfg
	if err := waitUntil(ctx, name+" joins the directory", func() bool {
		return n.Directory.RoutingTableSize() == len(n.Membership.Current().Members)-1
	}); err != nil {
		return nil, errors.Join(err, n.Stop())
	}
	return n, nil
}

// millis is a duration in milliseconds, as the commands print it.
func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
