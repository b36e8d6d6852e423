package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/ledger"
)

// A staff member's session: made when they sign in with their token, kept
// in memory (a restart signs everyone out), ended by signing out, by
// IdleTimeout without a request, or by MaxSession after sign-in.
const (
	cookieName  = "__Host-medfed-session" // __Host-: Secure, Path=/, no Domain, or the browser refuses it
	IdleTimeout = 30 * time.Minute
	MaxSession  = 8 * time.Hour
	maxSessions = 10_000
)

type session struct {
	id      string
	csrf    string
	staffID string
	role    string
	created time.Time
	seen    time.Time
	// emergency is the patients this session broke the glass for, until
	// when the banner shows (the holders' windows are the charter's);
	// a session's requests may run at once, so mu guards it.
	mu        sync.Mutex
	emergency map[ledger.Pseudonym]time.Time
}

// brokeGlass shows the banner for p until until.
func (s *session) brokeGlass(p ledger.Pseudonym, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.emergency[p] = until
}

// stopped takes p's banner down.
func (s *session) stopped(p ledger.Pseudonym) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.emergency, p)
}

// emergencies returns the banners shown at now, by patient.
func (s *session) emergencies(now time.Time) map[ledger.Pseudonym]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[ledger.Pseudonym]time.Time{}
	for p, until := range s.emergency {
		if now.Before(until) {
			out[p] = until
		}
	}
	return out
}

// Role is the session's staff role, for the templates.
func (s *session) Role() string { return s.role }

// Staff is the session's staff ID, for the templates.
func (s *session) Staff() string { return s.staffID }

type sessions struct {
	mu  sync.Mutex
	now func() time.Time
	by  map[string]*session
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, by: map[string]*session{}}
}

func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// start makes a session for a staff member and sets its cookie.
func (ss *sessions) start(w http.ResponseWriter, staffID, role string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	if len(ss.by) >= maxSessions {
		for id, s := range ss.by {
			if ss.expired(s, now) {
				delete(ss.by, id)
			}
		}
	}
	s := &session{id: random(32), csrf: random(32), staffID: staffID, role: role, created: now, seen: now, emergency: map[ledger.Pseudonym]time.Time{}}
	ss.by[s.id] = s
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: s.id, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		MaxAge: int(MaxSession / time.Second)})
	return s
}

func (ss *sessions) expired(s *session, now time.Time) bool {
	return now.Sub(s.seen) > IdleTimeout || now.Sub(s.created) > MaxSession
}

var (
	errNoSession      = errors.New("you are not signed in")
	errSessionExpired = errors.New("your session has expired: sign in again")
)

// get returns the request's session, refreshed; an expired one is ended.
func (ss *sessions) get(r *http.Request) (*session, error) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil, errNoSession
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.by[c.Value]
	if !ok {
		return nil, errSessionExpired
	}
	now := ss.now()
	if ss.expired(s, now) {
		delete(ss.by, s.id)
		return nil, errSessionExpired
	}
	s.seen = now
	return s, nil
}

// end ends a session and clears its cookie.
func (ss *sessions) end(w http.ResponseWriter, s *session) {
	ss.mu.Lock()
	delete(ss.by, s.id)
	ss.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// checkCSRF refuses a form without the session's CSRF token.
func (s *session) checkCSRF(r *http.Request) error {
	got := r.PostFormValue("csrf")
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
		return errors.New("the form's security token is missing or stale: reload the page and try again")
	}
	return nil
}

// A patient's enrolment: the key their browser made, waiting for a
// registrar to attest it after checking who they are in person. The
// portal shows its code; the registrar types it. Kept in memory for a
// day: a restart, or a day gone by, and the patient starts again.
const (
	enrolmentLife  = 24 * time.Hour
	maxEnrolments  = 10_000
	codeAlphabet   = "0123456789ABCDEFGHJKMNPQRSTVWXYZ" // Crockford's: no I, L, O, U
	codeCharacters = 8
)

var codeEncoding = base32.NewEncoding(codeAlphabet).WithPadding(base32.NoPadding)

type enrolment struct {
	code    string
	key     [32]byte // an Ed25519 public key, or a passkey's ID
	passkey bool
	made    time.Time
	claimed bool             // a registrar is attesting it or naming it a delegate, or has
	patient ledger.Pseudonym // set once attested, or once a delegation names it
	// delegation is set when the key is a delegate's rather than the
	// patient's: a registrar named it in a delegation for patient.
	delegation consent.ID
}

type enrolments struct {
	mu     sync.Mutex
	now    func() time.Time
	byCode map[string]*enrolment
}

func newEnrolments(now func() time.Time) *enrolments {
	return &enrolments{now: now, byCode: map[string]*enrolment{}}
}

func (e *enrolments) add(key [32]byte, passkey bool) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	for c, x := range e.byCode {
		if now.Sub(x.made) > enrolmentLife {
			delete(e.byCode, c)
		}
	}
	if len(e.byCode) >= maxEnrolments {
		// Full (someone made keys by the thousand): the oldest waiting
		// goes, so that a patient at the desk now is never refused.
		oldest := ""
		for c, x := range e.byCode {
			if oldest == "" || x.made.Before(e.byCode[oldest].made) {
				oldest = c
			}
		}
		delete(e.byCode, oldest)
	}
	b := make([]byte, 5)
	rand.Read(b)
	code := codeEncoding.EncodeToString(b)[:codeCharacters]
	e.byCode[code] = &enrolment{code: code, key: key, passkey: passkey, made: now}
	return code, nil
}

// normalCode reads a code as people type it: any case, with spaces or
// dashes, O for 0 and I or L for 1.
func normalCode(s string) string {
	s = strings.ToUpper(strings.NewReplacer("-", "", " ", "", "O", "0", "I", "1", "L", "1").Replace(s))
	return s
}

func (e *enrolments) get(code string) (enrolment, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.byCode[normalCode(code)]
	if !ok || e.now().Sub(x.made) > enrolmentLife {
		return enrolment{}, false
	}
	return *x, true
}

// claim takes the enrolment of code for one attestation or delegation: a
// code claimed, attested or named a delegate already is not there to
// take.
func (e *enrolments) claim(code string) (enrolment, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.byCode[normalCode(code)]
	if !ok || x.claimed || e.now().Sub(x.made) > enrolmentLife {
		return enrolment{}, false
	}
	x.claimed = true
	return *x, true
}

// release gives back a claim whose attestation or delegation failed.
func (e *enrolments) release(code string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.byCode[code]; ok && x.patient.IsZero() {
		x.claimed = false
	}
}

func (e *enrolments) attested(code string, p ledger.Pseudonym) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.byCode[normalCode(code)]; ok {
		x.patient = p
	}
}

// delegated records that the key of code acts for patient p under
// delegation id.
func (e *enrolments) delegated(code string, p ledger.Pseudonym, id consent.ID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.byCode[normalCode(code)]; ok {
		x.patient, x.delegation = p, id
	}
}

// formatCode writes a code as the portal shows it: two groups of four.
func formatCode(c string) string { return c[:4] + "-" + c[4:] }
