package consent

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

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
		return id, fmt.Errorf("%w: an ID is 32 hex digits", ErrMalformed)
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

func (b Base) String() string {
	switch b {
	case OptIn:
		return "opt-in"
	case OptOut:
		return "opt-out"
	}
	return fmt.Sprintf("base(%d)", uint8(b))
}

// ParseBase parses "opt-in" or "opt-out".
func ParseBase(s string) (Base, error) {
	switch s {
	case "opt-in":
		return OptIn, nil
	case "opt-out":
		return OptOut, nil
	}
	return 0, fmt.Errorf("%w: base policy %q: want opt-in or opt-out", ErrMalformed, s)
}

// Type is what a provision does when it applies.
type Type uint8

const (
	Permit Type = 1
	Deny   Type = 2
)

func (t Type) String() string {
	switch t {
	case Permit:
		return "permit"
	case Deny:
		return "deny"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType parses "permit" or "deny".
func ParseType(s string) (Type, error) {
	switch s {
	case "permit":
		return Permit, nil
	case "deny":
		return Deny, nil
	}
	return 0, fmt.Errorf("%w: provision type %q: want permit or deny", ErrMalformed, s)
}

// A set of named bits: purposes, actions. Zero in a provision means any.
type set[T ~uint8] struct{ names []string }

func (s set[T]) format(v T) string {
	var parts []string
	for i, n := range s.names {
		if v&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	if len(parts) == 0 {
		return "any"
	}
	return strings.Join(parts, ",")
}

func (s set[T]) parse(what, v string) (T, error) {
	for i, n := range s.names {
		if n == v {
			return T(1 << i), nil
		}
	}
	return 0, fmt.Errorf("%w: %s %q: want one of %s", ErrMalformed, what, v, strings.Join(s.names, ", "))
}

func (s set[T]) valid(v T) bool { return v>>len(s.names) == 0 }

// Purpose is why data is asked for; a Purpose value may hold several.
type Purpose uint8

const (
	Treatment Purpose = 1 << iota
	Research
	Emergency
)

var purposes = set[Purpose]{[]string{"treatment", "research", "emergency"}}

func (p Purpose) String() string { return purposes.format(p) }

// ParsePurpose parses one purpose name.
func ParsePurpose(s string) (Purpose, error) { return purposes.parse("purpose", s) }

// Action is what is done with the data; an Action value may hold several.
type Action uint8

const (
	// Access: read the records in a query.
	Access Action = 1 << iota
	// Copy: take a copy into another centre's records (a transfer).
	Copy
)

var actions = set[Action]{[]string{"access", "copy"}}

func (a Action) String() string { return actions.format(a) }

// ParseAction parses one action name.
func ParseAction(s string) (Action, error) { return actions.parse("action", s) }

// Role is a staff member's role at their centre.
type Role uint8

const (
	Clinician Role = iota + 1
	Registrar
	Admin
	Researcher
	PrivacyOfficer
)

var roleNames = []string{Clinician: "clinician", Registrar: "registrar", Admin: "admin", Researcher: "researcher", PrivacyOfficer: "privacy-officer"}

func (r Role) String() string {
	if r.valid() {
		return roleNames[r]
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

func (r Role) valid() bool { return r >= Clinician && r <= PrivacyOfficer }

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	for r, n := range roleNames {
		if n == s && n != "" {
			return Role(r), nil
		}
	}
	return 0, fmt.Errorf("%w: role %q: want one of %s", ErrMalformed, s, strings.Join(roleNames[1:], ", "))
}

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
