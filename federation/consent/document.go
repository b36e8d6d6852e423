package consent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/enum"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// Errors of documents and decisions, besides bytes or fields that do not
// form a valid document (node.Invalid, "malformed consent document").
var (
	// ErrSignature: a signature that does not verify, or a signer who may
	// not sign the document.
	ErrSignature = node.E(node.Forbidden, "consent signature")
	// ErrConflict: a submitted document that would not take effect, such
	// as a contract older than the one in force.
	ErrConflict = node.E(node.Conflict, "consent conflict")
)

// malformed returns an error of kind node.Invalid for a document, or a
// field of one, that is not valid.
func malformed(format string, args ...any) error {
	return wire.Malformed("consent document", format, args...)
}

// Kind says what a signed document is. The numbers are part of the
// encoding.
type Kind uint8

const (
	KindAttestation Kind = 1 // a member binds a patient key to a pseudonym
	KindContract    Kind = 2 // the patient's consent
	KindRevocation  Kind = 3 // the patient withdraws a contract or a token
	KindToken       Kind = 4 // the patient grants one grantee temporary access
	KindApproval    Kind = 5 // a second staff member approves an attestation that replaces a key
	KindVeto        Kind = 6 // the patient's standing key refuses such an attestation
	KindErasure     Kind = 7 // the patient has every holder erase their records
	KindDelegation  Kind = 8 // the patient (or two staff) name a delegate who acts for them within a scope
)

var kinds = enum.New[Kind]("kind", []string{KindAttestation: "attestation", KindContract: "contract", KindRevocation: "revocation", KindToken: "token", KindApproval: "approval", KindVeto: "veto", KindErasure: "erasure", KindDelegation: "delegation"})

func (k Kind) String() string { return kinds.String(k) }

// Limits that keep a document small enough for a ledger entry and an
// evaluation bounded.
const (
	MaxProvisions = 64 // in a whole contract, nested ones included
	MaxDepth      = 4  // provisions nested in provisions
	maxList       = 16 // actors or classes in one provision or token
	maxFederation = 64
	maxUses       = 1000
	// MaxDocument bounds a signed document's encoding.
	MaxDocument = 32 << 10
)

// Provision permits or denies what matches all of its scopes; an empty
// scope matches anything. Nested provisions are exceptions to it.
type Provision struct {
	Type       Type
	Actors     []Actor  // any of them
	Actions    Action   // any of them; zero: any action
	Purposes   Purpose  // any of them; zero: any purpose
	Classes    []string // any of these data classes; empty: any
	Period     Period   // when the provision is in force
	DataPeriod Period   // which records, by when they were recorded
	Provisions []Provision
}

// Contract is a patient's consent, after FHIR Consent: a base policy and
// provisions. A newer contract (by Issued, then Version) replaces every
// older one of the patient; Version orders the versions of one ID.
type Contract struct {
	ID         ID
	Version    uint32
	Federation string
	Subject    ledger.Pseudonym
	Issued     time.Time
	Base       Base
	Provisions []Provision
	// Delegation is the delegation its signer acts under (see
	// Delegation); zero when the patient signed it.
	Delegation ID
}

// Attestation is a member centre's statement, after checking the
// patient's identity in person, that Key is the patient's key. A newer
// attestation supersedes older ones; Compromised says the keys it
// supersedes may be in other hands, so nothing they signed counts any
// more. Staff names the registrar who checked (zero when the centre's
// operator attested). An attestation that replaces a key takes effect
// only once approved and after a notice period: see Patient.
type Attestation struct {
	Federation  string
	Subject     ledger.Pseudonym
	Key         ed25519.PublicKey
	Issued      time.Time
	Compromised bool
	Staff       ledger.StaffID
}

// Approval is a member centre's statement that Staff, a second staff
// member, checked the patient's identity again and approves the
// attestation whose hash is Attestation: one that replaces a key, or a
// delegation a registrar made (the field names either). It counts only
// when someone other than the registrar who made it gave it: another
// centre, or another named staff member at the same one.
type Approval struct {
	Federation  string
	Subject     ledger.Pseudonym
	Attestation [32]byte
	Staff       ledger.StaffID
	Issued      time.Time
}

// Veto is the patient's refusal, signed with the key in force, of the
// attestation whose hash is Attestation: a key replacement they did not
// ask for, or a delegation a registrar made for them. It counts when made
// before the replacement or delegation takes effect.
type Veto struct {
	Federation  string
	Subject     ledger.Pseudonym
	Attestation [32]byte
	Issued      time.Time
}

// Erasure is the patient's request, signed with a key in force for at
// least the charter's key notice, that every holder erase their records
// recorded before Issued. It is delivered and kept like a revocation, so
// that a holder the directory does not list, or one that was down, erases
// before it releases anything (see the package comment).
type Erasure struct {
	Federation string
	Subject    ledger.Pseudonym
	Issued     time.Time
	Delegation ID // the delegation its signer acts under; zero: the patient signed
}

// Revocation withdraws the contract, token or delegation Target.
// Revoking the contract in force leaves the patient with no consent:
// everything is denied but emergency access (as the charter and the
// patient's last contract allow) and unrevoked tokens. A delegate steps
// down by revoking its own delegation under it (Target and Delegation
// the same). A registrar ends a delegation for a patient who cannot (a
// court ending a guardianship): a member centre signs the revocation,
// naming the registrar and the evidence they saw, and it counts from a
// second staff member's approval (an Approval naming its hash), as a
// registrar's delegation does.
type Revocation struct {
	Federation string
	Subject    ledger.Pseudonym
	Target     ID
	Issued     time.Time
	Delegation ID             // the delegation its signer acts under; zero: the patient signed
	Staff      ledger.StaffID // the registrar who ended a delegation; zero: the patient or a delegate signed
	Evidence   Evidence       // what the registrar saw; zero with Staff
}

// Token grants one grantee temporary access within a scope: a staff
// member (Grantee.Staff with Grantee.Centre) or a whole centre. Each use
// is one answer from one holder, recorded on that holder's ledger first.
type Token struct {
	ID         ID
	Federation string
	Subject    ledger.Pseudonym
	Grantee    Actor
	Actions    Action
	Purposes   Purpose
	Classes    []string
	DataPeriod Period
	Issued     time.Time
	Expires    time.Time
	Uses       uint16 // 1 for single use, at most 1000
	Delegation ID     // the delegation its signer acts under; zero: the patient signed
}

// body is a document before signing.
type body interface {
	kind() Kind
	write(w *writer)
	check() error
}

func (*Contract) kind() Kind    { return KindContract }
func (*Attestation) kind() Kind { return KindAttestation }
func (*Revocation) kind() Kind  { return KindRevocation }
func (*Token) kind() Kind       { return KindToken }
func (*Approval) kind() Kind    { return KindApproval }
func (*Veto) kind() Kind        { return KindVeto }
func (*Erasure) kind() Kind     { return KindErasure }
func (*Delegation) kind() Kind  { return KindDelegation }

// Document is a parsed signed document whose signature verified: exactly
// one of the pointers is set.
type Document struct {
	Kind        Kind
	Signer      ed25519.PublicKey
	Raw         []byte // the signed encoding
	Attestation *Attestation
	Contract    *Contract
	Revocation  *Revocation
	Token       *Token
	Approval    *Approval
	Veto        *Veto
	Erasure     *Erasure
	Delegation  *Delegation
	hash        [32]byte
}

// Hash identifies the document's exact bytes.
func (d Document) Hash() [32]byte { return d.hash }

// Subject returns the patient the document is about.
func (d Document) Subject() ledger.Pseudonym {
	switch d.Kind {
	case KindAttestation:
		return d.Attestation.Subject
	case KindContract:
		return d.Contract.Subject
	case KindRevocation:
		return d.Revocation.Subject
	case KindApproval:
		return d.Approval.Subject
	case KindVeto:
		return d.Veto.Subject
	case KindErasure:
		return d.Erasure.Subject
	case KindDelegation:
		return d.Delegation.Subject
	}
	return d.Token.Subject
}

// Federation returns the federation the document is for.
func (d Document) Federation() string {
	switch d.Kind {
	case KindAttestation:
		return d.Attestation.Federation
	case KindContract:
		return d.Contract.Federation
	case KindRevocation:
		return d.Revocation.Federation
	case KindApproval:
		return d.Approval.Federation
	case KindVeto:
		return d.Veto.Federation
	case KindErasure:
		return d.Erasure.Federation
	case KindDelegation:
		return d.Delegation.Federation
	}
	return d.Token.Federation
}

// Issued returns when the signer says the document was made.
func (d Document) Issued() time.Time {
	switch d.Kind {
	case KindAttestation:
		return d.Attestation.Issued
	case KindContract:
		return d.Contract.Issued
	case KindRevocation:
		return d.Revocation.Issued
	case KindApproval:
		return d.Approval.Issued
	case KindVeto:
		return d.Veto.Issued
	case KindErasure:
		return d.Erasure.Issued
	case KindDelegation:
		return d.Delegation.Issued
	}
	return d.Token.Issued
}

// Via returns the delegation under which a delegate signed the document:
// zero when the patient signed it (or a centre: attestations, approvals,
// delegations). The ledger entry of a delegated document names its
// delegate so, and its signer is the delegate's key.
func (d Document) Via() ID {
	switch d.Kind {
	case KindContract:
		return d.Contract.Delegation
	case KindRevocation:
		return d.Revocation.Delegation
	case KindToken:
		return d.Token.Delegation
	case KindErasure:
		return d.Erasure.Delegation
	}
	return ID{}
}

// attestationNamed returns the attestation (or delegation) an approval or
// a veto names.
func (d Document) attestationNamed() [32]byte {
	if d.Kind == KindApproval {
		return d.Approval.Attestation
	}
	return d.Veto.Attestation
}

// The signed encoding:
//
//	u8   version (1)
//	u8   kind
//	u32  body length, body
//	[32] signer's Ed25519 public key
//	[64] signature over "medfed/consent/v1" || 0x00 || the bytes above the key
//
// A patient's passkey signs version 0x81 (wire.PasskeyVersion): the key
// is the passkey's ID, and its assertion (wire.Passkey) and the
// assertion's length take the signature's place.
var document = wire.Message{What: "consent document", Context: "medfed/consent/v1", Version: 1, Max: MaxDocument, Signer: true, Passkeys: true}

func sign(key ed25519.PrivateKey, b body) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: not an Ed25519 private key", ErrSignature)
	}
	if err := b.check(); err != nil {
		return nil, err
	}
	var bw writer
	b.write(&bw)
	return document.Sign(key, func(w *wire.Writer) {
		w.U8(uint8(b.kind()))
		w.Blob(bw.B)
	})
}

// Draft is a patient's document before its signature, for a key the
// patient's browser holds: an Ed25519 key signs Signed, a passkey
// Challenge; SealEd25519 or SealPasskey then makes the document, which
// Parse checks like any other.
type Draft struct {
	Kind    Kind
	Key     ed25519.PublicKey // the patient's Ed25519 key, or a passkey's ID
	Passkey bool
	Bytes   []byte // the document before its signer and signature
}

// Signed is what the patient's key signs.
func (d Draft) Signed() []byte { return wire.Signed(document.Context, d.Bytes) }

// Challenge is what a passkey asserts.
func (d Draft) Challenge() [32]byte { return wire.Challenge(d.Signed()) }

// SealEd25519 returns the document signed by sig, an Ed25519 signature
// of Signed.
func (d Draft) SealEd25519(sig []byte) ([]byte, error) { return document.Seal(d.Bytes, d.Key, sig) }

// SealPasskey returns the document signed by a passkey's assertion of
// Challenge.
func (d Draft) SealPasskey(p wire.Passkey) ([]byte, error) {
	return document.SealPasskey(d.Bytes, d.Key, p)
}

func draft(key ed25519.PublicKey, passkey bool, b body) (Draft, error) {
	if len(key) != ed25519.PublicKeySize {
		return Draft{}, malformed("a patient key of %d bytes", len(key))
	}
	if err := b.check(); err != nil {
		return Draft{}, err
	}
	var bw writer
	b.write(&bw)
	raw := document.Draft(passkey, func(w *wire.Writer) {
		w.U8(uint8(b.kind()))
		w.Blob(bw.B)
	})
	return Draft{Kind: b.kind(), Key: key, Passkey: passkey, Bytes: raw}, nil
}

// DraftContract returns c for the patient's key (a passkey's ID when
// passkey) to sign.
func DraftContract(key ed25519.PublicKey, passkey bool, c Contract) (Draft, error) {
	return draft(key, passkey, &c)
}

// DraftRevocation returns r for the patient's key to sign.
func DraftRevocation(key ed25519.PublicKey, passkey bool, r Revocation) (Draft, error) {
	return draft(key, passkey, &r)
}

// DraftToken returns t for the patient's key to sign.
func DraftToken(key ed25519.PublicKey, passkey bool, t Token) (Draft, error) {
	return draft(key, passkey, &t)
}

// DraftErasure returns e for the patient's key to sign.
func DraftErasure(key ed25519.PublicKey, passkey bool, e Erasure) (Draft, error) {
	return draft(key, passkey, &e)
}

// SignContract returns c signed with the patient's key.
func SignContract(key ed25519.PrivateKey, c Contract) ([]byte, error) { return sign(key, &c) }

// SignRevocation returns r signed with the patient's key.
func SignRevocation(key ed25519.PrivateKey, r Revocation) ([]byte, error) { return sign(key, &r) }

// SignToken returns t signed with the patient's key.
func SignToken(key ed25519.PrivateKey, t Token) ([]byte, error) { return sign(key, &t) }

// SignAttestation returns a signed by a member centre's key.
func SignAttestation(key ed25519.PrivateKey, a Attestation) ([]byte, error) { return sign(key, &a) }

// SignApproval returns a signed by a member centre's key.
func SignApproval(key ed25519.PrivateKey, a Approval) ([]byte, error) { return sign(key, &a) }

// SignVeto returns v signed with the patient's key.
func SignVeto(key ed25519.PrivateKey, v Veto) ([]byte, error) { return sign(key, &v) }

// SignErasure returns e signed with the patient's key.
func SignErasure(key ed25519.PrivateKey, e Erasure) ([]byte, error) { return sign(key, &e) }

// Parse decodes a signed document and verifies its signature. Whether the
// signer may sign it (an attested patient key, a member centre) is for
// the caller's state to decide.
func Parse(b []byte) (Document, error) {
	var d Document
	var raw []byte
	o, err := document.Open(b, func(r *wire.Reader) {
		d.Kind = Kind(r.U8("kind"))
		raw = r.Blob("body", MaxDocument)
	})
	if err != nil {
		return Document{}, err
	}
	switch d.Kind {
	case KindAttestation:
		d.Attestation, err = decodeAttestation(raw)
	case KindContract:
		d.Contract, err = DecodeContract(raw)
	case KindRevocation:
		d.Revocation, err = decodeRevocation(raw)
	case KindToken:
		d.Token, err = DecodeToken(raw)
	case KindApproval:
		d.Approval, err = decodeApproval(raw)
	case KindVeto:
		d.Veto, err = decodeVeto(raw)
	case KindErasure:
		d.Erasure, err = decodeErasure(raw)
	case KindDelegation:
		d.Delegation, err = decodeDelegation(raw)
	default:
		err = malformed("unknown kind %d", uint8(d.Kind))
	}
	if err != nil {
		return Document{}, err
	}
	if !o.Verify(o.Signer) {
		return Document{}, fmt.Errorf("%w: the %s's signature does not verify", ErrSignature, d.Kind)
	}
	if o.Passkey != nil && (d.Kind == KindAttestation || d.Kind == KindApproval) {
		return Document{}, fmt.Errorf("%w: a centre signs an %s, never a passkey", ErrSignature, d.Kind)
	}
	if o.Passkey != nil && d.Kind == KindDelegation && !d.Delegation.Staff.IsZero() {
		return Document{}, fmt.Errorf("%w: a centre signs a registrar's delegation, never a passkey", ErrSignature)
	}
	d.Signer = o.Signer
	d.Raw = bytes.Clone(b)
	d.hash = sha256.Sum256(d.Raw)
	return d, nil
}

// checkHead checks the fields every document about a patient has.
func checkHead(fed string, subject ledger.Pseudonym, issued time.Time) error {
	switch {
	case fed == "" || len(fed) > maxFederation:
		return malformed("federation of %d bytes", len(fed))
	case subject.IsZero():
		return malformed("no subject pseudonym")
	case issued.IsZero() || !whole(issued) || issued.Unix() >= maxUnix:
		return malformed("issue time must be a whole second from 1970 to 2261")
	}
	return nil
}

// whole reports whether t is a whole second in UTC: what the encoding
// keeps, so that a decoded document equals the one signed.
func whole(t time.Time) bool {
	return t.IsZero() || (t.Nanosecond() == 0 && t.Location() == time.UTC && t.Unix() > 0)
}

func checkPeriod(p Period, what string) error {
	if !whole(p.Start) || !whole(p.End) || p.Start.Unix() >= maxUnix || p.End.Unix() >= maxUnix {
		return malformed("%s bounds must be whole seconds in UTC from 1970 to 2261", what)
	}
	if !p.Start.IsZero() && !p.End.IsZero() && !p.Start.Before(p.End) {
		return malformed("%s ends before it starts", what)
	}
	return nil
}

func checkClasses(cs []string) error {
	if len(cs) > maxList {
		return malformed("%d data classes, at most %d", len(cs), maxList)
	}
	for _, c := range cs {
		if !ledger.ValidDataClass(c) {
			return malformed("data class %q", c)
		}
	}
	return nil
}

func checkActor(a Actor) error {
	if a.Centre != "" {
		if _, err := peer.IDFromBytes([]byte(a.Centre)); err != nil || len(a.Centre) > 64 {
			return malformed("actor centre is not a peer ID")
		}
	}
	if a.Role != 0 && !a.Role.valid() {
		return malformed("unknown role %d", uint8(a.Role))
	}
	if a.Staff != (ledger.StaffID{}) && a.Centre == "" {
		return malformed("a staff ID names someone only at a centre; give the centre")
	}
	return nil
}

func writeActor(w *writer, a Actor) {
	w.Str(string(a.Centre))
	w.U8(uint8(a.Role))
	w.Bytes(a.Staff[:])
}

func readActor(r *wire.Reader) Actor {
	var a Actor
	if c := r.Str("actor centre"); c != "" {
		a.Centre = peer.ID(c)
	}
	a.Role = Role(r.U8("actor role"))
	r.Fixed(a.Staff[:], "actor staff")
	return a
}

func writeClasses(w *writer, cs []string) {
	w.U8(uint8(len(cs)))
	for _, c := range cs {
		w.Str(c)
	}
}

func readClasses(r *wire.Reader) []string {
	n := int(r.U8("classes"))
	if n > maxList {
		r.Fail("%d data classes", n)
		return nil
	}
	var cs []string
	for range n {
		cs = append(cs, r.Str("data class"))
	}
	return cs
}

func writePeriod(w *writer, p Period) { w.Time(p.Start); w.Time(p.End) }

func readPeriod(r *wire.Reader, what string) Period {
	return Period{Start: r.Time(what), End: r.Time(what)}
}

// Contract body:
//
//	[16] id, u32 version, str federation, [32] subject, time issued,
//	u8 base, u8 count, provisions, delegation (see writeVia)
//
// Provision: u8 type, u8 actions, u8 purposes, u8 count, actors (str
// centre, u8 role, [16] staff), classes (u8 count, str each), period,
// data period, u8 count, nested provisions.
func (c *Contract) write(w *writer) {
	w.Bytes(c.ID[:])
	w.U32(c.Version)
	w.Str(c.Federation)
	w.Bytes(c.Subject[:])
	w.Time(c.Issued)
	w.U8(uint8(c.Base))
	writeProvisions(w, c.Provisions)
	writeVia(w, c.Delegation)
}

// A document a delegate signs ends with u8 1 and the [16] ID of the
// delegation it acts under; one the patient signs ends where it always
// did, so that every document signed before delegates existed keeps its
// bytes and its meaning. A centre that does not know delegates refuses a
// delegate's document (trailing bytes) rather than take it for the
// patient's.
const viaDelegation uint8 = 1

func writeVia(w *writer, id ID) {
	if !id.IsZero() {
		w.U8(viaDelegation)
		w.Bytes(id[:])
	}
}

func readVia(r *wire.Reader) ID {
	var id ID
	if r.Err() != nil || r.Len() == 0 {
		return id
	}
	if f := r.U8("delegation flag"); f != viaDelegation {
		r.Fail("delegation flag %d", f)
		return id
	}
	r.Fixed(id[:], "delegation")
	if id.IsZero() {
		r.Fail("a zero delegation is written as none")
	}
	return id
}

func writeProvisions(w *writer, ps []Provision) {
	w.U8(uint8(len(ps)))
	for _, p := range ps {
		w.U8(uint8(p.Type))
		w.U8(uint8(p.Actions))
		w.U8(uint8(p.Purposes))
		w.U8(uint8(len(p.Actors)))
		for _, a := range p.Actors {
			writeActor(w, a)
		}
		writeClasses(w, p.Classes)
		writePeriod(w, p.Period)
		writePeriod(w, p.DataPeriod)
		writeProvisions(w, p.Provisions)
	}
}

func (c *Contract) check() error {
	if err := checkHead(c.Federation, c.Subject, c.Issued); err != nil {
		return err
	}
	if c.ID.IsZero() {
		return malformed("contract without an ID")
	}
	if !policies.Valid(c.Base) {
		return malformed("base policy %d", uint8(c.Base))
	}
	n := 0
	return checkProvisions(c.Provisions, 1, &n)
}

func checkProvisions(ps []Provision, depth int, n *int) error {
	if len(ps) > 0 && depth > MaxDepth {
		return malformed("provisions nested deeper than %d", MaxDepth)
	}
	for _, p := range ps {
		if *n++; *n > MaxProvisions {
			return malformed("more than %d provisions", MaxProvisions)
		}
		if !types.Valid(p.Type) {
			return malformed("provision type %d", uint8(p.Type))
		}
		if !actions.Valid(p.Actions) || !purposes.Valid(p.Purposes) {
			return malformed("unknown action or purpose")
		}
		if len(p.Actors) > maxList {
			return malformed("%d actors, at most %d", len(p.Actors), maxList)
		}
		for _, a := range p.Actors {
			if err := checkActor(a); err != nil {
				return err
			}
		}
		if err := checkClasses(p.Classes); err != nil {
			return err
		}
		if err := checkPeriod(p.Period, "period"); err != nil {
			return err
		}
		if err := checkPeriod(p.DataPeriod, "data period"); err != nil {
			return err
		}
		if err := checkProvisions(p.Provisions, depth+1, n); err != nil {
			return err
		}
	}
	return nil
}

// DecodeContract decodes a contract body; it accepts only what signing
// writes. It does not verify anything but the encoding: use Parse for a
// signed document.
func DecodeContract(b []byte) (*Contract, error) {
	r := newReader(b)
	c := &Contract{}
	r.Fixed(c.ID[:], "id")
	c.Version = r.U32("version")
	c.Federation = r.Str("federation")
	r.Fixed(c.Subject[:], "subject")
	c.Issued = r.Time("issue time")
	c.Base = Base(r.U8("base"))
	n := 0
	c.Provisions = readProvisions(r, 1, &n)
	c.Delegation = readVia(r)
	r.End("contract")
	if r.Err() != nil {
		return nil, r.Err()
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

func readProvisions(r *wire.Reader, depth int, n *int) []Provision {
	count := int(r.U8("provisions"))
	if r.Err() != nil || count == 0 {
		return nil
	}
	if depth > MaxDepth || *n+count > MaxProvisions {
		r.Fail("more than %d provisions or deeper than %d", MaxProvisions, MaxDepth)
		return nil
	}
	*n += count
	ps := make([]Provision, count)
	for i := range ps {
		p := &ps[i]
		p.Type = Type(r.U8("provision type"))
		p.Actions = Action(r.U8("actions"))
		p.Purposes = Purpose(r.U8("purposes"))
		actors := int(r.U8("actors"))
		if actors > maxList {
			r.Fail("%d actors", actors)
			return nil
		}
		for range actors {
			p.Actors = append(p.Actors, readActor(r))
		}
		p.Classes = readClasses(r)
		p.Period = readPeriod(r, "period")
		p.DataPeriod = readPeriod(r, "data period")
		p.Provisions = readProvisions(r, depth+1, n)
		if r.Err() != nil {
			return nil
		}
	}
	return ps
}

// Attestation body: str federation, [32] subject, [32] key, time issued,
// u8 flags (1: compromised, 2: a staff ID follows), [16] staff when
// flagged. Attestations made before staff were named have flags 0 or 1.
func (a *Attestation) write(w *writer) {
	w.Str(a.Federation)
	w.Bytes(a.Subject[:])
	w.Bytes(a.Key)
	w.Time(a.Issued)
	var flags uint8
	if a.Compromised {
		flags |= attestCompromised
	}
	if !a.Staff.IsZero() {
		flags |= attestStaff
	}
	w.U8(flags)
	if !a.Staff.IsZero() {
		w.Bytes(a.Staff[:])
	}
}

const (
	attestCompromised uint8 = 1
	attestStaff       uint8 = 2
)

func (a *Attestation) check() error {
	if err := checkHead(a.Federation, a.Subject, a.Issued); err != nil {
		return err
	}
	if len(a.Key) != ed25519.PublicKeySize {
		return malformed("patient key of %d bytes", len(a.Key))
	}
	return nil
}

func decodeAttestation(b []byte) (*Attestation, error) {
	r := newReader(b)
	a := &Attestation{Federation: r.Str("federation")}
	r.Fixed(a.Subject[:], "subject")
	a.Key = ed25519.PublicKey(bytes.Clone(r.Take(ed25519.PublicKeySize, "key")))
	a.Issued = r.Time("issue time")
	flags := r.U8("flags")
	if flags&^(attestCompromised|attestStaff) != 0 {
		r.Fail("attestation flags %#x", flags)
	}
	a.Compromised = flags&attestCompromised != 0
	if flags&attestStaff != 0 {
		r.Fixed(a.Staff[:], "staff")
		if a.Staff.IsZero() {
			r.Fail("a zero staff ID is written as none")
		}
	}
	r.End("attestation")
	if r.Err() != nil {
		return nil, r.Err()
	}
	if err := a.check(); err != nil {
		return nil, err
	}
	return a, nil
}

// Revocation body: str federation, [32] subject, [16] target, time
// issued; then, a delegate's, u8 1 and [16] its delegation; or, a
// registrar's, u8 2, [16] staff and u8 evidence. The patient's has
// neither, and reads as every revocation did before registrars' were.
func (v *Revocation) write(w *writer) {
	w.Str(v.Federation)
	w.Bytes(v.Subject[:])
	w.Bytes(v.Target[:])
	w.Time(v.Issued)
	writeVia(w, v.Delegation)
	if !v.Staff.IsZero() {
		w.U8(byRegistrar)
		w.Bytes(v.Staff[:])
		w.U8(uint8(v.Evidence))
	}
}

// byRegistrar flags a registrar's revocation, after its head.
const byRegistrar uint8 = 2

func (v *Revocation) check() error {
	if err := checkHead(v.Federation, v.Subject, v.Issued); err != nil {
		return err
	}
	switch {
	case v.Target.IsZero():
		return malformed("revocation of nothing")
	case !v.Staff.IsZero() && !v.Delegation.IsZero():
		return malformed("a registrar's revocation signed under a delegation")
	case !v.Staff.IsZero() && !evidences.Valid(v.Evidence):
		return malformed("a registrar's revocation names the evidence seen")
	case v.Staff.IsZero() && v.Evidence != 0:
		return malformed("evidence on a revocation no registrar made")
	}
	return nil
}

func decodeRevocation(b []byte) (*Revocation, error) {
	r := newReader(b)
	v := &Revocation{Federation: r.Str("federation")}
	r.Fixed(v.Subject[:], "subject")
	r.Fixed(v.Target[:], "target")
	v.Issued = r.Time("issue time")
	if r.Err() == nil && r.Len() > 0 {
		switch f := r.U8("revocation flag"); f {
		case viaDelegation:
			r.Fixed(v.Delegation[:], "delegation")
			if v.Delegation.IsZero() {
				r.Fail("a zero delegation is written as none")
			}
		case byRegistrar:
			r.Fixed(v.Staff[:], "staff")
			v.Evidence = Evidence(r.U8("evidence"))
			if v.Staff.IsZero() {
				r.Fail("a zero staff member is written as none")
			}
		default:
			r.Fail("revocation flag %d", f)
		}
	}
	r.End("revocation")
	if r.Err() != nil {
		return nil, r.Err()
	}
	if err := v.check(); err != nil {
		return nil, err
	}
	return v, nil
}

// Approval body: str federation, [32] subject, [32] attestation, [16]
// staff, time issued.
func (a *Approval) write(w *writer) {
	w.Str(a.Federation)
	w.Bytes(a.Subject[:])
	w.Bytes(a.Attestation[:])
	w.Bytes(a.Staff[:])
	w.Time(a.Issued)
}

func (a *Approval) check() error {
	if err := checkHead(a.Federation, a.Subject, a.Issued); err != nil {
		return err
	}
	switch {
	case a.Attestation == [32]byte{}:
		return malformed("approval of nothing")
	case a.Staff.IsZero():
		return malformed("an approval names the staff member who gave it")
	}
	return nil
}

func decodeApproval(b []byte) (*Approval, error) {
	r := newReader(b)
	a := &Approval{Federation: r.Str("federation")}
	r.Fixed(a.Subject[:], "subject")
	r.Fixed(a.Attestation[:], "attestation")
	r.Fixed(a.Staff[:], "staff")
	a.Issued = r.Time("issue time")
	r.End("approval")
	if r.Err() != nil {
		return nil, r.Err()
	}
	if err := a.check(); err != nil {
		return nil, err
	}
	return a, nil
}

// Veto body: str federation, [32] subject, [32] attestation, time issued.
func (v *Veto) write(w *writer) {
	w.Str(v.Federation)
	w.Bytes(v.Subject[:])
	w.Bytes(v.Attestation[:])
	w.Time(v.Issued)
}

func (v *Veto) check() error {
	if err := checkHead(v.Federation, v.Subject, v.Issued); err != nil {
		return err
	}
	if v.Attestation == [32]byte{} {
		return malformed("veto of nothing")
	}
	return nil
}

func decodeVeto(b []byte) (*Veto, error) {
	r := newReader(b)
	v := &Veto{Federation: r.Str("federation")}
	r.Fixed(v.Subject[:], "subject")
	r.Fixed(v.Attestation[:], "attestation")
	v.Issued = r.Time("issue time")
	r.End("veto")
	if r.Err() != nil {
		return nil, r.Err()
	}
	if err := v.check(); err != nil {
		return nil, err
	}
	return v, nil
}

// Erasure body: str federation, [32] subject, time issued, delegation.
func (e *Erasure) write(w *writer) {
	w.Str(e.Federation)
	w.Bytes(e.Subject[:])
	w.Time(e.Issued)
	writeVia(w, e.Delegation)
}

func (e *Erasure) check() error { return checkHead(e.Federation, e.Subject, e.Issued) }

func decodeErasure(b []byte) (*Erasure, error) {
	r := newReader(b)
	e := &Erasure{Federation: r.Str("federation")}
	r.Fixed(e.Subject[:], "subject")
	e.Issued = r.Time("issue time")
	e.Delegation = readVia(r)
	r.End("erasure")
	if r.Err() != nil {
		return nil, r.Err()
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return e, nil
}

// Token body: [16] id, str federation, [32] subject, grantee actor, u8
// actions, u8 purposes, classes, data period, time issued, time expires,
// u16 uses, delegation.
func (t *Token) write(w *writer) {
	w.Bytes(t.ID[:])
	w.Str(t.Federation)
	w.Bytes(t.Subject[:])
	writeActor(w, t.Grantee)
	w.U8(uint8(t.Actions))
	w.U8(uint8(t.Purposes))
	writeClasses(w, t.Classes)
	writePeriod(w, t.DataPeriod)
	w.Time(t.Issued)
	w.Time(t.Expires)
	w.U16(t.Uses)
	writeVia(w, t.Delegation)
}

func (t *Token) check() error {
	if err := checkHead(t.Federation, t.Subject, t.Issued); err != nil {
		return err
	}
	switch {
	case t.ID.IsZero():
		return malformed("token without an ID")
	case t.Grantee.Centre == "":
		return malformed("a token's grantee is a centre, or a staff member at one")
	case !actions.Valid(t.Actions) || !purposes.Valid(t.Purposes):
		return malformed("unknown action or purpose")
	case t.Purposes&Emergency != 0:
		return malformed("emergency access needs no token")
	case t.Uses == 0 || t.Uses > maxUses:
		return malformed("%d uses, want 1 to %d", t.Uses, maxUses)
	case t.Expires.IsZero() || !whole(t.Expires) || !t.Issued.Before(t.Expires) || t.Expires.Unix() >= maxUnix:
		return malformed("a token expires, after it is issued")
	}
	if err := checkActor(t.Grantee); err != nil {
		return err
	}
	if err := checkClasses(t.Classes); err != nil {
		return err
	}
	return checkPeriod(t.DataPeriod, "data period")
}

// DecodeToken decodes a token body; it accepts only what signing writes.
// Use Parse for a signed token.
func DecodeToken(b []byte) (*Token, error) {
	r := newReader(b)
	t := &Token{}
	r.Fixed(t.ID[:], "id")
	t.Federation = r.Str("federation")
	r.Fixed(t.Subject[:], "subject")
	t.Grantee = readActor(r)
	t.Actions = Action(r.U8("actions"))
	t.Purposes = Purpose(r.U8("purposes"))
	t.Classes = readClasses(r)
	t.DataPeriod = readPeriod(r, "data period")
	t.Issued = r.Time("issue time")
	t.Expires = r.Time("expiry")
	t.Uses = r.U16("uses")
	t.Delegation = readVia(r)
	r.End("token")
	if r.Err() != nil {
		return nil, r.Err()
	}
	if err := t.check(); err != nil {
		return nil, err
	}
	return t, nil
}
