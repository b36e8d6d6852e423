package pseudonym_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/medfed/medfed/pseudonym"
)

// The custom systems the tests configure besides the NHS number.
var (
	mrnX = pseudonym.System{
		Name:    "mrn-x",
		URI:     "https://hospital.example/Id/mrn-x",
		Strip:   " ",
		Case:    "upper",
		Pattern: `[A-Z]{2}[0-9]{6}`,
	}
	card = pseudonym.System{
		Name:    "card",
		URI:     "urn:example:card",
		Strip:   " -",
		Pattern: `[0-9]{2,19}`,
		Check:   "luhn",
	}
	lei = pseudonym.System{
		Name:    "lei",
		URI:     "https://example.org/Id/lei",
		Strip:   " ",
		Case:    "upper",
		Pattern: `[0-9A-Z]{18}[0-9]{2}`,
		Check:   "iso7064-mod97-10",
	}
	// ref97 keeps the case given, so a lower-case letter fails its check rule.
	ref97 = pseudonym.System{
		Name:    "ref97",
		URI:     "urn:example:ref97",
		Pattern: `[0-9A-Za-z]{3,34}`,
		Check:   "iso7064-mod97-10",
	}
)

func testRules(t testing.TB) *pseudonym.Rules {
	t.Helper()
	r, err := pseudonym.NewRules([]pseudonym.System{mrnX, card, lei, ref97})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The check-digit algorithms again, written independently of the package's,
// so that a test number is known valid rather than trusted.

// nhsCheckDigit returns the check digit of an NHS number's first nine
// digits; 10 means no valid number starts with them.
func nhsCheckDigit(first9 string) int {
	weights := []int{10, 9, 8, 7, 6, 5, 4, 3, 2}
	sum := 0
	for i, w := range weights {
		sum += int(first9[i]-'0') * w
	}
	return (11 - sum%11) % 11
}

func nhsValid(number string) bool {
	return len(number) == 10 && nhsCheckDigit(number[:9]) == int(number[9]-'0')
}

// luhnValid doubles every second digit from the left when the length is
// even, from the second when it is odd: the same digits as from the right.
func luhnValid(number string) bool {
	sum := 0
	for i, c := range number {
		d := int(c - '0')
		if (len(number)-i)%2 == 0 {
			d = [10]int{0, 2, 4, 6, 8, 1, 3, 5, 7, 9}[d]
		}
		sum += d
	}
	return sum%10 == 0
}

func mod97Valid(s string) bool {
	var digits strings.Builder
	for _, c := range s {
		if c >= 'A' && c <= 'Z' {
			fmt.Fprintf(&digits, "%d", c-'A'+10)
		} else {
			digits.WriteRune(c)
		}
	}
	n, ok := new(big.Int).SetString(digits.String(), 10)
	return ok && new(big.Int).Mod(n, big.NewInt(97)).Int64() == 1
}

func TestCheckDigitFixtures(t *testing.T) {
	tests := []struct {
		name  string
		valid func(string) bool
		value string
		want  bool
	}{
		{name: "nhs 9434765919", valid: nhsValid, value: "9434765919", want: true},
		{name: "nhs 4010232137", valid: nhsValid, value: "4010232137", want: true},
		{name: "nhs 2000000010 (11 read as 0)", valid: nhsValid, value: "2000000010", want: true},
		{name: "nhs 9434765918", valid: nhsValid, value: "9434765918", want: false},
		{name: "luhn 79927398713", valid: luhnValid, value: "79927398713", want: true},
		{name: "luhn 4111111111111111", valid: luhnValid, value: "4111111111111111", want: true},
		{name: "luhn 79927398710", valid: luhnValid, value: "79927398710", want: false},
		{name: "mod97 LEI 5493001KJTIIGC8Y1R12", valid: mod97Valid, value: "5493001KJTIIGC8Y1R12", want: true},
		{name: "mod97 LEI 7LTWFZYICNSX8D621K86", valid: mod97Valid, value: "7LTWFZYICNSX8D621K86", want: true},
		{name: "mod97 IBAN GB82 WEST rearranged", valid: mod97Valid, value: "WEST12345698765432GB82", want: true},
		{name: "mod97 LEI last digit changed", valid: mod97Valid, value: "5493001KJTIIGC8Y1R13", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.valid(tt.value); got != tt.want {
				t.Fatalf("valid(%s) = %v, want %v: fix the fixture", tt.value, got, tt.want)
			}
		})
	}
	if nhsCheckDigit("000000006") != 10 {
		t.Fatal("000000006 must need check digit 10")
	}
}

func TestParseNHS(t *testing.T) {
	tests := []struct {
		name   string
		number string
		want   string // the canonical value; "" for an error
		reason string // in the error
	}{
		{name: "plain", number: "9434765919", want: "9434765919"},
		{name: "spaces", number: "943 476 5919", want: "9434765919"},
		{name: "dashes", number: "401-023-2137", want: "4010232137"},
		{name: "spaces and dashes anywhere", number: " 40 - 10232 137- ", want: "4010232137"},
		{name: "check 11 is 0", number: "2000000010", want: "2000000010"},
		{name: "wrong check digit", number: "943 476 5918", reason: "NHS number: check digit does not match"},
		{name: "check digit would be 10", number: "0000000060", reason: "check digit would be 10"},
		{name: "too short", number: "943 476 591", reason: "want 10 digits, got 9"},
		{name: "too long", number: "94347659190", reason: "want 10 digits, got 11"},
		{name: "letters", number: "943 476 591A", reason: "want digits only"},
		{name: "lower-case letters", number: "9434765g19", reason: "want digits only"},
		{name: "dots are not stripped", number: "943.476.5919", reason: "want digits only"},
		{name: "tab", number: "943\t476\t5919", reason: "control character"},
		{name: "non-ASCII digits", number: "９４３４７６５９１９", reason: "non-ASCII"},
		{name: "non-breaking space", number: "943\u00a04765919", reason: "non-ASCII"},
		{name: "empty", number: "", reason: "NHS number: empty"},
		{name: "only separators", number: " - ", reason: "empty once"},
		{name: "over 256 bytes before stripping", number: "9434765919" + strings.Repeat(" ", 247), reason: "longer than 256 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := pseudonym.ParseNHS(tt.number)
			if tt.want == "" {
				if !errors.Is(err, pseudonym.ErrInvalidIdentifier) || !strings.Contains(err.Error(), tt.reason) {
					t.Fatalf("ParseNHS = %v, want ErrInvalidIdentifier with %q", err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !nhsValid(id.Value) {
				t.Errorf("accepted %s, which the reference algorithm refuses", id.Value)
			}
			if id.System != pseudonym.NHS.URI || id.Value != tt.want {
				t.Errorf("ParseNHS = %q|%q, want %q|%q", id.System, id.Value, pseudonym.NHS.URI, tt.want)
			}
		})
	}
	if _, err := pseudonym.ParseNHS("9434765919" + strings.Repeat(" ", 246)); err != nil {
		t.Errorf("256 bytes refused: %v", err)
	}
}

// For a spread of first nine digits, the package and the reference agree on
// the one check digit, or on there being none.
func TestNHSCheckDigitAgreesWithReference(t *testing.T) {
	for n := 0; n < 1_000_000_000; n += 99_991 {
		first9 := fmt.Sprintf("%09d", n)
		want := nhsCheckDigit(first9)
		for d := range 10 {
			_, err := pseudonym.ParseNHS(first9 + string(rune('0'+d)))
			if ok := err == nil; ok != (d == want) {
				t.Fatalf("%s%d: accepted = %v, reference check digit %d", first9, d, ok, want)
			}
		}
	}
}

func TestRulesNormalise(t *testing.T) {
	r := testRules(t)
	tests := []struct {
		name          string
		system, value string
		wantSystem    string // "" for an error
		wantValue     string
		reason        string
	}{
		{name: "nhs by name", system: "nhs", value: "943 476 5919", wantSystem: pseudonym.NHS.URI, wantValue: "9434765919"},
		{name: "nhs by URI", system: "https://fhir.nhs.uk/Id/nhs-number", value: "4010232137", wantSystem: pseudonym.NHS.URI, wantValue: "4010232137"},
		{name: "custom", system: "mrn-x", value: "ab 123456", wantSystem: mrnX.URI, wantValue: "AB123456"},
		{name: "custom by URI", system: mrnX.URI, value: "AB123456", wantSystem: mrnX.URI, wantValue: "AB123456"},
		{name: "custom pattern", system: "mrn-x", value: "ab 12345", reason: "mrn-x: does not match the system's pattern"},
		{name: "custom pattern is anchored", system: "mrn-x", value: "xab123456", reason: "does not match"},
		{name: "custom dash not stripped", system: "mrn-x", value: "ab-123456", reason: "does not match"},
		{name: "luhn", system: "card", value: "7992-7398-713", wantSystem: card.URI, wantValue: "79927398713"},
		{name: "luhn 16 digits", system: "card", value: "4111 1111 1111 1111", wantSystem: card.URI, wantValue: "4111111111111111"},
		{name: "luhn wrong", system: "card", value: "79927398710", reason: "card: check digit does not match"},
		{name: "luhn letters", system: "card", value: "7992739871X", reason: "want digits only"},
		{name: "mod97", system: "lei", value: "5493 001K JTII GC8Y 1R12", wantSystem: lei.URI, wantValue: "5493001KJTIIGC8Y1R12"},
		{name: "mod97 after case", system: "lei", value: "7ltwfzyicnsx8d621k86", wantSystem: lei.URI, wantValue: "7LTWFZYICNSX8D621K86"},
		{name: "mod97 wrong", system: "lei", value: "5493001KJTIIGC8Y1R13", reason: "lei: check digits do not match"},
		{name: "mod97 pattern", system: "lei", value: "5493001KJTIIGC8Y1R1", reason: "does not match the system's pattern"},
		{name: "mod97 IBAN order", system: "ref97", value: "WEST12345698765432GB82", wantSystem: ref97.URI, wantValue: "WEST12345698765432GB82"},
		{name: "mod97 lower case refused", system: "ref97", value: "west12345698765432GB82", reason: "want digits and upper-case letters only"},
		{name: "unknown name", system: "foo", value: "9434765919", reason: "invalid identifier: unknown system; this centre knows card, lei, mrn-x, nhs, ref97"},
		{name: "names are case-sensitive", system: "NHS", value: "9434765919", reason: "unknown system; this centre knows"},
		{name: "unknown URI", system: "https://fhir.nhs.uk/Id/nhs", value: "9434765919", reason: "unknown system; this centre knows"},
		{name: "an unknown system is not quoted", system: "ab12345", value: "mrn", reason: "unknown system; this centre knows"},
		{name: "no system", system: "", value: "9434765919", reason: "no system given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := r.Normalise(tt.system, tt.value)
			if tt.wantSystem == "" {
				if !errors.Is(err, pseudonym.ErrInvalidIdentifier) || !strings.Contains(err.Error(), tt.reason) {
					t.Fatalf("Normalise = %v, want ErrInvalidIdentifier with %q", err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id != (pseudonym.Identifier{System: tt.wantSystem, Value: tt.wantValue}) {
				t.Errorf("Normalise = %q|%q, want %q|%q", id.System, id.Value, tt.wantSystem, tt.wantValue)
			}
			again, err := r.Normalise(id.System, id.Value)
			if err != nil || again != id {
				t.Errorf("canonical value is not a fixed point: %q|%q gives %q|%q, %v", id.System, id.Value, again.System, again.Value, err)
			}
		})
	}
}

func TestRulesParse(t *testing.T) {
	r := testRules(t)
	tests := []struct {
		name   string
		in     string
		want   pseudonym.Identifier // zero for an error
		reason string
	}{
		{name: "name", in: "nhs|943 476 5919", want: pseudonym.Identifier{System: pseudonym.NHS.URI, Value: "9434765919"}},
		{name: "URI", in: "https://fhir.nhs.uk/Id/nhs-number|943-476-5919", want: pseudonym.Identifier{System: pseudonym.NHS.URI, Value: "9434765919"}},
		{name: "custom", in: "mrn-x|ab 123456", want: pseudonym.Identifier{System: mrnX.URI, Value: "AB123456"}},
		{name: "split at the first bar", in: "mrn-x|AB|123456", reason: "mrn-x: does not match"},
		{name: "no bar", in: "9434765919", reason: "want system|value"},
		{name: "empty", in: "", reason: "want system|value"},
		{name: "empty system", in: "|9434765919", reason: "no system given"},
		{name: "empty value", in: "nhs|", reason: "NHS number: empty"},
		{name: "value where the system belongs", in: "9434765919|nhs", reason: "unknown system; this centre knows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := r.Parse(tt.in)
			if tt.want == (pseudonym.Identifier{}) {
				if !errors.Is(err, pseudonym.ErrInvalidIdentifier) || !strings.Contains(err.Error(), tt.reason) {
					t.Fatalf("Parse = %v, want ErrInvalidIdentifier with %q", err, tt.reason)
				}
				return
			}
			if err != nil || id != tt.want {
				t.Fatalf("Parse = %q|%q, %v; want %q|%q", id.System, id.Value, err, tt.want.System, tt.want.Value)
			}
			if got, want := string(id.Input()), tt.want.System+"|"+tt.want.Value; got != want {
				t.Errorf("Input() = %q, want %q", got, want)
			}
		})
	}
}

// An error never carries the value: it reaches logs and HTTP responses.
func TestErrorsDoNotLeakValue(t *testing.T) {
	r := testRules(t)
	tests := []struct {
		name          string
		system, value string
		parse         string // if set, Parse this instead of Normalise
		secret        string // what must not show; value if empty
	}{
		{name: "wrong check digit", system: "nhs", value: "9434765918"},
		{name: "check digit would be 10", system: "nhs", value: "0000000060"},
		{name: "nine digits", system: "nhs", value: "943476591"},
		{name: "letter", system: "nhs", value: "94347G5919"},
		{name: "control character", system: "nhs", value: "943 476 5919\t"},
		{name: "non-ASCII", system: "nhs", value: "943476é919"},
		{name: "too long", system: "nhs", value: strings.Repeat("94", 200)},
		{name: "only separators", system: "nhs", value: "- - - - -"},
		{name: "custom pattern", system: "mrn-x", value: "ab 12345"},
		{name: "luhn", system: "card", value: "79927398710"},
		{name: "mod97", system: "lei", value: "5493001KJTIIGC8Y1R13"},
		{name: "mod97 lower case", system: "ref97", value: "gb82west1234"},
		{name: "unknown system", system: "nhs-number", value: "9434765919"},
		{name: "value for system", system: "9434765919", value: "nhs", secret: "9434765919"},
		{name: "mrn for system", system: "AB123456", value: "mrn-x", secret: "AB123456"},
		{name: "parse without bar", parse: "9434765919", secret: "9434765919"},
		{name: "parse with a space in the system", parse: "nhs 9434765919|x", secret: "9434765919"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.parse != "" {
				_, err = r.Parse(tt.parse)
			} else {
				_, err = r.Normalise(tt.system, tt.value)
			}
			if !errors.Is(err, pseudonym.ErrInvalidIdentifier) {
				t.Fatalf("err = %v, want ErrInvalidIdentifier", err)
			}
			secret := tt.secret
			if secret == "" {
				secret = tt.value
			}
			msg := err.Error()
			for i := 0; i+4 <= len(secret); i++ {
				if strings.Contains(msg, secret[i:i+4]) {
					t.Fatalf("error %q contains %q, part of the value", msg, secret[i:i+4])
				}
			}
		})
	}
}

func TestIdentifierDoesNotPrintValue(t *testing.T) {
	id, err := pseudonym.ParseNHS("943 476 5919")
	if err != nil {
		t.Fatal(err)
	}
	wrapped := struct{ Patient pseudonym.Identifier }{id}
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outputs = append(outputs, fmt.Sprintf(verb, id), fmt.Sprintf(verb, &id), fmt.Sprintf(verb, wrapped))
	}
	var log bytes.Buffer
	// Without the time, whose digits may hold part of the value (at
	// 18:12:55.9434…, "9434").
	noTime := &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}}
	logger := slog.New(slog.NewJSONHandler(&log, noTime))
	logger.Info("lookup", "patient", id, "ptr", &id)
	slog.New(slog.NewTextHandler(&log, noTime)).Info("lookup", "patient", id)
	outputs = append(outputs, log.String())

	for _, out := range outputs {
		if strings.Contains(out, "5919") || strings.Contains(out, "9434") {
			t.Errorf("output %q shows the value", out)
		}
	}
	if got, want := fmt.Sprint(id), "https://fhir.nhs.uk/Id/nhs-number identifier"; got != want {
		t.Errorf("Sprint = %q, want %q", got, want)
	}
	if !strings.Contains(log.String(), `"patient":"https://fhir.nhs.uk/Id/nhs-number identifier"`) {
		t.Errorf("log does not name the system: %s", log.String())
	}
}

func TestNewRulesValidation(t *testing.T) {
	with := func(edit func(s *pseudonym.System)) pseudonym.System {
		s := mrnX
		edit(&s)
		return s
	}
	tests := []struct {
		name    string
		systems []pseudonym.System
		fields  []string // "index.field" of every problem, in order; none means valid
		want    string   // in the first problem
	}{
		{name: "none", systems: nil},
		{name: "several", systems: []pseudonym.System{mrnX, card, lei, ref97}},
		{name: "strip of 8", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.Strip = " -./_:;," })}},
		{name: "repeated strip characters count once", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.Strip = "  --..//__::;;,," })}},
		{name: "empty system", systems: []pseudonym.System{{}}, fields: []string{"0.name", "0.uri", "0.pattern"}, want: "required"},
		{name: "bad regexp", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.Pattern = "[A-Z" })}, fields: []string{"0.pattern"}, want: "not a valid RE2 regular expression"},
		{name: "pattern escaping its anchors", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.Pattern = "A)|(B" })}, fields: []string{"0.pattern"}, want: "not a valid RE2"},
		{name: "backreference is not RE2", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.Pattern = `(A)\1` })}, fields: []string{"0.pattern"}},
		{name: "pattern too long", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.Pattern = strings.Repeat("A", 1025) })}, fields: []string{"0.pattern"}, want: "longer than 1024"},
		{name: "duplicate name", systems: []pseudonym.System{mrnX, with(func(s *pseudonym.System) { s.URI = "urn:example:other" })}, fields: []string{"1.name"}, want: `"mrn-x" is already the name of identifier system 0`},
		{name: "duplicate URI", systems: []pseudonym.System{mrnX, with(func(s *pseudonym.System) { s.Name = "mrn-y" })}, fields: []string{"1.uri"}, want: "already the URI of identifier system 0"},
		{name: "nhs name", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.Name = "nhs" })}, fields: []string{"0.name"}, want: "built-in NHS"},
		{name: "nhs URI", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.URI = pseudonym.NHS.URI })}, fields: []string{"0.uri"}, want: "built-in NHS"},
		{name: "name upper case", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.Name = "MRN" })}, fields: []string{"0.name"}, want: "not a valid name"},
		{name: "name starting with a digit", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.Name = "1mrn" })}, fields: []string{"0.name"}},
		{name: "name of 33", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.Name = "m" + strings.Repeat("x", 32) })}, fields: []string{"0.name"}},
		{name: "URI with bar", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.URI = "urn:example:a|b" })}, fields: []string{"0.uri"}, want: "'|'"},
		{name: "URI with space", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.URI = "urn:example:a b" })}, fields: []string{"0.uri"}, want: "without spaces"},
		{name: "URI with newline", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.URI = "urn:example:a\n" })}, fields: []string{"0.uri"}},
		{name: "relative URI", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.URI = "/Id/mrn-x" })}, fields: []string{"0.uri"}, want: "not an absolute URI"},
		{name: "URI too long", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.URI = "urn:" + strings.Repeat("x", 253) })}, fields: []string{"0.uri"}, want: "longer than 256"},
		{name: "bad case", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.Case = "Upper" })}, fields: []string{"0.case"}, want: `"Upper" is not one of upper, lower`},
		{name: "bad check", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.Check = "mod11" })}, fields: []string{"0.check"}, want: `"mod11" is not one of iso7064-mod97-10, luhn, nhs-mod11`},
		{name: "strip of 9", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.Strip = " -./_:;,+" })}, fields: []string{"0.strip"}, want: "9 distinct characters, want at most 8"},
		{name: "strip with a tab", systems: []pseudonym.System{with(func(s *pseudonym.System) { s.Strip = " \t" })}, fields: []string{"0.strip"}, want: "printable ASCII"},
		{
			name: "every problem of every system",
			systems: []pseudonym.System{
				mrnX,
				{Name: "mrn-x", URI: "urn:a|b", Case: "title", Pattern: "(", Check: "crc"},
				{Name: "ok-one", URI: "urn:example:ok", Pattern: "[0-9]+"},
				with(func(s *pseudonym.System) { s.Name = "x"; s.Strip = "\x00" }),
			},
			fields: []string{"1.name", "1.uri", "1.case", "1.pattern", "1.check", "3.uri", "3.strip"},
			want:   "already the name",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := pseudonym.NewRules(tt.systems)
			if len(tt.fields) == 0 {
				if err != nil || r == nil {
					t.Fatalf("NewRules = %v, %v; want rules", r, err)
				}
				return
			}
			var problems pseudonym.SystemErrors
			if !errors.As(err, &problems) {
				t.Fatalf("NewRules error = %v, want SystemErrors", err)
			}
			if r != nil {
				t.Error("NewRules returned rules with an error")
			}
			var fields []string
			for _, p := range problems {
				fields = append(fields, fmt.Sprintf("%d.%s", p.Index, p.Field))
			}
			if !slices.Equal(fields, tt.fields) {
				t.Errorf("fields = %q, want %q (error: %v)", fields, tt.fields, err)
			}
			if !strings.Contains(problems[0].Problem, tt.want) {
				t.Errorf("problem %q does not mention %q", problems[0].Problem, tt.want)
			}
		})
	}
}

func TestSystemErrorNamesTheSystem(t *testing.T) {
	bad := mrnX
	bad.Pattern = "[A-Z"
	_, err := pseudonym.NewRules([]pseudonym.System{card, bad})
	if want := `identifier system 1 "mrn-x": pattern: not a valid RE2 regular expression`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("NewRules error = %v, want it to start %q", err, want)
	}
}

func TestRulesSystems(t *testing.T) {
	r := testRules(t)
	var names []string
	for _, s := range r.Systems() {
		names = append(names, s.Name)
	}
	if want := []string{"card", "lei", "mrn-x", "nhs", "ref97"}; !slices.Equal(names, want) {
		t.Errorf("Systems() names = %q, want %q", names, want)
	}
	if got := r.Systems()[3]; got != pseudonym.NHS {
		t.Errorf("Systems()[3] = %+v, want the NHS system %+v", got, pseudonym.NHS)
	}
	r.Systems()[0].Pattern = "changed"
	if _, err := r.Normalise("card", "79927398713"); err != nil {
		t.Errorf("changing the result of Systems changed the rules: %v", err)
	}
}

func TestZeroRulesKnowNHS(t *testing.T) {
	var r pseudonym.Rules
	if id, err := r.Parse("nhs|943 476 5919"); err != nil || id.Value != "9434765919" {
		t.Errorf("zero Rules: Parse = %q, %v", id.Value, err)
	}
	if _, err := r.Parse("mrn-x|AB123456"); !errors.Is(err, pseudonym.ErrInvalidIdentifier) {
		t.Errorf("zero Rules: custom system: %v, want ErrInvalidIdentifier", err)
	}
	if got := r.Systems(); len(got) != 1 || got[0] != pseudonym.NHS {
		t.Errorf("zero Rules: Systems() = %+v", got)
	}
}

func ExampleParseNHS() {
	id, err := pseudonym.ParseNHS("943 476 5919")
	fmt.Println(string(id.Input()), err)

	_, err = pseudonym.ParseNHS("943 476 5918")
	fmt.Println(err)
	// Output:
	// https://fhir.nhs.uk/Id/nhs-number|9434765919 <nil>
	// invalid identifier: NHS number: check digit does not match
}

func ExampleRules_Parse() {
	rules, err := pseudonym.NewRules([]pseudonym.System{{
		Name:    "mrn-x",
		URI:     "https://hospital.example/Id/mrn-x",
		Strip:   " ",
		Case:    "upper",
		Pattern: `[A-Z]{2}[0-9]{6}`,
	}})
	if err != nil {
		panic(err)
	}
	id, _ := rules.Parse("mrn-x|ab 123456")
	fmt.Println(id.System, id.Value)
	fmt.Println(id) // never the value

	_, err = rules.Parse("mrn-x|ab 12345")
	fmt.Println(err)
	// Output:
	// https://hospital.example/Id/mrn-x AB123456
	// https://hospital.example/Id/mrn-x identifier
	// invalid identifier: mrn-x: does not match the system's pattern
}
