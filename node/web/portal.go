package web

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/device"
	"github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// The portal's routes. The page is static but for the centre's
// vocabulary; its script does the rest through the JSON routes below,
// each of which either takes a key to enrol or prepares or takes a
// document the patient's key signs: none trusts a cookie.
func (s *Server) portal(w http.ResponseWriter, r *http.Request) {
	switch r.Method + " " + r.URL.Path {
	case "GET /portal/":
		s.render(w, "portal.html", page{Title: "Your records", Centre: s.node.Name(), Data: s.portalData()})
	case "POST /portal/enrol":
		s.json(w, r, s.enrolKey)
	case "POST /portal/enrolment":
		s.json(w, r, s.enrolmentStatus)
	case "POST /portal/draft":
		s.json(w, r, s.draft)
	case "POST /portal/submit":
		s.json(w, r, s.submit)
	default:
		s.problem(w, r, http.StatusNotFound, errors.New("no such page in the portal"))
	}
}

type portalData struct {
	Members       []string
	Classes       []option
	Roles         []option
	Purposes      []option
	DeviceTypes   []option
	DeviceClasses []option // the classes a device's readings are recorded as, of the centre's
	Relationships []option
	Scopes        []option
}

type option struct{ Value, Label string }

func (s *Server) portalData() portalData {
	var d portalData
	for _, m := range s.node.Members() {
		d.Members = append(d.Members, m.Name)
	}
	for _, c := range s.node.Classes() {
		label := c
		if w, ok := classWords[c]; ok {
			label = w
		}
		d.Classes = append(d.Classes, option{c, label})
	}
	for _, c := range api.ReadingClasses() {
		if i := slices.IndexFunc(d.Classes, func(o option) bool { return o.Value == c }); i >= 0 {
			d.DeviceClasses = append(d.DeviceClasses, d.Classes[i])
		}
	}
	for _, t := range device.Types() {
		d.DeviceTypes = append(d.DeviceTypes, option{t, deviceTypeWords[t]})
	}
	d.Relationships = []option{{"parent", "My parent"}, {"guardian", "My guardian"}, {"attorney", "Holds my power of attorney"}, {"carer", "My carer"}, {"relative", "Another relative"}}
	for _, v := range []string{"consent", "view", "records", "erasure"} {
		d.Scopes = append(d.Scopes, option{v, scopeWords[v]})
	}
	d.Roles = []option{{"clinician", "Clinicians"}, {"researcher", "Researchers"}}
	d.Purposes = []option{{"treatment", "My treatment"}, {"research", "Research"}}
	return d
}

const maxPortalBody = 64 << 10

// json runs a JSON route: it takes a body of JSON (never a form, so
// that no other site's form can post it) and answers JSON.
func (s *Server) json(w http.ResponseWriter, r *http.Request, handle func(ctx context.Context, r *http.Request, w http.ResponseWriter) (any, error)) {
	if !wantsJSON(r) {
		s.problem(w, r, http.StatusUnsupportedMediaType, errors.New("the portal's routes take JSON"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	v, err := handle(ctx, r, w)
	switch {
	case errors.Is(err, errThrottled):
		w.Header().Set("Retry-After", "1")
		s.problem(w, r, http.StatusTooManyRequests, err)
		return
	case err != nil:
		s.problem(w, r, api.StatusOf(err), err)
		return
	}
	api.WriteJSON(w, http.StatusOK, v)
}

// errThrottled refuses a patient key past its rate (429).
var errThrottled = errors.New("too many requests signed by this key: wait a moment")

// enrolBody is a key the patient's browser made.
type enrolBody struct {
	Kind      string `json:"kind"` // passkey or ed25519
	RPID      string `json:"rpId"` // a passkey's relying party: this page's host name
	PublicKey []byte `json:"publicKey"`
}

type enrolAnswer struct {
	Key  string `json:"key"`  // 64 hex digits: the key as the protocol names it
	Code string `json:"code"` // what the registrar types
}

func (s *Server) enrolKey(_ context.Context, r *http.Request, w http.ResponseWriter) (any, error) {
	var b enrolBody
	if err := api.DecodeJSON(w, r, &b, maxPortalBody); err != nil {
		return nil, err
	}
	var key [32]byte
	switch b.Kind {
	case "passkey":
		if host := hostName(r.Host); b.RPID != host {
			return nil, badRequest("a passkey made for %q, not this portal (%q)", b.RPID, host)
		}
		_, id, err := wire.ParsePasskeyKey(b.RPID, b.PublicKey)
		if err != nil {
			return nil, err
		}
		key = id
	case "ed25519":
		if len(b.PublicKey) != ed25519.PublicKeySize {
			return nil, badRequest("an Ed25519 public key is 32 bytes, not %d", len(b.PublicKey))
		}
		copy(key[:], b.PublicKey)
	default:
		return nil, badRequest("a key of kind %q: passkey or ed25519", b.Kind)
	}
	code, err := s.enrol.add(key, b.Kind == "passkey")
	if err != nil {
		return nil, err
	}
	return enrolAnswer{Key: hex.EncodeToString(key[:]), Code: formatCode(code)}, nil
}

func hostName(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

type codeBody struct {
	Code string `json:"code"`
	Key  string `json:"key"`
}

type enrolmentAnswer struct {
	Attested  bool   `json:"attested"`
	Pseudonym string `json:"pseudonym,omitempty"`
	// Delegation: the key is a delegate's, named in this delegation for
	// the patient; it speaks for them once the delegation is in force.
	Delegation string `json:"delegation,omitempty"`
}

// enrolmentStatus tells the patient's browser whether its key was
// attested, and for which pseudonym: it must name the key as well as the
// code, so the code alone tells nothing.
func (s *Server) enrolmentStatus(_ context.Context, r *http.Request, w http.ResponseWriter) (any, error) {
	var b codeBody
	if err := api.DecodeJSON(w, r, &b, maxBody); err != nil {
		return nil, err
	}
	e, ok := s.enrol.get(b.Code)
	if !ok || hex.EncodeToString(e.key[:]) != b.Key {
		return nil, notFound("no key waits with that code: it was attested more than a day ago, or the centre restarted; make a new one")
	}
	if e.patient.IsZero() {
		return enrolmentAnswer{}, nil
	}
	a := enrolmentAnswer{Attested: true, Pseudonym: e.patient.String()}
	if !e.delegation.IsZero() {
		a.Delegation = e.delegation.String()
	}
	return a, nil
}

const maxBody = 4 << 10

// draftBody asks for a document or a request for the patient's key to
// sign: a contract from the consent form, the revocation of the contract
// in force, a view of every holder, or a note for their records here.
type draftBody struct {
	What      string       `json:"what"` // contract, revocation, token, erasure, delegation, note, device, device-revocation, view, records or erase
	Pseudonym string       `json:"pseudonym"`
	Key       string       `json:"key"` // 64 hex digits
	Passkey   bool         `json:"passkey"`
	Form      *consentForm `json:"form,omitempty"`
	Seal      []byte       `json:"seal,omitempty"`   // records: the X25519 key the browser opens them with
	Target    string       `json:"target,omitempty"` // revocation: the token to withdraw (its ID); the contract in force when empty
	Token     *tokenForm   `json:"token,omitempty"`
	Note      string       `json:"note,omitempty"`      // note: its text
	Device    *deviceForm  `json:"device,omitempty"`    // device: the registration's form
	DeviceKey string       `json:"deviceKey,omitempty"` // device-revocation: the device's key, 64 hex digits
	// Delegation, for a delegate's key: the delegation it acts under, 32
	// hex digits; the document is signed under it.
	Delegation string `json:"delegation,omitempty"`
	// Delegate: delegation, the patient's own naming of a delegate.
	Delegate *delegateForm `json:"delegate,omitempty"`
}

// delegateForm names someone to act for the patient: the key their own
// portal shows, how they stand to the patient, what they may do, and
// for how many days.
type delegateForm struct {
	Key          string   `json:"key"` // 64 hex digits
	Relationship string   `json:"relationship"`
	Scope        []string `json:"scope"`
	Days         int      `json:"days"`
}

// deviceForm registers a device for a while: its key as the device shows
// it, what it is and what it may add.
type deviceForm struct {
	Key     string   `json:"key"` // 64 hex digits
	Type    string   `json:"type"`
	Classes []string `json:"classes"`
	Days    int      `json:"days"`
}

// tokenForm is a token for one grantee, for a while: a research team for
// a day, say.
type tokenForm struct {
	Centre   string   `json:"centre"`
	Purposes []string `json:"purposes"`
	Classes  []string `json:"classes"`
	Hours    int      `json:"hours"`
	Uses     uint16   `json:"uses"`
}

// draftAnswer is what the browser signs: an Ed25519 key Signed, a
// passkey Challenge; Draft comes back with the signature. Preview says
// what the document does, in plain words.
type draftAnswer struct {
	What      string   `json:"what"`
	Draft     []byte   `json:"draft"`
	Signed    []byte   `json:"signed"`
	Challenge []byte   `json:"challenge"`
	Preview   []string `json:"preview"`
	ID        string   `json:"id,omitempty"` // a delegation's: what the delegate's portal is given
}

func (s *Server) draft(ctx context.Context, r *http.Request, w http.ResponseWriter) (any, error) {
	var b draftBody
	if err := api.DecodeJSON(w, r, &b, maxPortalBody); err != nil {
		return nil, err
	}
	p, err := ledger.ParsePseudonym(b.Pseudonym)
	if err != nil {
		return nil, err
	}
	key, err := consent.ParsePublicKey(b.Key)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Second)
	if op, ok := requestOps[b.What]; ok {
		q := patient.Request{Op: op, Federation: s.node.Federation(), Relay: s.self(), Subject: p, Time: now}
		rand.Read(q.Nonce[:])
		if op == patient.Records {
			if len(b.Seal) != len(q.Seal) {
				return nil, badRequest("the records are sealed to an X25519 key of 32 bytes, not %d", len(b.Seal))
			}
			copy(q.Seal[:], b.Seal)
		}
		raw, err := q.Draft(key, b.Passkey)
		if err != nil {
			return nil, err
		}
		return toSign(b.What, patient.RequestContext, raw, []string{requestPreview[op]}), nil
	}
	// A document changes the patient's consent: their key must be the
	// one in force, or a delegate's under a delegation in force (the
	// document then names it), and the contract to replace or revoke is
	// the one in force.
	v, err := s.node.ShowConsent(ctx, p)
	if err != nil {
		return nil, err
	}
	var via consent.ID
	switch {
	case b.Delegation != "":
		if via, err = consent.ParseID(b.Delegation); err != nil {
			return nil, err
		}
		if err := delegateMay(v, via, key, b); err != nil {
			return nil, err
		}
	case !bytes.Equal(v.Key, key):
		return nil, forbidden("this key does not speak for the patient: a registrar has not attested it yet, or another key replaced it")
	}
	var inForce *consent.Contract
	if v.Standing == centre.InForce && v.Contract != nil {
		inForce = &consent.Contract{ID: v.Contract.ID, Version: v.Contract.Version}
	}
	switch b.What {
	case "note":
		return s.draftNote(p, key, b.Passkey, b.Note, now)
	case "device", "device-revocation":
		return s.draftDevice(p, key, b, now)
	}
	var d consent.Draft
	var preview []string
	var id string // a delegation's, for the patient to hand over
	switch b.What {
	case "contract":
		if b.Form == nil {
			return nil, badRequest("a contract needs the consent form")
		}
		c, err := s.contract(p, now, *b.Form, inForce)
		if err != nil {
			return nil, err
		}
		c.Delegation = via
		if d, err = consent.DraftContract(key, b.Passkey, c); err != nil {
			return nil, err
		}
		preview = b.Form.preview()
	case "revocation":
		target := consent.ID{}
		preview = []string{"Withdraw your consent at every centre: from then on no one may see your records, but in an emergency as your federation's rules allow."}
		switch {
		case b.Target != "":
			if target, err = consent.ParseID(b.Target); err != nil {
				return nil, err
			}
			preview = []string{"Withdraw the token " + b.Target + " at every centre: it grants nothing from then on."}
			if i := slices.IndexFunc(v.Delegations, func(g centre.ConsentDelegation) bool { return g.ID == target }); i >= 0 {
				g := v.Delegations[i]
				preview = []string{fmt.Sprintf("End the delegation %s of your %s at every centre: they act for you no more, from now on. What they signed before stands.", b.Target, g.Relationship)}
				if target == via {
					preview = []string{fmt.Sprintf("Step down from the delegation %s: you act for the patient no more, from now on. What you signed before stands.", b.Target)}
				}
			}
		case inForce == nil:
			return nil, conflict("you have no consent in force to withdraw")
		default:
			target = inForce.ID
		}
		if d, err = consent.DraftRevocation(key, b.Passkey, consent.Revocation{Federation: v.Federation, Subject: p, Target: target, Issued: now, Delegation: via}); err != nil {
			return nil, err
		}
	case "token":
		if b.Token == nil {
			return nil, badRequest("a token needs its form")
		}
		t, lines, err := s.token(p, now, *b.Token, v.TokenMaxLifetime)
		if err != nil {
			return nil, err
		}
		t.Delegation = via
		if d, err = consent.DraftToken(key, b.Passkey, t); err != nil {
			return nil, err
		}
		preview = lines
	case "erasure":
		if d, err = consent.DraftErasure(key, b.Passkey, consent.Erasure{Federation: v.Federation, Subject: p, Issued: now, Delegation: via}); err != nil {
			return nil, err
		}
		preview = []string{"Every centre erases every record it holds about you: the records are destroyed, and what remains on the ledgers says only that they existed and were erased. This cannot be undone."}
	case "delegation":
		g, lines, err := delegationOf(s.node.Federation(), p, now, b.Delegate)
		if err != nil {
			return nil, err
		}
		if d, err = consent.DraftDelegation(key, b.Passkey, g); err != nil {
			return nil, err
		}
		preview, id = lines, g.ID.String()
	default:
		return nil, badRequest("a draft of %q: contract, revocation, token, erasure, delegation, note, view, records or erase", b.What)
	}
	if !via.IsZero() {
		// A delegate reads what they sign as what it does for the patient.
		preview = append([]string{"For patient " + p.String() + ", under delegation " + via.String() + ":"}, preview...)
	}
	c := d.Challenge()
	return draftAnswer{What: b.What, Draft: d.Bytes, Signed: d.Signed(), Challenge: c[:], Preview: preview, ID: id}, nil
}

// maxDelegateDays bounds a delegation the patient names in the portal:
// two years, after which they name the delegate again.
const maxDelegateDays = 731

// delegationOf makes the delegation of patient p in federation fed that
// the patient's form names, and says what it does in plain words.
func delegationOf(fed string, p ledger.Pseudonym, now time.Time, f *delegateForm) (consent.Delegation, []string, error) {
	if f == nil {
		return consent.Delegation{}, nil, badRequest("a delegation needs its form")
	}
	key, err := shownKey(f.Key, "the delegate's key is the 64 hex digits their portal shows")
	if err != nil {
		return consent.Delegation{}, nil, err
	}
	g := consent.Delegation{ID: consent.NewID(), Federation: fed, Subject: p, Delegate: key, Issued: now}
	if g.Relationship, err = consent.ParseRelationship(f.Relationship); err != nil {
		return g, nil, err
	}
	var can []string
	for _, v := range f.Scope {
		sc, err := consent.ParseScope(v)
		if err != nil {
			return g, nil, err
		}
		g.Scope |= sc
		can = append(can, scopeWords[v])
	}
	if g.Scope == 0 {
		return g, nil, badRequest("tick what they may do for you")
	}
	if f.Days < 1 || f.Days > maxDelegateDays {
		return g, nil, badRequest("a delegation runs for 1 to %d days", maxDelegateDays)
	}
	g.Expires = now.Add(time.Duration(f.Days) * 24 * time.Hour)
	return g, []string{
		fmt.Sprintf("Your %s, whose key is %s, may %s for you, until %s.", g.Relationship, consent.FormatPublicKey(key), strings.Join(can, ", "), g.Expires.Format("2 January 2006")),
		"What they sign names this delegation, and you see it. You can end it here at any time; they can step down.",
	}, nil
}

// scopeWords say what each scope lets a delegate do.
var scopeWords = map[string]string{"consent": "give and withdraw your consent", "view": "see where your records are and who looked",
	"records": "get copies of your records", "erasure": "have your records erased"}

// delegateMay says why the delegate's key may not sign b under
// delegation via of the patient whose consent is v, or nil: the
// delegation names the key and is in force with the scope b needs; a
// delegate steps down from their own delegation whatever its state, and
// ends no other, and names no delegate; a note or a device is the
// patient's own.
func delegateMay(v centre.ConsentView, via consent.ID, key ed25519.PublicKey, b draftBody) error {
	i := slices.IndexFunc(v.Delegations, func(g centre.ConsentDelegation) bool { return g.ID == via && bytes.Equal(g.Delegate, key) })
	if i < 0 {
		return forbidden("no delegation of the patient names this key")
	}
	g := v.Delegations[i]
	need := consent.ScopeConsent
	switch b.What {
	case "note", "device", "device-revocation":
		return forbidden("a note or a device is the patient's own to sign")
	case "delegation":
		return forbidden("a delegate names no delegate of their own")
	case "erasure":
		need = consent.ScopeErasure
	case "revocation":
		if b.Target == via.String() {
			return nil // stepping down
		}
		if target, err := consent.ParseID(b.Target); err == nil && slices.ContainsFunc(v.Delegations, func(o centre.ConsentDelegation) bool { return o.ID == target }) {
			return forbidden("a delegate ends no delegation but their own (they step down from it)")
		}
	}
	switch {
	case g.Status != consent.DelegationInForce:
		return forbidden("the delegation is " + g.Status.String() + ": its delegate speaks for the patient only while it is in force")
	case g.Scope&need != need:
		return forbidden("the delegation does not let its delegate " + map[consent.Scope]string{consent.ScopeConsent: "give or withdraw consent", consent.ScopeErasure: "erase the records"}[need])
	}
	return nil
}

// draftNote drafts the patient's note of text for their records at this
// centre: the Observation that records it, in a note (device.Note) for
// their key to sign.
func (s *Server) draftNote(p ledger.Pseudonym, key ed25519.PublicKey, passkey bool, text string, now time.Time) (draftAnswer, error) {
	obs, err := api.NoteObservation(p, text, now)
	if err != nil {
		return draftAnswer{}, err
	}
	n := device.Note{Federation: s.node.Federation(), Centre: s.self(), Subject: p, Time: now, Observation: obs}
	rand.Read(n.Nonce[:])
	raw, err := n.Draft(key, passkey)
	if err != nil {
		return draftAnswer{}, err
	}
	return toSign("note", device.NoteContext, raw, []string{
		"Add this note to your records at " + s.node.Name() + ", in your own words:", text,
		"Staff you let see your observations may read it, at any centre; it is kept as any record is.",
	}), nil
}

// draftDevice drafts the registration of a device from the form, or the
// revocation of the device whose key is named, for the patient's key to
// sign.
func (s *Server) draftDevice(p ledger.Pseudonym, key ed25519.PublicKey, b draftBody, now time.Time) (draftAnswer, error) {
	var nonce [16]byte
	rand.Read(nonce[:])
	var (
		raw     []byte
		context string
		preview []string
	)
	if b.What == "device-revocation" {
		dk, err := deviceKey(b.DeviceKey)
		if err != nil {
			return draftAnswer{}, err
		}
		v := device.Revocation{Federation: s.node.Federation(), Centre: s.self(), Subject: p, Device: dk, Nonce: nonce, Time: now}
		if raw, err = v.Draft(key, b.Passkey); err != nil {
			return draftAnswer{}, err
		}
		context = device.RevocationContext
		preview = []string{"The device " + device.ID(dk).String() + " adds nothing more to your records at " + s.node.Name() + ", from now on. What it added stays in your records."}
	} else {
		f := b.Device
		if f == nil {
			return draftAnswer{}, badRequest("a device's registration needs its form")
		}
		dk, err := deviceKey(f.Key)
		if err != nil {
			return draftAnswer{}, err
		}
		t, err := device.ParseType(f.Type)
		if err != nil {
			return draftAnswer{}, err
		}
		if f.Days < 1 || f.Days > maxDeviceDays {
			return draftAnswer{}, badRequest("a device is registered for 1 to %d days", maxDeviceDays)
		}
		classes := slices.Clone(f.Classes)
		slices.Sort(classes)
		classes = slices.Compact(classes)
		for _, c := range classes {
			if !slices.Contains(api.ReadingClasses(), c) || !slices.Contains(s.node.Classes(), c) {
				return draftAnswer{}, badRequest("data class %q is not one a device's readings are recorded as here", c)
			}
		}
		if len(classes) == 0 {
			return draftAnswer{}, badRequest("tick what the device may add")
		}
		g := device.Registration{Federation: s.node.Federation(), Centre: s.self(), Subject: p, Device: dk, Type: t, Classes: classes,
			NotBefore: now.Add(-deviceBackfill), Expires: now.Add(time.Duration(f.Days) * 24 * time.Hour), Nonce: nonce, Time: now}
		if raw, err = g.Draft(key, b.Passkey); err != nil {
			return draftAnswer{}, err
		}
		context = device.RegistrationContext
		preview = []string{
			fmt.Sprintf("Your %s, device %s, may add your %s to your records at %s, until %s.", deviceTypeWords[t.String()], device.ID(dk).String(),
				words(classes, classWords, "and"), s.node.Name(), g.Expires.Format("2 January 2006")),
			"It may send what it measured in the last day too. Each reading it sends is signed with its own key and kept as any record is; you can revoke it here at any time.",
		}
	}
	return toSign(b.What, context, raw, preview), nil
}

// toSign is the draft raw of what, for the patient's key to sign under
// the message's context: as an Ed25519 key signs it, and a passkey's
// challenge.
func toSign(what, context string, raw []byte, preview []string) draftAnswer {
	signed := wire.Signed(context, raw)
	c := wire.Challenge(signed)
	return draftAnswer{What: what, Draft: raw, Signed: signed, Challenge: c[:], Preview: preview}
}

// A device the portal registers may send what it measured in the day
// before (a meter the patient already used keeps its readings), for up
// to maxDeviceDays: within device.MaxLifetime with that day.
const (
	deviceBackfill = 24 * time.Hour
	maxDeviceDays  = 731
)

// deviceKey reads a device's public key as the device shows it: 64 hex
// digits.
func deviceKey(s string) (ed25519.PublicKey, error) {
	return shownKey(s, "a device's key is the 64 hex digits it shows (medfed device keygen's .pub)")
}

// shownKey reads an Ed25519 key, or a passkey's ID, as a device or a
// portal shows it: 64 hex digits; refusal says what it should be.
func shownKey(s, refusal string) (ed25519.PublicKey, error) {
	k, err := consent.ParsePublicKey(strings.TrimSpace(s))
	if err != nil {
		return nil, badRequest("%s", refusal)
	}
	return k, nil
}

// deviceTypeWords name the device types as a patient reads them.
var deviceTypeWords = map[string]string{
	"glucose-meter": "glucose meter", "heart-rate-monitor": "heart rate monitor", "blood-pressure-monitor": "blood pressure monitor",
	"pulse-oximeter": "pulse oximeter", "scale": "scale", "patient-app": "app",
}

// viewAnswer is the patient's view, with who acts for them: every
// delegation of theirs when the patient's key in force signed the view,
// a delegate's own when theirs did (the request's signature is checked:
// ParseRequest), none otherwise.
type viewAnswer struct {
	api.PatientResult
	Delegations []api.ConsentDelegation `json:",omitempty"`
}

func (s *Server) viewAnswer(ctx context.Context, q patient.Request, res centre.PatientResult) (viewAnswer, error) {
	out := viewAnswer{PatientResult: api.PatientResultOf(res)}
	v, err := s.node.ShowConsent(ctx, q.Subject)
	if err != nil {
		// The holders answered, and recorded that they did: the view
		// goes back without the list rather than not at all.
		s.log.Warn("portal: the patient's delegations could not be read for their view", "pseudonym", q.Subject, "err", err)
		return out, nil
	}
	patientsOwn := bytes.Equal(v.Key, q.Key)
	for _, g := range api.ConsentViewOf(v).Delegations {
		if patientsOwn || g.Delegate == consent.FormatPublicKey(q.Key) {
			out.Delegations = append(out.Delegations, g)
		}
	}
	return out, nil
}

// requestOps are the patient's requests the portal makes, by the name
// its script uses.
var requestOps = map[string]patient.Op{"view": patient.View, "records": patient.Records, "erase": patient.Erase}

var requestPreview = map[patient.Op]string{
	patient.View:    "Ask every centre where your records are and who looked at them.",
	patient.Records: "Ask every centre for a copy of your records, sealed so that only this browser can open them. Each centre records that you did.",
	patient.Erase:   "Every centre you can reach now destroys your records, and leaves the federation's directory. This cannot be undone.",
}

// contract makes the form's contract, as medfed consent grant makes one
// of the same terms (consent.Spec, consent.NextContract).
func (s *Server) contract(p ledger.Pseudonym, now time.Time, f consentForm, inForce *consent.Contract) (consent.Contract, error) {
	members := s.node.Members()
	var names []string
	for _, m := range members {
		names = append(names, m.Name)
	}
	spec, err := f.spec(names, s.node.Classes())
	if err != nil {
		return consent.Contract{}, badRequest("%v", err)
	}
	base, provisions, err := spec.Terms(func(name string) (peer.ID, error) {
		i := slices.IndexFunc(members, func(m federation.Member) bool { return m.Name == name })
		if i < 0 {
			return "", badRequest("%q is not a member centre", name)
		}
		return members[i].ID, nil
	})
	if err != nil {
		return consent.Contract{}, err
	}
	return consent.NextContract(s.node.Federation(), p, now, base, provisions, inForce), nil
}

func (s *Server) self() peer.ID {
	for _, m := range s.node.Members() {
		if m.Name == s.node.Name() {
			return m.ID
		}
	}
	return ""
}

// submitBody is a draft signed: by an Ed25519 signature, or by a
// passkey's assertion.
type submitBody struct {
	What      string        `json:"what"`
	Draft     []byte        `json:"draft"`
	Key       string        `json:"key"`
	Signature []byte        `json:"signature,omitempty"`
	Passkey   *passkeyProof `json:"passkey,omitempty"`
}

// passkeyProof is navigator.credentials.get's answer, and the passkey's
// public key (SubjectPublicKeyInfo) and relying party.
type passkeyProof struct {
	RPID       string `json:"rpId"`
	PublicKey  []byte `json:"publicKey"`
	AuthData   []byte `json:"authenticatorData"`
	ClientData []byte `json:"clientDataJSON"`
	Signature  []byte `json:"signature"`
}

func (s *Server) submit(ctx context.Context, r *http.Request, w http.ResponseWriter) (any, error) {
	var b submitBody
	if err := api.DecodeJSON(w, r, &b, maxPortalBody); err != nil {
		return nil, err
	}
	key, err := consent.ParsePublicKey(b.Key)
	if err != nil {
		return nil, err
	}
	if !s.perKey.Allow(string(key)) {
		return nil, errThrottled
	}
	var pk *wire.Passkey
	if b.Passkey != nil {
		point, id, err := wire.ParsePasskeyKey(b.Passkey.RPID, b.Passkey.PublicKey)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(id[:], key) {
			return nil, forbidden("the passkey is not the key named")
		}
		pk = &wire.Passkey{RPID: b.Passkey.RPID, PublicKey: point, AuthData: b.Passkey.AuthData, ClientData: b.Passkey.ClientData, Sig: b.Passkey.Signature}
	}
	if op, ok := requestOps[b.What]; ok {
		raw, err := patient.SealRequest(b.Draft, b.Signature, pk)
		if err != nil {
			return nil, err
		}
		q, err := patient.ParseRequest(raw)
		if err != nil {
			return nil, err
		}
		if q.Op != op || !bytes.Equal(q.Key, key) {
			return nil, badRequest("not a %s request of this key", op)
		}
		res, err := s.node.PatientRelay(ctx, raw)
		if err != nil {
			return nil, err
		}
		if op != patient.View {
			return api.PatientResultOf(res), nil
		}
		return s.viewAnswer(ctx, q, res)
	}
	switch b.What {
	case "note":
		return s.submitNote(ctx, key, b.Draft, b.Signature, pk)
	case "device", "device-revocation":
		return s.submitDevice(ctx, b.What, key, b.Draft, b.Signature, pk)
	}
	d := consent.Draft{Key: key, Passkey: pk != nil, Bytes: b.Draft}
	var doc []byte
	if pk != nil {
		doc, err = d.SealPasskey(*pk)
	} else {
		doc, err = d.SealEd25519(b.Signature)
	}
	if err != nil {
		return nil, err
	}
	parsed, err := consent.Parse(doc)
	if err != nil {
		return nil, err
	}
	want, ok := documentKinds[b.What]
	if !ok || parsed.Kind != want {
		return nil, badRequest("a %s, not the %s submitted", parsed.Kind, b.What)
	}
	if parsed.Kind == consent.KindToken {
		// A token goes to its grantee, not to the centres: the patient
		// hands it over.
		t := parsed.Token
		return tokenAnswer{Token: doc, ID: t.ID.String(), Expires: t.Expires, Uses: t.Uses}, nil
	}
	del, err := s.node.SubmitConsent(ctx, doc)
	if err != nil {
		return nil, err
	}
	return api.ConsentDeliveryOf(del), nil
}

// submitNote takes the patient's note, signed: the centre stores it as a
// record they wrote, once their key is found to speak for them.
func (s *Server) submitNote(ctx context.Context, key ed25519.PublicKey, draft, sig []byte, pk *wire.Passkey) (any, error) {
	raw, err := device.SealNote(draft, sig, pk)
	if err != nil {
		return nil, err
	}
	n, err := device.ParseNote(raw)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(n.Key, key) {
		return nil, badRequest("not a note of this key")
	}
	reading, err := api.ReadNote(n.Subject, n.Observation)
	if err != nil {
		return nil, err
	}
	res, err := s.node.AddNote(ctx, centre.NoteRequest{Note: raw, Reading: reading})
	if err != nil {
		return nil, err
	}
	return api.ReadingsStoredOf(res), nil
}

// submitDevice takes the patient's registration or revocation of a
// device, signed: the centre registers or revokes the device once their
// key is found to speak for them.
func (s *Server) submitDevice(ctx context.Context, what string, key ed25519.PublicKey, draft, sig []byte, pk *wire.Passkey) (any, error) {
	seal, act := device.SealRegistration, s.node.RegisterDevice
	signer := func(raw []byte) (ed25519.PublicKey, error) {
		g, err := device.ParseRegistration(raw)
		return g.Key, err
	}
	if what == "device-revocation" {
		seal, act = device.SealRevocation, s.node.RevokeDevice
		signer = func(raw []byte) (ed25519.PublicKey, error) {
			r, err := device.ParseRevocation(raw)
			return r.Key, err
		}
	}
	raw, err := seal(draft, sig, pk)
	if err != nil {
		return nil, err
	}
	k, err := signer(raw)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(k, key) {
		return nil, badRequest("not a %s of this key", what)
	}
	v, err := act(ctx, raw)
	if err != nil {
		return nil, err
	}
	return api.DeviceRegistrationOf(v), nil
}

var documentKinds = map[string]consent.Kind{"contract": consent.KindContract, "revocation": consent.KindRevocation, "token": consent.KindToken, "erasure": consent.KindErasure,
	"delegation": consent.KindDelegation}

// tokenAnswer is a signed token for the patient to hand over.
type tokenAnswer struct {
	Token   []byte    `json:"token"`
	ID      string    `json:"id"`
	Expires time.Time `json:"expires"`
	Uses    uint16    `json:"uses"`
}

// token makes the token form's token, as medfed consent token does.
func (s *Server) token(p ledger.Pseudonym, now time.Time, f tokenForm, maxLife time.Duration) (consent.Token, []string, error) {
	t := consent.Token{ID: consent.NewID(), Federation: s.node.Federation(), Subject: p, Issued: now, Uses: f.Uses}
	i := slices.IndexFunc(s.node.Members(), func(m federation.Member) bool { return m.Name == f.Centre })
	if i < 0 {
		return t, nil, badRequest("%q is not a member centre", f.Centre)
	}
	t.Grantee.Centre = s.node.Members()[i].ID
	life := time.Duration(f.Hours) * time.Hour
	if life <= 0 || life > maxLife {
		return t, nil, badRequest("a token runs for 1 hour up to %v", maxLife)
	}
	t.Expires = now.Add(life)
	if f.Uses < 1 || f.Uses > 1000 {
		return t, nil, badRequest("a token allows 1 to 1000 uses")
	}
	for _, v := range f.Purposes {
		if !slices.Contains(formPurposes, v) {
			return t, nil, badRequest("purpose %q is not one the form offers", v)
		}
		pu, err := consent.ParsePurpose(v)
		if err != nil {
			return t, nil, err
		}
		t.Purposes |= pu
	}
	for _, c := range f.Classes {
		if !slices.Contains(s.node.Classes(), c) {
			return t, nil, badRequest("data class %q is not one the form offers", c)
		}
	}
	t.Classes = slices.Clone(f.Classes)
	what := "all your records"
	if len(f.Classes) > 0 {
		what = "your " + words(f.Classes, classWords, "and")
	}
	for_ := "any purpose"
	if len(f.Purposes) > 0 {
		for_ = words(f.Purposes, nil, "or")
	}
	return t, []string{
		fmt.Sprintf("Staff at %s who present this token may see %s for %s, %d time(s), until %s.", f.Centre, what, for_, f.Uses, t.Expires.Format("2 January 2006 15:04 UTC")),
		"You can withdraw it at any time; each use is recorded where it is used.",
	}, nil
}

// Errors the pages answer with, of node's kinds (the status is the
// API's for the kind).
func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", node.ErrInvalid, fmt.Sprintf(format, args...))
}
func forbidden(msg string) error { return fmt.Errorf("%w: %s", node.ErrForbidden, msg) }
func notFound(msg string) error  { return fmt.Errorf("%w: %s", node.ErrNotFound, msg) }
func conflict(msg string) error  { return fmt.Errorf("%w: %s", node.ErrConflict, msg) }
