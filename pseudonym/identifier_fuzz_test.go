package pseudonym_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/medfed/medfed/pseudonym"
)

// errorText is every error message Rules.Parse gives for a set of probes
// that reach each of its refusals. A fuzzed value found in it is a phrase of
// a message ("digits only"), not a leak.
func errorText(t testing.TB, r *pseudonym.Rules) string {
	t.Helper()
	values := []string{
		"", strings.Repeat("0", 257), "\x01", "\x7f", "\xc3\xa9", " ", "-", " -",
		"0", "00", "A", "a", "!", "x!", "0000000000", "0000000060", "9434765918",
		"79927398710", "5493001KJTIIGC8Y1R13", "AB123456", "ab 12345",
	}
	var inputs []string
	for _, s := range r.Systems() {
		for _, v := range values {
			inputs = append(inputs, s.Name+"|"+v, s.URI+"|"+v)
		}
	}
	inputs = append(inputs, "", "x", "|x", "foo|x", "9x|x", "urn:x|1")
	var text strings.Builder
	for _, in := range inputs {
		if _, err := r.Parse(in); err != nil {
			text.WriteString(err.Error())
			text.WriteByte('\n')
		}
	}
	return text.String()
}

func FuzzParse(f *testing.F) {
	r := testRules(f)
	known := errorText(f, r)
	uris := map[string]bool{}
	for _, s := range r.Systems() {
		uris[s.URI] = true
	}
	for _, seed := range []string{
		"nhs|943 476 5919",
		"https://fhir.nhs.uk/Id/nhs-number|9434765919",
		"nhs|9434765918",
		"nhs|0000000060",
		"nhs|94347G5919",
		"mrn-x|ab 123456",
		"mrn-x|AB|123456",
		"card|7992-7398-713",
		"lei|5493 001K JTII GC8Y 1R12",
		"ref97|west12345698765432GB82",
		"unknown|9434765919",
		"9434765919",
		"|",
		"nhs|943\t476\u00a05919",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := r.Parse(s)
		if err == nil {
			if !uris[id.System] {
				t.Fatalf("Parse(%q) gave system %q, not a configured URI", s, id.System)
			}
			if string(id.Input()) != id.System+"|"+id.Value {
				t.Fatalf("Input() = %q", id.Input())
			}
			again, err := r.Parse(id.System + "|" + id.Value)
			if err != nil || again != id {
				t.Fatalf("Parse(%q) = %q|%q, but its canonical form parses to %q|%q, %v", s, id.System, id.Value, again.System, again.Value, err)
			}
			return
		}
		if !errors.Is(err, pseudonym.ErrInvalidIdentifier) {
			t.Fatalf("Parse(%q) = %v, not an ErrInvalidIdentifier", s, err)
		}
		system, value, ok := strings.Cut(s, "|")
		if !ok { // the whole input may be the value
			system, value = "", s
		}
		if len(value) >= 4 && strings.Contains(err.Error(), value) &&
			!strings.Contains(system, value) && !strings.Contains(known, value) {
			t.Fatalf("Parse(%q): error %q shows the value", s, err)
		}
	})
}
