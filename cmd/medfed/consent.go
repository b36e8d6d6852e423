package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

func newConsentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "consent",
		Short: "Patients' consent contracts: grant, revoke, token, show, check",
		Long: `consent signs a patient's consent documents with the patient's key file
(made by medfed patient keygen and attested by a registrar with medfed
patient attest) and hands them to a running node, which delivers them to
every centre holding the patient's records. The key never leaves this
machine: only signed documents are sent.

grant, revoke and veto --out FILE sign the document and write it to FILE
instead of submitting it: the JSON body POST /v1/consent takes,
{"document": "<the signed document in base64>"}, for the patient (or
their app) to post to any member centre's API, e.g.

  curl --cacert api.crt -H 'Content-Type: application/json' \
       --data-binary @FILE https://HOST:PORT/v1/consent

The node must run all the same: it says which key is attested and which
contract is in force. The file is created with mode 0600 and never
overwritten.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newConsentGrantCmd(), newConsentRevokeCmd(), newConsentDelegateCmd(), newConsentVetoCmd(), newConsentTokenCmd(), newConsentShowCmd(), newConsentCheckCmd())
	return cmd
}

// patientFlags are the flags of the commands that sign for a patient.
type patientFlags struct {
	keyFile, pseudonym string
	delegation         string // the delegation a delegate signs under; "" for the patient
}

func (f *patientFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.keyFile, "key", "", "the patient's key `file` (medfed patient keygen)")
	cmd.Flags().StringVar(&f.pseudonym, "pseudonym", "", "the patient's pseudonym, 64 hex digits")
}

// addDelegation lets a delegate sign instead of the patient: --key is
// then the delegate's key, and the document names the delegation.
func (f *patientFlags) addDelegation(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.delegation, "delegation", "", "sign as the patient's delegate under the delegation with this `ID` (--key is the delegate's key; medfed consent delegate)")
}

// via is the delegation the document is signed under: zero for the
// patient's own.
func (f *patientFlags) via(cmd *cobra.Command) (consent.ID, error) {
	if f.delegation == "" {
		return consent.ID{}, nil
	}
	id, err := consent.ParseID(f.delegation)
	if err != nil {
		return id, usagef("%s: --delegation: %v", cmd.Name(), err)
	}
	return id, nil
}

// load reads the key and the patient's consent as the node holds it, and
// checks that the key is the one attested.
func (f *patientFlags) load(cmd *cobra.Command, cfg centre.Config) (ed25519.PrivateKey, ledger.Pseudonym, api.ConsentView, error) {
	var v api.ConsentView
	p, err := ledger.ParsePseudonym(f.pseudonym)
	if err != nil {
		return nil, p, v, usagef("%s: --pseudonym: %v", cmd.Name(), err)
	}
	if f.keyFile == "" {
		return nil, p, v, usagef("%s: --key: give the patient's key file", cmd.Name())
	}
	b, err := os.ReadFile(f.keyFile)
	if err != nil {
		return nil, p, v, err
	}
	k, err := consent.ParseKey(b)
	if err != nil {
		return nil, p, v, fmt.Errorf("%s: %w", f.keyFile, err)
	}
	if v, err = admin.Dial(cfg.Data.Dir).Consent(cmd.Context(), f.pseudonym); err != nil {
		return nil, p, v, err
	}
	// A delegate's key is not the patient's: the node checks it against
	// the delegation the document names.
	if pub := consent.FormatPublicKey(k.Public().(ed25519.PublicKey)); v.Key != pub && f.delegation == "" {
		return nil, p, v, fmt.Errorf("%s is not the key attested for this patient: a registrar attests it with medfed patient attest --public-key %s", f.keyFile, pub)
	}
	return k, p, v, nil
}

func now() time.Time { return time.Now().UTC().Truncate(time.Second) }

func newConsentGrantCmd() *cobra.Command {
	var (
		pf         patientFlags
		terms, out string
	)
	cmd := &cobra.Command{
		Use:   "grant --config FILE --key FILE --pseudonym P --terms FILE",
		Short: "Sign and submit a patient's consent contract",
		Long: `grant signs a contract with the terms in FILE (JSON; "-" reads standard
input) and submits it. The terms follow FHIR Consent:

  {"base": "opt-in",
   "provision": [{"type": "deny", "purpose": ["research"],
     "provision": [{"type": "permit",
                    "actor": [{"centre": "centre-c", "role": "researcher"}],
                    "class": ["lab-result"]}]}]}

base is opt-in (permit unless a provision denies) or opt-out (deny unless
a provision permits). A provision has a type (permit or deny) and any of:
actor (centre name, role, staff ID), action (access, copy), purpose
(treatment, research, emergency), class (data classes), period and
dataPeriod ({"start": ..., "end": ...}, RFC 3339 or dates), and nested
provisions, its exceptions. A deny naming the emergency purpose opts the
patient out of emergency access.

The new contract replaces the one in force, as its next version.

With --out, the contract is signed and written to FILE, not submitted:
see medfed consent --help.`,
		Args: cobra.NoArgs,
	}
	pf.add(cmd)
	pf.addDelegation(cmd)
	cmd.Flags().StringVar(&terms, "terms", "", "the contract's terms, a JSON `file` (- for standard input)")
	cmd.Flags().StringVar(&out, "out", "", outHelp("contract"))
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		if terms == "" {
			return usagef("consent grant: --terms: give the contract's terms")
		}
		var b []byte
		var err error
		if terms == "-" {
			b, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), consent.MaxDocument))
		} else {
			b, err = os.ReadFile(terms)
		}
		if err != nil {
			return err
		}
		spec, err := consent.ParseSpec(b)
		if err != nil {
			return usagef("consent grant: %s: %v", terms, err)
		}
		k, p, v, err := pf.load(cmd, cfg)
		if err != nil {
			return err
		}
		st, err := admin.Dial(cfg.Data.Dir).Status(cmd.Context())
		if err != nil {
			return err
		}
		base, provisions, err := spec.Terms(func(name string) (peer.ID, error) {
			for _, m := range st.Members {
				if m.Name == name {
					return m.ID, nil
				}
			}
			return "", fmt.Errorf("%w: %q is not a member centre", node.ErrInvalid, name)
		})
		if err != nil {
			return usagef("consent grant: %s: %v", terms, err)
		}
		var inForce *consent.Contract
		if v.Standing == "in force" {
			inForce = &consent.Contract{Version: v.Contract.Version}
			if inForce.ID, err = consent.ParseID(v.Contract.ID); err != nil {
				return err
			}
		}
		c := consent.NextContract(v.Federation, p, now(), base, provisions, inForce)
		if c.Delegation, err = pf.via(cmd); err != nil {
			return err
		}
		doc, err := consent.SignContract(k, c)
		if err != nil {
			return usagef("consent grant: %v", err)
		}
		return submit(cmd, cfg, out, doc, fmt.Sprintf("contract %s version %d", c.ID, c.Version))
	})
}

// submit hands a signed document to the node and prints where it went;
// or, with a file to write to (--out), writes it there for the patient
// to submit themselves.
func submit(cmd *cobra.Command, cfg centre.Config, out string, doc []byte, what string) error {
	if out != "" {
		return writeBody(cmd, out, api.DocumentBody{Document: doc}, what, "/v1/consent")
	}
	d, err := admin.Dial(cfg.Data.Dir).SubmitConsent(cmd.Context(), doc)
	if err != nil {
		return err
	}
	return reportDelivery(cmd, what, d)
}

// outHelp is the help of a signing command's --out flag.
func outHelp(what string) string {
	return "write the signed " + what + " to this `file` (mode 0600), as the JSON body its API route takes, instead of submitting it"
}

// writeBody writes body, the JSON body of POST route with the signed
// bytes in it, to a new file of mode 0600, for the patient to post
// themselves (curl --data-binary @FILE), and says so.
func writeBody(cmd *cobra.Command, file string, body any, what, route string) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	if err := writeSecret(file, append(b, '\n')); err != nil {
		return err
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s signed, not submitted: %s holds the body of POST %s\n", what, file, route)
	return err
}

// reportDelivery prints where a document went, and fails unless a
// majority of the federation has it.
func reportDelivery(cmd *cobra.Command, what string, d api.ConsentDelivery) error {
	out := &stickyWriter{w: cmd.OutOrStdout()}
	printDelivery(out, what, d)
	if out.err == nil && !d.Confirmed {
		return fmt.Errorf("%s: %w", what, errUnconfirmed)
	}
	return out.err
}

func printDelivery(w io.Writer, what string, d api.ConsentDelivery) {
	fmt.Fprintf(w, "%s accepted\n", what)
	fmt.Fprintf(w, "holders:      %s\n", list(d.Holders))
	fmt.Fprintf(w, "delivered to: %s\n", list(d.Delivered))
	for _, f := range d.Failed {
		fmt.Fprintf(w, "not reached:  %s (%s); it reads the consent again before it decides\n", f.Centre, f.Error)
	}
	if d.WaitedMs > 0 {
		fmt.Fprintf(w, "confirmed once the lease of a holder that could not be told had run out (%v)\n", time.Duration(d.WaitedMs)*time.Millisecond)
	}
	if d.Lookup != "" {
		fmt.Fprintf(w, "warning: the directory lookup was incomplete (%s); holders may be missing\n", d.Lookup)
	}
}

// errUnconfirmed: a document that did not reach a majority of the
// federation may be missed by a centre that syncs.
var errUnconfirmed = errors.New("not confirmed: fewer than a majority of the federation hold it; submit it again when more centres are reachable (a second submission changes nothing else)")

func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func newConsentRevokeCmd() *cobra.Command {
	var pf pfRevoke
	cmd := &cobra.Command{
		Use:   "revoke --config FILE --key FILE --pseudonym P [--id ID]",
		Short: "Revoke the patient's contract in force, or a token",
		Long: `revoke signs a revocation of the contract in force (or of the contract or
token with --id) and submits it. Every holder it reaches denies access
from then on, but for emergency access and unrevoked tokens; a holder it
could not reach syncs before it decides again.

With --out, the revocation is signed and written to FILE, not submitted:
see medfed consent --help.`,
		Args: cobra.NoArgs,
	}
	pf.add(cmd)
	pf.addDelegation(cmd)
	cmd.Flags().StringVar(&pf.id, "id", "", "the contract, token or delegation `ID` to revoke (default: the contract in force)")
	cmd.Flags().StringVar(&pf.out, "out", "", outHelp("revocation"))
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		k, p, v, err := pf.load(cmd, cfg)
		if err != nil {
			return err
		}
		var target consent.ID
		switch {
		case pf.id != "":
			if target, err = consent.ParseID(pf.id); err != nil {
				return usagef("consent revoke: --id: %v", err)
			}
		case v.Standing == "in force":
			if target, err = consent.ParseID(v.Contract.ID); err != nil {
				return err
			}
		default:
			return fmt.Errorf("consent revoke: no contract is in force for this patient (standing: %s); give --id to revoke a token", v.Standing)
		}
		via, err := pf.via(cmd)
		if err != nil {
			return err
		}
		doc, err := consent.SignRevocation(k, consent.Revocation{Federation: v.Federation, Subject: p, Target: target, Issued: now(), Delegation: via})
		if err != nil {
			return usagef("consent revoke: %v", err)
		}
		return submit(cmd, cfg, pf.out, doc, "revocation of "+target.String())
	})
}

func newConsentVetoCmd() *cobra.Command {
	var (
		pf               patientFlags
		attestation, out string
	)
	cmd := &cobra.Command{
		Use:   "veto --config FILE --key FILE --pseudonym P --attestation HASH",
		Short: "Refuse, with the patient's key in force, an attestation that would replace it",
		Long: `veto signs the patient's refusal of a pending replacement of their key
(an attestation they did not ask for: medfed consent show lists the
attestations and where each stands) and submits it. A veto counts while the
replacement is in its notice period, or still awaiting its second approval;
the replacement then never takes effect.

With --out, the veto is signed and written to FILE, not submitted: see
medfed consent --help.`,
		Args: cobra.NoArgs,
	}
	pf.add(cmd)
	cmd.Flags().StringVar(&attestation, "attestation", "", "the attestation's `hash`, 64 hex digits")
	cmd.Flags().StringVar(&out, "out", "", outHelp("veto"))
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		target, err := consent.ParseHash(attestation)
		if err != nil {
			return usagef("consent veto: --attestation: %v", err)
		}
		k, p, v, err := pf.load(cmd, cfg)
		if err != nil {
			return err
		}
		doc, err := consent.SignVeto(k, consent.Veto{Federation: v.Federation, Subject: p, Attestation: target, Issued: now()})
		if err != nil {
			return usagef("consent veto: %v", err)
		}
		return submit(cmd, cfg, out, doc, "veto of attestation "+attestation)
	})
}

type pfRevoke struct {
	patientFlags
	id, out string
}

func newConsentTokenCmd() *cobra.Command {
	var (
		pf               patientFlags
		grantee          string
		purposes, acts   []string
		classes          []string
		expires          time.Duration
		uses             uint16
		dataFrom, dataTo string
		out              string
	)
	cmd := &cobra.Command{
		Use:   "token --config FILE --key FILE --pseudonym P --grantee CENTRE[/STAFF] [flags]",
		Short: "Sign a temporary access token for one grantee",
		Long: `token signs a token that lets one grantee (a centre, or a staff member at
one: CENTRE/STAFF-ID) access the patient's records within a scope
(purposes, actions, data classes, data period) until it expires, for a
number of uses (one use is one answer from one holder). It prints the
token in base64 (or writes it to --out) for the grantee to present; each
holder records every use on its ledger before it answers, and refuses a
spent or expired token. The expiry may be at most the charter's
token-max-lifetime away.`,
		Args: cobra.NoArgs,
	}
	pf.add(cmd)
	cmd.Flags().StringVar(&grantee, "grantee", "", "the grantee: a centre name, or CENTRE/STAFF-ID")
	cmd.Flags().StringArrayVar(&purposes, "purpose", nil, "a purpose: treatment or research (repeat; default any)")
	cmd.Flags().StringArrayVar(&acts, "action", nil, "an action: access or copy (repeat; default any)")
	cmd.Flags().StringArrayVar(&classes, "class", nil, "a data class (repeat; default any)")
	cmd.Flags().DurationVar(&expires, "expires", time.Hour, "how long the token runs")
	cmd.Flags().Uint16Var(&uses, "uses", 1, "how many uses it allows (1 to 1000)")
	cmd.Flags().StringVar(&dataFrom, "data-from", "", "only records made from this time (RFC 3339 or a date)")
	cmd.Flags().StringVar(&dataTo, "data-to", "", "only records made before this time")
	cmd.Flags().StringVar(&out, "out", "", "write the token to this `file` (mode 0600) instead of printing it")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		k, p, v, err := pf.load(cmd, cfg)
		if err != nil {
			return err
		}
		if expires <= 0 || expires > v.TokenMaxLifetime {
			return usagef("consent token: --expires %v: the charter allows up to %v", expires, v.TokenMaxLifetime)
		}
		st, err := admin.Dial(cfg.Data.Dir).Status(cmd.Context())
		if err != nil {
			return err
		}
		centreName, staff, _ := strings.Cut(grantee, "/")
		t := consent.Token{ID: consent.NewID(), Federation: v.Federation, Subject: p, Classes: classes, Issued: now(), Uses: uses}
		t.Expires = t.Issued.Add(expires.Truncate(time.Second))
		for _, m := range st.Members {
			if m.Name == centreName {
				t.Grantee.Centre = m.ID
			}
		}
		if t.Grantee.Centre == "" {
			return usagef("consent token: --grantee: %q is not a member centre", centreName)
		}
		if staff != "" {
			if t.Grantee.Staff, err = consent.ParseStaffID(staff); err != nil {
				return usagef("consent token: --grantee: %v", err)
			}
		}
		for _, s := range purposes {
			pu, err := consent.ParsePurpose(s)
			if err != nil {
				return usagef("consent token: --purpose: %v", err)
			}
			t.Purposes |= pu
		}
		for _, s := range acts {
			a, err := consent.ParseAction(s)
			if err != nil {
				return usagef("consent token: --action: %v", err)
			}
			t.Actions |= a
		}
		if t.DataPeriod.Start, err = consent.ParseTime(dataFrom); err != nil {
			return usagef("consent token: --data-from: %v", err)
		}
		if t.DataPeriod.End, err = consent.ParseTime(dataTo); err != nil {
			return usagef("consent token: --data-to: %v", err)
		}
		doc, err := consent.SignToken(k, t)
		if err != nil {
			return usagef("consent token: %v", err)
		}
		text := base64.StdEncoding.EncodeToString(doc) + "\n"
		if out != "" {
			if err := writeSecret(out, []byte(text)); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "token %s for %s, %d use(s), expires %s, written to %s\n", t.ID, grantee, t.Uses, t.Expires.Format(time.RFC3339), out)
			return err
		}
		_, err = fmt.Fprint(cmd.OutOrStdout(), text)
		return err
	})
}

func newConsentShowCmd() *cobra.Command {
	var pseudonym string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show --config FILE --pseudonym P",
		Short: "Show a patient's consent as the centre holds it",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringVar(&pseudonym, "pseudonym", "", "the patient's pseudonym, 64 hex digits")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		v, err := admin.Dial(cfg.Data.Dir).Consent(cmd.Context(), pseudonym)
		if err != nil {
			return err
		}
		return printResult(cmd, asJSON, v, func(w io.Writer) error { return printConsent(w, v) })
	})
}

func printConsent(w io.Writer, v api.ConsentView) error {
	fmt.Fprintf(w, "patient:   %s\n", v.Pseudonym)
	key := "none attested (the charter's default policy applies)"
	if v.Attested {
		key = v.Key
	}
	fmt.Fprintf(w, "key:       %s\n", key)
	fmt.Fprintf(w, "standing:  %s\n", v.Standing)
	if c := v.Contract; c != nil {
		fmt.Fprintf(w, "contract:  %s version %d, issued %s\n", c.ID, c.Version, c.Issued.Format(time.RFC3339))
		terms, err := json.MarshalIndent(c.Terms, "           ", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "terms:     %s\n", terms)
	}
	fmt.Fprintf(w, "documents: %d\n", len(v.Documents))
	for _, d := range v.Documents {
		fmt.Fprintf(w, "  %-12s %s  by %s\n", d.Kind, d.Issued.Format(time.RFC3339), d.Signer)
	}
	for _, k := range v.Keys {
		effect := ""
		if k.Effect != nil {
			effect = ", takes effect " + k.Effect.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "  key %s by %s: %s%s (attestation %s)\n", k.Key, k.Centre, k.Status, effect, k.Attestation)
	}
	for id, n := range v.TokenUses {
		fmt.Fprintf(w, "token %s: %d use(s) here\n", id, n)
	}
	return nil
}

func newConsentCheckCmd() *cobra.Command {
	var (
		req      admin.DecideRequest
		recorded string
	)
	cmd := &cobra.Command{
		Use:   "check --config FILE --pseudonym P --centre NAME --role ROLE --purpose PURPOSE --class CLASS",
		Short: "Print what this centre decides for a request, and why",
		Long: `check evaluates a request (who, what, why, which record) against the
patient's consent as this centre holds it, syncing with the other members
first when it may have missed a document. It prints permit or deny with
the reason and the deciding provision, and exits 1 on deny.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&req.Pseudonym, "pseudonym", "", "the patient's pseudonym, 64 hex digits")
	cmd.Flags().StringVar(&req.Centre, "centre", "", "the requesting centre's name")
	cmd.Flags().StringVar(&req.Role, "role", "clinician", "the requester's role")
	cmd.Flags().StringVar(&req.Staff, "staff", "", "the requester's staff ID, 32 hex digits")
	cmd.Flags().StringVar(&req.Action, "action", "access", "access or copy")
	cmd.Flags().StringVar(&req.Purpose, "purpose", "treatment", "treatment, research or emergency")
	cmd.Flags().StringVar(&req.Class, "class", "", "the record's data class")
	cmd.Flags().StringVar(&recorded, "recorded", "", "when the record was made (RFC 3339 or a date; default now)")
	cmd.Flags().StringVar(&req.Reason, "reason", "", "the emergency reason: unconscious, life-threatening, urgent-treatment or public-health")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		t, err := consent.ParseTime(recorded)
		if err != nil {
			return usagef("consent check: --recorded: %v", err)
		}
		if t.IsZero() {
			t = now()
		}
		req.Recorded = t
		d, err := admin.Dial(cfg.Data.Dir).Decide(cmd.Context(), req)
		if err != nil {
			return err
		}
		verdict := "deny"
		if d.Permit {
			verdict = "permit"
		}
		if _, err := fmt.Fprintf(cmd.OutOrStdout(), "%s (%s): %s\n", verdict, d.Basis, d.Reason); err != nil {
			return err
		}
		if !d.Permit {
			return errDenied
		}
		return nil
	})
}

var errDenied = errors.New("consent check: denied")

// printJSON prints v as indented JSON.
// printResult writes v to cmd's output: as JSON, or as text by print.
func printResult(cmd *cobra.Command, asJSON bool, v any, print func(io.Writer) error) error {
	out := &stickyWriter{w: cmd.OutOrStdout()}
	var err error
	if asJSON {
		err = printJSON(out, v)
	} else {
		err = print(out)
	}
	if err == nil {
		err = out.err
	}
	return err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newConsentDelegateCmd() *cobra.Command {
	var (
		pf                                  patientFlags
		delegate, relationship, scope, term string
		out                                 string
	)
	cmd := &cobra.Command{
		Use:   "delegate --config FILE --key FILE --pseudonym P --delegate-key HEX --relationship R --scope S --for DURATION",
		Short: "Sign and submit a delegation: someone who acts for the patient",
		Long: `delegate signs, with the patient's key, a delegation to another person's
key (a parent for a child, a carer, an attorney: --relationship parent,
guardian, carer, attorney or relative) and submits it. The delegate then
signs on the patient's behalf, with their own key and --delegation ID,
within --scope for --for from now. The consent scope covers contracts,
tokens and their revocations; view, records and erasure the patient's own
requests (medfed patient view and erase --delegation ID; an erasure only
once the delegation has been in force for the charter's key notice).
Every document a delegate signs, and every request a delegate makes,
names the delegation on the ledger and in the patient's view. The
patient ends it with medfed consent revoke --id ID; the delegate may step
down the same way, signing with --delegation ID.

With --out, the delegation is signed and written to FILE, not submitted.`,
		Args: cobra.NoArgs,
	}
	pf.add(cmd)
	cmd.Flags().StringVar(&delegate, "delegate-key", "", "the delegate's public key, hex (medfed patient keygen prints it)")
	cmd.Flags().StringVar(&relationship, "relationship", "", "how the delegate stands to the patient: parent, guardian, carer, attorney or relative")
	cmd.Flags().StringVar(&scope, "scope", "", "what the delegate may do, comma-separated: consent, view, records, erasure")
	cmd.Flags().StringVar(&term, "for", "", "how long the delegation lasts from now, e.g. 8760h")
	cmd.Flags().StringVar(&out, "out", "", outHelp("delegation"))
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		key, err := consent.ParsePublicKey(delegate)
		if err != nil {
			return usagef("consent delegate: --delegate-key: %v", err)
		}
		rel, err := consent.ParseRelationship(relationship)
		if err != nil {
			return usagef("consent delegate: --relationship: %v", err)
		}
		var sc consent.Scope
		for _, name := range strings.Split(scope, ",") {
			s, err := consent.ParseScope(strings.TrimSpace(name))
			if err != nil {
				return usagef("consent delegate: --scope: %v", err)
			}
			sc |= s
		}
		d, err := time.ParseDuration(term)
		if err != nil || d <= 0 {
			return usagef("consent delegate: --for: a positive duration such as 8760h, got %q", term)
		}
		k, p, v, err := pf.load(cmd, cfg)
		if err != nil {
			return err
		}
		issued := now()
		del := consent.Delegation{ID: consent.NewID(), Federation: v.Federation, Subject: p, Delegate: key, Relationship: rel, Scope: sc,
			Issued: issued, Expires: issued.Add(d)}
		doc, err := consent.SignDelegation(k, del)
		if err != nil {
			return usagef("consent delegate: %v", err)
		}
		return submit(cmd, cfg, out, doc, fmt.Sprintf("delegation %s (%s, %s, until %s)", del.ID, rel, sc, del.Expires.Format(time.RFC3339)))
	})
}
