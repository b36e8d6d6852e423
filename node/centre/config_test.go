package centre_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/pseudonym"
)

// mrnX is a custom identifier system.
var mrnX = pseudonym.System{
	Name:    "mrn-x",
	URI:     "https://hospital.example/Id/mrn-x",
	Strip:   " ",
	Case:    "upper",
	Pattern: `[A-Z]{2}[0-9]{6}`,
}

// validConfig is the default configuration with the three fields that have
// no default filled in.
func validConfig() centre.Config {
	c := centre.DefaultConfig()
	c.Centre.Name = "centre-a"
	c.Federation.ID = "medfed-demo"
	c.Data.Dir = "/var/lib/medfed/centre-a"
	return c
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(c *centre.Config)
		fields []string // exactly the fields that must be reported, in order
		want   string   // a word the first problem must contain
	}{
		{name: "defaults with required fields", edit: func(*centre.Config) {}},
		{
			name: "every listen form",
			edit: func(c *centre.Config) {
				c.P2P.Listen = []string{
					"/ip4/0.0.0.0/tcp/4001",
					"/ip6/::1/tcp/4001",
					"/ip4/127.0.0.1/udp/4001/quic-v1",
					"/ip6/::/udp/0/quic-v1",
				}
				c.API.Listen = ":0"
				c.Ledger.MaxBatch = 65536
				c.Log = centre.LogConfig{Level: "debug", Format: "json"}
			},
		},
		{
			name: "psk with TCP only",
			edit: func(c *centre.Config) { c.P2P.PSKFile = "/etc/medfed/psk" },
		},
		{
			name: "name of 63 characters",
			edit: func(c *centre.Config) { c.Centre.Name = "0" + strings.Repeat("a-", 31) },
		},
		{
			name:   "defaults alone",
			edit:   func(c *centre.Config) { *c = centre.DefaultConfig() },
			fields: []string{"centre.name", "federation.id", "data.dir"},
			want:   "required",
		},
		{
			name:   "centre name missing",
			edit:   func(c *centre.Config) { c.Centre.Name = "" },
			fields: []string{"centre.name"},
			want:   "required",
		},
		{
			name:   "federation id missing",
			edit:   func(c *centre.Config) { c.Federation.ID = "" },
			fields: []string{"federation.id"},
			want:   "required",
		},
		{
			name:   "data dir missing",
			edit:   func(c *centre.Config) { c.Data.Dir = "" },
			fields: []string{"data.dir"},
			want:   "required",
		},
		{
			name:   "centre name upper case",
			edit:   func(c *centre.Config) { c.Centre.Name = "Centre-A" },
			fields: []string{"centre.name"},
			want:   "not a valid name",
		},
		{
			name:   "centre name too long",
			edit:   func(c *centre.Config) { c.Centre.Name = strings.Repeat("a", 64) },
			fields: []string{"centre.name"},
			want:   "not a valid name",
		},
		{
			name:   "centre name leading dash",
			edit:   func(c *centre.Config) { c.Centre.Name = "-centre" },
			fields: []string{"centre.name"},
			want:   "not a valid name",
		},
		{
			name:   "federation id with a space",
			edit:   func(c *centre.Config) { c.Federation.ID = "medfed demo" },
			fields: []string{"federation.id"},
			want:   "not a valid name",
		},
		{
			name:   "no listen address",
			edit:   func(c *centre.Config) { c.P2P.Listen = nil },
			fields: []string{"p2p.listen"},
			want:   "at least one",
		},
		{
			name:   "port not a number",
			edit:   func(c *centre.Config) { c.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/abc"} },
			fields: []string{"p2p.listen[1]"},
			want:   "not a valid multiaddr",
		},
		{
			name:   "host:port instead of a multiaddr",
			edit:   func(c *centre.Config) { c.P2P.Listen = []string{"127.0.0.1:4001"} },
			fields: []string{"p2p.listen[0]"},
			want:   "/ip4/127.0.0.1/tcp/4001",
		},
		{
			name:   "dns name",
			edit:   func(c *centre.Config) { c.P2P.Listen = []string{"/dns4/x/tcp/1"} },
			fields: []string{"p2p.listen[0]"},
			want:   "not supported",
		},
		{
			name:   "bare ip",
			edit:   func(c *centre.Config) { c.P2P.Listen = []string{"/ip4/127.0.0.1"} },
			fields: []string{"p2p.listen[0]"},
			want:   "not supported",
		},
		{
			name:   "udp without quic",
			edit:   func(c *centre.Config) { c.P2P.Listen = []string{"/ip4/127.0.0.1/udp/4001"} },
			fields: []string{"p2p.listen[0]"},
			want:   "not supported",
		},
		{
			name:   "empty listen address",
			edit:   func(c *centre.Config) { c.P2P.Listen = []string{""} },
			fields: []string{"p2p.listen[0]"},
			want:   "empty",
		},
		{
			name: "psk with quic",
			edit: func(c *centre.Config) {
				c.P2P.PSKFile = "/etc/medfed/psk"
				c.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/udp/4001/quic-v1"}
			},
			fields: []string{"p2p.listen[1]"},
			want:   "private network",
		},
		{
			name:   "api without port",
			edit:   func(c *centre.Config) { c.API.Listen = "127.0.0.1" },
			fields: []string{"api.listen"},
			want:   "host:port",
		},
		{
			name:   "api port out of range",
			edit:   func(c *centre.Config) { c.API.Listen = "127.0.0.1:65536" },
			fields: []string{"api.listen"},
			want:   "65535",
		},
		{
			name:   "api listen empty",
			edit:   func(c *centre.Config) { c.API.Listen = "" },
			fields: []string{"api.listen"},
			want:   "required",
		},
		{
			name:   "metrics without port",
			edit:   func(c *centre.Config) { c.Metrics.Enabled, c.Metrics.Listen = true, "127.0.0.1" },
			fields: []string{"metrics.listen"},
			want:   "host:port",
		},
		{
			name:   "metrics on the API's listener",
			edit:   func(c *centre.Config) { c.Metrics.Enabled, c.Metrics.Listen = true, c.API.Listen },
			fields: []string{"metrics.listen"},
			want:   "listener of their own",
		},
		{
			name:   "tracing to a plain http collector off loopback",
			edit:   func(c *centre.Config) { c.Tracing.Endpoint = "http://collector.example:4318/v1/traces" },
			fields: []string{"tracing.endpoint"},
			want:   "use https",
		},
		{
			name:   "tracing to something not a URL",
			edit:   func(c *centre.Config) { c.Tracing.Endpoint = "collector:4318" },
			fields: []string{"tracing.endpoint"},
			want:   "http(s) URL",
		},
		{
			name:   "tracing sample ratio past 1",
			edit:   func(c *centre.Config) { c.Tracing.SampleRatio = 1.5 },
			fields: []string{"tracing.sample-ratio"},
			want:   "between 0 and 1",
		},
		{
			name:   "audit export without its CA",
			edit:   func(c *centre.Config) { c.Audit.Collector = "siem.example:6514" },
			fields: []string{"audit.ca-file"},
			want:   "required with audit.collector",
		},
		{
			name:   "audit export in an unknown format",
			edit:   func(c *centre.Config) { c.Audit.Format = "cef" },
			fields: []string{"audit.format"},
			want:   "dicom, fhir",
		},
		{
			name: "audit client certificate without its key",
			edit: func(c *centre.Config) {
				c.Audit.Collector, c.Audit.CAFile, c.Audit.CertFile = "siem.example:6514", "ca.pem", "client.pem"
			},
			fields: []string{"audit"},
			want:   "both cert-file and key-file",
		},
		{
			name:   "plain HTTP off loopback",
			edit:   func(c *centre.Config) { c.API.Listen, c.API.TLS.Plain = "0.0.0.0:8443", true },
			fields: []string{"api.tls.plain"},
			want:   "loopback address only",
		},
		{
			name:   "a certificate without its key",
			edit:   func(c *centre.Config) { c.API.TLS.Cert = "/etc/medfed/api.crt" },
			fields: []string{"api.tls"},
			want:   "both cert and key",
		},
		{
			name:   "a bad certificate host",
			edit:   func(c *centre.Config) { c.API.TLS.Hosts = []string{"a b"} },
			fields: []string{"api.tls.hosts[0]"},
			want:   "not a host name",
		},
		{
			name:   "max batch zero",
			edit:   func(c *centre.Config) { c.Ledger.MaxBatch = 0 },
			fields: []string{"ledger.max-batch"},
			want:   "between 1 and 65536",
		},
		{
			name:   "max batch too big",
			edit:   func(c *centre.Config) { c.Ledger.MaxBatch = 70000 },
			fields: []string{"ledger.max-batch"},
			want:   "got 70000",
		},
		{
			name:   "checkpoint gap too long",
			edit:   func(c *centre.Config) { c.Ledger.CheckpointGap = 2 * time.Hour },
			fields: []string{"ledger.checkpoint-gap"},
			want:   "between 0 and 1h, got 2h0m0s",
		},
		{
			name:   "negative checkpoint gap",
			edit:   func(c *centre.Config) { c.Ledger.CheckpointGap = -time.Millisecond },
			fields: []string{"ledger.checkpoint-gap"},
			want:   "got -1ms",
		},
		{
			name: "device bounds",
			edit: func(c *centre.Config) { c.Devices = centre.DeviceConfig{ReadingsPerHour: 1, ReadingsBurst: 100} },
		},
		{
			name:   "device rate zero",
			edit:   func(c *centre.Config) { c.Devices.ReadingsPerHour = 0 },
			fields: []string{"devices.readings-per-hour"},
			want:   "got 0",
		},
		{
			name:   "device burst under a batch",
			edit:   func(c *centre.Config) { c.Devices.ReadingsBurst = 99 },
			fields: []string{"devices.readings-burst"},
			want:   "100 (a full batch)",
		},
		{
			name:   "log level",
			edit:   func(c *centre.Config) { c.Log.Level = "verbose" },
			fields: []string{"log.level"},
			want:   "debug, info, warn, error",
		},
		{
			name:   "log format",
			edit:   func(c *centre.Config) { c.Log.Format = "yaml" },
			fields: []string{"log.format"},
			want:   "text, json",
		},
		{
			name: "pseudonym bounds",
			edit: func(c *centre.Config) {
				c.Pseudonym.RateLimit = 1_000_000_000
				c.Pseudonym.RateWindow = 720 * time.Hour
			},
		},
		{
			name:   "rate limit zero",
			edit:   func(c *centre.Config) { c.Pseudonym.RateLimit = 0 },
			fields: []string{"pseudonym.rate-limit"},
			want:   "between 1 and 1000000000, got 0",
		},
		{
			name:   "rate limit too big",
			edit:   func(c *centre.Config) { c.Pseudonym.RateLimit = 1_000_000_001 },
			fields: []string{"pseudonym.rate-limit"},
			want:   "got 1000000001",
		},
		{
			name:   "rate window too short",
			edit:   func(c *centre.Config) { c.Pseudonym.RateWindow = 999 * time.Millisecond },
			fields: []string{"pseudonym.rate-window"},
			want:   "between 1s and 720h, got 999ms",
		},
		{
			name:   "rate window too long",
			edit:   func(c *centre.Config) { c.Pseudonym.RateWindow = 721 * time.Hour },
			fields: []string{"pseudonym.rate-window"},
			want:   "between 1s and 720h",
		},
		{
			name: "identifier systems",
			edit: func(c *centre.Config) {
				c.Pseudonym.Systems = []pseudonym.System{mrnX, {Name: "luhn-id", URI: "urn:example:luhn", Pattern: "[0-9]+", Check: "luhn"}}
			},
		},
		{
			name: "bad identifier systems",
			edit: func(c *centre.Config) {
				bad := mrnX
				bad.Pattern = "[A-Z"
				bad.Case = "title"
				c.Pseudonym.Systems = []pseudonym.System{mrnX, bad}
			},
			fields: []string{"pseudonym.systems[1].name", "pseudonym.systems[1].uri", "pseudonym.systems[1].case", "pseudonym.systems[1].pattern"},
			want:   `"mrn-x" is already the name of identifier system 0`,
		},
		{
			name: "identifier system named nhs",
			edit: func(c *centre.Config) {
				nhs := mrnX
				nhs.Name = "nhs"
				c.Pseudonym.Systems = []pseudonym.System{nhs}
			},
			fields: []string{"pseudonym.systems[0].name"},
			want:   "built-in NHS",
		},
		{
			name: "three problems",
			edit: func(c *centre.Config) {
				c.Log.Format = "xml"
				c.Centre.Name = ""
				c.P2P.Listen = append(c.P2P.Listen, "/ip4/127.0.0.1/tcp/abc")
			},
			fields: []string{"centre.name", "p2p.listen[1]", "log.format"},
			want:   "required",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.edit(&c)
			err := c.Validate()
			if len(tt.fields) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var problems centre.ConfigErrors
			if !errors.As(err, &problems) {
				t.Fatalf("Validate() = %v, want ConfigErrors", err)
			}
			var fields []string
			for _, p := range problems {
				fields = append(fields, p.Field)
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

func TestPseudonymConfigRules(t *testing.T) {
	c := validConfig()
	if c.Pseudonym.RateLimit != 1_000_000 || c.Pseudonym.RateWindow != 24*time.Hour || c.Pseudonym.Systems != nil {
		t.Errorf("default pseudonym config = %+v, want 1000000 per 24h and no systems", c.Pseudonym)
	}
	c.Pseudonym.Systems = []pseudonym.System{mrnX}
	rules, err := c.Pseudonym.Rules()
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"mrn-x|ab 123456", "nhs|943 476 5919"} {
		if _, err := rules.Parse(in); err != nil {
			t.Errorf("Parse(%q): %v", in, err)
		}
	}
	c.Pseudonym.Systems[0].Check = "crc32"
	var problems pseudonym.SystemErrors
	if _, err := c.Pseudonym.Rules(); !errors.As(err, &problems) || len(problems) != 1 || problems[0].Field != "check" {
		t.Errorf("Rules() with a bad check = %v, want one SystemError on check", err)
	}
}

func TestConfigErrorsError(t *testing.T) {
	err := centre.ConfigErrors{
		{Field: "centre.name", Problem: "required"},
		{Field: "ledger.max-batch", Problem: "too big"},
	}
	want := "centre.name: required; ledger.max-batch: too big"
	if got := err.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestDefaultConfigIsFresh(t *testing.T) {
	a := centre.DefaultConfig()
	a.P2P.Listen[0] = "/ip4/10.0.0.1/tcp/1"
	if b := centre.DefaultConfig(); b.P2P.Listen[0] != "/ip4/127.0.0.1/tcp/0" {
		t.Errorf("DefaultConfig shares its listen slice: got %q", b.P2P.Listen[0])
	}
}

func ExampleConfig_Validate() {
	cfg := centre.DefaultConfig()
	cfg.Centre.Name = "St Mary's"
	cfg.Federation.ID = "medfed-demo"
	cfg.Ledger.MaxBatch = 0

	var problems centre.ConfigErrors
	if errors.As(cfg.Validate(), &problems) {
		for _, p := range problems {
			fmt.Println(p)
		}
	}
	// Output:
	// centre.name: "St Mary's" is not a valid name: use 1 to 63 lower-case letters, digits and '-', starting with a letter or digit
	// data.dir: required
	// ledger.max-batch: must be between 1 and 65536, got 0
}
