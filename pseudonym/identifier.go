package pseudonym

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/medfed/medfed/node"
)

// ErrInvalidIdentifier is wrapped by every error of Rules.Normalise,
// Rules.Parse and ParseNHS. The text after it names the system and the rule
// the value broke, never the value or any part of it: such errors reach logs
// and HTTP responses.
var ErrInvalidIdentifier = node.E(node.Invalid, "invalid identifier")

// Identifier is a patient identifier in its one canonical spelling: a
// system URI and a value that passed that system's rules.
//
// Two spellings of one patient's number must give one pseudonym, so an
// Identifier is only ever made by Rules; the OPRF sees nothing else.
type Identifier struct{ System, Value string }

// Input returns the bytes the OPRF is evaluated on: System + "|" + Value.
// A system URI holds no '|', so the split is unambiguous.
func (id Identifier) Input() []byte {
	b := make([]byte, 0, len(id.System)+1+len(id.Value))
	b = append(b, id.System...)
	b = append(b, '|')
	return append(b, id.Value...)
}

// String names the identifier's system only, so that a stray %v in a log
// line cannot leak a patient's number.
func (id Identifier) String() string { return id.System + " identifier" }

// Format prints what String does, for every verb: without it %#v, %+v of a
// pointer or %d would print the fields, value included.
func (id Identifier) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		io.WriteString(f, strconv.Quote(id.String()))
		return
	}
	io.WriteString(f, id.String())
}

// LogValue keeps the value out of slog output, as String keeps it out of fmt.
func (id Identifier) LogValue() slog.Value { return slog.StringValue(id.String()) }

var (
	_ fmt.Stringer   = Identifier{}
	_ fmt.Formatter  = Identifier{}
	_ slog.LogValuer = Identifier{}
)

// System is one identifier system's rules, as a centre configures them.
//
// A value is normalised in this order: it must be 1 to 256 bytes of
// printable ASCII; the Strip characters are removed and the Case applied;
// what remains must be non-empty, have the form the Check rule needs, match
// Pattern in full, and carry a correct check digit. Every centre of a
// federation must configure a system the same way, or one patient gets two
// pseudonyms.
type System struct {
	// Name is used on the command line and in messages: 1 to 32 lower-case
	// letters, digits and '-', starting with a letter; unique.
	Name string `mapstructure:"name"`
	// URI is the system URI, e.g. "https://fhir.nhs.uk/Id/nhs-number": an
	// absolute URI of at most 256 bytes of printable ASCII, without spaces
	// or '|'; unique. It is the part of the OPRF input that names the system.
	URI string `mapstructure:"uri"`
	// Strip holds characters removed anywhere in the value before it is
	// checked, e.g. " -": at most 8 distinct printable ASCII characters.
	Strip string `mapstructure:"strip"`
	// Case is "upper", "lower" or "" (keep the value's case), applied after
	// stripping.
	Case string `mapstructure:"case"`
	// Pattern is the RE2 regular expression the whole canonical value must
	// match; it is anchored for you, as ^(?:Pattern)$. Required.
	Pattern string `mapstructure:"pattern"`
	// Check is the check-digit rule: "" (none), "nhs-mod11" (10 digits, the
	// last a modulus 11 check digit), "luhn" (digits only) or
	// "iso7064-mod97-10" (digits and upper-case letters, A=10 to Z=35, whose
	// number is 1 modulo 97, as in an IBAN once rearranged or an LEI).
	Check string `mapstructure:"check"`
}

// NHS is the built-in NHS number system. Changing this variable changes
// nothing: Rules keep their own copy.
var NHS = nhsSystem()

func nhsSystem() System {
	return System{
		Name:    "nhs",
		URI:     "https://fhir.nhs.uk/Id/nhs-number",
		Strip:   " -",
		Pattern: "[0-9]{10}",
		Check:   "nhs-mod11",
	}
}

const (
	maxIdentifierLen = 256  // bytes of a value before stripping, and of a system URI
	maxStripChars    = 8    // distinct characters of System.Strip
	maxPatternLen    = 1024 // bytes of System.Pattern
	maxEchoLen       = 64   // bytes of a system name or URI quoted in an error
)

var (
	systemNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

	systemCases = []string{"upper", "lower"}
)

// A checkDigit is one check-digit rule. form runs before the pattern, so
// that a value of the wrong shape is told what shape is wanted; valid runs
// last. Each returns "" or the reason, which never quotes the value.
type checkDigit struct {
	form  func(v string) string
	valid func(v string) string
}

var checkDigits = map[string]checkDigit{
	"nhs-mod11":        {form: nhsForm, valid: nhsValid},
	"luhn":             {form: luhnForm, valid: luhnValid},
	"iso7064-mod97-10": {form: mod97Form, valid: mod97Valid},
}

// checkNames lists the Check rules for messages.
var checkNames = slices.Sorted(func(yield func(string) bool) {
	for name := range checkDigits {
		if !yield(name) {
			return
		}
	}
})

func allDigits(v string) bool {
	for i := range len(v) {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

func nhsForm(v string) string {
	switch {
	case !allDigits(v):
		return "want digits only"
	case len(v) != 10:
		return fmt.Sprintf("want 10 digits, got %d", len(v))
	}
	return ""
}

// nhsValid checks an NHS number's modulus 11 check digit: the first nine
// digits weighted 10 down to 2, the check digit 11 minus the sum modulo 11,
// with 11 read as 0; a number whose check digit would be 10 is never issued.
func nhsValid(v string) string {
	sum := 0
	for i := range 9 {
		sum += int(v[i]-'0') * (10 - i)
	}
	check := 11 - sum%11
	switch check {
	case 11:
		check = 0
	case 10:
		return "no number with these first nine digits is valid (check digit would be 10)"
	}
	if int(v[9]-'0') != check {
		return "check digit does not match"
	}
	return ""
}

func luhnForm(v string) string {
	switch {
	case !allDigits(v):
		return "want digits only"
	case len(v) < 2:
		return "want at least 2 digits"
	}
	return ""
}

// luhnValid checks the Luhn (ISO/IEC 7812-1) check digit, the last one.
func luhnValid(v string) string {
	sum := 0
	for i := range len(v) {
		d := int(v[len(v)-1-i] - '0')
		if i%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	if sum%10 != 0 {
		return "check digit does not match"
	}
	return ""
}

func mod97Form(v string) string {
	for i := range len(v) {
		if c := v[i]; (c < '0' || c > '9') && (c < 'A' || c > 'Z') {
			return "want digits and upper-case letters only"
		}
	}
	if len(v) < 3 {
		return "want at least 3 characters, the last 2 check digits"
	}
	return ""
}

// mod97Valid checks ISO 7064 MOD 97-10: the value read as a decimal number,
// each letter standing for two digits (A=10 to Z=35), must be 1 modulo 97.
func mod97Valid(v string) string {
	rem := 0
	for i := range len(v) {
		if c := v[i]; c <= '9' {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			rem = (rem*100 + int(c-'A') + 10) % 97
		}
	}
	if rem != 1 {
		return "check digits do not match"
	}
	return ""
}

// idSystem is a System ready to normalise values.
type idSystem struct {
	System
	label   string // names the system in errors
	pattern *regexp.Regexp
	check   *checkDigit
}

// nhsRule is the built-in NHS system, compiled once; it is valid.
var nhsRule = &idSystem{
	System:  nhsSystem(),
	label:   "NHS number",
	pattern: regexp.MustCompile(`^(?:` + nhsSystem().Pattern + `)$`),
	check:   new(checkDigits[nhsSystem().Check]),
}

func (s *idSystem) fail(reason string) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidIdentifier, s.label, reason)
}

func (s *idSystem) normalise(value string) (Identifier, error) {
	switch {
	case value == "":
		return Identifier{}, s.fail("empty")
	case len(value) > maxIdentifierLen:
		return Identifier{}, s.fail(fmt.Sprintf("longer than %d bytes", maxIdentifierLen))
	}
	for i := range len(value) {
		switch c := value[i]; {
		case c >= 0x80:
			return Identifier{}, s.fail("contains a non-ASCII character")
		case c < 0x20 || c == 0x7f:
			return Identifier{}, s.fail("contains a control character")
		}
	}
	v := value
	if s.Strip != "" {
		v = strings.Map(func(r rune) rune {
			if strings.ContainsRune(s.Strip, r) {
				return -1
			}
			return r
		}, v)
	}
	switch s.Case {
	case "upper":
		v = strings.ToUpper(v) // ASCII only, so one byte for one byte
	case "lower":
		v = strings.ToLower(v)
	}
	if v == "" {
		return Identifier{}, s.fail(fmt.Sprintf("empty once %q are removed", s.Strip))
	}
	if s.check != nil {
		if reason := s.check.form(v); reason != "" {
			return Identifier{}, s.fail(reason)
		}
	}
	if !s.pattern.MatchString(v) {
		return Identifier{}, s.fail("does not match the system's pattern")
	}
	if s.check != nil {
		if reason := s.check.valid(v); reason != "" {
			return Identifier{}, s.fail(reason)
		}
	}
	return Identifier{System: s.URI, Value: v}, nil
}

// Rules normalises identifiers for the configured systems; the NHS system
// is always present. The zero Rules knows the NHS system only. A Rules is
// safe for concurrent use.
type Rules struct {
	custom []*idSystem          // sorted by name
	byKey  map[string]*idSystem // custom systems by name and by URI
}

// SystemError is one problem with one field of one System given to NewRules.
type SystemError struct {
	Index   int    // of the system in the list given to NewRules
	Name    string // the system's name as given, which may be the problem
	Field   string // the key as configured: "name", "uri", "strip", "case", "pattern" or "check"
	Problem string
}

func (e SystemError) Error() string {
	name := ""
	if e.Name != "" {
		name = " " + quoteEcho(e.Name)
	}
	return fmt.Sprintf("identifier system %d%s: %s: %s", e.Index, name, e.Field, e.Problem)
}

// SystemErrors is every problem NewRules found, in the order of the systems
// and of the fields in System.
type SystemErrors []SystemError

func (e SystemErrors) Error() string {
	msgs := make([]string, len(e))
	for i, se := range e {
		msgs[i] = se.Error()
	}
	return strings.Join(msgs, "; ")
}

// NewRules checks every system and returns Rules for them and the NHS
// system, or a SystemErrors with every problem. A system may not reuse the
// NHS system's name or URI, nor another system's.
func NewRules(systems []System) (*Rules, error) {
	r := &Rules{byKey: make(map[string]*idSystem, 2*len(systems))}
	var errs SystemErrors
	names := map[string]int{}
	uris := map[string]int{}
	for i, sys := range systems {
		ok := true
		add := func(field, format string, args ...any) {
			errs = append(errs, SystemError{Index: i, Name: sys.Name, Field: field, Problem: fmt.Sprintf(format, args...)})
			ok = false
		}

		switch j, dup := names[sys.Name]; {
		case sys.Name == "":
			add("name", "required")
		case !systemNameRE.MatchString(sys.Name):
			add("name", "%s is not a valid name: use 1 to 32 lower-case letters, digits and '-', starting with a letter", quoteEcho(sys.Name))
		case sys.Name == nhsRule.Name:
			add("name", "%q is the built-in NHS number system", sys.Name)
		case dup:
			add("name", "%q is already the name of identifier system %d", sys.Name, j)
		default:
			names[sys.Name] = i
		}

		if problem := checkSystemURI(sys.URI); problem != "" {
			add("uri", "%s", problem)
		} else if sys.URI == nhsRule.URI {
			add("uri", "%q is the built-in NHS number system's URI", sys.URI)
		} else if j, dup := uris[sys.URI]; dup {
			add("uri", "%q is already the URI of identifier system %d", sys.URI, j)
		} else {
			uris[sys.URI] = i
		}

		distinct := map[rune]bool{}
		for _, c := range sys.Strip {
			if c < 0x20 || c > 0x7e {
				add("strip", "%q: want printable ASCII characters only", sys.Strip)
				break
			}
			distinct[c] = true
		}
		if len(distinct) > maxStripChars {
			add("strip", "%d distinct characters, want at most %d", len(distinct), maxStripChars)
		}

		if sys.Case != "" && !slices.Contains(systemCases, sys.Case) {
			add("case", "%s is not one of upper, lower or empty (keep the case given)", quoteEcho(sys.Case))
		}

		var pattern *regexp.Regexp
		switch {
		case sys.Pattern == "":
			add("pattern", "required")
		case len(sys.Pattern) > maxPatternLen:
			add("pattern", "longer than %d bytes", maxPatternLen)
		default:
			// Compiled alone first: "a)|(b" would compile once wrapped, and
			// the anchors would then bind to its halves, not to the whole.
			if _, err := regexp.Compile(sys.Pattern); err != nil {
				add("pattern", "not a valid RE2 regular expression: %v", err)
				break
			}
			pattern = regexp.MustCompile(`^(?:` + sys.Pattern + `)$`)
		}

		var check *checkDigit
		if sys.Check != "" {
			if c, known := checkDigits[sys.Check]; known {
				check = &c
			} else {
				add("check", "%s is not one of %s or empty (no check digit)", quoteEcho(sys.Check), strings.Join(checkNames, ", "))
			}
		}

		if !ok {
			continue
		}
		s := &idSystem{System: sys, label: sys.Name, pattern: pattern, check: check}
		r.custom = append(r.custom, s)
		r.byKey[sys.Name] = s
		r.byKey[sys.URI] = s
	}
	if len(errs) > 0 {
		return nil, errs
	}
	slices.SortFunc(r.custom, func(a, b *idSystem) int { return strings.Compare(a.Name, b.Name) })
	return r, nil
}

// checkSystemURI returns "" or what is wrong with uri as a system URI.
func checkSystemURI(uri string) string {
	switch {
	case uri == "":
		return "required"
	case len(uri) > maxIdentifierLen:
		return fmt.Sprintf("longer than %d bytes", maxIdentifierLen)
	case strings.Contains(uri, "|"):
		return "must not contain '|', which separates the system from the value"
	}
	for i := range len(uri) {
		if c := uri[i]; c <= ' ' || c >= 0x7f {
			return quoteEcho(uri) + " must be printable ASCII without spaces"
		}
	}
	if u, err := url.Parse(uri); err != nil || u.Scheme == "" {
		return quoteEcho(uri) + ` is not an absolute URI such as "https://example.org/Id/mrn"`
	}
	return ""
}

// quoteEcho quotes s, a system name or URI, for an error message, cut to
// maxEchoLen bytes.
func quoteEcho(s string) string {
	if len(s) > maxEchoLen {
		return strconv.Quote(s[:maxEchoLen]) + "..."
	}
	return strconv.Quote(s)
}

// lookup finds a system by name or URI.
func (r *Rules) lookup(system string) (*idSystem, error) {
	if system == nhsRule.Name || system == nhsRule.URI {
		return nhsRule, nil
	}
	if r != nil {
		if s, ok := r.byKey[system]; ok {
			return s, nil
		}
	}
	if system == "" {
		return nil, fmt.Errorf("%w: no system given", ErrInvalidIdentifier)
	}
	// The unknown system is not quoted: it may be a value given in its
	// place (an MRN typed before the bar).
	var names []string
	for _, sys := range r.Systems() {
		names = append(names, sys.Name)
	}
	return nil, fmt.Errorf("%w: unknown system; this centre knows %s", ErrInvalidIdentifier, strings.Join(names, ", "))
}

// Normalise returns value, an identifier of system, in its canonical
// spelling. system is a system's Name or its URI. Every error wraps
// ErrInvalidIdentifier and never quotes the value.
func (r *Rules) Normalise(system, value string) (Identifier, error) {
	s, err := r.lookup(system)
	if err != nil {
		return Identifier{}, err
	}
	return s.normalise(value)
}

// Parse normalises s, written "system|value" with the system as a Name or a
// URI; s is split at its first '|'. Parse(id.System + "|" + id.Value)
// returns id for every id that Parse or Normalise returned.
func (r *Rules) Parse(s string) (Identifier, error) {
	system, value, ok := strings.Cut(s, "|")
	if !ok {
		return Identifier{}, fmt.Errorf("%w: want system|value, the system a name or URI", ErrInvalidIdentifier)
	}
	return r.Normalise(system, value)
}

// Systems returns every system, the NHS one included, sorted by name.
func (r *Rules) Systems() []System {
	var out []System
	if r != nil {
		out = make([]System, 0, len(r.custom)+1)
		for _, s := range r.custom {
			out = append(out, s.System)
		}
	}
	out = append(out, nhsRule.System)
	slices.SortFunc(out, func(a, b System) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// ParseNHS normalises an NHS number by the built-in rules: 10 digits, spaces
// and dashes ignored, with a valid modulus 11 check digit.
func ParseNHS(number string) (Identifier, error) {
	return nhsRule.normalise(number)
}
