package consent

import (
	"context"
	"fmt"
	"time"

	"github.com/medfed/medfed/node/ledger"
)

// Record is what a decision about one record rests on: its data class and
// when it was recorded; and its ledger index, which the access entry lists
// when the record is released (negative: not known).
type Record struct {
	Class    string
	Recorded time.Time
	Index    int64
}

// Authorization is a holder's answer to a query before anything is sent:
// a decision for each record asked about, and the access entry that
// records them, already durable.
type Authorization struct {
	Decisions []Decision // in the order of the records
	Released  int        // how many are permitted
	Access    int64      // the access entry's ledger index
	Session   ID         // the emergency session the access belongs to
	// Query is the decision about the query itself, before any record's
	// class or date: what a holder may tell a requester it releases
	// nothing to, without saying what it holds.
	Query Decision
}

// Authorize decides a query by q's requester about patient p's records,
// under the token raw when it is not nil, and appends the access entry
// (with nonce and the count released) before it returns: the caller sends
// only the records permitted here, and only after this returns. A query
// is audited whether it is permitted or not. An emergency query (purpose
// Emergency, with a reason) opens an emergency session for its requester,
// staff member and patient, audited and notified, or continues the open
// one. With a token, a query that releases anything spends one use.
// q's Class and Recorded are ignored: each record brings its own.
func (s *Service) Authorize(ctx context.Context, p ledger.Pseudonym, q Request, records []Record, raw []byte, nonce [16]byte) (Authorization, error) {
	probe := q
	probe.Class, probe.Recorded = "none", q.Time
	if err := probe.check(); err != nil {
		return Authorization{}, err
	}
	var tokDoc *Document
	if raw != nil {
		d, err := Parse(raw)
		if err != nil {
			return Authorization{}, err
		}
		if d.Kind != KindToken {
			return Authorization{}, malformed("a %s is not a token", d.Kind)
		}
		tokDoc = &d
	}
	e := s.acquire(p)
	defer s.release(e)
	if err := s.fresh(ctx, e); err != nil {
		return Authorization{}, err
	}
	var out Authorization
	if q.Purpose == Emergency && tokDoc == nil {
		sess, refusal, err := s.emergencySession(ctx, p, q)
		if err != nil {
			return Authorization{}, err
		}
		if sess.IsZero() {
			// The emergency start was refused (and audited, notified):
			// nothing is released, whatever a record's date.
			records = nil
			out.Query = refusal
		}
		out.Session = sess
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	pol := s.policy()
	a := AccessEntry{Event: EventAccess, Requester: q.Centre, Staff: q.Staff, Role: q.Role, Action: q.Action, Purpose: q.Purpose, Reason: q.Reason, Nonce: nonce}
	var (
		tok  *Token
		used int
	)
	if tokDoc != nil {
		var refusal Decision
		var ok bool
		tok, used, refusal, ok = e.p.Token(*tokDoc)
		if ok && tok.Federation != s.federation() {
			refusal, ok = Decision{Basis: BasisToken, Ref: tok.ID, why: whyTokenOther}, false
		}
		a.Basis, a.Ref = BasisToken, tokDoc.Token.ID
		if !ok {
			tok = nil
			for range records {
				out.Decisions = append(out.Decisions, refusal)
			}
		}
	}
	st := e.p.Standing()
	for _, r := range records {
		if tokDoc != nil && tok == nil {
			break // refused above
		}
		qr := q
		qr.Class, qr.Recorded = r.Class, r.Recorded
		var d Decision
		if tok != nil {
			d = DecideToken(tok, used, pol, qr)
		} else {
			d = Decide(st, pol, qr)
		}
		out.Decisions = append(out.Decisions, d)
		if d.Permit {
			out.Released++
			if r.Index >= 0 {
				a.Records = append(a.Records, r.Index)
			}
		}
	}
	if len(a.Records) != out.Released {
		a.Records = nil // some indexes not known: the count alone
	}
	if tokDoc == nil {
		a.Basis, a.Ref = s.basisOf(st, out, pol, q)
		if out.Query == (Decision{}) {
			probe := q
			probe.Class, probe.Recorded = "none", q.Time
			out.Query = Decide(st, pol, probe)
		}
	} else if len(out.Decisions) > 0 {
		out.Query = out.Decisions[0]
	} else {
		out.Query = Decision{Basis: BasisToken, Ref: tokDoc.Token.ID, why: whyTokenScope}
	}
	if q.Purpose == Emergency {
		a.Ref = out.Session
	}
	a.Permitted, a.Released = out.Released > 0, uint32(out.Released)
	if tok != nil && out.Released > 0 {
		a.Use = uint16(used + 1)
	}
	le, err := NewAccess(p, a)
	if err != nil {
		return Authorization{}, err
	}
	if out.Access, err = s.opts.Ledger.Append(ctx, le); err != nil {
		return Authorization{}, fmt.Errorf("consent: recording an access: %w", err)
	}
	if tok != nil && out.Released > 0 {
		e.p.Used(tok.ID)
		e.kept.Store(true)
	}
	if a.Permitted {
		s.counts.released.Inc()
	} else {
		s.counts.refused.Inc()
	}
	return out, nil
}

// basisOf is what an access without a token rests on, for its entry.
func (s *Service) basisOf(st Standing, out Authorization, pol Policy, q Request) (Basis, ID) {
	for _, d := range out.Decisions {
		if d.Permit || d.Basis != BasisInvalid {
			return d.Basis, d.Ref
		}
	}
	// No records: what a decision would rest on.
	probe := q
	probe.Class, probe.Recorded = "none", q.Time
	d := Decide(st, pol, probe)
	return d.Basis, d.Ref
}

// emergencySession returns the open emergency session of q's requester,
// staff member and patient p, or opens one (audited and notified) if the
// emergency rule allows it; when it does not, the refusal is audited and
// notified, and returned with a zero session: the query releases nothing.
func (s *Service) emergencySession(ctx context.Context, p ledger.Pseudonym, q Request) (ID, Decision, error) {
	s.mu.Lock()
	for id, sess := range s.sessions {
		if sess.Subject == p && sess.Requester == q.Centre && sess.Staff == q.Staff && s.now().Before(sess.Expires) {
			s.mu.Unlock()
			return id, Decision{}, nil
		}
	}
	s.mu.Unlock()
	start := q
	start.Class, start.Recorded = "none", q.Time
	sess, d, err := s.EmergencyStart(ctx, p, start)
	if err != nil {
		return ID{}, Decision{}, err
	}
	return sess.ID, d, nil
}
