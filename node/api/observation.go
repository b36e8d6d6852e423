package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/medfed/medfed/federation/device"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// A device's readings are FHIR R4 Observations of a few shapes: a
// vital sign or a point-of-care test, coded in LOINC, valued in UCUM,
// dated to the second with its zone. The API reads each as it comes (the
// payload is stored as the device wrote it) and says which data class
// its code is recorded as; the FHIR interface serves them back as
// Observations whose device is the one that wrote them.

const (
	ucumSystem        = "http://unitsofmeasure.org"
	categorySystem    = "http://terminology.hl7.org/CodeSystem/observation-category"
	deviceSystem      = "urn:medfed:device" // a device's ID: derived from its key (federation/device.ID)
	bloodPressure     = "85354-9"
	maxObservationStr = 200 // a display, a text or a unit, in bytes
)

// readingCode is a LOINC code a device's reading may carry: the data
// class it is recorded as, its category, and the UCUM units its value
// may be in (none: a panel, valued by its components).
type readingCode struct {
	display  string
	class    string
	category string
	units    []string
}

// readingCodes are the codes a device may post: the vital signs of FHIR's
// vital signs profile a home device measures, and the point-of-care tests
// a patient does at home (glucose, HbA1c, INR).
var readingCodes = map[string]readingCode{
	"8867-4":  {"Heart rate", "observation", "vital-signs", []string{"/min"}},
	"9279-1":  {"Respiratory rate", "observation", "vital-signs", []string{"/min"}},
	"59408-5": {"Oxygen saturation in Arterial blood by Pulse oximetry", "observation", "vital-signs", []string{"%"}},
	"2708-6":  {"Oxygen saturation in Arterial blood", "observation", "vital-signs", []string{"%"}},
	"8310-5":  {"Body temperature", "observation", "vital-signs", []string{"Cel", "[degF]"}},
	"29463-7": {"Body weight", "observation", "vital-signs", []string{"kg", "g", "[lb_av]"}},
	"8302-2":  {"Body height", "observation", "vital-signs", []string{"cm", "m", "[in_i]"}},
	"39156-5": {"Body mass index (BMI) [Ratio]", "observation", "vital-signs", []string{"kg/m2"}},
	"8480-6":  {"Systolic blood pressure", "observation", "vital-signs", []string{"mm[Hg]"}},
	"8462-4":  {"Diastolic blood pressure", "observation", "vital-signs", []string{"mm[Hg]"}},
	"85354-9": {"Blood pressure panel with all children optional", "observation", "vital-signs", nil},
	"2339-0":  {"Glucose [Mass/volume] in Blood", "observation", "vital-signs", []string{"mg/dL"}},
	"15074-8": {"Glucose [Moles/volume] in Blood", "observation", "vital-signs", []string{"mmol/L"}},
	"41653-7": {"Glucose [Mass/volume] in Capillary blood by Glucometer", "observation", "vital-signs", []string{"mg/dL"}},
	"14743-9": {"Glucose [Moles/volume] in Capillary blood by Glucometer", "observation", "vital-signs", []string{"mmol/L"}},
	"4548-4":  {"Hemoglobin A1c/Hemoglobin.total in Blood", "lab-result", "laboratory", []string{"%"}},
	"59261-8": {"Hemoglobin A1c/Hemoglobin.total in Blood by IFCC protocol", "lab-result", "laboratory", []string{"mmol/mol"}},
	"6301-6":  {"INR in Platelet poor plasma by Coagulation assay", "lab-result", "laboratory", []string{"{INR}"}},
	"34714-6": {"INR in Blood by Coagulation assay", "lab-result", "laboratory", []string{"{INR}"}},
}

// readingClasses are the data classes of readingCodes, sorted, each once.
var readingClasses = func() []string {
	var out []string
	for _, c := range readingCodes {
		if !slices.Contains(out, c.class) {
			out = append(out, c.class)
		}
	}
	slices.Sort(out)
	return out
}()

// ReadingClasses returns the data classes a device's readings are
// recorded as, sorted.
func ReadingClasses() []string { return slices.Clone(readingClasses) }

// The shapes of a device's Observation: every element a reading may
// carry, and no other (an unknown one is refused, not dropped).
type obsCoding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

type obsConcept struct {
	Coding []obsCoding `json:"coding"`
	Text   string      `json:"text,omitempty"`
}

type obsQuantity struct {
	Value      json.RawMessage `json:"value"` // a JSON number, never a string`
	Comparator string          `json:"comparator,omitempty"`
	Unit       string          `json:"unit,omitempty"`
	System     string          `json:"system"`
	Code       string          `json:"code"`
}

type obsComponent struct {
	Code          obsConcept   `json:"code"`
	ValueQuantity *obsQuantity `json:"valueQuantity"`
}

type obsReference struct {
	Reference string `json:"reference"`
}

type deviceObservation struct {
	ResourceType      string         `json:"resourceType"`
	Status            string         `json:"status"`
	Category          []obsConcept   `json:"category,omitempty"`
	Code              obsConcept     `json:"code"`
	Subject           *obsReference  `json:"subject,omitempty"`
	EffectiveDateTime string         `json:"effectiveDateTime"`
	ValueQuantity     *obsQuantity   `json:"valueQuantity,omitempty"`
	Component         []obsComponent `json:"component,omitempty"`
	ValueString       string         `json:"valueString,omitempty"` // a patient's note's text
}

// observation is a reading read: the Observation, and what the centre
// records of it.
type observation struct {
	deviceObservation
	code      string // its LOINC code
	class     string
	effective time.Time
}

var (
	observationStatuses = []string{"preliminary", "final", "amended", "corrected"}
	comparators         = []string{"<", "<=", ">=", ">"}
	// FHIR's dateTime, to the second at least, with its zone.
	dateTimeRE = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$`)
)

// readObservation reads b as an Observation a device may post: one JSON
// object of the elements above, a known LOINC code and the value (or, for
// the blood pressure panel, the components) its code takes.
func readObservation(b []byte) (observation, error) {
	o, err := decodeObservation(b)
	if err != nil {
		return o, err
	}
	rc, ok := readingCodes[o.code]
	if !ok {
		return o, fmt.Errorf("LOINC %s is not a code a device's reading may carry here", o.code)
	}
	o.class = rc.class
	if o.ValueString != "" {
		return o, errors.New("a device's reading has no valueString")
	}
	if rc.units == nil { // the blood pressure panel
		if o.ValueQuantity != nil || len(o.Component) != 2 {
			return o, errors.New("a blood pressure panel has no value of its own, and two components: systolic (8480-6) and diastolic (8462-4)")
		}
		var seen []string
		for _, c := range o.Component {
			if err := c.Code.check("component code", loincSystem); err != nil {
				return o, err
			}
			cc := loincOf(c.Code)
			if (cc != "8480-6" && cc != "8462-4") || slices.Contains(seen, cc) || c.ValueQuantity == nil {
				return o, errors.New("a blood pressure panel's components are systolic (8480-6) and diastolic (8462-4), each once, each with its value")
			}
			seen = append(seen, cc)
			if err := c.ValueQuantity.check(readingCodes[cc].units); err != nil {
				return o, err
			}
		}
		return o, nil
	}
	if len(o.Component) > 0 || o.ValueQuantity == nil {
		return o, fmt.Errorf("LOINC %s takes a valueQuantity and no component", o.code)
	}
	return o, o.ValueQuantity.check(rc.units)
}

// decodeObservation reads b as one JSON object of the elements above,
// with a status, a dateTime and a LOINC code, leaving the value to the
// caller.
func decodeObservation(b []byte) (observation, error) {
	var o observation
	if !utf8.Valid(b) {
		return o, errors.New("not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&o.deviceObservation); err != nil {
		return o, fmt.Errorf("not an Observation a device posts (resourceType, status, category, code, subject, effectiveDateTime, valueQuantity, component; no other element): %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return o, errors.New("more than one JSON value")
	}
	switch {
	case o.ResourceType != "Observation":
		return o, errors.New("resourceType is not Observation")
	case !slices.Contains(observationStatuses, o.Status):
		return o, fmt.Errorf("status is not one of %s", strings.Join(observationStatuses, ", "))
	case !dateTimeRE.MatchString(o.EffectiveDateTime):
		return o, errors.New("effectiveDateTime is not a FHIR dateTime to the second with its zone (2026-06-01T08:30:00Z)")
	}
	var err error
	if o.effective, err = time.Parse(time.RFC3339Nano, o.EffectiveDateTime); err != nil {
		return o, fmt.Errorf("effectiveDateTime: %v", err)
	}
	for _, c := range o.Category {
		if err := c.check("category", ""); err != nil {
			return o, err
		}
	}
	if err := o.Code.check("code", loincSystem); err != nil {
		return o, err
	}
	o.code = loincOf(o.Code)
	return o, nil
}

// A patient's own note (federation/device.Note) is an Observation too:
// LOINC 51855-5, Patient Note, its text the value (valueString), recorded
// as an observation. The portal writes it (NoteObservation); the centre
// reads it again as it reads a device's reading (ReadNote), and the FHIR
// interface serves it with the patient as its performer.
const (
	noteCode    = "51855-5"
	noteDisplay = "Patient Note"
	noteClass   = "observation"
	// MaxNoteText bounds a note's text, in bytes (UTF-8): written as an
	// Observation, even with every character escaped, it stays within
	// device.MaxReading.
	MaxNoteText = 2000
)

// NoteObservation returns the Observation that records text, a note
// patient p wrote at time at.
func NoteObservation(p ledger.Pseudonym, text string, at time.Time) ([]byte, error) {
	o := deviceObservation{ResourceType: "Observation", Status: "final",
		Code:    obsConcept{Coding: []obsCoding{{System: loincSystem, Code: noteCode, Display: noteDisplay}}},
		Subject: &obsReference{Reference: "Patient/" + p.String()}, EffectiveDateTime: at.UTC().Format(time.RFC3339), ValueString: text}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<" as itself, not 6 bytes: a note's text counts as typed
	if err := enc.Encode(o); err != nil {
		return nil, err
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if _, err := ReadNote(p, b); err != nil {
		return nil, err
	}
	if len(b) > device.MaxReading {
		return nil, fmt.Errorf("%w: the note is too long once written as an Observation: make it shorter", errBadRequest)
	}
	return b, nil
}

// ReadNote reads b as the Observation of a note patient p wrote, and
// returns what the centre records of it.
func ReadNote(p ledger.Pseudonym, b []byte) (device.Reading, error) {
	o, err := readNote(b)
	if err == nil {
		err = o.about(p)
	}
	if err != nil {
		return device.Reading{}, fmt.Errorf("%w: the note: %v", errBadRequest, err)
	}
	return device.Reading{Class: o.class, Occurred: o.effective}, nil
}

func readNote(b []byte) (observation, error) {
	o, err := decodeObservation(b)
	switch {
	case err != nil:
		return o, err
	case o.code != noteCode:
		return o, fmt.Errorf("a note is coded LOINC %s (%s), not %s", noteCode, noteDisplay, o.code)
	case o.ValueQuantity != nil || len(o.Component) > 0 || len(o.Category) > 0:
		return o, errors.New("a note has its text (valueString), and no valueQuantity, component or category")
	case !fhirString(o.ValueString, MaxNoteText):
		return o, fmt.Errorf("a note's text (valueString) is 1 to %d bytes of text", MaxNoteText)
	}
	o.class = noteClass
	return o, nil
}

// about checks that the Observation is about patient p, when it says.
func (o observation) about(p ledger.Pseudonym) error {
	if o.Subject != nil && o.Subject.Reference != "Patient/"+p.String() {
		return errors.New("its subject is not the batch's patient (Patient/<pseudonym>)")
	}
	return nil
}

// check checks a concept: each coding with a system and a code (the
// first in system when one is given, which must be there once), and
// short texts.
func (c obsConcept) check(what, system string) error {
	if len(c.Coding) == 0 || len(c.Coding) > 8 {
		return fmt.Errorf("%s: 1 to 8 codings", what)
	}
	n := 0
	for _, cd := range c.Coding {
		if !fhirString(cd.System, 256) || !fhirString(cd.Code, 64) || strings.ContainsAny(cd.Code, " \t\r\n") || (cd.Display != "" && !fhirString(cd.Display, maxObservationStr)) {
			return fmt.Errorf("%s: a coding without a system and a code, or with a display that is not a short text", what)
		}
		if cd.System == system {
			n++
		}
	}
	if system != "" && n != 1 {
		return fmt.Errorf("%s: one coding of %s", what, system)
	}
	if c.Text != "" && !fhirString(c.Text, maxObservationStr) {
		return fmt.Errorf("%s: a text that is not a short text", what)
	}
	return nil
}

func loincOf(c obsConcept) string {
	for _, cd := range c.Coding {
		if cd.System == loincSystem {
			return cd.Code
		}
	}
	return ""
}

// check checks a quantity: a finite number in one of units (UCUM).
func (q obsQuantity) check(units []string) error {
	v, err := strconv.ParseFloat(string(q.Value), 64)
	switch {
	case len(q.Value) == 0 || (q.Value[0] != '-' && (q.Value[0] < '0' || q.Value[0] > '9')) || err != nil || math.IsInf(v, 0) || math.IsNaN(v):
		return errors.New("a valueQuantity without a finite value")
	case q.System != ucumSystem || !slices.Contains(units, q.Code):
		return fmt.Errorf("a valueQuantity in UCUM (%s) of %s", ucumSystem, strings.Join(units, ", "))
	case q.Comparator != "" && !slices.Contains(comparators, q.Comparator):
		return errors.New("a comparator that is not <, <=, >= or >")
	case q.Unit != "" && !fhirString(q.Unit, 64):
		return errors.New("a unit that is not a short text")
	}
	return nil
}

// fhirString reports whether s is a FHIR string of at most max bytes:
// something but white space, and no control character but white space.
func fhirString(s string, max int) bool {
	if len(s) > max || strings.TrimSpace(s) == "" || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' })
}

// The Observation the FHIR interface serves: the reading as the device
// posted it, with its id and ledger entry, the patient, and the device
// that wrote it (a contained Device named by its ID, never a name or a
// serial number).
type observationResource struct {
	ResourceType      string            `json:"resourceType"`
	ID                string            `json:"id"`
	Contained         []deviceResource  `json:"contained,omitempty"`
	Identifier        []fhir.Identifier `json:"identifier"`
	Status            string            `json:"status"`
	Category          []obsConcept      `json:"category,omitempty"`
	Code              obsConcept        `json:"code"`
	Subject           *fhir.Reference   `json:"subject"`
	EffectiveDateTime string            `json:"effectiveDateTime"`
	Performer         []fhir.Reference  `json:"performer,omitempty"` // a note's: the patient
	ValueQuantity     *obsQuantity      `json:"valueQuantity,omitempty"`
	ValueString       string            `json:"valueString,omitempty"`
	Component         []obsComponent    `json:"component,omitempty"`
	Device            *fhir.Reference   `json:"device,omitempty"` // a reading's: the device
}

type deviceResource struct {
	ResourceType string            `json:"resourceType"`
	ID           string            `json:"id"`
	Identifier   []fhir.Identifier `json:"identifier"`
}

// observationOf is the reading at index of holder's ledger, about
// patient p, written by device, as the FHIR interface serves it.
func observationOf(holder string, index int64, p ledger.Pseudonym, device string, o observation) json.RawMessage {
	category := o.Category
	if len(category) == 0 {
		rc := readingCodes[o.code]
		category = []obsConcept{{Coding: []obsCoding{{System: categorySystem, Code: rc.category}}}}
	}
	r := observationBase(holder, index, p, o)
	r.Category = category
	r.Contained = []deviceResource{{ResourceType: "Device", ID: "device", Identifier: []fhir.Identifier{{System: ptr(deviceSystem), Value: ptr(device)}}}}
	r.Device = &fhir.Reference{Reference: ptr("#device"), Type: ptr("Device")}
	return rawJSON(r)
}

// noteObservationOf is the patient's note at index of holder's ledger, as
// the FHIR interface serves it: the patient its performer.
func noteObservationOf(holder string, index int64, p ledger.Pseudonym, o observation) json.RawMessage {
	r := observationBase(holder, index, p, o)
	r.Performer = []fhir.Reference{*patientRef(p.String())}
	r.ValueString = o.ValueString
	return rawJSON(r)
}

func observationBase(holder string, index int64, p ledger.Pseudonym, o observation) observationResource {
	return observationResource{
		ResourceType: "Observation", ID: resourceID(holder, index),
		Identifier: []fhir.Identifier{{System: ptr(ledgerSystem(holder)), Value: ptr(strconv.FormatInt(index, 10))}},
		Status:     o.Status, Code: o.Code, Subject: patientRef(p.String()),
		EffectiveDateTime: o.EffectiveDateTime, ValueQuantity: o.ValueQuantity, Component: o.Component,
	}
}

func (s *Server) observationRoutes() []route {
	fhirParam := func(name, about string) param { return param{name, "query", about} }
	return []route{
		{method: "GET", pattern: fhirBase + "/Observation", auth: authSystem, roles: []string{"clinician", "researcher"},
			summary: "The readings the patient's devices contributed, and the notes the patient added, across the federation: the federated query for their classes, for the token's purpose of use",
			params:  []param{fhirParam("patient", "the patient's pseudonym"), fhirParam("code", "LOINC codes, as code or http://loinc.org|code, separated by commas")},
			handle:  s.scoped("Observation", 's', s.findObservations)},
	}
}

// findObservations runs the federated query for the classes readings
// are recorded as, and answers the records devices wrote as
// Observations. Records of those classes that staff wrote are released
// too (the query is by class) but are DocumentReferences, not here.
func (s *Server) findObservations(ctx context.Context, c *call) (any, error) {
	q, p, err := c.patientSearch()
	if err != nil {
		return nil, err
	}
	var codes []string
	if v, err := one(q, "code"); err != nil {
		return nil, err
	} else if v != "" {
		for _, t := range strings.Split(v, ",") {
			system, code, ok := strings.Cut(t, "|")
			if !ok {
				code, system = system, loincSystem
			}
			if system != loincSystem {
				return nil, fmt.Errorf("%w: code: LOINC codes (http://loinc.org|code) only", errBadRequest)
			}
			codes = append(codes, code)
		}
	}
	asker, err := ParseAsker(c.staff.Role, c.staff.ID, c.purpose(), "")
	if err != nil {
		return nil, err
	}
	res, err := s.node.QueryRecords(ctx, centre.QueryRequest{Pseudonym: p, Asker: asker, Classes: ReadingClasses()})
	if err != nil {
		return nil, err
	}
	shape := QueryResultOf(res)
	issues := holderIssues(shape)
	base := baseURL(c.r)
	b := fhir.Bundle{Type: fhir.BundleTypeSearchset, Timestamp: instant(time.Now()), Link: selfLink(c)}
	erased := 0
	for _, h := range res.Holders {
		for _, r := range h.Records {
			var read func([]byte) (observation, error)
			switch r.Record.AuthorKind {
			case ledger.AuthorDevice:
				read = readObservation
			case ledger.AuthorPatient:
				read = readNote
			default:
				continue
			}
			if r.Erased {
				erased++
				continue
			}
			o, err := read(r.Payload)
			if err != nil { // a device's reading, a patient's note, was read so when it came
				issues = append(issues, issue(fhir.IssueSeverityWarning, fhir.IssueTypeProcessing, fmt.Sprintf("%s: record %d is a %s's, but not its Observation", h.Name, r.Index, r.Record.AuthorKind)))
				continue
			}
			if len(codes) > 0 && !slices.Contains(codes, o.code) {
				continue
			}
			id := resourceID(h.Name, r.Index)
			res := observationOf(h.Name, r.Index, p, r.Record.Author.String(), o)
			if r.Record.AuthorKind == ledger.AuthorPatient {
				res = noteObservationOf(h.Name, r.Index, p, o)
			}
			b.Entry = append(b.Entry, fhir.BundleEntry{FullUrl: ptr(base + fhirBase + "/Observation/" + id),
				Resource: res, Search: &fhir.BundleEntrySearch{Mode: ptr(fhir.SearchEntryModeMatch)}})
		}
	}
	b.Total = ptr(len(b.Entry))
	if erased > 0 {
		issues = append(issues, issue(fhir.IssueSeverityInformation, fhir.IssueTypeInformational, fmt.Sprintf("%d reading(s) erased at the patient's request", erased)))
	}
	b.Entry = append(b.Entry, fhir.BundleEntry{FullUrl: ptr(newUUID()), Resource: marshal(fhir.OperationOutcome{Issue: issues}),
		Search: &fhir.BundleEntrySearch{Mode: ptr(fhir.SearchEntryModeOutcome)}})
	return resource{marshal(b)}, nil
}
