package api_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/ledger"
)

// A device posts Observations of a few shapes: each is read for its data
// class and when it was taken; anything else is refused, by its place in
// the batch.
func TestReadObservations(t *testing.T) {
	p := ledger.Pseudonym{0xab}
	subject := `"subject": {"reference": "Patient/` + p.String() + `"}, `
	glucose := `{"resourceType": "Observation", "status": "final", ` + subject +
		`"category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}], ` +
		`"code": {"coding": [{"system": "http://loinc.org", "code": "41653-7", "display": "Glucose [Mass/volume] in Capillary blood by Glucometer"}]}, ` +
		`"effectiveDateTime": "2026-06-01T08:30:00+01:00", "valueQuantity": {"value": 104, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}}`
	bp := `{"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]}, ` +
		`"effectiveDateTime": "2026-06-01T07:30:00Z", "component": [` +
		`{"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 128, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}, ` +
		`{"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 82, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}]}`
	hba1c := `{"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "59261-8"}]}, ` +
		`"effectiveDateTime": "2026-06-01T07:30:00.5Z", "valueQuantity": {"value": 48, "system": "http://unitsofmeasure.org", "code": "mmol/mol"}}`
	got, err := api.ReadObservations(p, [][]byte{[]byte(glucose), []byte(bp), []byte(hba1c)})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		class string
		at    time.Time
	}{
		{"observation", time.Date(2026, 6, 1, 7, 30, 0, 0, time.UTC)},
		{"observation", time.Date(2026, 6, 1, 7, 30, 0, 0, time.UTC)},
		{"lab-result", time.Date(2026, 6, 1, 7, 30, 0, 5e8, time.UTC)},
	}
	for i, w := range want {
		if got[i].Class != w.class || !got[i].Occurred.Equal(w.at) {
			t.Errorf("reading %d: %s at %v, want %s at %v", i+1, got[i].Class, got[i].Occurred, w.class, w.at)
		}
	}

	bad := []struct{ name, json string }{
		{"not JSON", `{"resourceType": "Observation",`},
		{"two values", glucose + ` {}`},
		{"another resource", strings.Replace(glucose, `"Observation"`, `"Patient"`, 1)},
		{"an element a reading does not carry", strings.Replace(glucose, `"status"`, `"note": [{"text": "Jane Smith's meter"}], "status"`, 1)},
		{"a device element", strings.Replace(glucose, `"status"`, `"device": {"display": "Accu-Chek SN 123"}, "status"`, 1)},
		{"a status a reading has not", strings.Replace(glucose, `"final"`, `"entered-in-error"`, 1)},
		{"a date without a time", strings.Replace(glucose, `2026-06-01T08:30:00+01:00`, `2026-06-01`, 1)},
		{"a time without a zone", strings.Replace(glucose, `2026-06-01T08:30:00+01:00`, `2026-06-01T08:30:00`, 1)},
		{"a code not LOINC", strings.Replace(glucose, `http://loinc.org`, `http://snomed.info/sct`, 1)},
		{"a LOINC code no device posts", strings.Replace(glucose, `41653-7`, `2160-0`, 1)},
		{"a unit the code does not take", strings.Replace(glucose, `"code": "mg/dL"`, `"code": "mmol/L"`, 1)},
		{"a unit not UCUM", strings.Replace(glucose, `http://unitsofmeasure.org`, `http://example.org/units`, 1)},
		{"no value", strings.Replace(glucose, `"value": 104, `, ``, 1)},
		{"a value that is not a number", strings.Replace(glucose, `104`, `"104"`, 1)},
		{"a panel with a value", strings.Replace(bp, `"component"`, `"valueQuantity": {"value": 1, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}, "component"`, 1)},
		{"a panel missing a component", strings.Replace(bp, `, {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 82, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}`, ``, 1)},
		{"a panel with a component twice", strings.Replace(bp, `8462-4`, `8480-6`, 1)},
		{"another patient", strings.Replace(glucose, p.String(), ledger.Pseudonym{0xcd}.String(), 1)},
		{"an empty display", strings.Replace(glucose, `"display": "Glucose [Mass/volume] in Capillary blood by Glucometer"`, `"display": " "`, 1)},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := api.ReadObservations(p, [][]byte{[]byte(glucose), []byte(tc.json)})
			if !errors.Is(err, node.ErrInvalid) || !strings.Contains(err.Error(), "reading 2 of 2") {
				t.Fatalf("ReadObservations: %v", err)
			}
		})
	}
}

// A patient's note is the Observation the portal writes: read back for
// its class and time; a note of another shape, about another patient or
// past its length is refused, and a device may not post one.
func TestReadNote(t *testing.T) {
	p := ledger.Pseudonym{0xab}
	at := time.Date(2026, 6, 1, 8, 30, 0, 0, time.UTC)
	b, err := api.NoteObservation(p, "Dizzy since the new tablets.\nWorse in the morning.", at)
	if err != nil {
		t.Fatal(err)
	}
	got, err := api.ReadNote(p, b)
	if err != nil || got.Class != "observation" || !got.Occurred.Equal(at) {
		t.Fatalf("the note read as %+v, %v", got, err)
	}
	if _, err := api.ReadObservations(p, [][]byte{b}); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("a note posted as a device's reading: %v", err)
	}
	note := func(s string) []byte {
		return []byte(`{"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "51855-5"}]}, "effectiveDateTime": "2026-06-01T07:30:00Z"` + s + `}`)
	}
	if _, err := api.ReadNote(p, note(`, "valueString": "fine"`)); err != nil {
		t.Fatalf("a note without a subject: %v", err)
	}
	for name, b := range map[string][]byte{
		"no text":             note(``),
		"blank text":          note(`, "valueString": " \n "`),
		"a control character": note(`, "valueString": "a\u0007b"`),
		"a quantity too":      note(`, "valueString": "x", "valueQuantity": {"value": 1, "system": "http://unitsofmeasure.org", "code": "%"}`),
		"another patient":     note(`, "valueString": "x", "subject": {"reference": "Patient/` + ledger.Pseudonym{0xcd}.String() + `"}`),
		"an unknown element":  note(`, "valueString": "x", "note": []`),
		"a heart rate":        []byte(`{"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}, "effectiveDateTime": "2026-06-01T07:30:00Z", "valueString": "x"}`),
	} {
		if _, err := api.ReadNote(p, b); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := api.NoteObservation(p, strings.Repeat(`<"\`, api.MaxNoteText/3), at); err != nil {
		t.Fatalf("a note of characters JSON escapes: %v", err)
	}
	if _, err := api.NoteObservation(p, strings.Repeat("a", api.MaxNoteText+1), at); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("a note past its length: %v", err)
	}
}
