package consent

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/ledger"
)

// Spec is the JSON form of a contract's terms, as a patient's tool or a
// registrar writes it; the field names follow FHIR Consent's (provision,
// actor, action, purpose, class, period, dataPeriod). Centres are named
// as in the charter; times are RFC 3339 or a date (midnight UTC).
//
//	{"base": "opt-in",
//	 "provision": [{"type": "deny", "purpose": ["research"],
//	   "provision": [{"type": "permit", "actor": [{"centre": "centre-c", "role": "researcher"}],
//	                  "class": ["lab-result"]}]}]}
type Spec struct {
	Base      string          `json:"base"`
	Provision []ProvisionSpec `json:"provision,omitempty"`
}

// ProvisionSpec is the JSON form of a provision.
type ProvisionSpec struct {
	Type       string          `json:"type"`
	Actor      []ActorSpec     `json:"actor,omitempty"`
	Action     []string        `json:"action,omitempty"`
	Purpose    []string        `json:"purpose,omitempty"`
	Class      []string        `json:"class,omitempty"`
	Period     *PeriodSpec     `json:"period,omitempty"`
	DataPeriod *PeriodSpec     `json:"dataPeriod,omitempty"`
	Provision  []ProvisionSpec `json:"provision,omitempty"`
}

// ActorSpec is the JSON form of an actor.
type ActorSpec struct {
	Centre string `json:"centre,omitempty"`
	Role   string `json:"role,omitempty"`
	Staff  string `json:"staff,omitempty"` // 32 hex digits
}

// PeriodSpec is the JSON form of a period; either end may be left out.
type PeriodSpec struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

// ParseSpec decodes a contract's terms from JSON, refusing unknown fields.
func ParseSpec(b []byte) (Spec, error) {
	var s Spec
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, malformed("contract terms: %v", err)
	}
	if dec.More() {
		return s, malformed("contract terms: more than one JSON value")
	}
	return s, nil
}

// Terms converts s into a base policy and provisions, resolving centre
// names with centre.
func (s Spec) Terms(centre func(name string) (peer.ID, error)) (Base, []Provision, error) {
	base, err := ParseBase(s.Base)
	if err != nil {
		return 0, nil, err
	}
	ps, err := provisionsOf(s.Provision, centre)
	return base, ps, err
}

func provisionsOf(specs []ProvisionSpec, centre func(string) (peer.ID, error)) ([]Provision, error) {
	var out []Provision
	for _, ps := range specs {
		var p Provision
		var err error
		if p.Type, err = ParseType(ps.Type); err != nil {
			return nil, err
		}
		for _, a := range ps.Actor {
			actor, err := a.actor(centre)
			if err != nil {
				return nil, err
			}
			p.Actors = append(p.Actors, actor)
		}
		for _, v := range ps.Action {
			a, err := ParseAction(v)
			if err != nil {
				return nil, err
			}
			p.Actions |= a
		}
		for _, v := range ps.Purpose {
			pu, err := ParsePurpose(v)
			if err != nil {
				return nil, err
			}
			p.Purposes |= pu
		}
		p.Classes = ps.Class
		if p.Period, err = ps.Period.period("period"); err != nil {
			return nil, err
		}
		if p.DataPeriod, err = ps.DataPeriod.period("dataPeriod"); err != nil {
			return nil, err
		}
		if p.Provisions, err = provisionsOf(ps.Provision, centre); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func (a ActorSpec) actor(centre func(string) (peer.ID, error)) (Actor, error) {
	var out Actor
	var err error
	if a.Centre != "" {
		if out.Centre, err = centre(a.Centre); err != nil {
			return out, err
		}
	}
	if a.Role != "" {
		if out.Role, err = ParseRole(a.Role); err != nil {
			return out, err
		}
	}
	if a.Staff != "" {
		if out.Staff, err = ParseStaffID(a.Staff); err != nil {
			return out, err
		}
	}
	return out, nil
}

// ParseStaffID parses a staff ID's 32 hex digits.
func ParseStaffID(s string) (ledger.StaffID, error) {
	var id ledger.StaffID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, malformed("a staff ID is 32 hex digits")
	}
	copy(id[:], b)
	return id, nil
}

func (p *PeriodSpec) period(what string) (Period, error) {
	var out Period
	if p == nil {
		return out, nil
	}
	var err error
	if out.Start, err = ParseTime(p.Start); err != nil {
		return out, fmt.Errorf("%s start: %w", what, err)
	}
	if out.End, err = ParseTime(p.End); err != nil {
		return out, fmt.Errorf("%s end: %w", what, err)
	}
	return out, nil
}

// ParseTime parses an RFC 3339 time or a date (midnight UTC), to the
// second; "" is the zero time.
func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC().Truncate(time.Second), nil
		}
	}
	return time.Time{}, malformed("time %q: want RFC 3339 (2026-05-01T09:00:00Z) or a date (2026-05-01)", s)
}

// SpecOf returns the JSON form of a contract's terms, naming centres with
// name.
func SpecOf(c *Contract, name func(peer.ID) string) Spec {
	return Spec{Base: c.Base.String(), Provision: specsOf(c.Provisions, name)}
}

func specsOf(ps []Provision, name func(peer.ID) string) []ProvisionSpec {
	var out []ProvisionSpec
	for _, p := range ps {
		s := ProvisionSpec{Type: p.Type.String(), Class: p.Classes, Provision: specsOf(p.Provisions, name)}
		for _, a := range p.Actors {
			as := ActorSpec{}
			if a.Centre != "" {
				as.Centre = name(a.Centre)
			}
			if a.Role != 0 {
				as.Role = a.Role.String()
			}
			if a.Staff != (ledger.StaffID{}) {
				as.Staff = a.Staff.String()
			}
			s.Actor = append(s.Actor, as)
		}
		s.Action = actions.Names(p.Actions)
		s.Purpose = purposes.Names(p.Purposes)
		s.Period, s.DataPeriod = periodSpec(p.Period), periodSpec(p.DataPeriod)
		out = append(out, s)
	}
	return out
}

func periodSpec(p Period) *PeriodSpec {
	if p.isZero() {
		return nil
	}
	f := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format(time.RFC3339)
	}
	return &PeriodSpec{Start: f(p.Start), End: f(p.End)}
}

// NextContract is the contract a patient's tool makes of terms: the next
// version of the contract in force (inForce, when not nil: its ID stays,
// its version goes up), or else a new contract. A withdrawn contract's ID
// stays revoked, so a patient with none in force gets a new one.
func NextContract(fed string, subject ledger.Pseudonym, issued time.Time, base Base, provisions []Provision, inForce *Contract) Contract {
	c := Contract{ID: NewID(), Version: 1, Federation: fed, Subject: subject, Issued: issued, Base: base, Provisions: provisions}
	if inForce != nil {
		c.ID, c.Version = inForce.ID, inForce.Version+1
	}
	return c
}
