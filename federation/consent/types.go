package consent

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/enum"
	"github.com/medfed/medfed/node/ledger"
)

// ID names a contract, a token or an emergency session: 16 random bytes.
type ID [16]byte

// NewID draws a random ID.
func NewID() ID {
	var id ID
	rand.Read(id[:]) // never fails (crypto/rand)
	return id
}

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is unset.
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses the hex form of an ID.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, malformed("an ID is 32 hex digits")
	}
	copy(id[:], b)
	return id, nil
}

// Base is a contract's base policy, after FHIR Consent's policy rule.
type Base uint8

const (
	// OptIn: the patient consents to sharing; provisions carve out denials.
	OptIn Base = 1
	// OptOut: nothing is shared; provisions carve out permissions.
	OptOut Base = 2
)

var policies = enum.New[Base]("base", []string{OptIn: "opt-in", OptOut: "opt-out"})

func (b Base) String() string { return policies.String(b) }

// ParseBase parses "opt-in" or "opt-out".
func ParseBase(s string) (Base, error) { return policies.Parse("base policy", s) }

// Type is what a provision does when it applies.
type Type uint8

const (
	Permit Type = 1
	Deny   Type = 2
)

var types = enum.New[Type]("type", []string{Permit: "permit", Deny: "deny"})

func (t Type) String() string { return types.String(t) }

// ParseType parses "permit" or "deny".
func ParseType(s string) (Type, error) { return types.Parse("provision type", s) }

// Purpose is why data is asked for; a Purpose value may hold several, and
// zero in a provision means any.
type Purpose uint8

const (
	Treatment Purpose = 1 << iota
	Research
	Emergency
)

var purposes = enum.NewFlags[Purpose]("treatment", "research", "emergency")

func (p Purpose) String() string { return purposes.String(p) }

// ParsePurpose parses one purpose name.
func ParsePurpose(s string) (Purpose, error) { return purposes.Parse("purpose", s) }

// Action is what is done with the data; an Action value may hold several.
type Action uint8

const (
	// Access: read the records in a query.
	Access Action = 1 << iota
	// Copy: take a copy into another centre's records (a transfer).
	Copy
)

var actions = enum.NewFlags[Action]("access", "copy")

func (a Action) String() string { return actions.String(a) }

// ParseAction parses one action name.
func ParseAction(s string) (Action, error) { return actions.Parse("action", s) }

// Role is a staff member's role at their centre.
type Role uint8

const (
	Clinician Role = iota + 1
	Registrar
	Admin
	Researcher
	PrivacyOfficer
)

var roles = enum.New[Role]("role", []string{Clinician: "clinician", Registrar: "registrar", Admin: "admin", Researcher: "researcher", PrivacyOfficer: "privacy-officer"})

func (r Role) String() string { return roles.String(r) }

func (r Role) valid() bool { return roles.Valid(r) }

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) { return roles.Parse("role", s) }

// Actor names who a provision or token is about. Every field set must
// match; a staff ID is only meaningful with its centre.
type Actor struct {
	Centre peer.ID        // empty: any centre
	Role   Role           // zero: any role
	Staff  ledger.StaffID // zero: anyone
}

func (a Actor) matches(centre peer.ID, role Role, staff ledger.StaffID) bool {
	return (a.Centre == "" || a.Centre == centre) &&
		(a.Role == 0 || a.Role == role) &&
		(a.Staff == ledger.StaffID{} || a.Staff == staff)
}

func (a Actor) String() string {
	var parts []string
	if a.Centre != "" {
		parts = append(parts, "centre "+a.Centre.String())
	}
	if a.Role != 0 {
		parts = append(parts, "role "+a.Role.String())
	}
	if a.Staff != (ledger.StaffID{}) {
		parts = append(parts, "staff "+a.Staff.String())
	}
	if len(parts) == 0 {
		return "anyone"
	}
	return strings.Join(parts, " ")
}

// Period is a half-open interval of time, [Start, End); a zero end is
// open.
type Period struct {
	Start, End time.Time
}

// Contains reports whether t falls in the period.
func (p Period) Contains(t time.Time) bool {
	return (p.Start.IsZero() || !t.Before(p.Start)) && (p.End.IsZero() || t.Before(p.End))
}

func (p Period) isZero() bool { return p.Start.IsZero() && p.End.IsZero() }

func (p Period) String() string {
	f := func(t time.Time, open string) string {
		if t.IsZero() {
			return open
		}
		return t.Format(time.RFC3339)
	}
	return f(p.Start, "always") + " to " + f(p.End, "open")
}
