package api

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	fhir "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// IHE MHD: the Document Recipient (ITI-65: a transaction Bundle's
// documents become records here) and the Document Responder across the
// federation (ITI-67: a search runs the federated query; ITI-68: a
// document's bytes, opened here).

const (
	loincSystem    = "http://loinc.org"
	uriSystem      = "urn:ietf:rfc:3986"
	proofExtension = "urn:medfed:fhir:ledger-proof" // where a released document is proven: holder, entry, final checkpoint
	maxEntries     = 100                            // entries of one transaction Bundle
)

// inBundle is a Bundle as a client sends it: only what a transaction
// needs is read.
type inBundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  *struct {
			Method string `json:"method"`
			URL    string `json:"url"`
		} `json:"request"`
	} `json:"entry"`
}

// resourceType reads a resource's type.
func resourceType(raw json.RawMessage) string {
	var r struct {
		ResourceType string `json:"resourceType"`
	}
	if json.Unmarshal(raw, &r) != nil {
		return ""
	}
	return r.ResourceType
}

// submission is one document of a transaction, checked and ready to store.
type submission struct {
	entry    int // its entry in the Bundle
	binary   int // the entry of its Binary, or -1
	request  centre.RecordRequest
	header   documentHeader
	data     []byte
	subject  string // as the DocumentReference named it
	patients []string
}

// transaction is MHD's Provide Document Bundle (ITI-65). Every entry is
// checked before anything is stored: a Bundle with one bad entry stores
// nothing.
func (s *Server) transaction(ctx context.Context, c *call) (any, error) {
	if err := c.allows("DocumentReference", 'c'); err != nil {
		return nil, err // before the body: a transaction here provides documents
	}
	raw, err := ReadBody(c.w, c.r, c.route.limit)
	if err != nil {
		return nil, err
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%w: the body is not JSON", errBadRequest)
	}
	if kind := resourceType(raw); kind != "Bundle" {
		return nil, fmt.Errorf("%w: POST %s takes a transaction Bundle, not %q", errBadRequest, fhirBase, kind)
	}
	var b inBundle
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("%w: the body is not a FHIR Bundle: %v", errBadRequest, err)
	}
	switch {
	case b.Type != "transaction":
		return nil, fmt.Errorf("%w: the Bundle's type must be transaction (IHE MHD ITI-65), not %q", errBadRequest, b.Type)
	case len(b.Entry) == 0 || len(b.Entry) > maxEntries:
		return nil, fmt.Errorf("%w: a transaction holds 1 to %d entries, not %d", errBadRequest, maxEntries, len(b.Entry))
	}
	types := s.node.DocumentTypes()
	var docs []*submission
	binaries := map[string]int{} // by fullUrl
	lists := 0
	kinds := make([]string, len(b.Entry))
	for i, e := range b.Entry {
		kind := resourceType(e.Resource)
		kinds[i] = kind
		where := fmt.Sprintf("entry %d (%s)", i+1, kind)
		if e.Request == nil || e.Request.Method != http.MethodPost || e.Request.URL != kind {
			return nil, fmt.Errorf("%w: %s: a transaction's entries are creates here: request.method POST, request.url %q", errBadRequest, where, kind)
		}
		if err := c.allows(kind, 'c'); err != nil {
			return nil, err
		}
		switch kind {
		case "List":
			lists++
		case "Binary":
			if !strings.HasPrefix(e.FullURL, "urn:uuid:") {
				return nil, fmt.Errorf("%w: %s: a Binary's fullUrl must be a urn:uuid its DocumentReference points at", errBadRequest, where)
			}
			binaries[e.FullURL] = i
		case "DocumentReference":
			d, err := s.submission(ctx, c, e.Resource, types)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			d.entry = i
			docs = append(docs, d)
		default:
			return nil, fmt.Errorf("%w: %s: an MHD transaction holds a SubmissionSet List, DocumentReferences and Binaries, not a %q", errBadRequest, where, kind)
		}
	}
	if lists != 1 || len(docs) == 0 {
		return nil, fmt.Errorf("%w: an MHD transaction holds one SubmissionSet List and at least one DocumentReference (it holds %d and %d)", errBadRequest, lists, len(docs))
	}
	used := map[int]bool{}
	for _, d := range docs {
		if d.binary < 0 {
			continue
		}
		i, ok := binaries[d.request.Location] // the attachment's url, kept there by submission
		if !ok {
			return nil, fmt.Errorf("%w: entry %d: the attachment's url %q names no Binary of this Bundle", errBadRequest, d.entry+1, d.request.Location)
		}
		var bin fhir.Binary
		if err := json.Unmarshal(b.Entry[i].Resource, &bin); err != nil || bin.Data == nil {
			return nil, fmt.Errorf("%w: entry %d: the Binary holds no data", errBadRequest, i+1)
		}
		if d.data, err = base64.StdEncoding.DecodeString(*bin.Data); err != nil {
			return nil, fmt.Errorf("%w: entry %d: the Binary's data is not base64", errBadRequest, i+1)
		}
		if bin.ContentType != "" && d.header.ContentType != bin.ContentType {
			return nil, fmt.Errorf("%w: entry %d: the Binary's content type is not its DocumentReference's", errBadRequest, i+1)
		}
		d.binary, d.request.Location = i, ""
		used[i] = true
	}
	if len(used) != len(binaries) {
		return nil, fmt.Errorf("%w: a Binary of the Bundle belongs to no DocumentReference", errBadRequest)
	}
	for _, d := range docs {
		if d.request.Payload, err = sealDocument(d.header, d.data); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", errBadRequest, d.entry+1, err)
		}
	}

	// Stored one by one: a failure part-way (the centre's fault, not the
	// Bundle's) says which entries were stored.
	out := fhir.Bundle{Type: fhir.BundleTypeTransactionResponse, Timestamp: instant(time.Now())}
	out.Entry = make([]fhir.BundleEntry, len(b.Entry))
	var notes []fhir.OperationOutcomeIssue
	for n, d := range docs {
		res, err := s.node.AddRecord(ctx, d.request)
		if err != nil {
			if n == 0 {
				return nil, err
			}
			return nil, fmt.Errorf("entry %d was not stored, nor those after it; the %d before it were: %w", d.entry+1, n, err)
		}
		if res.Announce != nil {
			s.log.Warn("announcing a record failed", "index", res.Index, "err", res.Announce)
			notes = append(notes, issue(fhir.IssueSeverityWarning, fhir.IssueTypeIncomplete,
				fmt.Sprintf("entry %d: stored, but not yet announced in the directory; the node announces it again at its next start", d.entry+1)))
		}
		id := resourceID(s.node.Name(), res.Index)
		out.Entry[d.entry] = createdEntry(baseURL(c.r), "DocumentReference", id)
		if d.binary >= 0 {
			out.Entry[d.binary] = createdEntry(baseURL(c.r), "Binary", id)
		}
	}
	for i, kind := range kinds {
		if kind == "List" {
			out.Entry[i] = fhir.BundleEntry{Response: &fhir.BundleEntryResponse{Status: "200 OK",
				Outcome: marshal(fhir.OperationOutcome{Issue: []fhir.OperationOutcomeIssue{issue(fhir.IssueSeverityInformation, fhir.IssueTypeInformational,
					"the submission set is not kept as a resource: each of its documents is a record on this centre's ledger")}})}}
		}
	}
	if len(notes) > 0 {
		for i := range out.Entry {
			if kinds[i] == "DocumentReference" && out.Entry[i].Response.Outcome == nil {
				out.Entry[i].Response.Outcome = marshal(fhir.OperationOutcome{Issue: notes})
			}
		}
	}
	return resource{marshal(out)}, nil
}

func createdEntry(base, kind, id string) fhir.BundleEntry {
	return fhir.BundleEntry{FullUrl: ptr(base + fhirBase + "/" + kind + "/" + id),
		Response: &fhir.BundleEntryResponse{Status: "201 Created", Location: ptr(kind + "/" + id)}}
}

// submission checks one DocumentReference of a transaction.
func (s *Server) submission(ctx context.Context, c *call, raw json.RawMessage, types []centre.DocumentType) (*submission, error) {
	var d fhir.DocumentReference
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("%w: not a valid DocumentReference: %v", errBadRequest, err)
	}
	if d.Status != fhir.DocumentReferenceStatusCurrent {
		return nil, fmt.Errorf("%w: a new document's status is current", errBadRequest)
	}
	out := &submission{binary: -1}
	var err error
	if out.request.Author, err = c.staffID(); err != nil {
		return nil, fmt.Errorf("%w: the author: %v", centre.ErrBadRecord, err)
	}

	// The type: a LOINC code this centre maps to a data class.
	var known []string
	for _, t := range types {
		known = append(known, t.LOINC)
	}
	if d.Type != nil {
		for _, cd := range d.Type.Coding {
			if cd.System == nil || *cd.System != loincSystem || cd.Code == nil {
				continue
			}
			i := slices.IndexFunc(types, func(t centre.DocumentType) bool { return t.LOINC == *cd.Code })
			if i < 0 {
				continue
			}
			out.request.Class = types[i].Class
			out.header.TypeSystem, out.header.TypeCode, out.header.TypeDisplay = loincSystem, types[i].LOINC, types[i].Display
			if cd.Display != nil && *cd.Display != "" {
				out.header.TypeDisplay = *cd.Display
			}
			break
		}
	}
	if out.request.Class == "" {
		return nil, fmt.Errorf("%w: type: give a LOINC document type (system %s) this centre records: %s (records.types)", errBadRequest, loincSystem, strings.Join(known, ", "))
	}

	// The subject: the pseudonymous Patient (PDQm), or an identifier.
	if d.Subject == nil {
		return nil, fmt.Errorf("%w: subject: the document's patient is required (Patient/<pseudonym> from PDQm)", errBadRequest)
	}
	switch {
	case d.Subject.Reference != nil:
		p, err := patientOf(*d.Subject.Reference)
		if err != nil {
			return nil, err
		}
		out.request.Pseudonym = p
	case d.Subject.Identifier != nil && d.Subject.Identifier.System != nil && d.Subject.Identifier.Value != nil:
		out.request.Identifier = *d.Subject.Identifier.System + "|" + *d.Subject.Identifier.Value
	default:
		return nil, fmt.Errorf("%w: subject: give reference Patient/<pseudonym>, or an identifier with its system", errBadRequest)
	}

	// The content: one attachment, its bytes inline or in a Binary.
	if len(d.Content) != 1 {
		return nil, fmt.Errorf("%w: content: one attachment per document (each is a record); this one has %d", errBadRequest, len(d.Content))
	}
	att := d.Content[0].Attachment
	if att.ContentType == nil {
		return nil, fmt.Errorf("%w: content.attachment.contentType is required", errBadRequest)
	}
	out.header.ContentType = *att.ContentType
	if att.Language != nil {
		out.header.Language = *att.Language
	}
	if err := out.header.check(); err != nil {
		return nil, fmt.Errorf("%w: content.attachment: %v", errBadRequest, err)
	}
	switch {
	case att.Data != nil && att.Url == nil:
		if out.data, err = base64.StdEncoding.DecodeString(*att.Data); err != nil {
			return nil, fmt.Errorf("%w: content.attachment.data is not base64", errBadRequest)
		}
	case att.Url != nil && att.Data == nil:
		out.binary = 0
		out.request.Location = *att.Url // until the Binary is found
	default:
		return nil, fmt.Errorf("%w: content.attachment: give its data, or its url naming a Binary of the Bundle (one, not both)", errBadRequest)
	}
	if att.Hash != nil && out.data != nil {
		sum := sha1.Sum(out.data)
		if *att.Hash != base64.StdEncoding.EncodeToString(sum[:]) {
			return nil, fmt.Errorf("%w: content.attachment.hash is not the SHA-1 of its data", errBadRequest)
		}
	}

	// When: the document's date, or now.
	out.request.Occurred = time.Now().UTC().Truncate(time.Second)
	if d.Date != nil {
		t, err := time.Parse(time.RFC3339, *d.Date)
		if err != nil {
			return nil, fmt.Errorf("%w: date: an instant with its time zone (RFC 3339)", errBadRequest)
		}
		out.request.Occurred = t.UTC()
	}

	// A replacement of a document of this centre's is an amendment.
	for _, r := range d.RelatesTo {
		if r.Code != fhir.DocumentRelationshipTypeReplaces {
			return nil, fmt.Errorf("%w: relatesTo: only replaces is recorded (an amendment)", errBadRequest)
		}
		if r.Target.Reference == nil || out.request.Replaces != 0 {
			return nil, fmt.Errorf("%w: relatesTo: one target, DocumentReference/<id> of this centre", errBadRequest)
		}
		id, _ := strings.CutPrefix(*r.Target.Reference, "DocumentReference/")
		idx, ok := s.localIndex(id)
		if !ok || idx == 0 {
			return nil, fmt.Errorf("%w: relatesTo: %q is not a document of this centre: only its own are amended here", errBadRequest, *r.Target.Reference)
		}
		out.request.Replaces = idx
	}
	// The author is the person the token acts for, whatever
	// DocumentReference.author says: the ledger records who submitted.
	return out, nil
}

// patientOf reads the pseudonym of a reference to a Patient.
func patientOf(ref string) (ledger.Pseudonym, error) {
	i := strings.LastIndex(ref, "Patient/")
	if i < 0 || (i > 0 && !strings.HasSuffix(ref[:i], fhirBase+"/")) {
		return ledger.Pseudonym{}, fmt.Errorf("%w: %q is not a reference to a Patient (Patient/<pseudonym>)", errBadRequest, ref)
	}
	return ledger.ParsePseudonym(ref[i+len("Patient/"):])
}

// localIndex reads the ledger index of one of this centre's documents'
// ids.
func (s *Server) localIndex(id string) (int64, bool) {
	cut := strings.LastIndexByte(id, '-')
	if cut < 0 {
		return 0, false
	}
	idx, err := strconv.ParseInt(id[cut+1:], 10, 64)
	if err != nil || idx < 0 || resourceID(s.node.Name(), idx) != id {
		return 0, false
	}
	return idx, true
}

// foundDocuments remembers, for a while, which patient and holder each
// document found by a search here belongs to, so that its
// DocumentReference and Binary can be read here afterwards: each read is
// a query of that holder alone, decided by consent and audited there.
type foundDocuments struct {
	mu    sync.Mutex
	byID  map[string]foundDocument
	order []string // oldest first, to forget the oldest beyond the bound
}

type foundDocument struct {
	pseudonym ledger.Pseudonym
	holder    string
	index     int64
	class     string
	at        time.Time
}

const (
	maxFound  = 100_000
	foundLife = time.Hour
)

func newFoundDocuments() *foundDocuments { return &foundDocuments{byID: map[string]foundDocument{}} }

func (f *foundDocuments) add(id string, d foundDocument) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.byID[id]; !ok {
		f.order = append(f.order, id)
	}
	f.byID[id] = d
	for len(f.order) > maxFound {
		delete(f.byID, f.order[0])
		f.order = f.order[1:]
	}
}

func (f *foundDocuments) get(id string) (foundDocument, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.byID[id]
	return d, ok && time.Since(d.at) < foundLife
}

// docSearch is a DocumentReference search's filters.
type docSearch struct {
	patient ledger.Pseudonym
	classes []string // empty: all
	types   []string // LOINC codes; empty: all
	current bool     // status: only current documents exist here
	dates   []dateFilter
	periods []dateFilter
}

// findDocuments is MHD's Find Document References (ITI-67) across the
// federation: the federated query for the caller's purpose of use.
func (s *Server) findDocuments(ctx context.Context, c *call) (any, error) {
	q, err := c.searchParams()
	if err != nil {
		return nil, err
	}
	ds := docSearch{current: true}
	pat, err := one(q, "patient")
	if err != nil {
		return nil, err
	}
	pid, err := one(q, "patient.identifier")
	if err != nil {
		return nil, err
	}
	switch {
	case pat != "" && pid == "":
		if ds.patient, err = patientOf(pat); err != nil {
			if ds.patient, err = ledger.ParsePseudonym(pat); err != nil {
				return nil, err
			}
		}
	case pid != "" && pat == "":
		ps, err := s.node.PseudonymsOf(ctx, []string{pid})
		if err != nil {
			return nil, err
		}
		ds.patient = ps[0]
	default:
		return nil, fmt.Errorf("%w: give the patient (a pseudonym from PDQm) or patient.identifier (system|value), one of them", errBadRequest)
	}
	types := s.node.DocumentTypes()
	if v, err := one(q, "status"); err != nil {
		return nil, err
	} else if v != "" {
		ds.current = slices.Contains(strings.Split(v, ","), "current")
	}
	if v, err := one(q, "category"); err != nil {
		return nil, err
	} else if v != "" {
		for _, t := range strings.Split(v, ",") {
			_, code := splitToken(t)
			ds.classes = append(ds.classes, code)
		}
	}
	if v, err := one(q, "type"); err != nil {
		return nil, err
	} else if v != "" {
		var classes []string
		for _, t := range strings.Split(v, ",") {
			system, code := splitToken(t)
			if system != "" && system != loincSystem {
				return nil, fmt.Errorf("%w: type: document types are LOINC codes (%s|code)", errBadRequest, loincSystem)
			}
			ds.types = append(ds.types, code)
			for _, dt := range types {
				if dt.LOINC == code {
					classes = append(classes, dt.Class)
				}
			}
		}
		ds.classes = intersect(ds.classes, classes)
		if len(ds.classes) == 0 {
			ds.current = false // no class is asked for: nothing matches
		}
	}
	for _, v := range q["date"] {
		f, err := parseDateFilter("date", v)
		if err != nil {
			return nil, err
		}
		ds.dates = append(ds.dates, f)
	}
	for _, v := range q["period"] {
		f, err := parseDateFilter("period", v)
		if err != nil {
			return nil, err
		}
		ds.periods = append(ds.periods, f)
	}
	base := baseURL(c.r)
	b := fhir.Bundle{Type: fhir.BundleTypeSearchset, Timestamp: instant(time.Now()), Link: selfLink(c)}
	if !ds.current {
		b.Total = ptr(0)
		return resource{marshal(b)}, nil
	}
	if c.purpose() == consent.Emergency.String() {
		return nil, errStatus{http.StatusForbidden, errors.New("emergency access needs a coded reason and is stopped when done: POST /v1/emergency (an ETREAT token does not break the glass)")}
	}
	asker, err := ParseAsker(c.staff.Role, c.staff.ID, c.purpose(), "")
	if err != nil {
		return nil, err
	}
	res, err := s.node.QueryRecords(ctx, centre.QueryRequest{Pseudonym: ds.patient, Asker: asker, Classes: ds.classes})
	if err != nil {
		return nil, err
	}
	qr := QueryResultOf(res)
	total := 0
	for _, h := range qr.Holders {
		for _, r := range h.Records {
			doc, err := s.foundDocument(base, qr.Pseudonym, h, r, types)
			if err != nil {
				return nil, err
			}
			if !ds.matches(doc, types) {
				continue
			}
			id := resourceID(h.Name, r.Index)
			s.found.add(id, foundDocument{pseudonym: ds.patient, holder: h.Name, index: r.Index, class: r.Class, at: time.Now()})
			b.Entry = append(b.Entry, fhir.BundleEntry{FullUrl: ptr(base + fhirBase + "/DocumentReference/" + id), Resource: marshal(doc),
				Search: &fhir.BundleEntrySearch{Mode: ptr(fhir.SearchEntryModeMatch)}})
			total++
		}
	}
	b.Total = ptr(total)
	b.Entry = append(b.Entry, fhir.BundleEntry{FullUrl: ptr(newUUID()), Resource: marshal(fhir.OperationOutcome{Issue: holderIssues(qr)}),
		Search: &fhir.BundleEntrySearch{Mode: ptr(fhir.SearchEntryModeOutcome)}})
	return resource{marshal(b)}, nil
}

// matches applies the filters the query could not.
func (ds docSearch) matches(d fhir.DocumentReference, types []centre.DocumentType) bool {
	if len(ds.types) > 0 {
		ok := false
		if d.Type != nil {
			for _, cd := range d.Type.Coding {
				ok = ok || (cd.Code != nil && slices.Contains(ds.types, *cd.Code))
			}
		}
		if !ok {
			return false
		}
	}
	at, _ := time.Parse(time.RFC3339Nano, *d.Date)
	for _, f := range ds.dates {
		if !f.holds(at) {
			return false
		}
	}
	for _, f := range ds.periods {
		if !f.holds(at) {
			return false
		}
	}
	return true
}

// splitToken splits a token search value: system|code, or a code alone.
func splitToken(t string) (system, code string) {
	if s, c, ok := strings.Cut(t, "|"); ok {
		return s, c
	}
	return "", t
}

// intersect is the classes both lists name; either list empty means all.
func intersect(a, b []string) []string {
	switch {
	case len(a) == 0:
		return b
	case len(b) == 0:
		return a
	}
	return slices.DeleteFunc(slices.Clone(a), func(x string) bool { return !slices.Contains(b, x) })
}

// foundDocument is a released record as a DocumentReference of a search:
// its bytes are at attachment.url, on this centre.
func (s *Server) foundDocument(base, pseudonym string, h QueryHolder, r QueryRecord, types []centre.DocumentType) (fhir.DocumentReference, error) {
	hdr, data := documentHeader{ContentType: octetStream}, []byte(nil)
	if !r.Erased {
		var err error
		if hdr, data, err = openDocument(r.Payload); err != nil {
			return fhir.DocumentReference{}, fmt.Errorf("%w: %s's record %d: %v", node.ErrInvalid, h.Name, r.Index, err)
		}
	}
	id := resourceID(h.Name, r.Index)
	att := fhir.Attachment{ContentType: ptr(hdr.ContentType), Url: ptr(base + fhirBase + "/Binary/" + id)}
	if hdr.Language != "" {
		att.Language = ptr(hdr.Language)
	}
	if r.Erased {
		att.Url, att.Title = nil, ptr(noPayload)
	} else {
		att.Size = ptr(len(data))
		sum := sha1.Sum(data) // FHIR's Attachment.hash is SHA-1
		att.Hash = ptr(base64.StdEncoding.EncodeToString(sum[:]))
	}
	d := docRef(h.Name, r.Index, r.Kind, pseudonym, r.Class, r.Occurred, r.Location, r.Author, r.Replaces, att)
	s.fhirDocument(&d, h.Name, r.Index, r.Class, hdr, types)
	d.Extension = []fhir.Extension{{Url: proofExtension, Extension: []fhir.Extension{
		{Url: "holder", ValueString: ptr(h.Name)},
		{Url: "entry", ValueString: ptr(strconv.FormatInt(r.Index, 10))},
		{Url: "checkpoint", ValueString: ptr(strconv.FormatInt(h.Checkpoint, 10))},
	}}}
	return d, nil
}

// fhirDocument gives a DocumentReference what an EHR reads and resolves:
// its LOINC type, its data class as its category, and its master
// identifier.
func (s *Server) fhirDocument(d *fhir.DocumentReference, holder string, index int64, class string, hdr documentHeader, types []centre.DocumentType) {
	d.Type = &fhir.CodeableConcept{Text: ptr(class)}
	if hdr.TypeCode != "" {
		d.Type = &fhir.CodeableConcept{Coding: []fhir.Coding{{System: ptr(hdr.TypeSystem), Code: ptr(hdr.TypeCode), Display: ptr(hdr.TypeDisplay)}}}
	} else if i := slices.IndexFunc(types, func(t centre.DocumentType) bool { return t.Class == class }); i >= 0 {
		d.Type = &fhir.CodeableConcept{Coding: []fhir.Coding{{System: ptr(loincSystem), Code: ptr(types[i].LOINC), Display: ptr(types[i].Display)}}}
	}
	d.Category = []fhir.CodeableConcept{{Coding: []fhir.Coding{{System: ptr(classSystem), Code: ptr(class)}}}}
	sum := sha256.Sum256([]byte(s.node.Federation() + "\x00" + holder + "\x00" + strconv.FormatInt(index, 10)))
	d.MasterIdentifier = &fhir.Identifier{System: ptr(uriSystem), Value: ptr(uuidURN(sum[:16], 8))}
}

// uuidURN writes 16 bytes as a urn:uuid of a version: 4 for random
// bytes, 8 for bytes derived from a hash.
func uuidURN(b []byte, version byte) string {
	u := [16]byte(b)
	u[6], u[8] = u[6]&0x0f|version<<4, u[8]&0x3f|0x80
	h := hex.EncodeToString(u[:])
	return "urn:uuid:" + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newUUID is a random urn:uuid, for a Bundle entry that names no
// resource of this server (an OperationOutcome).
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	return uuidURN(b[:], 4)
}

// readable finds a document by its id: one of this centre's, or one a
// search here found at another holder.
func (s *Server) readable(ctx context.Context, id string) (foundDocument, error) {
	if idx, ok := s.localIndex(id); ok && idx > 0 {
		m, err := s.node.RecordAt(ctx, idx)
		if err != nil {
			return foundDocument{}, err
		}
		return foundDocument{pseudonym: m.Pseudonym, holder: s.node.Name(), index: idx, class: m.Record.DataClass}, nil
	}
	if d, ok := s.found.get(id); ok {
		return d, nil
	}
	return foundDocument{}, errStatus{http.StatusNotFound, fmt.Errorf("no document %q here: a document of another centre is read here after a search at this centre found it (ITI-67), for an hour", id)}
}

// readOne reads one document through the query, from its holder alone,
// for the caller's purpose: decided by consent and audited there.
func (s *Server) readOne(ctx context.Context, c *call, d foundDocument) (QueryHolder, QueryRecord, error) {
	if c.purpose() == consent.Emergency.String() {
		return QueryHolder{}, QueryRecord{}, errStatus{http.StatusForbidden, errors.New("emergency access needs a coded reason: POST /v1/emergency")}
	}
	asker, err := ParseAsker(c.staff.Role, c.staff.ID, c.purpose(), "")
	if err != nil {
		return QueryHolder{}, QueryRecord{}, err
	}
	req := centre.QueryRequest{Pseudonym: d.pseudonym, Asker: asker, Classes: []string{d.class}}
	if d.holder == s.node.Name() {
		req.Local = true
	} else {
		req.Holder = d.holder
	}
	res, err := s.node.QueryRecords(ctx, req)
	if err != nil {
		return QueryHolder{}, QueryRecord{}, err
	}
	qr := QueryResultOf(res)
	if len(qr.Holders) != 1 {
		return QueryHolder{}, QueryRecord{}, fmt.Errorf("the holder %s did not answer", d.holder)
	}
	h := qr.Holders[0]
	switch h.Status {
	case "failed":
		return h, QueryRecord{}, fmt.Errorf("%w: %s could not answer: %s", node.ErrUnavailable, h.Name, h.Error)
	case "denied":
		return h, QueryRecord{}, errStatus{http.StatusForbidden, fmt.Errorf("%s denied it: %s (%s); access entry %d", h.Name, h.Reason, h.Basis, h.Access)}
	}
	for _, r := range h.Records {
		if r.Index == d.index {
			return h, r, nil
		}
	}
	if h.Pending > 0 {
		c.w.Header().Set("Retry-After", "2")
		return h, QueryRecord{}, fmt.Errorf("%w: the document is not in a final checkpoint yet; ask again in a few seconds", centre.ErrNotReady)
	}
	return h, QueryRecord{}, errStatus{http.StatusForbidden, fmt.Errorf("%s did not release it: an amendment replaced it, or consent does not allow it (access entry %d)", h.Name, h.Access)}
}

// readDocument is a DocumentReference by its id.
func (s *Server) readDocument(ctx context.Context, c *call) (any, error) {
	d, err := s.readable(ctx, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	h, r, err := s.readOne(ctx, c, d)
	if err != nil {
		return nil, err
	}
	doc, err := s.foundDocument(baseURL(c.r), d.pseudonym.String(), h, r, s.node.DocumentTypes())
	if err != nil {
		return nil, err
	}
	return resource{marshal(doc)}, nil
}

// retrieve is MHD's Retrieve Document (ITI-68): the document's bytes, in
// their own content type, or as a Binary resource to a caller that asks
// for FHIR.
func (s *Server) retrieve(ctx context.Context, c *call) (any, error) {
	d, err := s.readable(ctx, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	_, r, err := s.readOne(ctx, c, d)
	if err != nil {
		return nil, err
	}
	if r.Erased {
		return nil, errStatus{http.StatusGone, errors.New(noPayload)}
	}
	hdr, data, err := openDocument(r.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %s's record %d: %v", node.ErrInvalid, d.holder, d.index, err)
	}
	if wantsFHIR(c.r) {
		return resource{marshal(fhir.Binary{Id: ptr(resourceID(d.holder, d.index)), ContentType: hdr.ContentType,
			Data: ptr(base64.StdEncoding.EncodeToString(data))})}, nil
	}
	c.w.Header().Set("Content-Type", hdr.ContentType)
	c.w.Header().Set("Cache-Control", "no-store")
	c.w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	c.w.WriteHeader(http.StatusOK)
	c.w.Write(data)
	return nil, nil
}

// dateFilter is one date search value: a prefix and the range its
// precision covers, [from, to).
type dateFilter struct {
	prefix   string
	from, to time.Time
}

// parseDateFilter reads a FHIR date search value: eq, ne, gt, lt, ge or
// le, then a date of a year, month, day or an instant.
func parseDateFilter(name, v string) (dateFilter, error) {
	f := dateFilter{prefix: "eq"}
	if len(v) > 2 && v[0] >= 'a' && v[0] <= 'z' {
		f.prefix, v = v[:2], v[2:]
	}
	if !slices.Contains([]string{"eq", "ne", "gt", "lt", "ge", "le"}, f.prefix) {
		return f, fmt.Errorf("%w: %s: the prefix %q is not one of eq, ne, gt, lt, ge, le", errBadRequest, name, f.prefix)
	}
	for _, l := range []struct {
		layout string
		step   func(time.Time) time.Time
	}{
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{time.DateOnly, func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{time.RFC3339, func(t time.Time) time.Time { return t.Add(time.Second) }},
	} {
		if t, err := time.Parse(l.layout, v); err == nil {
			f.from, f.to = t, l.step(t)
			return f, nil
		}
	}
	return f, fmt.Errorf("%w: %s: %q is not a date (YYYY, YYYY-MM, YYYY-MM-DD or an instant with its zone), after an optional prefix", errBadRequest, name, v)
}

// holds reports whether t satisfies the filter.
func (f dateFilter) holds(t time.Time) bool {
	in := !t.Before(f.from) && t.Before(f.to)
	switch f.prefix {
	case "ne":
		return !in
	case "gt":
		return !t.Before(f.to)
	case "lt":
		return t.Before(f.from)
	case "ge":
		return !t.Before(f.from)
	case "le":
		return t.Before(f.to)
	}
	return in
}
