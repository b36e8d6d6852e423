package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// The console's routes: pages and forms, each form posted with the
// session's CSRF token and answered with a page (or a redirect to one).
func (s *Server) console(w http.ResponseWriter, r *http.Request) {
	route := r.Method + " " + r.URL.Path
	if route == "POST /console/signin" {
		s.signIn(w, r)
		return
	}
	sess, err := s.sessions.get(r)
	if err == nil {
		err = s.stillStaff(r.Context(), sess)
	}
	if err != nil {
		if r.Method == http.MethodGet && r.URL.Path == "/console/" {
			s.render(w, "signin.html", page{Title: "Sign in", Centre: s.node.Name(), Notice: signInNotice(err)})
			return
		}
		s.problem(w, r, http.StatusUnauthorized, err)
		return
	}
	if r.Method == http.MethodPost {
		if err := sess.checkCSRF(r); err != nil {
			s.problem(w, r, http.StatusForbidden, err)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	p := page{Centre: s.node.Name(), Session: sess}
	if roles, ok := routeRoles[route]; ok && !slices.Contains(roles, sess.role) {
		s.pageError(w, r, p, forbidden(fmt.Sprintf("a %s may not do this: it is for %s", sess.role, strings.Join(roles, " or "))))
		return
	}
	switch route {
	case "GET /console/":
		p.Title = "Console"
		p.Data = s.home(sess)
		s.render(w, "console.html", p)
	case "POST /console/signout":
		s.sessions.end(w, sess)
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
	case "POST /console/find":
		s.find(ctx, w, r, p)
	case "POST /console/record":
		s.record(ctx, w, r, p)
	case "POST /console/emergency":
		s.emergency(ctx, w, r, p)
	case "POST /console/emergency/stop":
		s.stop(ctx, w, r, p)
	case "POST /console/attest":
		s.attest(ctx, w, r, p)
	case "POST /console/approve":
		s.approve(ctx, w, r, p)
	case "POST /console/delegate":
		s.delegate(ctx, w, r, p)
	default:
		s.problem(w, r, http.StatusNotFound, errors.New("no such page in the console"))
	}
}

// routeRoles are the roles each form is for, as the API's routes of the
// same operations name them.
var routeRoles = map[string][]string{
	"POST /console/find":           {"clinician", "researcher"},
	"POST /console/record":         {"clinician", "researcher"},
	"POST /console/emergency":      {"clinician"},
	"POST /console/emergency/stop": {"clinician"},
	"POST /console/attest":         {"registrar"},
	"POST /console/approve":        {"registrar"},
	"POST /console/delegate":       {"registrar"},
}

func signInNotice(err error) string {
	if errors.Is(err, errNoSession) {
		return ""
	}
	return err.Error()
}

// stillStaff checks, on each request, that the session's staff member
// still holds their role: revoking a credential ends its sessions.
func (s *Server) stillStaff(ctx context.Context, sess *session) error {
	role, err := s.staff.Role(ctx, sess.staffID)
	if err != nil || role != sess.role {
		return errors.New("your staff credential was revoked or changed: sign in again")
	}
	return nil
}

func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	// The sign-in form has no session to hold a CSRF token yet: the
	// origin check (ServeHTTP) and SameSite keep other sites out.
	token := strings.TrimSpace(r.PostFormValue("token"))
	st, err := s.staff.Authenticate(r.Context(), token)
	if err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		s.render(w, "signin.html", page{Title: "Sign in", Centre: s.node.Name(), Error: "That token does not sign anyone in: it is unknown, revoked or expired."})
		return
	}
	s.sessions.start(w, st.ID, st.Role)
	s.log.Info("signed in", "staff", st.ID, "role", st.Role)
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

// homeData is what the console's first page shows, by role.
type homeData struct {
	Query, Register, Notices bool
	Reasons                  []option
	// For a registrar's delegation: the codes a delegate stands by, what
	// they may do, what was seen.
	Relationships, Scopes, Evidences []option
	Feed                             []api.Notice
	Emergencies                      []emergencyBanner
}

type emergencyBanner struct {
	Patient string
	Until   time.Time
	CSRF    string // for its stop button's form
}

var reasonOptions = []option{
	{"unconscious", "Unconscious: the patient cannot communicate"},
	{"life-threatening", "Life-threatening condition"},
	{"urgent-treatment", "Urgent treatment that cannot wait for consent"},
	{"public-health", "Public health emergency"},
}

var (
	relationshipOptions = []option{{"parent", "Parent of a child"}, {"guardian", "Guardian a court appointed"}, {"attorney", "Holds a power of attorney"},
		{"carer", "Carer"}, {"relative", "Another relative"}}
	scopeOptions = []option{{"consent", "Give and withdraw consent"}, {"view", "See where the records are and who looked"},
		{"records", "Get copies of the records"}, {"erasure", "Have the records erased"}}
	evidenceOptions = []option{{"birth-record", "A birth record naming the parent"}, {"court-order", "A court's guardianship or deputyship order"},
		{"power-of-attorney", "A registered power of attorney"}, {"capacity-assessment", "A clinician's assessment that the patient cannot decide"}}
)

func (s *Server) home(sess *session) homeData {
	d := homeData{
		Query:    slices.Contains([]string{"clinician", "researcher"}, sess.role),
		Register: sess.role == "registrar",
		Notices:  sess.role == "privacy-officer",
		Reasons:  reasonOptions,
	}
	if d.Register {
		d.Relationships, d.Scopes, d.Evidences = relationshipOptions, scopeOptions, evidenceOptions
	}
	if d.Notices {
		for _, n := range s.node.Notices(-1) {
			d.Feed = append(d.Feed, api.NoticeOf(n))
		}
		slices.Reverse(d.Feed) // newest first
	}
	d.Emergencies = s.banners(sess)
	return d
}

func (s *Server) banners(sess *session) []emergencyBanner {
	var out []emergencyBanner
	now := s.now()
	for p, until := range sess.emergencies(now) {
		out = append(out, emergencyBanner{Patient: p.String(), Until: until, CSRF: sess.csrf})
	}
	slices.SortFunc(out, func(a, b emergencyBanner) int { return strings.Compare(a.Patient, b.Patient) })
	return out
}

// patientOf reads the identifier a person typed: an NHS number (checked
// by its check digit before anything is sent) or a pseudonym.
func (s *Server) patientOf(ctx context.Context, typed string) (ledger.Pseudonym, error) {
	typed = strings.TrimSpace(typed)
	if p, err := ledger.ParsePseudonym(typed); err == nil {
		return p, nil
	}
	ps, err := s.node.PseudonymsOf(ctx, []string{"nhs|" + typed})
	if err != nil {
		return ledger.Pseudonym{}, err
	}
	return ps[0], nil
}

// networkData is the care network: every holder's answer to the query.
type networkData struct {
	Patient   string
	Purpose   string
	Emergency bool
	Reason    string
	Result    api.QueryResult
	Banners   []emergencyBanner
}

func (s *Server) find(ctx context.Context, w http.ResponseWriter, r *http.Request, p page) {
	var pseud ledger.Pseudonym
	var err error
	if p.Session.role == "researcher" {
		// A researcher never learns whose pseudonym is whose: they ask
		// by pseudonym alone, as the API's researcher routes do.
		pseud, err = ledger.ParsePseudonym(strings.TrimSpace(r.PostFormValue("patient")))
		if err != nil {
			err = badRequest("a researcher finds a patient by pseudonym, never by NHS number")
		}
	} else {
		pseud, err = s.patientOf(ctx, r.PostFormValue("patient"))
	}
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	s.network(ctx, w, r, p, pseud, purposeOf(p.Session.role), "")
}

// purposeOf is what a role asks for: a researcher for research, a
// clinician for treatment (consent decides by purpose, as /v1/query does).
func purposeOf(role string) string {
	if role == "researcher" {
		return "research"
	}
	return "treatment"
}

func (s *Server) network(ctx context.Context, w http.ResponseWriter, r *http.Request, p page, pseud ledger.Pseudonym, purpose, reason string) {
	asker, err := api.ParseAsker(p.Session.role, p.Session.staffID, purpose, reason)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	res, err := s.node.QueryRecords(ctx, centre.QueryRequest{Pseudonym: pseud, Asker: asker})
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	if reason != "" {
		p.Session.brokeGlass(pseud, s.now().Add(emergencyBanner4h))
	}
	p.Title = "Care network"
	p.Data = networkData{Patient: pseud.String(), Purpose: purpose, Emergency: reason != "", Reason: reason, Result: api.QueryResultOf(res), Banners: s.banners(p.Session)}
	s.render(w, "network.html", p)
}

// emergencyBanner4h is how long the console shows that this session
// broke the glass for a patient, unless stopped first.
const emergencyBanner4h = 4 * time.Hour

// recordData is one record, with where it came from and what proves it.
type recordData struct {
	Patient     string
	Holder      string
	Access      int64
	Checkpoint  int64
	Record      api.QueryRecord
	ContentType string
	Text        string // the content, when it is text
	Bytes       int
}

func (s *Server) record(ctx context.Context, w http.ResponseWriter, r *http.Request, p page) {
	pseud, err := ledger.ParsePseudonym(r.PostFormValue("patient"))
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	index, err := strconv.ParseInt(r.PostFormValue("index"), 10, 64)
	holder := r.PostFormValue("holder")
	if err != nil || index < 0 || holder == "" {
		s.pageError(w, r, p, badRequest("a record is named by its holder and its index there"))
		return
	}
	asker, err := api.ParseAsker(p.Session.role, p.Session.staffID, purposeOf(p.Session.role), "")
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	res, err := s.node.QueryRecords(ctx, centre.QueryRequest{Pseudonym: pseud, Asker: asker, Holder: holder})
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	out := api.QueryResultOf(res)
	for _, h := range out.Holders {
		if h.Name != holder {
			continue
		}
		if h.Status != centre.Answered.String() {
			s.pageError(w, r, p, forbidden(fmt.Sprintf("%s did not release the record: %s %s", holder, h.Status, h.Reason+h.Error)))
			return
		}
		for _, rec := range h.Records {
			if rec.Index != index {
				continue
			}
			ct, data := api.OpenDocument(rec.Payload)
			d := recordData{Patient: pseud.String(), Holder: holder, Access: h.Access, Checkpoint: h.Checkpoint, Record: rec, ContentType: ct, Bytes: len(data)}
			if strings.HasPrefix(ct, "text/") || ct == "application/octet-stream" && utf8.Valid(data) {
				d.Text = string(data)
			}
			p.Title = "Record"
			p.Data = d
			s.render(w, "record.html", p)
			return
		}
	}
	s.pageError(w, r, p, notFound("the holder released no record at that index"))
}

func (s *Server) emergency(ctx context.Context, w http.ResponseWriter, r *http.Request, p page) {
	if r.PostFormValue("confirm") != "yes" {
		s.pageError(w, r, p, badRequest("confirm that this is an emergency: every holder records it and the patient is told"))
		return
	}
	reason := r.PostFormValue("reason")
	if _, err := consent.ParseReason(reason); err != nil {
		s.pageError(w, r, p, badRequest("choose the emergency's reason"))
		return
	}
	pseud, err := s.patientOf(ctx, r.PostFormValue("patient"))
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	s.network(ctx, w, r, p, pseud, consent.Emergency.String(), reason)
}

func (s *Server) stop(ctx context.Context, w http.ResponseWriter, r *http.Request, p page) {
	pseud, err := ledger.ParsePseudonym(r.PostFormValue("patient"))
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	staff, err := consent.ParseStaffID(p.Session.staffID)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	res, err := s.node.StopEmergency(ctx, pseud, staff)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	p.Session.stopped(pseud)
	var stopped, failed []string
	for _, h := range api.EmergencyStopsOf(res).Holders {
		if h.Error != "" {
			failed = append(failed, h.Centre)
		} else {
			stopped = append(stopped, h.Centre)
		}
	}
	notice := "Emergency access stopped at " + orNone(stopped) + "."
	if len(failed) > 0 {
		notice += " Not reached, stop again later: " + strings.Join(failed, ", ") + "."
	}
	s.done(w, p, notice)
}

// done shows the console's first page with what was done.
func (s *Server) done(w http.ResponseWriter, p page, notice string) {
	p.Title, p.Notice, p.Data = "Console", notice, s.home(p.Session)
	s.render(w, "console.html", p)
}

// registrarAct reads what a registrar's form acts on: the patient, by the
// NHS number typed, and the registrar's staff ID.
func (s *Server) registrarAct(ctx context.Context, r *http.Request, p page) (ledger.Pseudonym, ledger.StaffID, error) {
	pseud, err := s.patientOf(ctx, r.PostFormValue("nhs"))
	if err != nil {
		return pseud, ledger.StaffID{}, err
	}
	staff, err := consent.ParseStaffID(p.Session.staffID)
	return pseud, staff, err
}

// attest registers a patient by NHS number and attests the key whose
// code their portal shows: the first key of a patient takes effect at
// once; one that replaces a key waits for a second staff member's
// approval (approve) and the charter's notice.
func (s *Server) attest(ctx context.Context, w http.ResponseWriter, r *http.Request, p page) {
	pseud, staff, err := s.registrarAct(ctx, r, p)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	// The code is claimed before the attestation and spent by it: a key
	// is attested for one patient, once, whoever types its code again.
	e, ok := s.enrol.claim(r.PostFormValue("code"))
	if !ok {
		s.pageError(w, r, p, notFound("no key waits with that code: check it with the patient, or have their portal make a new one"))
		return
	}
	del, err := s.node.Attest(ctx, pseud, e.key[:], r.PostFormValue("compromised") == "yes", staff)
	if err != nil {
		s.enrol.release(e.code)
		s.pageError(w, r, p, err)
		return
	}
	s.enrol.attested(e.code, pseud)
	kind := "browser key"
	if e.passkey {
		kind = "passkey"
	}
	s.done(w, p, fmt.Sprintf("The patient's %s is attested (patient %s). %s", kind, pseud, delivery(del)))
}

func (s *Server) approve(ctx context.Context, w http.ResponseWriter, r *http.Request, p page) {
	att, err := consent.ParseHash(strings.TrimSpace(r.PostFormValue("attestation")))
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	pseud, staff, err := s.registrarAct(ctx, r, p)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	del, err := s.node.Approve(ctx, pseud, att, staff)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	s.done(w, p, "Approved. "+delivery(del))
}

// delegate makes, on the registrar's word and the evidence they saw, a
// delegation for a patient who cannot sign one (a child with no key, an
// adult who lacks capacity) to the key whose code the delegate's portal
// shows, until the end of the day named (UTC). The delegate's portal
// goes on by itself at once; what it signs counts once a second staff
// member approves the delegation (approve, with the hash shown).
func (s *Server) delegate(ctx context.Context, w http.ResponseWriter, r *http.Request, p page) {
	pseud, staff, err := s.registrarAct(ctx, r, p)
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	d := consent.Delegation{Subject: pseud, Staff: staff}
	if d.Relationship, err = consent.ParseRelationship(r.PostFormValue("relationship")); err == nil {
		d.Evidence, err = consent.ParseEvidence(r.PostFormValue("evidence"))
	}
	for _, v := range r.PostForm["scope"] {
		if err != nil {
			break
		}
		var sc consent.Scope
		sc, err = consent.ParseScope(v)
		d.Scope |= sc
	}
	if err == nil && d.Scope == 0 {
		err = badRequest("tick what the delegate may do")
	}
	if err == nil {
		var until time.Time
		if until, err = time.Parse(time.DateOnly, r.PostFormValue("until")); err != nil {
			err = badRequest("until: a date, 2027-06-01")
		}
		d.Expires = until.UTC().Add(24 * time.Hour)
	}
	if err != nil {
		s.pageError(w, r, p, err)
		return
	}
	if waiting, ok := s.enrol.get(r.PostFormValue("code")); ok {
		v, err := s.node.ShowConsent(ctx, pseud)
		if err != nil {
			s.pageError(w, r, p, err)
			return
		}
		if bytes.Equal(v.Key, waiting.key[:]) {
			s.pageError(w, r, p, badRequest("that code is of the patient's own key: a delegate makes a key of their own, in their own portal"))
			return
		}
	}
	e, ok := s.enrol.claim(r.PostFormValue("code"))
	if !ok {
		s.pageError(w, r, p, notFound("no key waits with that code: check it with the delegate, or have their portal make a new one"))
		return
	}
	d.Delegate = e.key[:]
	id, hash, del, err := s.node.Delegate(ctx, d)
	if err != nil {
		s.enrol.release(e.code)
		s.pageError(w, r, p, err)
		return
	}
	s.enrol.delegated(e.code, pseud, id)
	s.done(w, p, fmt.Sprintf("The delegation is made (delegation %s, patient %s). It counts once a second staff member approves it, with the hash %s. %s",
		id, pseud, consent.FormatHash(hash), delivery(del)))
}

// pageError shows an error on the console's page, with the status of
// its kind.
func (s *Server) pageError(w http.ResponseWriter, r *http.Request, p page, err error) {
	status := api.StatusOf(err)
	if status >= 500 {
		incident := random(8)
		s.log.Warn("console failed", "route", route(r.URL.Path), "incident", incident, "error", err)
		err = fmt.Errorf("the centre could not answer (incident %s, in its log)", incident)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	p.Title = "Console"
	p.Error = api.ErrorText(err)
	p.Data = s.home(p.Session)
	s.render(w, "console.html", p)
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "no holder"
	}
	return strings.Join(names, ", ")
}

// delivery says in a sentence where a consent document went.
func delivery(d centre.ConsentDelivery) string {
	v := api.ConsentDeliveryOf(d)
	out := "Delivered to " + orNone(v.Delivered) + "."
	if v.Confirmed {
		out += " Confirmed by a majority: in force everywhere."
	} else {
		out += " Not yet confirmed by a majority: it is sent again."
	}
	return out
}
