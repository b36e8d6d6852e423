package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

func newPatientViewCmd() *cobra.Command {
	return newPatientRequestCmd(patient.View, "view",
		"Show which centres hold a patient's records and every access to them (signed with the patient's key)",
		`view asks, through this centre, every member of the federation (and any
other centre the directory lists as a holder) for what its ledger says about
the patient: the records (never their payloads), every access (which
centre, staff member and role, when, for what purpose, permitted or not,
emergency or not), transfers and erasures. The request is signed with the
patient's key file on this machine; each centre checks that a member
attested that key for the patient. It prints how many centres were asked,
each that holds entries about the patient, how many hold nothing (they
record nothing of the request), and each that could not be reached, with
why: it may hold records. It exits 1 when a centre could not be reached.`)
}

func newPatientEraseCmd() *cobra.Command {
	return newPatientRequestCmd(patient.Erase, "erase",
		"Have every centre holding a patient's records erase them (signed with the patient's key)",
		`erase asks, through this centre, every member of the federation (and any
other centre the directory lists as a holder) to erase the patient's
records: each holding records crypto-shreds every payload it holds for the
patient (the ledger entries stay, so every proof stays valid), appends an
erasure entry for each, and withdraws from the directory; a centre holding
none says so and records nothing. The request is signed with the patient's
key file on this machine. The erasure also goes, as a consent document the
patient signs, to a majority of the federation, so that a centre that could
not be reached erases the records too once it is back: before it releases
anything, and within two consent leases (a minute by default) of reading
the erasure feed. It exits 1 when a centre could not be reached or the
erasure did not reach a majority; run it again for the rest (erasing again
changes nothing).`)
}

func newPatientRequestCmd(op patient.Op, use, short, long string) *cobra.Command {
	var (
		f               patientFlags
		asJSON          bool
		out, erasureOut string
	)
	long += `

With --out FILE, the request is signed and written to FILE, not sent: the
JSON body POST /v1/patient/` + use + ` takes, {"request": "<the signed request
in base64>"}, for the patient (or their app) to post to this centre's API
within ` + strconv.Itoa(int(patient.MaxSkew.Minutes())) + ` minutes (the request names this centre as its relay, and
the members take it only that long), e.g.

  curl --cacert api.crt -H 'Content-Type: application/json' \
       --data-binary @FILE https://HOST:PORT/v1/patient/` + use + `

The node must run all the same: it says which key is attested. The file is
created with mode 0600 and never overwritten.

With --delegation ID, --key is the key of the patient's delegate, who asks
under that delegation (medfed consent delegate): each centre checks that
the delegation names the key and is in force for the request's scope
(view, or erasure: in force for the charter's key notice), and records
the delegation beside the request.`
	if op == patient.Erase {
		long += ` The erasure document goes to
--erasure-out (default: FILE.erasure), the body of POST /v1/consent: post
it too, for the centres the request could not reach.`
	} else {
		long += ` It asks for the first page:
a holder with more says where its next page starts (a cursor), which
needs a request of its own.`
	}
	cmd := &cobra.Command{
		Use:   use + " --config FILE --key FILE --pseudonym P [--delegation ID] [--out FILE]",
		Short: short,
		Long:  long,
		Args:  cobra.NoArgs,
	}
	f.add(cmd)
	f.addDelegation(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&out, "out", "", "write the signed request to this `file` (mode 0600), as the JSON body POST /v1/patient/"+use+" takes, instead of sending it")
	if op == patient.Erase {
		cmd.Flags().StringVar(&erasureOut, "erasure-out", "", "with --out, write the signed erasure document to this `file`, as the JSON body POST /v1/consent takes (default: the --out file with .erasure appended)")
	}
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		if erasureOut != "" && out == "" {
			return usagef("patient %s: --erasure-out goes with --out", use)
		}
		via, err := f.via(cmd)
		if err != nil {
			return err
		}
		k, p, _, err := f.load(cmd, cfg)
		if err != nil {
			return err
		}
		if out != "" {
			return writePatientRequest(cmd, cfg, op, p, k, via, out, erasureOut)
		}
		var unconfirmed error
		res, err := patientPages(cmd.Context(), cfg, op, p, k)
		if err != nil {
			return err
		}
		if err := printResult(cmd, asJSON, res, func(w io.Writer) error { printPatient(w, res); return nil }); err != nil {
			return err
		}
		// An erasure is also a consent document, signed by the patient:
		// kept by a majority like a revocation, it reaches the holders that
		// could not be reached (they read it before they release anything,
		// and from the erasure feed within two leases). It goes after the
		// centres reached have answered, so that the patient hears from
		// each of them.
		if op == patient.Erase {
			doc, err := consent.SignErasure(k, consent.Erasure{Federation: cfg.Federation.ID, Subject: p, Issued: time.Now().UTC().Truncate(time.Second), Delegation: via})
			if err != nil {
				return err
			}
			d, err := admin.Dial(cfg.Data.Dir).SubmitConsent(cmd.Context(), doc)
			if err != nil {
				return err
			}
			if !asJSON {
				printDelivery(cmd.OutOrStdout(), "erasure", d)
				if d.Confirmed {
					fmt.Fprintln(cmd.OutOrStdout(), "a centre holding records the directory does not list erases them too, before it releases anything, and within two consent leases, once it can be reached")
				}
			}
			if !d.Confirmed {
				unconfirmed = fmt.Errorf("patient erase: %w", errUnconfirmed)
			}
		}
		// Every member was asked: an incomplete directory lookup misses
		// no holder unless a member could not be reached.
		if u := res.Unreached(); len(u) > 0 {
			return fmt.Errorf("patient %s: %d centre(s) could not be reached, and may hold records", use, len(u))
		}
		return unconfirmed
	})
}

// writePatientRequest signs the patient's request, the first page of a
// view or an erasure, and writes it to out as the body of its route; an
// erasure's consent document, under delegation via when a delegate signs,
// goes to erasureOut (out.erasure when empty). Nothing is sent.
func writePatientRequest(cmd *cobra.Command, cfg centre.Config, op patient.Op, p ledger.Pseudonym, k ed25519.PrivateKey, via consent.ID, out, erasureOut string) error {
	req, err := centre.PatientPage(cfg, p, k, op, nil)
	if err != nil {
		return err
	}
	var doc []byte
	if op == patient.Erase {
		// Signed before either file is written: a key that cannot sign
		// leaves neither behind.
		if doc, err = consent.SignErasure(k, consent.Erasure{Federation: cfg.Federation.ID, Subject: p, Issued: now(), Delegation: via}); err != nil {
			return err
		}
	}
	what := fmt.Sprintf("%s request (relay: this centre; post it within %d minutes)", op, int(patient.MaxSkew.Minutes()))
	if err := writeBody(cmd, out, api.PatientRequestBody{Request: req}, what, "/v1/patient/"+op.String()); err != nil {
		return err
	}
	if doc == nil {
		return nil
	}
	if erasureOut == "" {
		erasureOut = out + ".erasure"
	}
	return writeBody(cmd, erasureOut, api.DocumentBody{Document: doc}, "erasure document", "/v1/consent")
}

// maxPages bounds how many pages a view asks for: 64 of 65,536 entries
// each, per holder, is more than any patient's history.
const maxPages = 64

// patientPages sends the patient's request and, for a view, asks again
// with cursors while any holder has more, merging each page into the
// first answer of the same holder.
func patientPages(ctx context.Context, cfg centre.Config, op patient.Op, p ledger.Pseudonym, k ed25519.PrivateKey) (api.PatientResult, error) {
	sock := admin.Dial(cfg.Data.Dir)
	var cursors []patient.Cursor
	var res api.PatientResult
	for page := range maxPages {
		req, err := centre.PatientPage(cfg, p, k, op, cursors)
		if err != nil {
			return res, err
		}
		got, err := sock.Patient(ctx, req)
		if err != nil {
			return res, err
		}
		if page == 0 {
			res = got
		} else {
			mergePage(&res, got, cursors)
		}
		// Holders with more go on from their Next; the others, room
		// permitting, from the end of their ledgers, so that they send
		// nothing again (one left out sends its first page again, which
		// is not merged).
		var more, done []patient.Cursor
		for _, h := range res.Holders {
			if h.ID == "" || h.Status == "failed" {
				continue
			}
			id, err := peer.Decode(h.ID)
			if err != nil {
				return res, fmt.Errorf("patient %s: holder %s: %w", op, h.Name, err)
			}
			if h.Next != 0 {
				more = append(more, patient.Cursor{Holder: id, From: h.Next})
			} else {
				done = append(done, patient.Cursor{Holder: id, From: h.LedgerSize})
			}
		}
		if len(more) == 0 {
			return res, nil
		}
		cursors = append(more, done...)[:min(len(more)+len(done), patient.MaxCursors)]
		slices.SortFunc(cursors, func(a, b patient.Cursor) int { return strings.Compare(string(a.Holder), string(b.Holder)) })
	}
	return res, fmt.Errorf("patient %s: more than %d pages", op, maxPages)
}

// mergePage adds a later page's entries to the holders of res that were
// asked for more (a cursor at their Next); the others answered from where
// their cursor, or their first entry, put them, and are not merged.
func mergePage(res *api.PatientResult, page api.PatientResult, cursors []patient.Cursor) {
	for _, g := range page.Holders {
		i := slices.IndexFunc(res.Holders, func(h api.PatientHolder) bool { return h.Name == g.Name })
		if i < 0 || res.Holders[i].Next == 0 || !slices.ContainsFunc(cursors, func(c patient.Cursor) bool {
			return c.Holder.String() == res.Holders[i].ID && c.From == res.Holders[i].Next
		}) {
			continue
		}
		h := &res.Holders[i]
		h.Records = append(h.Records, g.Records...)
		h.Accesses = append(h.Accesses, g.Accesses...)
		h.Transfers = append(h.Transfers, g.Transfers...)
		h.Erasures = append(h.Erasures, g.Erasures...)
		h.Requests = append(h.Requests, g.Requests...)
		h.KeyEvents = append(h.KeyEvents, g.KeyEvents...)
		h.Dispenses = append(h.Dispenses, g.Dispenses...)
		h.Cancellations = append(h.Cancellations, g.Cancellations...)
		h.Devices = append(h.Devices, g.Devices...)
		h.DeviceRevocations = append(h.DeviceRevocations, g.DeviceRevocations...)
		h.Next, h.LedgerSize = g.Next, g.LedgerSize
		if g.Status == "failed" {
			h.Status, h.Error = g.Status, g.Error
		}
		// An erasure on a later page than its record.
		for _, e := range h.Erasures {
			for j := range h.Records {
				if h.Records[j].Index == e.Record {
					h.Records[j].Erased = true
				}
			}
		}
	}
}

// printPatient prints what every centre asked said: first how many were
// asked, how many hold nothing, and which could not be reached; then each
// that could not be reached, with why, and each holder's part.
func printPatient(w io.Writer, res api.PatientResult) {
	fmt.Fprintf(w, "# %s: %s\n", res.Pseudonym, res.Summary())
	switch {
	case res.Lookup != "" && res.EveryMember:
		fmt.Fprintf(w, "# the directory lookup was incomplete (every member was asked all the same): %s\n", res.Lookup)
	case res.Lookup != "":
		fmt.Fprintf(w, "# the directory lookup was incomplete, and a holder it did not find was not asked: %s\n", res.Lookup)
	case !res.EveryMember:
		fmt.Fprintln(w, "# asked the holders the directory lists (the federation is too large to ask every member)")
	}
	for _, h := range res.Unreached() {
		fmt.Fprintf(w, "%s: could not be reached, and may hold records: %s\n", h.Name, h.Error)
	}
	for _, h := range res.Holders {
		if h.Status == "failed" {
			continue
		}
		if res.Op == patient.Erase.String() {
			fmt.Fprintf(w, "%s: %d record(s) erased", h.Name, len(h.Erasures))
			if h.Withdrawn {
				fmt.Fprintf(w, ", withdrawn from the directory\n")
			} else {
				fmt.Fprintf(w, "; %s\n", h.Problem)
			}
			continue
		}
		fmt.Fprintf(w, "%s: %d record(s), %d access(es)\n", h.Name, len(h.Records), len(h.Accesses))
		for _, r := range h.Records {
			fmt.Fprintf(w, "  %s %d  %s  %s", r.Kind, r.Index, r.Class, r.Occurred.Format(time.DateOnly))
			if r.Erased {
				fmt.Fprint(w, "  (erased)")
			}
			fmt.Fprintln(w)
		}
		for _, a := range h.Accesses {
			if a.Event == consent.EventLookup.String() {
				fmt.Fprintf(w, "  %s  lookup by %s (%s", a.Time.Format(time.RFC3339), a.Centre, a.Role)
				if a.Staff != "" {
					fmt.Fprintf(w, " %s", a.Staff)
				}
				fmt.Fprintf(w, "): which centres hold the records, for %s\n", a.Purpose)
				continue
			}
			verdict := "denied"
			if a.Permitted {
				verdict = "permitted"
			}
			fmt.Fprintf(w, "  %s  %s by %s", a.Time.Format(time.RFC3339), a.Event, a.Centre)
			if a.Role != "" {
				fmt.Fprintf(w, " (%s", a.Role)
				if a.Staff != "" {
					fmt.Fprintf(w, " %s", a.Staff)
				}
				fmt.Fprint(w, ")")
			}
			fmt.Fprintf(w, ": %s for %s, %s (%s)", a.Action, a.Purpose, verdict, a.Basis)
			if a.Emergency {
				fmt.Fprint(w, ", EMERGENCY")
				if a.Reason != "" {
					fmt.Fprintf(w, ": %s", a.Reason)
				}
			}
			if a.Released > 0 {
				fmt.Fprintf(w, ", %d record(s) released", a.Released)
			}
			fmt.Fprintln(w)
		}
		for _, t := range h.Transfers {
			fmt.Fprintf(w, "  %s  transfer %s, %s: record %d -> %d\n", t.Time.Format(time.RFC3339), t.Direction, t.Centre, t.Source, t.Copy)
		}
		for _, x := range h.Erasures {
			fmt.Fprintf(w, "  %s  record %d erased\n", x.Time.Format(time.RFC3339), x.Record)
		}
		for _, q := range h.Requests {
			fmt.Fprintf(w, "  %s  %s through %s", q.Time.Format(time.RFC3339), q.Event, q.Centre)
			if q.Delegation != "" {
				fmt.Fprintf(w, ", by a delegate under delegation %s", q.Delegation)
			}
			fmt.Fprintln(w)
		}
		for _, k := range h.KeyEvents {
			fmt.Fprintf(w, "  %s  %s by %s of attestation %s", k.Time.Format(time.RFC3339), k.Event, k.Centre, k.Attestation)
			if k.Key != "" {
				fmt.Fprintf(w, ": key %s", k.Key)
			}
			if k.Compromised {
				fmt.Fprint(w, ", the keys before it reported lost or stolen")
			}
			fmt.Fprintln(w)
		}
		for _, d := range h.Dispenses {
			fmt.Fprintf(w, "  %s  supply %d of %s's prescription %d dispensed by %s (pharmacist %s)\n", d.Time.Format(time.RFC3339), d.Fill, d.Issuer, d.Prescription, d.Pharmacy, d.Pharmacist)
		}
		for _, c := range h.Cancellations {
			fmt.Fprintf(w, "  %s  prescription %d cancelled (%s) by prescriber %s\n", c.Time.Format(time.RFC3339), c.Prescription, c.Reason, c.Prescriber)
		}
		for _, d := range h.Devices {
			fmt.Fprintf(w, "  %s  device %s registered for %s, %s to %s\n", d.Time.Format(time.RFC3339), d.Device, strings.Join(d.Classes, ", "),
				d.NotBefore.Format(time.RFC3339), d.Expires.Format(time.RFC3339))
		}
		for _, r := range h.DeviceRevocations {
			fmt.Fprintf(w, "  %s  device %s revoked (its registration, entry %d)\n", r.Time.Format(time.RFC3339), r.Device, r.Registration)
		}
	}
}

func newTransferCmd() *cobra.Command {
	var (
		req       admin.TransferRequest
		tokenFile string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "transfer --config FILE --pseudonym P [flags]",
		Short: "Copy a patient's records from the centres holding them, when the patient switches to this centre",
		Long: `transfer asks every centre holding the patient's records for those consent
lets this centre copy (action copy, purpose treatment) and stores each here
with its provenance on this ledger: the source centre, the record's index
there, and its entry with the inclusion proof against the source's final
checkpoint. Each source records the transfer on its own ledger, and this
centre announces itself in the directory. Records copied before are not
copied again. A source may then withdraw its announcement; that is its
choice.

It exits 1 when a source failed.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&req.Pseudonym, "pseudonym", "", "the patient's pseudonym, 64 hex digits")
	cmd.Flags().StringVar(&req.Role, "role", "clinician", "the requester's role")
	cmd.Flags().StringVar(&req.Staff, "staff", "", "the requester's staff ID, 32 hex digits")
	cmd.Flags().StringArrayVar(&req.Classes, "class", nil, "a data class to copy (repeat; default all)")
	cmd.Flags().StringVar(&tokenFile, "token", "", "a `file` holding the patient's token for copying")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		var err error
		if req.Token, err = readToken(tokenFile); err != nil {
			return err
		}
		res, err := admin.Dial(cfg.Data.Dir).Transfer(cmd.Context(), req)
		if err != nil {
			return err
		}
		if err := printResult(cmd, asJSON, res, func(w io.Writer) error { printTransfer(w, res); return nil }); err != nil {
			return err
		}
		for _, s := range res.Sources {
			if s.Status == "failed" || s.RecordError != "" {
				return fmt.Errorf("transfer: not every source completed: run it again")
			}
		}
		if res.AnnounceError != "" {
			return fmt.Errorf("transfer: this centre is not announced as a holder yet: run it again")
		}
		if res.Lookup != "" {
			return fmt.Errorf("transfer: the directory lookup was incomplete (sources may be missing): %s", res.Lookup)
		}
		return nil
	})
}

func printTransfer(w io.Writer, res api.TransferResult) {
	fmt.Fprintf(w, "# %s: %d source(s)\n", res.Pseudonym, len(res.Sources))
	for _, s := range res.Sources {
		switch s.Status {
		case "failed":
			fmt.Fprintf(w, "%s: failed: %s\n", s.Name, s.Error)
			if len(s.Copies) == 0 {
				continue
			}
		case "denied":
			fmt.Fprintf(w, "%s: denied: %s (access entry %d there)\n", s.Name, s.Reason, s.Access)
			continue
		default:
			fmt.Fprintf(w, "%s: %d record(s) copied (%d before), access entry %d there\n", s.Name, len(s.Copies), s.Before, s.Access)
		}
		for _, c := range s.Copies {
			fmt.Fprintf(w, "  record %d there -> record %d here\n", c.Source, c.Copy)
		}
		if s.Erased > 0 {
			fmt.Fprintf(w, "  %d record(s) erased there: nothing to copy\n", s.Erased)
		}
		if s.Recorded {
			fmt.Fprintf(w, "  the transfer is on %s's ledger\n", s.Name)
		} else if s.RecordError != "" {
			fmt.Fprintf(w, "  not recorded on %s's ledger: %s\n", s.Name, s.RecordError)
		}
	}
	switch {
	case res.Announced:
		fmt.Fprintln(w, "this centre is announced in the directory as a holder")
	case res.AnnounceError != "":
		fmt.Fprintf(w, "announcing failed (the node announces again at its next start): %s\n", res.AnnounceError)
	}
}
