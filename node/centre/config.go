package centre

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/device"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/pseudonym"
)

// Config is everything a centre needs to start.
//
// The mapstructure tags are the keys a user writes in a YAML configuration
// file; FieldError names fields by them. A field tagged config:"path" holds a
// file-system path, which a loader may resolve against the directory of the
// file it was read from.
type Config struct {
	Centre     CentreConfig     `mapstructure:"centre"`
	Federation FederationConfig `mapstructure:"federation"`
	Data       DataConfig       `mapstructure:"data"`
	P2P        P2PConfig        `mapstructure:"p2p"`
	API        APIConfig        `mapstructure:"api"`
	Ledger     LedgerConfig     `mapstructure:"ledger"`
	Pseudonym  PseudonymConfig  `mapstructure:"pseudonym"`
	Records    RecordsConfig    `mapstructure:"records"`
	Patient    PatientConfig    `mapstructure:"patient"`
	Consent    ConsentConfig    `mapstructure:"consent"`
	// Prescription tunes the prescriptions this centre issues.
	Prescription PrescriptionConfig `mapstructure:"prescription"`
	// Devices bounds the readings patients' devices add here.
	Devices DeviceConfig  `mapstructure:"devices"`
	Log     LogConfig     `mapstructure:"log"`
	Metrics MetricsConfig `mapstructure:"metrics"`
	Tracing TracingConfig `mapstructure:"tracing"`
	Audit   AuditConfig   `mapstructure:"audit"`
}

// AuditConfig sends every access, emergency, lookup, consent, revocation,
// erasure and transfer entry of the ledger to the hospital's audit record
// repository (IHE ATNA): syslog (RFC 5424) over TLS (RFC 5425), from a
// durable cursor, so that nothing is lost while the collector is down.
// Off while the collector is empty.
type AuditConfig struct {
	// Collector is the syslog collector's host:port (6514 is syslog over
	// TLS's port).
	Collector string `mapstructure:"collector"`
	// Format is dicom (the DICOM audit message, RFC 3881's successor,
	// that ATNA repositories take) or fhir (a FHIR R4 AuditEvent, BALP
	// for accesses).
	Format string `mapstructure:"format"`
	// CAFile is the PEM file of the CA that issued the collector's
	// certificate; required with a collector.
	CAFile string `mapstructure:"ca-file" config:"path"`
	// CertFile and KeyFile are this centre's client certificate and key
	// for mutual TLS, PEM: both or neither.
	CertFile string `mapstructure:"cert-file" config:"path"`
	KeyFile  string `mapstructure:"key-file" config:"path"`
	// ServerName is the name the collector's certificate must carry;
	// the collector's host when empty.
	ServerName string `mapstructure:"server-name"`
	// Hostname is the messages' HOSTNAME, as the repository files them;
	// this machine's name when empty.
	Hostname string `mapstructure:"hostname"`
	// Facility is authpriv (10) or log-audit (13).
	Facility string `mapstructure:"facility"`
}

// TracingConfig sends OpenTelemetry traces of the queries across centres
// to a collector over OTLP/HTTP. Off while the endpoint is empty. Spans
// carry member names, outcomes, counts and purposes: never a patient's
// pseudonym, identifier or payload.
type TracingConfig struct {
	// Endpoint is the collector's OTLP/HTTP traces URL, such as
	// https://otel-collector.example:4318/v1/traces (http:// only on a
	// loopback address).
	Endpoint string `mapstructure:"endpoint"`
	// SampleRatio is the share of queries traced, 0 to 1. Every centre
	// decides alike for one query (by its trace ID), so a query sampled
	// is traced at every centre that samples the same share.
	SampleRatio float64 `mapstructure:"sample-ratio"`
}

// MetricsConfig is the Prometheus endpoint: /metrics on a listener of its
// own, apart from the API, so that a scraper needs no token and reaches
// nothing else. Off by default; on, it listens on loopback unless told
// otherwise. It shows counts, sizes, times and member names: never a
// patient's pseudonym, identifier or payload.
type MetricsConfig struct {
	Enabled bool   `mapstructure:"enabled"`
	Listen  string `mapstructure:"listen"` // host:port; port 0 picks a free port
}

// DefaultMetricsListen is where the metrics are served when enabled and
// not told where: loopback, on the port OpenTelemetry's Prometheus
// exporter uses by default.
const DefaultMetricsListen = "127.0.0.1:9464"

// PatientConfig tunes the patients' own requests at this centre.
type PatientConfig struct {
	// PageSize is how many of its ledger entries about a patient this
	// centre sends in one page of the patient's view: 1 to 65,536. The
	// patient asks for the next page with a cursor (medfed patient view
	// pages by itself).
	PageSize int `mapstructure:"page-size"`
}

// ConsentConfig tunes how this centre keeps patients' consent current.
type ConsentConfig struct {
	// Lease is how long this centre decides on a patient's consent state
	// it read from a majority of members before it reads it again, and
	// the longest lease it grants others: a revocation submitted while a
	// holder cannot be told is confirmed once that holder's lease has run
	// out, so it is the longest a confirmation waits. 1s to 45s
	// (MaxConsentLease).
	Lease time.Duration `mapstructure:"lease"`
}

// MaxConsentLease is the longest consent.lease: a confirmation that waits
// one out still fits in an HTTP request (the API's routes end after 60 s).
const MaxConsentLease = 45 * time.Second

// RecordsConfig is the vocabulary a record's data class and location come
// from: codes, never free text, since both are written on a ledger that is
// kept for ever (a name or a number typed there could never be taken back).
type RecordsConfig struct {
	// Classes are the data classes staff may record.
	Classes []string `mapstructure:"classes"`
	// Locations are the department or site codes; a record may name none.
	Locations []string `mapstructure:"locations"`
	// Types map the LOINC document types an EHR sends (FHIR
	// DocumentReference.type, IHE MHD) to data classes: a document of a
	// type not listed is refused. A class's first type is the one its
	// records are shown with.
	Types []DocumentType `mapstructure:"types"`
}

// DocumentType is a LOINC document type and the data class its documents
// are recorded as.
type DocumentType struct {
	LOINC   string `mapstructure:"loinc"`   // e.g. 11502-2
	Display string `mapstructure:"display"` // LOINC's display name, e.g. Laboratory report
	Class   string `mapstructure:"class"`   // one of records.classes
}

// DefaultClasses and DefaultLocations are the vocabulary of a centre that
// configures none.
var (
	DefaultClasses = []string{"allergy", "clinic-letter", "diagnosis", "discharge-summary", "genomics", "imaging", "lab-result", "medication",
		"mental-health", "observation", "prescription", "procedure", "referral", "vaccination"}
	DefaultLocations = []string{"cardiology", "chemistry", "emergency", "general-practice", "haematology", "inpatients", "laboratory",
		"maternity", "mental-health", "oncology", "outpatients", "paediatrics", "pharmacy", "radiology"}
	// DefaultTypes map a LOINC document type to each default class but
	// mental-health, which LOINC has no one document type for: a
	// centre that records it through FHIR names its own.
	DefaultTypes = []DocumentType{
		{"48765-2", "Allergies and adverse reactions Document", "allergy"},
		{"11488-4", "Consult note", "clinic-letter"},
		{"11450-4", "Problem list - Reported", "diagnosis"},
		{"18842-5", "Discharge summary", "discharge-summary"},
		{"51969-4", "Genetic analysis report", "genomics"},
		{"18748-4", "Diagnostic imaging study", "imaging"},
		{"11502-2", "Laboratory report", "lab-result"},
		{"10160-0", "History of Medication use Narrative", "medication"},
		{"8716-3", "Vital signs", "observation"},
		{"57833-6", "Prescription for medication", "prescription"},
		{"47519-4", "History of Procedures Document", "procedure"},
		{"57133-1", "Referral note", "referral"},
		{"11369-6", "History of Immunization Narrative", "vaccination"},
	}
)

// loincCode is a LOINC code: digits, a hyphen and the check digit.
var loincCode = regexp.MustCompile(`^[0-9]{1,7}-[0-9]$`)

// CentreConfig identifies this centre within its federation.
type CentreConfig struct {
	// Name is required and must be a valid name (see Validate): it becomes
	// part of the origin line of the ledger's checkpoints, so it cannot hold
	// spaces or upper case.
	Name string `mapstructure:"name"`
}

// FederationConfig names the federation the centre belongs to.
type FederationConfig struct {
	// ID is required and follows the same rule as CentreConfig.Name; every
	// member of a federation uses the same ID.
	ID string `mapstructure:"id"`
}

// DataConfig says where the centre keeps its state.
type DataConfig struct {
	// Dir is required: the directory holding the ledger, the off-ledger
	// records and the centre's keys.
	Dir string `mapstructure:"dir" config:"path"`
}

// P2PConfig configures the centre's libp2p host.
type P2PConfig struct {
	// Listen holds at least one multiaddr of the form
	// /ip4|ip6/<addr>/tcp/<port> or /ip4|ip6/<addr>/udp/<port>/quic-v1.
	Listen []string `mapstructure:"listen"`
	// PSKFile optionally names a pre-shared key file that makes the
	// federation a libp2p private network. QUIC cannot run in a private
	// network, so with a PSK every listen address must be TCP.
	PSKFile string `mapstructure:"psk-file" config:"path"`
}

// APIConfig configures the HTTP API for staff and patients.
type APIConfig struct {
	// Listen is a host:port; port 0 picks a free port.
	Listen string `mapstructure:"listen"`
	// TLS says how the API is secured: HTTPS always, but on a loopback
	// address when plain is set.
	TLS APITLSConfig `mapstructure:"tls"`
	// TokenLifetime is how long a staff token works, from its issue or
	// renewal, unless medfed staff add|renew --lifetime says otherwise:
	// 1m to 90 days.
	TokenLifetime time.Duration `mapstructure:"token-lifetime"`
}

// APITLSConfig is the API's certificate. Without one configured, the
// centre makes its own at first start (api.crt and api.key in the data
// directory; clients pin api.crt) and renews it before it expires.
type APITLSConfig struct {
	// Cert and Key name PEM files: a certificate (chain) a hospital's CA
	// issued and its private key. Both or neither.
	Cert string `mapstructure:"cert" config:"path"`
	Key  string `mapstructure:"key" config:"path"`
	// Hosts are names and addresses besides the listen address (and
	// localhost) that a self-made certificate covers.
	Hosts []string `mapstructure:"hosts"`
	// Plain serves plain HTTP: refused unless api.listen is a loopback
	// address (tokens, identifiers and payloads cross the network).
	Plain bool `mapstructure:"plain"`
}

// LedgerConfig tunes the centre's ledger.
type LedgerConfig struct {
	// MaxBatch caps how many entries share one group commit, 1 to 65536.
	MaxBatch int `mapstructure:"max-batch"`
	// CheckpointInterval is how often the centre retries a checkpoint not
	// yet final and hands its latest over to a new witness set; 10ms to
	// 1h. A grown ledger is checkpointed at once, one checkpoint at a time
	// (federation.Publisher.Run).
	CheckpointInterval time.Duration `mapstructure:"checkpoint-interval"`
	// CheckpointGap is the least time between the starts of two
	// checkpoints, 0 to 1h, and at most the interval (a longer gap is the
	// interval): what bounds the cosignatures a busy ledger asks of its
	// witnesses (4 a second at the default 250ms), at the cost of up to
	// that much more to finality under load. At 100ms, witnessing was a
	// third of a busy federation's CPU and doubled a query's p50.
	CheckpointGap time.Duration `mapstructure:"checkpoint-gap"`
}

// PseudonymConfig configures patient identifiers and this centre's part in
// computing pseudonyms.
type PseudonymConfig struct {
	// RateLimit is how many pseudonym evaluations this centre performs for
	// any one other centre per RateWindow; 1 to 1e9. It bounds how fast a
	// compromised member can turn guessed identifiers into pseudonyms.
	RateLimit int `mapstructure:"rate-limit"`
	// RateWindow is the period RateLimit applies to; 1s to 720h.
	RateWindow time.Duration `mapstructure:"rate-window"`
	// Systems are identifier systems besides the built-in NHS number. Every
	// centre of a federation must configure a system identically, or one
	// patient gets two pseudonyms.
	Systems []pseudonym.System `mapstructure:"systems"`
}

// Rules returns the identifier rules for the configured systems and the
// NHS number. Its error, if any, is a pseudonym.SystemErrors.
func (c PseudonymConfig) Rules() (*pseudonym.Rules, error) {
	return pseudonym.NewRules(c.Systems)
}

// LogConfig sets what the centre logs and how.
type LogConfig struct {
	Level  string `mapstructure:"level"`  // debug, info, warn or error
	Format string `mapstructure:"format"` // text or json
}

// maxLedgerBatch bounds LedgerConfig.MaxBatch: a bigger group commit holds
// the SQLite write lock for too long.
const maxLedgerBatch = 65536

// Bounds of PseudonymConfig.RateLimit and RateWindow.
const (
	maxPseudonymRate   = 1_000_000_000
	minPseudonymWindow = time.Second
	maxPseudonymWindow = 720 * time.Hour
)

var (
	logLevels       = []string{"debug", "info", "warn", "error"}
	logFormats      = []string{"text", "json"}
	auditFormats    = []string{"dicom", "fhir"}
	auditFacilities = []string{"authpriv", "log-audit"}

	// nameRE matches centre names and federation IDs. Both end up in
	// checkpoint origins and protocol strings, so they stay plain.
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
)

// DefaultConfig returns a configuration that is valid once the centre's name,
// its federation ID and its data directory are set. It listens on 127.0.0.1
// only: exposing a centre is a deliberate choice.
func DefaultConfig() Config {
	return Config{
		P2P:          P2PConfig{Listen: []string{"/ip4/127.0.0.1/tcp/0"}},
		API:          APIConfig{Listen: "127.0.0.1:8080", TokenLifetime: 12 * time.Hour},
		Ledger:       LedgerConfig{MaxBatch: 4096, CheckpointInterval: time.Second, CheckpointGap: 250 * time.Millisecond},
		Pseudonym:    PseudonymConfig{RateLimit: 1_000_000, RateWindow: 24 * time.Hour},
		Records:      RecordsConfig{Classes: slices.Clone(DefaultClasses), Locations: slices.Clone(DefaultLocations), Types: slices.Clone(DefaultTypes)},
		Patient:      PatientConfig{PageSize: 1 << 16},
		Consent:      ConsentConfig{Lease: consent.DefaultLease},
		Prescription: PrescriptionConfig{OverPrescription: OverPrescriptionTwoPrescribers},
		Devices:      DeviceConfig{ReadingsPerHour: device.DefaultRate, ReadingsBurst: device.DefaultBurst},
		Log:          LogConfig{Level: "info", Format: "text"},
		Metrics:      MetricsConfig{Listen: DefaultMetricsListen},
		Tracing:      TracingConfig{SampleRatio: 1},
		Audit:        AuditConfig{Format: "dicom", Facility: "authpriv"},
	}
}

// FieldError is one problem with one field of a Config.
type FieldError struct {
	// Field is the key as a user writes it in YAML: "centre.name",
	// "ledger.max-batch", "p2p.listen[1]", "pseudonym.systems[0].pattern".
	Field   string
	Problem string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Problem }

// ConfigErrors is every problem found in a configuration, in the order of
// the fields in Config.
type ConfigErrors []FieldError

func (e ConfigErrors) Error() string {
	msgs := make([]string, len(e))
	for i, fe := range e {
		msgs[i] = fe.Error()
	}
	return strings.Join(msgs, "; ")
}

// Validate checks every field and reports every problem, not just the first:
// it returns nil or a ConfigErrors.
func (c Config) Validate() error {
	var errs ConfigErrors
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}

	checkName := func(field, name string) {
		switch {
		case name == "":
			add(field, "required")
		case !nameRE.MatchString(name):
			add(field, "%q is not a valid name: use 1 to 63 lower-case letters, digits and '-', starting with a letter or digit", name)
		}
	}
	checkName("centre.name", c.Centre.Name)
	checkName("federation.id", c.Federation.ID)

	if c.Data.Dir == "" {
		add("data.dir", "required")
	}

	if len(c.P2P.Listen) == 0 {
		add("p2p.listen", "at least one address is required")
	}
	for i, s := range c.P2P.Listen {
		field := fmt.Sprintf("p2p.listen[%d]", i)
		quic, err := parseListenAddr(s)
		switch {
		case err != nil:
			add(field, "%v", err)
		case quic && c.P2P.PSKFile != "":
			add(field, "%q is QUIC, which cannot run in a private network: with p2p.psk-file set, listen on TCP only", s)
		}
	}

	if err := checkHostPort(c.API.Listen); err != nil {
		add("api.listen", "%v", err)
	} else if c.API.TLS.Plain && !Loopback(c.API.Listen) {
		add("api.tls.plain", "plain HTTP is served on a loopback address only, and %s is not one: tokens, identifiers and payloads would cross the network in clear (leave plain unset: the centre makes its own certificate)", c.API.Listen)
	}
	if c.Metrics.Enabled {
		if err := checkHostPort(c.Metrics.Listen); err != nil {
			add("metrics.listen", "%v", err)
		} else if c.Metrics.Listen == c.API.Listen && !strings.HasSuffix(c.API.Listen, ":0") {
			add("metrics.listen", "is api.listen too (%s): the metrics have a listener of their own", c.API.Listen)
		}
	}
	if e := c.Tracing.Endpoint; e != "" {
		u, err := url.Parse(e)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			add("tracing.endpoint", "must be an http(s) URL of an OTLP/HTTP collector, such as https://collector:4318/v1/traces, got %q", e)
		case u.Scheme == "http" && !Loopback(net.JoinHostPort(u.Hostname(), "0")):
			add("tracing.endpoint", "plain http is for a collector on a loopback address only, and %s is not one: use https", u.Host)
		case u.User != nil:
			add("tracing.endpoint", "must not hold credentials")
		}
	}
	if a := c.Audit; a.Collector != "" {
		if _, _, err := net.SplitHostPort(a.Collector); err != nil {
			add("audit.collector", "must be host:port, got %q", a.Collector)
		}
		if a.CAFile == "" {
			add("audit.ca-file", "is required with audit.collector: the PEM file of the CA that issued the collector's certificate")
		}
		if (a.CertFile == "") != (a.KeyFile == "") {
			add("audit", "give both cert-file and key-file, or neither")
		}
	}
	if len(c.Audit.Hostname) > 255 || strings.ContainsAny(c.Audit.Hostname, " \t\r\n") {
		add("audit.hostname", "must be a host name of at most 255 characters without spaces")
	}
	if r := c.Tracing.SampleRatio; !(r >= 0 && r <= 1) {
		add("tracing.sample-ratio", "must be between 0 and 1, got %v", r)
	}
	if d := c.API.TokenLifetime; d < time.Minute || d > 90*24*time.Hour {
		add("api.token-lifetime", "must be between 1m and 2160h (90 days), got %s", d)
	}
	if (c.API.TLS.Cert == "") != (c.API.TLS.Key == "") {
		add("api.tls", "give both cert and key, or neither (the centre then makes its own certificate)")
	}
	for i, h := range c.API.TLS.Hosts {
		if h == "" || len(h) > 253 || strings.ContainsAny(h, " /:") && net.ParseIP(h) == nil {
			add(fmt.Sprintf("api.tls.hosts[%d]", i), "%q is not a host name or an IP address", h)
		}
	}

	if c.Ledger.MaxBatch < 1 || c.Ledger.MaxBatch > maxLedgerBatch {
		add("ledger.max-batch", "must be between 1 and %d, got %d", maxLedgerBatch, c.Ledger.MaxBatch)
	}
	if iv := c.Ledger.CheckpointInterval; iv < 10*time.Millisecond || iv > time.Hour {
		add("ledger.checkpoint-interval", "must be between 10ms and 1h, got %s", iv)
	}
	if g := c.Ledger.CheckpointGap; g < 0 || g > time.Hour {
		add("ledger.checkpoint-gap", "must be between 0 and 1h, got %s", g)
	}

	if n := c.Pseudonym.RateLimit; n < 1 || n > maxPseudonymRate {
		add("pseudonym.rate-limit", "must be between 1 and %d, got %d", maxPseudonymRate, n)
	}
	if w := c.Pseudonym.RateWindow; w < minPseudonymWindow || w > maxPseudonymWindow {
		add("pseudonym.rate-window", "must be between 1s and 720h, got %s", w)
	}
	if _, err := c.Pseudonym.Rules(); err != nil {
		var problems pseudonym.SystemErrors
		if !errors.As(err, &problems) {
			add("pseudonym.systems", "%v", err)
		}
		for _, p := range problems {
			add(fmt.Sprintf("pseudonym.systems[%d].%s", p.Index, p.Field), "%s", p.Problem)
		}
	}

	if len(c.Records.Classes) == 0 {
		add("records.classes", "list at least one data class")
	}
	for i, v := range c.Records.Classes {
		if !ledger.ValidDataClass(v) {
			add(fmt.Sprintf("records.classes[%d]", i), "%q is not a code: lower-case letters, digits, '.', '_' and '-'", v)
		}
	}
	for i, v := range c.Records.Locations {
		if !ledger.ValidDataClass(v) {
			add(fmt.Sprintf("records.locations[%d]", i), "%q is not a code: lower-case letters, digits, '.', '_' and '-'", v)
		}
	}
	seen := map[string]bool{}
	for i, t := range c.Records.Types {
		field := fmt.Sprintf("records.types[%d]", i)
		if !loincCode.MatchString(t.LOINC) {
			add(field+".loinc", "%q is not a LOINC code (digits, '-', a check digit: e.g. 11502-2)", t.LOINC)
		} else if seen[t.LOINC] {
			add(field+".loinc", "%s is listed twice: a document type maps to one data class", t.LOINC)
		}
		seen[t.LOINC] = true
		if t.Display == "" || len(t.Display) > 200 {
			add(field+".display", "give LOINC's display name (at most 200 bytes)")
		}
		if !slices.Contains(c.Records.Classes, t.Class) {
			add(field+".class", "%q is not one of records.classes", t.Class)
		}
	}

	if n := c.Patient.PageSize; n < 1 || n > 1<<16 {
		add("patient.page-size", "must be between 1 and 65536, got %d", n)
	}
	if d := c.Consent.Lease; d < time.Second || d > MaxConsentLease {
		add("consent.lease", "must be between 1s and %v, got %v", MaxConsentLease, d)
	}
	if r := c.Prescription.OverPrescription; r != "" && !slices.Contains(overPrescriptionRules, r) {
		add("prescription.over-prescription", "%q is not one of %s", r, strings.Join(overPrescriptionRules, ", "))
	}
	c.Devices.check(add)

	checkOneOf := func(field, value string, allowed []string) {
		for _, a := range allowed {
			if value == a {
				return
			}
		}
		add(field, "%q is not one of %s", value, strings.Join(allowed, ", "))
	}
	checkOneOf("log.level", c.Log.Level, logLevels)
	checkOneOf("log.format", c.Log.Format, logFormats)
	checkOneOf("audit.format", c.Audit.Format, auditFormats)
	checkOneOf("audit.facility", c.Audit.Facility, auditFacilities)

	if len(errs) == 0 {
		return nil
	}
	return errs
}

// Loopback reports whether the host of host:port addr is a loopback
// address or localhost: only those may serve plain HTTP.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseListenAddr accepts the two transports a centre listens on, TCP and
// QUIC v1, over a literal IPv4 or IPv6 address, and reports which one s is.
// DNS names are refused: a listen address is a local interface.
func parseListenAddr(s string) (quic bool, err error) {
	const want = "use /ip4|ip6/<addr>/tcp/<port> or /ip4|ip6/<addr>/udp/<port>/quic-v1"
	if s == "" {
		return false, fmt.Errorf("empty address: %s", want)
	}
	addr, err := ma.NewMultiaddr(s)
	if err != nil {
		reason := strings.TrimPrefix(err.Error(), fmt.Sprintf("failed to parse multiaddr %q: ", s))
		if host, port, err := net.SplitHostPort(s); err == nil && net.ParseIP(host) != nil {
			// The commonest mistake: an address written the way api.listen is.
			proto := "ip4"
			if strings.Contains(host, ":") {
				proto = "ip6"
			}
			reason += fmt.Sprintf(" (did you mean /%s/%s/tcp/%s?)", proto, host, port)
		}
		return false, fmt.Errorf("%q is not a valid multiaddr: %s", s, reason)
	}
	codes := make([]int, len(addr))
	for i := range addr {
		codes[i] = addr[i].Code()
	}
	ip := len(codes) > 0 && (codes[0] == ma.P_IP4 || codes[0] == ma.P_IP6)
	switch {
	case ip && len(codes) == 2 && codes[1] == ma.P_TCP:
		return false, nil
	case ip && len(codes) == 3 && codes[1] == ma.P_UDP && codes[2] == ma.P_QUIC_V1:
		return true, nil
	}
	return false, fmt.Errorf("%q is not supported: %s", s, want)
}

func checkHostPort(s string) error {
	if s == "" {
		return fmt.Errorf("required")
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port must be a number from 0 to 65535", s)
	}
	return nil
}
