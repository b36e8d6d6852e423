package consent

import (
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/enum"
	"github.com/medfed/medfed/node/ledger"
)

// Policy is what the federation's charter says about consent.
type Policy struct {
	// Default is the base policy of a patient who signed no contract. Under
	// OptIn, treatment is permitted and research denied (research always
	// needs the patient's own consent); under OptOut both are denied.
	Default Base
	// Emergency says whether emergency access is allowed at all.
	Emergency bool
	// TokenMaxLifetime is the longest a token may run, issue to expiry.
	TokenMaxLifetime time.Duration
}

// Reason is a coded reason for emergency access. Codes, never free text,
// go on ledgers and into notifications: free text would carry clinical
// details and names.
type Reason uint8

const (
	Unconscious     Reason = iota + 1 // the patient cannot communicate
	LifeThreatening                   // delay would endanger life
	UrgentTreatment                   // urgent care, consent cannot be sought in time
	PublicHealth                      // a notifiable emergency
)

var reasons = enum.New[Reason]("reason", []string{Unconscious: "unconscious", LifeThreatening: "life-threatening", UrgentTreatment: "urgent-treatment", PublicHealth: "public-health"})

func (r Reason) String() string { return reasons.String(r) }

func (r Reason) valid() bool { return reasons.Valid(r) }

// ParseReason parses a reason code.
func ParseReason(s string) (Reason, error) { return reasons.Parse("emergency reason", s) }

// Request is one access to decide: who asks, to do what, why, with which
// record (its data class and when it was recorded), and when.
type Request struct {
	Centre   peer.ID
	Role     Role
	Staff    ledger.StaffID
	Action   Action  // exactly one
	Purpose  Purpose // exactly one
	Class    string
	Recorded time.Time
	Time     time.Time
	// Reason is required for the emergency purpose.
	Reason Reason
}

func (q *Request) check() error {
	switch {
	case q.Centre == "":
		return malformed("request without a requesting centre")
	case !q.Role.valid():
		return malformed("request without a role")
	case q.Action == 0 || q.Action&(q.Action-1) != 0 || !actions.Valid(q.Action):
		return malformed("a request has exactly one action")
	case q.Purpose == 0 || q.Purpose&(q.Purpose-1) != 0 || !purposes.Valid(q.Purpose):
		return malformed("a request has exactly one purpose")
	case !ledger.ValidDataClass(q.Class):
		return malformed("request data class")
	case q.Recorded.IsZero() || q.Time.IsZero():
		return malformed("request without the record's time or its own")
	}
	return nil
}

// Basis says what a decision rests on.
type Basis uint8

const (
	BasisInvalid   Basis = iota // the request or token itself was refused
	BasisCharter                // the charter's default: no contract signed
	BasisContract               // the contract in force
	BasisWithdrawn              // the patient revoked their consent, or their key was compromised
	BasisToken                  // a token the patient issued
	BasisEmergency              // the charter's emergency rule
	BasisNotHeld                // the centre holds no records of the patient: no decision, no access entry
)

var bases = enum.New[Basis]("basis", []string{BasisInvalid: "refused", BasisCharter: "charter", BasisContract: "contract", BasisWithdrawn: "withdrawn", BasisToken: "token", BasisEmergency: "emergency", BasisNotHeld: "not-held"})

func (b Basis) String() string { return bases.String(b) }

// why is the reason of a decision, kept as a code so that deciding
// allocates nothing; Decision.Reason formats it.
type why uint8

const (
	whyBase why = iota
	whyProvision
	whyCharterTreatment
	whyCharterResearch
	whyCharterOptOut
	whyRevoked
	whyCompromised
	whyBadRequest
	whyToken
	whyTokenRevoked
	whyTokenKey
	whyTokenExpired
	whyTokenLifetime
	whyTokenSpent
	whyTokenGrantee
	whyTokenScope
	whyTokenOther
	whyEmergency
	whyEmergencyForbidden
	whyEmergencyOptOut
	whyEmergencyReason
	whyTokenDelegate
)

// Decision is the answer to a request: permit or deny, what it rests on,
// and which provision decided (none when the base policy did).
type Decision struct {
	Permit  bool
	Basis   Basis
	Ref     ID     // the contract or token decided by
	Version uint32 // the contract's version
	why     why
	base    Base
	depth   uint8
	path    [MaxDepth]uint8
	detail  error // a refused request's reason
}

// Provision returns the path of the deciding provision, 1-based at each
// level ([2 1]: the first exception of the second provision), or nil.
func (d Decision) Provision() []int {
	if d.depth == 0 {
		return nil
	}
	p := make([]int, d.depth)
	for i := range p {
		p[i] = int(d.path[i])
	}
	return p
}

func (d Decision) provisionName() string {
	var b strings.Builder
	for i, n := range d.Provision() {
		if i > 0 {
			b.WriteByte('.')
		}
		fmt.Fprint(&b, n)
	}
	return b.String()
}

// Reason says in words why the decision was made.
func (d Decision) Reason() string {
	switch d.why {
	case whyBase:
		return fmt.Sprintf("no provision applies; the contract's base policy is %s", d.base)
	case whyProvision:
		return "provision " + d.provisionName() + " of the contract applies"
	case whyCharterTreatment:
		return "no contract signed; the charter's default (opt-in) permits treatment"
	case whyCharterResearch:
		return "no contract signed; research needs the patient's own consent"
	case whyCharterOptOut:
		return "no contract signed; the charter's default is opt-out"
	case whyRevoked:
		return "the patient revoked their consent"
	case whyCompromised:
		return "the patient's key was reported compromised and no contract is signed with the new key"
	case whyBadRequest:
		return fmt.Sprintf("refused: %v", d.detail)
	case whyToken:
		return "a token the patient issued permits it"
	case whyTokenRevoked:
		return "the token was revoked"
	case whyTokenKey:
		return "the token is not signed by the patient's attested key"
	case whyTokenExpired:
		return "the token has expired"
	case whyTokenLifetime:
		return "the token runs longer than the charter allows"
	case whyTokenSpent:
		return "the token's uses are spent"
	case whyTokenGrantee:
		return "the token was issued to someone else"
	case whyTokenScope:
		return "the request is outside the token's scope"
	case whyTokenOther:
		return "the token is for another patient or federation"
	case whyEmergency:
		return "emergency access under the charter's rule"
	case whyEmergencyForbidden:
		return "the charter does not allow emergency access"
	case whyEmergencyOptOut:
		return "the patient opted out of emergency access (provision " + d.provisionName() + ")"
	case whyEmergencyReason:
		return "emergency access needs a stated reason"
	case whyTokenDelegate:
		return "the token's delegate acted outside its delegation (scope, term, or revoked since)"
	}
	return "unknown"
}

func (d Decision) String() string {
	verdict := "deny"
	if d.Permit {
		verdict = "permit"
	}
	return verdict + ": " + d.Reason()
}

func refused(err error) Decision {
	return Decision{Basis: BasisInvalid, why: whyBadRequest, detail: err}
}

// Standing is where a patient's consent stands: the contract in force, if
// any, and whether the patient withdrew it. Patient.Standing computes it.
type Standing struct {
	Contract *Contract
	// Withdrawn: the contract in force was revoked, or the patient's key
	// was compromised and nothing is signed with the new one yet.
	Withdrawn   bool
	Compromised bool
}

// Decide answers q for a patient whose consent stands at s, under the
// charter's policy. It is deterministic: the same standing, policy and
// request always give the same decision, at every centre.
func Decide(s Standing, pol Policy, q Request) Decision {
	if err := q.check(); err != nil {
		return refused(err)
	}
	if q.Purpose == Emergency {
		return decideEmergency(s, pol, &q)
	}
	c := s.Contract
	switch {
	case s.Compromised:
		return Decision{Basis: BasisWithdrawn, why: whyCompromised}
	case c == nil:
		return decideCharter(pol, &q)
	case s.Withdrawn:
		return Decision{Basis: BasisWithdrawn, Ref: c.ID, Version: c.Version, why: whyRevoked}
	}
	d := Decision{Basis: BasisContract, Ref: c.ID, Version: c.Version}
	if h, ok := find(c.Provisions, &q, hit{}); ok {
		d.Permit, d.why, d.depth, d.path = h.t == Permit, whyProvision, h.depth, h.path
		return d
	}
	d.Permit, d.why, d.base = c.Base == OptIn, whyBase, c.Base
	return d
}

func decideCharter(pol Policy, q *Request) Decision {
	d := Decision{Basis: BasisCharter}
	switch {
	case pol.Default != OptIn:
		d.why = whyCharterOptOut
	case q.Purpose == Treatment:
		d.Permit, d.why = true, whyCharterTreatment
	default:
		d.why = whyCharterResearch
	}
	return d
}

// decideEmergency applies the emergency rule: allowed by the charter
// unless the patient's contract (in force or withdrawn) has a deny
// provision naming the emergency purpose that applies to the request, and
// no exception of it permits. Other denials do not stop emergency access:
// that is what it is for.
func decideEmergency(s Standing, pol Policy, q *Request) Decision {
	d := Decision{Basis: BasisEmergency}
	switch {
	case !q.Reason.valid():
		d.why = whyEmergencyReason
		return d
	case !pol.Emergency:
		d.why = whyEmergencyForbidden
		return d
	}
	if c := s.Contract; c != nil && !s.Compromised {
		if h, ok := optedOut(c.Provisions, q, hit{}); ok {
			d.Ref, d.Version, d.why, d.depth, d.path = c.ID, c.Version, whyEmergencyOptOut, h.depth, h.path
			return d
		}
	}
	d.Permit, d.why = true, whyEmergency
	return d
}

// hit is the provision that decided, by its path.
type hit struct {
	t     Type
	depth uint8
	path  [MaxDepth]uint8
}

// find returns the deepest applying provision: among the provisions that
// apply at one level, a deny overrides a permit (the first of each counts),
// and an applying exception overrides the provision it is nested in.
func find(ps []Provision, q *Request, prefix hit) (hit, bool) {
	var (
		best  hit
		found bool
	)
	if int(prefix.depth) >= MaxDepth {
		return best, false // a contract built by hand, deeper than any signed one
	}
	for i := range ps {
		p := &ps[i]
		if !p.applies(q) {
			continue
		}
		h := prefix
		h.t, h.path[h.depth] = p.Type, uint8(i+1)
		h.depth++
		if inner, ok := find(p.Provisions, q, h); ok {
			h = inner
		}
		if !found || (h.t == Deny && best.t != Deny) {
			best, found = h, true
		}
	}
	return best, found
}

// optedOut finds, in document order, an applying deny provision that
// names the emergency purpose and whose own exceptions do not permit.
func optedOut(ps []Provision, q *Request, prefix hit) (hit, bool) {
	if int(prefix.depth) >= MaxDepth {
		return hit{}, false
	}
	for i := range ps {
		p := &ps[i]
		if !p.applies(q) {
			continue
		}
		h := prefix
		h.t, h.path[h.depth] = p.Type, uint8(i+1)
		h.depth++
		if p.Type == Deny && p.Purposes&Emergency != 0 {
			if inner, ok := find(p.Provisions, q, h); !ok || inner.t == Deny {
				return h, true
			}
		}
		if inner, ok := optedOut(p.Provisions, q, h); ok {
			return inner, true
		}
	}
	return hit{}, false
}

func (p *Provision) applies(q *Request) bool {
	if p.Actions != 0 && p.Actions&q.Action == 0 {
		return false
	}
	if p.Purposes != 0 && p.Purposes&q.Purpose == 0 {
		return false
	}
	if !p.Period.Contains(q.Time) || !p.DataPeriod.Contains(q.Recorded) {
		return false
	}
	if len(p.Classes) > 0 && !contains(p.Classes, q.Class) {
		return false
	}
	if len(p.Actors) == 0 {
		return true
	}
	for _, a := range p.Actors {
		if a.matches(q.Centre, q.Role, q.Staff) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// DecideToken answers q under token t, of which used uses are spent at
// this holder. The token's signature, key and revocation are the caller's
// to check (Patient.Token does).
func DecideToken(t *Token, used int, pol Policy, q Request) Decision {
	if err := q.check(); err != nil {
		return refused(err)
	}
	d := Decision{Basis: BasisToken, Ref: t.ID}
	switch {
	case q.Purpose == Emergency:
		d.why = whyTokenScope
	case !q.Time.Before(t.Expires):
		d.why = whyTokenExpired
	case q.Time.Before(t.Issued):
		d.why = whyTokenScope
	case t.Expires.Sub(t.Issued) > pol.TokenMaxLifetime:
		d.why = whyTokenLifetime
	case !t.Grantee.matches(q.Centre, q.Role, q.Staff):
		d.why = whyTokenGrantee
	case (t.Actions != 0 && t.Actions&q.Action == 0) || (t.Purposes != 0 && t.Purposes&q.Purpose == 0) ||
		(len(t.Classes) > 0 && !contains(t.Classes, q.Class)) || !t.DataPeriod.Contains(q.Recorded):
		d.why = whyTokenScope
	case used >= int(t.Uses):
		d.why = whyTokenSpent
	default:
		d.Permit, d.why = true, whyToken
	}
	return d
}
