package api

import (
	"container/list"
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
	// maxTransactions is how many MHD transactions are served at once; more
	// wait (a Bundle may hold 24 MiB, parsed and sealed in memory).
	maxTransactions = 2
)

// inBundle is a Bundle as a client sends it: only what a transaction
// needs is read, and its type's shape is checked after its resourceType.
type inBundle struct {
	ResourceType string          `json:"resourceType"`
	Type         json.RawMessage `json:"type"`
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
	entry     int    // its entry in the Bundle
	binaryURL string // the fullUrl of its Binary in the Bundle; empty when its data is inline
	binary    int    // that Binary's entry, once found
	hash      string // attachment.hash, checked against the bytes
	request   centre.RecordRequest
	header    documentHeader
	data      []byte
}

// bundleBinary is a Binary of a transaction, decoded.
type bundleBinary struct {
	entry       int
	contentType string
	data        []byte
	used        bool
}

// inList is what a SubmissionSet List says that is checked here.
type inList struct {
	Subject *fhir.Reference `json:"subject"`
	Entry   []struct {
		Item fhir.Reference `json:"item"`
	} `json:"entry"`
}

// transaction is MHD's Provide Document Bundle (ITI-65). Every entry is
// checked, and every record it makes checked by the centre, before any
// is stored: a Bundle with one bad entry stores nothing. A failure of
// the centre's part-way (a disk) is answered with what was stored.
func (s *Server) transaction(ctx context.Context, c *call) (any, error) {
	if err := c.allows("DocumentReference", 'c'); err != nil {
		return nil, err // before the body: a transaction here provides documents
	}
	// A Bundle may carry 16 MiB documents: a few at a time.
	select {
	case s.transactions <- struct{}{}:
		defer func() { <-s.transactions }()
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: too many transactions at once; try again", node.ErrUnavailable)
	}
	raw, err := ReadBody(c.w, c.r, c.route.limit)
	if err != nil {
		return nil, err
	}
	var b inBundle
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("%w: the body is not a FHIR resource in JSON: %v", errBadRequest, err)
	}
	raw = nil
	var kind string
	switch {
	case b.ResourceType != "Bundle":
		return nil, fmt.Errorf("%w: POST %s takes a transaction Bundle, not %q", errBadRequest, fhirBase, b.ResourceType)
	case json.Unmarshal(b.Type, &kind) != nil || kind != "transaction":
		return nil, fmt.Errorf("%w: the Bundle's type must be transaction (IHE MHD ITI-65)", errBadRequest)
	case len(b.Entry) == 0 || len(b.Entry) > maxEntries:
		return nil, fmt.Errorf("%w: a transaction holds 1 to %d entries, not %d", errBadRequest, maxEntries, len(b.Entry))
	}
	types := s.node.DocumentTypes()
	var docs []*submission
	var list *inList
	binaries := map[string]*bundleBinary{} // by fullUrl
	kinds := make([]string, len(b.Entry))
	docURLs := map[string]bool{}
	for i, e := range b.Entry {
		kind := resourceType(e.Resource)
		kinds[i] = kind
		where := fmt.Sprintf("entry %d (%s)", i+1, kind)
		if e.Request == nil || e.Request.Method != http.MethodPost || e.Request.URL != kind {
			return nil, fmt.Errorf("%w: %s: a transaction's entries are creates here: request.method POST, request.url its resource type", errBadRequest, where)
		}
		if err := c.allows(kind, 'c'); err != nil {
			return nil, err
		}
		switch kind {
		case "List":
			if list != nil {
				return nil, fmt.Errorf("%w: %s: an MHD transaction holds one SubmissionSet List", errBadRequest, where)
			}
			list = &inList{}
			if err := json.Unmarshal(e.Resource, list); err != nil {
				return nil, fmt.Errorf("%w: %s: not a valid List: %v", errBadRequest, where, err)
			}
		case "Binary":
			if !strings.HasPrefix(e.FullURL, "urn:uuid:") || binaries[e.FullURL] != nil {
				return nil, fmt.Errorf("%w: %s: a Binary's fullUrl must be a urn:uuid of its own, which its DocumentReference points at", errBadRequest, where)
			}
			var bin fhir.Binary
			if err := json.Unmarshal(e.Resource, &bin); err != nil || bin.Data == nil {
				return nil, fmt.Errorf("%w: %s: a Binary with its contentType and data", errBadRequest, where)
			}
			data, err := base64.StdEncoding.DecodeString(*bin.Data)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: the Binary's data is not base64", errBadRequest, where)
			}
			binaries[e.FullURL] = &bundleBinary{entry: i, contentType: bin.ContentType, data: data}
		case "DocumentReference":
			d, err := s.submission(c, e.Resource, types)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			d.entry = i
			docs = append(docs, d)
			docURLs[e.FullURL] = e.FullURL != ""
		default:
			return nil, fmt.Errorf("%w: %s: an MHD transaction holds a SubmissionSet List, DocumentReferences and Binaries", errBadRequest, where)
		}
	}
	if list == nil || len(docs) == 0 {
		return nil, fmt.Errorf("%w: an MHD transaction holds one SubmissionSet List and at least one DocumentReference", errBadRequest)
	}

	// One patient: the submission set's, every document's.
	var ids []string
	for _, d := range docs {
		if d.request.Identifier != "" && !slices.Contains(ids, d.request.Identifier) {
			ids = append(ids, d.request.Identifier)
		}
	}
	if len(ids) > 0 {
		ps, err := s.node.PseudonymsOf(ctx, ids)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			if i := slices.Index(ids, d.request.Identifier); i >= 0 {
				d.request.Pseudonym, d.request.Identifier = ps[i], ""
			}
		}
	}
	patient := docs[0].request.Pseudonym
	for _, d := range docs {
		if d.request.Pseudonym != patient {
			return nil, fmt.Errorf("%w: entry %d: a submission set is about one patient, and its documents name two", errBadRequest, d.entry+1)
		}
	}
	if list.Subject != nil {
		if list.Subject.Reference == nil {
			return nil, fmt.Errorf("%w: the SubmissionSet's subject: a reference to the documents' Patient", errBadRequest)
		}
		if p, err := patientOf(*list.Subject.Reference); err != nil || p != patient {
			return nil, fmt.Errorf("%w: the SubmissionSet's subject is not its documents' patient", errBadRequest)
		}
	}
	for i, e := range list.Entry {
		if e.Item.Reference == nil || !docURLs[*e.Item.Reference] {
			return nil, fmt.Errorf("%w: the SubmissionSet's entry %d names no DocumentReference of the Bundle by its fullUrl", errBadRequest, i+1)
		}
	}

	// Each document's bytes: inline, or its Binary's, each Binary once.
	for _, d := range docs {
		if d.binaryURL != "" {
			bin := binaries[d.binaryURL]
			switch {
			case bin == nil:
				return nil, fmt.Errorf("%w: entry %d: the attachment's url names no Binary of this Bundle (a urn:uuid fullUrl)", errBadRequest, d.entry+1)
			case bin.used:
				return nil, fmt.Errorf("%w: entry %d: its Binary belongs to another DocumentReference too", errBadRequest, d.entry+1)
			case bin.contentType != d.header.ContentType:
				return nil, fmt.Errorf("%w: entry %d: the Binary's content type is not its DocumentReference's", errBadRequest, bin.entry+1)
			}
			bin.used, d.binary, d.data = true, bin.entry, bin.data
		}
		if len(d.data) == 0 {
			return nil, fmt.Errorf("%w: entry %d: the document is empty", errBadRequest, d.entry+1)
		}
		if d.hash != "" {
			sum := sha1.Sum(d.data)
			if d.hash != base64.StdEncoding.EncodeToString(sum[:]) {
				return nil, fmt.Errorf("%w: entry %d: content.attachment.hash is not the SHA-1 of the document's bytes", errBadRequest, d.entry+1)
			}
		}
		if d.request.Payload, err = sealDocument(d.header, d.data); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", errBadRequest, d.entry+1, err)
		}
		d.data = nil
		if err := s.node.CheckRecord(ctx, d.request); err != nil {
			return nil, fmt.Errorf("entry %d: %w", d.entry+1, err)
		}
	}
	for _, bin := range binaries {
		if !bin.used {
			return nil, fmt.Errorf("%w: entry %d: a Binary that belongs to no DocumentReference", errBadRequest, bin.entry+1)
		}
	}

	// Stored one by one. Checked as they were, a failure now is the
	// centre's (a disk): the answer says which entries were stored.
	out := fhir.Bundle{Type: fhir.BundleTypeTransactionResponse, Timestamp: instant(time.Now())}
	out.Entry = make([]fhir.BundleEntry, len(b.Entry))
	var notes []fhir.OperationOutcomeIssue
	for n, d := range docs {
		res, err := s.node.AddRecord(ctx, d.request)
		if err != nil {
			if n == 0 {
				return nil, err
			}
			var stored []string
			for _, e := range out.Entry {
				if e.Response != nil && e.Response.Location != nil && strings.HasPrefix(*e.Response.Location, "DocumentReference/") {
					stored = append(stored, *e.Response.Location)
				}
			}
			return nil, fmt.Errorf("entry %d was not stored, nor those after it; %s were: %w", d.entry+1, strings.Join(stored, ", "), err)
		}
		if res.Announce != nil {
			s.log.Warn("announcing a record failed", "index", res.Index, "err", res.Announce)
			notes = append(notes, issue(fhir.IssueSeverityWarning, fhir.IssueTypeIncomplete,
				fmt.Sprintf("entry %d: stored, but not yet announced in the directory; the node announces it again at its next start", d.entry+1)))
		}
		id := resourceID(s.node.Name(), res.Index)
		out.Entry[d.entry] = createdEntry(baseURL(c.r), "DocumentReference", id)
		if d.binaryURL != "" {
			out.Entry[d.binary] = createdEntry(baseURL(c.r), "Binary", id)
		}
	}
	for i, kind := range kinds {
		switch {
		case kind == "List":
			out.Entry[i] = fhir.BundleEntry{Response: &fhir.BundleEntryResponse{Status: "200 OK",
				Outcome: marshal(fhir.OperationOutcome{Issue: []fhir.OperationOutcomeIssue{issue(fhir.IssueSeverityInformation, fhir.IssueTypeInformational,
					"the submission set is not kept as a resource: each of its documents is a record on this centre's ledger")}})}}
		case kind == "DocumentReference" && len(notes) > 0:
			out.Entry[i].Response.Outcome = marshal(fhir.OperationOutcome{Issue: notes})
		}
	}
	return resource{marshal(out)}, nil
}

// createdEntry is a transaction-response entry for a resource created.
func createdEntry(base, kind, id string) fhir.BundleEntry {
	return fhir.BundleEntry{FullUrl: ptr(base + fhirBase + "/" + kind + "/" + id),
		Response: &fhir.BundleEntryResponse{Status: "201 Created", Location: ptr(kind + "/" + id)}}
}

// submission checks one DocumentReference of a transaction. Its errors
// say what was expected, never repeat what was sent (an identifier may
// be in it).
func (s *Server) submission(c *call, raw json.RawMessage, types []centre.DocumentType) (*submission, error) {
	var d fhir.DocumentReference
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("%w: not a valid DocumentReference: %v", errBadRequest, err)
	}
	if d.Status != fhir.DocumentReferenceStatusCurrent {
		return nil, fmt.Errorf("%w: a new document's status is current", errBadRequest)
	}
	out := &submission{binary: -1}
	var err error
	// The author is the person the token acts for, whatever
	// DocumentReference.author says: the ledger records who submitted.
	if out.request.Author, err = c.staffID(); err != nil {
		return nil, fmt.Errorf("%w: the author: %v", centre.ErrBadRecord, err)
	}

	// The type: a LOINC code this centre maps to a data class.
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
			break
		}
	}
	if out.request.Class == "" {
		var known []string
		for _, t := range types {
			known = append(known, t.LOINC)
		}
		return nil, fmt.Errorf("%w: type: give a LOINC document type (system %s) this centre records: %s (records.types)", errBadRequest, loincSystem, strings.Join(known, ", "))
	}

	// The subject: the pseudonymous Patient (PDQm), or an identifier.
	switch {
	case d.Subject != nil && d.Subject.Reference != nil:
		p, err := patientOf(*d.Subject.Reference)
		if err != nil {
			return nil, fmt.Errorf("subject: %w", err)
		}
		out.request.Pseudonym = p
	case d.Subject != nil && d.Subject.Identifier != nil && d.Subject.Identifier.System != nil && d.Subject.Identifier.Value != nil:
		out.request.Identifier = *d.Subject.Identifier.System + "|" + *d.Subject.Identifier.Value
	default:
		return nil, fmt.Errorf("%w: subject: the document's patient, as reference Patient/<pseudonym> (PDQm) or an identifier with its system", errBadRequest)
	}

	// The content: one attachment, its bytes inline or in a Binary.
	if len(d.Content) != 1 {
		return nil, fmt.Errorf("%w: content: one attachment per document (each is a record)", errBadRequest)
	}
	att := d.Content[0].Attachment
	if att.ContentType == nil {
		return nil, fmt.Errorf("%w: content.attachment.contentType is required", errBadRequest)
	}
	out.header.ContentType = *att.ContentType
	if att.Language != nil {
		out.header.Language = *att.Language
	}
	if m := d.MasterIdentifier; m != nil && m.Value != nil {
		if m.System != nil && *m.System != uriSystem {
			return nil, fmt.Errorf("%w: masterIdentifier: the document's unique ID, a URI (system %s)", errBadRequest, uriSystem)
		}
		out.header.MasterID = *m.Value
	}
	if err := out.header.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	switch {
	case att.Data != nil && att.Url == nil:
		if out.data, err = base64.StdEncoding.DecodeString(*att.Data); err != nil {
			return nil, fmt.Errorf("%w: content.attachment.data is not base64", errBadRequest)
		}
	case att.Url != nil && att.Data == nil:
		out.binaryURL = *att.Url
	default:
		return nil, fmt.Errorf("%w: content.attachment: give its data, or its url naming a Binary of the Bundle (one, not both)", errBadRequest)
	}
	if att.Hash != nil {
		out.hash = *att.Hash
	}

	// When the care happened: context.period's start, or the document's
	// date, or now. The ledger keeps one time, which date and period
	// searches both filter on.
	out.request.Occurred = time.Now().UTC().Truncate(time.Second)
	when, field := d.Date, "date"
	if d.Context != nil && d.Context.Period != nil && d.Context.Period.Start != nil {
		when, field = d.Context.Period.Start, "context.period.start"
	}
	if when != nil {
		t, err := consent.ParseTime(*when)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: a date, or an instant with its time zone", errBadRequest, field)
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
			return nil, fmt.Errorf("%w: relatesTo: the target is not a document of this centre's: only its own are amended here", errBadRequest)
		}
		out.request.Replaces = idx
	}
	return out, nil
}

// patientOf reads the pseudonym of a reference to a Patient. Its error
// does not repeat the reference: it may hold an identifier.
func patientOf(ref string) (ledger.Pseudonym, error) {
	i := strings.LastIndex(ref, "Patient/")
	if i < 0 || (i > 0 && !strings.HasSuffix(ref[:i], fhirBase+"/")) {
		return ledger.Pseudonym{}, fmt.Errorf("%w: not a reference to a Patient: Patient/<pseudonym>, 64 hex digits (PDQm finds it)", errBadRequest)
	}
	p, err := ledger.ParsePseudonym(ref[i+len("Patient/"):])
	if err != nil {
		return p, fmt.Errorf("%w: a Patient's id is a pseudonym, 64 hex digits (PDQm finds it)", errBadRequest)
	}
	return p, nil
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
// document a caller's search here found belongs to, so that the caller
// can read its DocumentReference and Binary here afterwards: each read is
// a query of that holder alone, decided by consent and audited there.
// What one caller found is not another's to read by id.
type foundDocuments struct {
	mu    sync.Mutex
	byKey map[string]*list.Element // of order, each a foundEntry
	order *list.List               // oldest found first (found again: moved last), to forget beyond the bound
}

// foundEntry is a document a caller found, under its key in byKey.
type foundEntry struct {
	key string
	doc foundDocument
}

// foundDocument is a document a search found: whose, where, which.
type foundDocument struct {
	pseudonym ledger.Pseudonym
	holder    string
	index     int64
	class     string
	at        time.Time
}

const (
	maxFound  = 100_000   // documents remembered, all callers together
	foundLife = time.Hour // how long a caller may read one after its search
)

func newFoundDocuments() *foundDocuments {
	return &foundDocuments{byKey: map[string]*list.Element{}, order: list.New()}
}

// add remembers that caller's search found document id.
func (f *foundDocuments) add(caller, id string, d foundDocument) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := caller + "\x00" + id
	if e, ok := f.byKey[key]; ok {
		e.Value = foundEntry{key, d}
		f.order.MoveToBack(e)
		return
	}
	f.byKey[key] = f.order.PushBack(foundEntry{key, d})
	for f.order.Len() > maxFound {
		delete(f.byKey, f.order.Remove(f.order.Front()).(foundEntry).key)
	}
}

// get returns what caller's search found of document id, within its life.
func (f *foundDocuments) get(caller, id string) (foundDocument, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.byKey[caller+"\x00"+id]
	if !ok {
		return foundDocument{}, false
	}
	d := e.Value.(foundEntry).doc
	return d, time.Since(d.at) < foundLife
}

// caller names who calls, for what their searches found: the system and
// the person it acts for, or the staff member.
func (c *call) caller() string {
	if c.grant != nil {
		return "system " + c.grant.Client + " " + c.grant.Staff
	}
	return "staff " + c.staff.ID
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
	pid, err := one(q, "patient.identifier")
	switch {
	case err != nil:
		return nil, err
	case pid == "":
		if ds.patient, err = patientParam(q); err != nil {
			return nil, err
		}
	case len(q["patient"]) > 0:
		return nil, fmt.Errorf("%w: give the patient (a pseudonym from PDQm) or patient.identifier (system|value), not both", errBadRequest)
	case c.staff.Role == "researcher":
		// Research never turns an identifier into a pseudonym (PDQm is
		// not a researcher's either): it works on pseudonyms alone.
		return nil, errStatus{http.StatusForbidden, errors.New("a researcher searches by pseudonym (patient), not by identifier")}
	default:
		ps, err := s.node.PseudonymsOf(ctx, []string{pid})
		if err != nil {
			return nil, err
		}
		ds.patient = ps[0]
	}
	types := s.node.DocumentTypes()
	if v, err := one(q, "status"); err != nil {
		return nil, err
	} else if v != "" {
		ds.current = false
		for _, st := range strings.Split(v, ",") {
			if !slices.Contains([]string{"current", "superseded", "entered-in-error"}, st) {
				return nil, fmt.Errorf("%w: status: current, superseded or entered-in-error (only current documents are released)", errBadRequest)
			}
			ds.current = ds.current || st == "current"
		}
	}
	if v, err := one(q, "category"); err != nil {
		return nil, err
	} else if v != "" {
		for _, t := range strings.Split(v, ",") {
			system, code := splitToken(t)
			if (system != "" && system != classSystem) || !ledger.ValidDataClass(code) {
				return nil, fmt.Errorf("%w: category: a data class (system %s), e.g. lab-result", errBadRequest, classSystem)
			}
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
	issues := holderIssues(qr)
	for _, h := range qr.Holders {
		for _, r := range h.Records {
			doc, err := s.foundDocument(base, qr.Pseudonym, h, r, types)
			if err != nil {
				// The holder's fault, not the search's: said, and the
				// other documents still found.
				issues = append(issues, issue(fhir.IssueSeverityError, fhir.IssueTypeProcessing, err.Error()))
				continue
			}
			if !ds.matches(doc, types) {
				continue
			}
			id := resourceID(h.Name, r.Index)
			s.found.add(c.caller(), id, foundDocument{pseudonym: ds.patient, holder: h.Name, index: r.Index, class: r.Class, at: time.Now()})
			b.Entry = append(b.Entry, fhir.BundleEntry{FullUrl: ptr(base + fhirBase + "/DocumentReference/" + id), Resource: marshal(doc),
				Search: &fhir.BundleEntrySearch{Mode: ptr(fhir.SearchEntryModeMatch)}})
			total++
		}
	}
	b.Total = ptr(total)
	b.Entry = append(b.Entry, fhir.BundleEntry{FullUrl: ptr(newUUID()), Resource: marshal(fhir.OperationOutcome{Issue: issues}),
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
			return fhir.DocumentReference{}, fmt.Errorf("%s's record %d does not open: %v", h.Name, r.Index, err)
		}
	}
	id := resourceID(h.Name, r.Index)
	att := fhir.Attachment{ContentType: ptr(hdr.ContentType), Url: ptr(base + fhirBase + "/Binary/" + id)}
	if hdr.Language != "" {
		att.Language = ptr(hdr.Language)
	}
	if r.Erased {
		att.Title = ptr(noPayload) // its url answers 410 Gone
	} else {
		att.Size = ptr(len(data))
		sum := sha1.Sum(data) // FHIR's Attachment.hash is SHA-1
		att.Hash = ptr(base64.StdEncoding.EncodeToString(sum[:]))
	}
	d := docRef(h.Name, r.Index, r.Kind, pseudonym, r.Class, r.Occurred, r.Location, r.Author, r.AuthorKind, r.Replaces, att)
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
	if hdr.MasterID != "" {
		d.MasterIdentifier = &fhir.Identifier{System: ptr(uriSystem), Value: ptr(hdr.MasterID)}
		return
	}
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
func (s *Server) readable(ctx context.Context, c *call, id string) (foundDocument, error) {
	if idx, ok := s.localIndex(id); ok && idx > 0 {
		m, err := s.node.RecordAt(ctx, idx)
		if err != nil {
			return foundDocument{}, err
		}
		return foundDocument{pseudonym: m.Pseudonym, holder: s.node.Name(), index: idx, class: m.Record.DataClass}, nil
	}
	if d, ok := s.found.get(c.caller(), id); ok {
		return d, nil
	}
	return foundDocument{}, errStatus{http.StatusNotFound, errors.New("no such document here: a document of another centre is read here after a search of yours at this centre found it (ITI-67), for an hour")}
}

// readOne reads one document through the query, from its holder alone,
// for the caller's purpose: decided by consent and audited there.
func (s *Server) readOne(ctx context.Context, c *call, d foundDocument) (QueryHolder, QueryRecord, error) {
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
	return oneReleased(c, QueryResultOf(res), d.index)
}

// readDocument is a DocumentReference by its id.
func (s *Server) readDocument(ctx context.Context, c *call) (any, error) {
	d, err := s.readable(ctx, c, c.r.PathValue("id"))
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
	d, err := s.readable(ctx, c, c.r.PathValue("id"))
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
		return nil, errStatus{http.StatusBadGateway, fmt.Errorf("%s's record %d does not open: %v", d.holder, d.index, err)}
	}
	if wantsFHIR(c.r) {
		return resource{marshal(fhir.Binary{Id: ptr(resourceID(d.holder, d.index)), ContentType: hdr.ContentType,
			Data: ptr(base64.StdEncoding.EncodeToString(data))})}, nil
	}
	// The bytes are what an EHR sent: never run as this origin's page
	// (the patient portal's), whatever their type says.
	c.w.Header().Set("Content-Type", hdr.ContentType)
	c.w.Header().Set("X-Content-Type-Options", "nosniff")
	c.w.Header().Set("Content-Security-Policy", "sandbox")
	c.w.Header().Set("Content-Disposition", "attachment")
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
