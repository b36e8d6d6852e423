package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/pseudonym"
)

// mrnSystem is a pseudonym section with one custom identifier system, to
// follow required; more entries or keys of the last entry may follow it.
const mrnSystem = `
pseudonym:
  systems:
  - name: mrn-x
    uri: https://hospital.example/Id/mrn-x
    strip: " "
    case: upper
    pattern: '[A-Z]{2}[0-9]{6}'
`

// required holds the three keys without a default, valid.
const required = `
centre:
  name: centre-t
federation:
  id: medfed-test
data:
  dir: /srv/medfed/centre-t
`

// clearConfigEnv unsets every MEDFED_* variable of a config key for the
// duration of the test, so the caller's environment cannot change a result.
func clearConfigEnv(t *testing.T) {
	t.Helper()
	for _, k := range configKeys().keys {
		t.Setenv(k.env, "") // restores the old value after the test
		os.Unsetenv(k.env)
	}
}

// writeConfig writes a config file into a fresh directory and returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "centre.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// medfed runs the medfed command line as main does.
func medfed(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// reportedFields returns the fields that a failed `config check` of path
// names on stderr, in order.
func reportedFields(t *testing.T, stderr, path string) []string {
	t.Helper()
	text, ok := strings.CutPrefix(strings.TrimSuffix(stderr, "\n"), "medfed: "+path+": ")
	if !ok {
		t.Fatalf("stderr %q does not start with the file name %s", stderr, path)
	}
	lines := []string{text}
	if first, rest, ok := strings.Cut(text, "\n"); ok {
		if !strings.HasSuffix(first, " problems:") {
			t.Fatalf("stderr %q: first line of several is not a count", stderr)
		}
		lines = strings.Split(rest, "\n")
	}
	var fields []string
	for _, line := range lines {
		field, _, ok := strings.Cut(strings.TrimPrefix(line, "  "), ": ")
		if !ok {
			t.Fatalf("stderr line %q is not field: problem", line)
		}
		fields = append(fields, field)
	}
	return fields
}

func TestConfigCheckExamples(t *testing.T) {
	clearConfigEnv(t)
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("want the three example configs, got %q (%v)", files, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			code, stdout, stderr := medfed(t, "config", "check", "--config", file)
			if code != exitOK {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr)
			}
			centre := strings.TrimSuffix(filepath.Base(file), ".yaml")
			data, err := filepath.Abs(filepath.Join("../../data", centre))
			if err != nil {
				t.Fatal(err)
			}
			want := file + ": ok (centre " + centre + ", federation medfed-demo, data " + data + ")\n" +
				"identifier systems: nhs https://fhir.nhs.uk/Id/nhs-number\n"
			if stdout != want {
				t.Errorf("stdout = %q, want %q", stdout, want)
			}
		})
	}
}

func TestConfigCheck(t *testing.T) {
	tests := []struct {
		name   string
		yaml   string
		env    map[string]string
		fields []string // every field reported, in order; none means success
		want   string   // in stdout on success, in stderr on failure
	}{
		{
			name: "required keys only",
			yaml: required,
			want: "ok (centre centre-t, federation medfed-test, data /srv/medfed/centre-t)",
		},
		{
			name:   "unknown key",
			yaml:   required + "  nmae: centre-t\n",
			fields: []string{"data.nmae"},
			want:   "data.nmae: unknown key",
		},
		{
			name:   "unknown section",
			yaml:   required + "logging:\n  level: debug\n",
			fields: []string{"logging"},
			want:   "logging: unknown key",
		},
		{
			name:   "typo in a required key",
			yaml:   "centre:\n  nmae: centre-t\nfederation:\n  id: medfed-test\ndata:\n  dir: /srv\n",
			fields: []string{"centre.name", "centre.nmae"},
			want:   "centre.nmae: unknown key",
		},
		{
			name:   "bool for int",
			yaml:   required + "ledger:\n  max-batch: true\n",
			fields: []string{"ledger.max-batch"},
			want:   "ledger.max-batch: expected an integer, got bool",
		},
		{
			name:   "quoted number for int",
			yaml:   required + "ledger:\n  max-batch: \"4096\"\n",
			fields: []string{"ledger.max-batch"},
			want:   "ledger.max-batch: expected an integer, got string",
		},
		{
			name:   "fraction for int",
			yaml:   required + "ledger:\n  max-batch: 1.5\n",
			fields: []string{"ledger.max-batch"},
			want:   "expected an integer, got float",
		},
		{
			name:   "list for string",
			yaml:   required + "log:\n  level: [info]\n",
			fields: []string{"log.level"},
			want:   "log.level: expected a string, got list",
		},
		{
			name:   "number for string",
			yaml:   "centre:\n  name: centre-t\nfederation:\n  id: 42\ndata:\n  dir: /srv\n",
			fields: []string{"federation.id"},
			want:   "federation.id: expected a string, got integer",
		},
		{
			name:   "string for list",
			yaml:   required + "p2p:\n  listen: /ip4/127.0.0.1/tcp/4101\n",
			fields: []string{"p2p.listen"},
			want:   "p2p.listen: expected a list, got string",
		},
		{
			name:   "number in a list of strings",
			yaml:   required + "p2p:\n  listen: [/ip4/127.0.0.1/tcp/4101, 4102]\n",
			fields: []string{"p2p.listen[1]"},
			want:   "p2p.listen[1]: expected a string, got integer",
		},
		{
			name:   "scalar for a section",
			yaml:   required + "api: 8080\n",
			fields: []string{"api"},
			want:   "api: expected a mapping, got integer",
		},
		{
			name:   "missing required key",
			yaml:   "centre:\n  name: centre-t\nfederation:\n  id: medfed-test\n",
			fields: []string{"data.dir"},
			want:   "data.dir: required",
		},
		{
			name:   "empty file",
			yaml:   "",
			fields: []string{"centre.name", "federation.id", "data.dir"},
			want:   "3 problems:",
		},
		{
			name:   "invalid value",
			yaml:   required + "p2p:\n  listen: [/dns4/example.org/tcp/4101]\n",
			fields: []string{"p2p.listen[0]"},
			want:   "not supported",
		},
		{
			name: "three problems at once",
			yaml: required + "ledger:\n  max-batch: true\n  group: 3\nlog:\n  format: xml\n",
			// type, unknown key, invalid value; each in the order of centre.Config
			fields: []string{"ledger.max-batch", "ledger.group", "log.format"},
			want:   "3 problems:\n  ledger.max-batch: expected an integer, got bool\n  ledger.group: unknown key\n  log.format: ",
		},
		{
			name: "env overrides the file",
			yaml: required,
			env:  map[string]string{"MEDFED_CENTRE_NAME": "centre-z"},
			want: "ok (centre centre-z,",
		},
		{
			name: "env overrides a bad value in the file",
			yaml: required + "log:\n  level: loud\n",
			env:  map[string]string{"MEDFED_LOG_LEVEL": "debug"},
			want: ": ok (",
		},
		{
			name:   "bad env value",
			yaml:   required,
			env:    map[string]string{"MEDFED_LEDGER_MAX_BATCH": "abc"},
			fields: []string{"ledger.max-batch"},
			want:   "ledger.max-batch: MEDFED_LEDGER_MAX_BATCH: not an integer",
		},
		{
			name:   "env value out of range",
			yaml:   required,
			env:    map[string]string{"MEDFED_LEDGER_MAX_BATCH": "99999999999999999999"},
			fields: []string{"ledger.max-batch"},
			want:   "MEDFED_LEDGER_MAX_BATCH: out of range",
		},
		{
			name:   "env value valid in type, not in range",
			yaml:   required,
			env:    map[string]string{"MEDFED_LEDGER_MAX_BATCH": "0"},
			fields: []string{"ledger.max-batch"},
			want:   "between 1 and 65536",
		},
		{
			name:   "env list item named",
			yaml:   required,
			env:    map[string]string{"MEDFED_P2P_LISTEN": "/ip4/127.0.0.1/tcp/4101, 127.0.0.1:4102"},
			fields: []string{"p2p.listen[1]"},
			want:   "did you mean /ip4/127.0.0.1/tcp/4102?",
		},
		{
			name: "custom identifier system",
			yaml: required + mrnSystem,
			want: "identifier systems: mrn-x https://hospital.example/Id/mrn-x, nhs https://fhir.nhs.uk/Id/nhs-number\n",
		},
		{
			name: "NHS number only by default",
			yaml: required,
			want: "\nidentifier systems: nhs https://fhir.nhs.uk/Id/nhs-number\n",
		},
		{
			name:   "unknown key in an identifier system",
			yaml:   required + mrnSystem + "    chek: luhn\n",
			fields: []string{"pseudonym.systems[0].chek"},
			want:   "pseudonym.systems[0].chek: unknown key",
		},
		{
			name:   "bad pattern",
			yaml:   required + strings.Replace(mrnSystem, "'[A-Z]{2}[0-9]{6}'", "'[A-Z'", 1),
			fields: []string{"pseudonym.systems[0].pattern"},
			want:   "pseudonym.systems[0].pattern: not a valid RE2 regular expression",
		},
		{
			name:   "problems of the second system after those of the first",
			yaml:   required + mrnSystem + "  - name: mrn-x\n    uri: urn:a|b\n    pattern: 1\n    extra: true\n",
			fields: []string{"pseudonym.systems[1].pattern", "pseudonym.systems[1].extra"},
			want:   "pseudonym.systems[1].pattern: expected a string, got integer",
		},
		{
			name:   "identifier systems validated together",
			yaml:   required + mrnSystem + "  - name: mrn-x\n    uri: urn:a|b\n    pattern: x\n",
			fields: []string{"pseudonym.systems[1].name", "pseudonym.systems[1].uri"},
			want:   "already the name of identifier system 0",
		},
		{
			name:   "one system instead of a list",
			yaml:   required + "pseudonym:\n  systems:\n    name: mrn-x\n",
			fields: []string{"pseudonym.systems"},
			want:   "pseudonym.systems: expected a list, got mapping",
		},
		{
			name:   "a string for a system",
			yaml:   required + "pseudonym:\n  systems: [mrn-x]\n",
			fields: []string{"pseudonym.systems[0]"},
			want:   "pseudonym.systems[0]: expected a mapping, got string",
		},
		{
			name:   "rate limit zero",
			yaml:   required + "pseudonym:\n  rate-limit: 0\n",
			fields: []string{"pseudonym.rate-limit"},
			want:   "pseudonym.rate-limit: must be between 1 and 1000000000, got 0",
		},
		{
			name:   "rate window without a unit",
			yaml:   required + "pseudonym:\n  rate-window: 86400\n",
			fields: []string{"pseudonym.rate-window"},
			want:   `expected a duration such as "1s", got integer`,
		},
		{
			name: "rate limit and window from env",
			yaml: required + "pseudonym:\n  rate-limit: 0\n  rate-window: 1ms\n",
			env:  map[string]string{"MEDFED_PSEUDONYM_RATE_LIMIT": "5000", "MEDFED_PSEUDONYM_RATE_WINDOW": "1h"},
			want: ": ok (",
		},
		{
			name:   "rate window from env out of range",
			yaml:   required,
			env:    map[string]string{"MEDFED_PSEUDONYM_RATE_WINDOW": "721h"},
			fields: []string{"pseudonym.rate-window"},
			want:   "between 1s and 720h",
		},
		{
			name:   "identifier systems from env refused",
			yaml:   required,
			env:    map[string]string{"MEDFED_PSEUDONYM_SYSTEMS": "mrn-x"},
			fields: []string{"pseudonym.systems"},
			want:   "pseudonym.systems: MEDFED_PSEUDONYM_SYSTEMS: cannot be set from the environment",
		},
		{
			name:   "every bad item of a list",
			yaml:   required + "p2p:\n  listen: [/ip4/127.0.0.1/tcp/1, /dns4/x/tcp/2, 127.0.0.1:3]\n",
			fields: []string{"p2p.listen[1]", "p2p.listen[2]"},
			want:   "not supported",
		},
		{
			name:   "psk file from env refuses quic from the file",
			yaml:   required + "p2p:\n  listen: [/ip4/127.0.0.1/udp/4101/quic-v1]\n",
			env:    map[string]string{"MEDFED_P2P_PSK_FILE": "/etc/medfed/psk"},
			fields: []string{"p2p.listen[0]"},
			want:   "private network",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearConfigEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			path := writeConfig(t, tt.yaml)
			code, stdout, stderr := medfed(t, "config", "check", "--config", path)
			if len(tt.fields) == 0 {
				if code != exitOK || !strings.Contains(stdout, tt.want) {
					t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant exit 0 and %q", code, stdout, stderr, tt.want)
				}
				return
			}
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if got := reportedFields(t, stderr, path); !slices.Equal(got, tt.fields) {
				t.Errorf("fields = %q, want %q; stderr:\n%s", got, tt.fields, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr does not contain %q:\n%s", tt.want, stderr)
			}
		})
	}
}

func TestLoadConfigIdentifierSystems(t *testing.T) {
	clearConfigEnv(t)
	path := writeConfig(t, required+mrnSystem+"  rate-limit: 500\n  rate-window: 1h\n")
	cfg, err := loadConfig(nil, path)
	if err != nil {
		t.Fatal(err)
	}
	want := []pseudonym.System{{
		Name:    "mrn-x",
		URI:     "https://hospital.example/Id/mrn-x",
		Strip:   " ",
		Case:    "upper",
		Pattern: "[A-Z]{2}[0-9]{6}",
	}}
	if !slices.Equal(cfg.Pseudonym.Systems, want) {
		t.Errorf("pseudonym.systems = %+v, want %+v", cfg.Pseudonym.Systems, want)
	}
	if cfg.Pseudonym.RateLimit != 500 || cfg.Pseudonym.RateWindow != time.Hour {
		t.Errorf("rate = %d per %s, want 500 per 1h", cfg.Pseudonym.RateLimit, cfg.Pseudonym.RateWindow)
	}
	rules, err := cfg.Pseudonym.Rules()
	if err != nil {
		t.Fatal(err)
	}
	if id, err := rules.Parse("mrn-x|ab 123456"); err != nil || id.Value != "AB123456" {
		t.Errorf("Parse(mrn-x|ab 123456) = %q, %v; want AB123456", id.Value, err)
	}
}

func TestConfigCheckFileErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		yaml string // written to path unless empty
		want string
	}{
		{name: "missing file", path: filepath.Join(dir, "nope.yaml"), want: "config file " + filepath.Join(dir, "nope.yaml") + " does not exist"},
		{name: "directory", path: dir, want: "is a directory"},
		{name: "yaml syntax", path: filepath.Join(dir, "syntax.yaml"), yaml: "centre:\n  name: [centre-t\n", want: filepath.Join(dir, "syntax.yaml") + ": not valid YAML: yaml: line"},
		{name: "list at the top", path: filepath.Join(dir, "list.yaml"), yaml: "- centre-t\n", want: filepath.Join(dir, "list.yaml") + ": line 1: expected a mapping of keys"},
		{name: "tab indentation", path: filepath.Join(dir, "tab.yaml"), yaml: "centre:\n\tname: centre-t\n", want: filepath.Join(dir, "tab.yaml") + ": not valid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearConfigEnv(t)
			if tt.yaml != "" {
				if err := os.WriteFile(tt.path, []byte(tt.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			code, _, stderr := medfed(t, "config", "check", "--config", tt.path)
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, exitUsage, tt.want)
			}
		})
	}
}

func TestConfigCheckUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "argument instead of --config", args: []string{"config", "check", "configs/centre-a.yaml"}, want: "takes no arguments"},
		{name: "unknown subcommand", args: []string{"config", "lint"}, want: `unknown command "lint"`},
		{name: "unknown flag", args: []string{"config", "check", "--confg", "x.yaml"}, want: "unknown flag: --confg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := medfed(t, tt.args...)
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, exitUsage, tt.want)
			}
		})
	}
}

func TestConfigPaths(t *testing.T) {
	// The working directory is neither the file's directory nor its parent,
	// so a path resolved against the wrong one shows.
	root := t.TempDir()
	work := filepath.Join(root, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "configs", "centre.yaml")
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	yaml := "centre:\n  name: centre-t\nfederation:\n  id: medfed-test\ndata:\n  dir: ../data/centre-t\np2p:\n  psk-file: psk.key\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(work)

	tests := []struct {
		name        string
		env         map[string]string
		dir, pskDir string
	}{
		{name: "from the file", dir: filepath.Join(root, "data", "centre-t"), pskDir: filepath.Join(root, "configs", "psk.key")},
		{
			name: "from the environment",
			env:  map[string]string{"MEDFED_DATA_DIR": "state", "MEDFED_P2P_PSK_FILE": "../k"},
			dir:  filepath.Join(work, "state"), pskDir: filepath.Join(root, "k"),
		},
		{
			name: "absolute",
			env:  map[string]string{"MEDFED_DATA_DIR": "/var/lib/medfed"},
			dir:  "/var/lib/medfed", pskDir: filepath.Join(root, "configs", "psk.key"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearConfigEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			// Through the command, with the file named relative to the
			// working directory.
			code, stdout, stderr := medfed(t, "config", "check", "--config", "../configs/centre.yaml")
			if want := "data " + tt.dir + ")"; code != exitOK || !strings.Contains(stdout, want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, want)
			}
			cfg, err := loadConfig(nil, "../configs/centre.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if cfg.P2P.PSKFile != tt.pskDir {
				t.Errorf("p2p.psk-file = %q, want %q", cfg.P2P.PSKFile, tt.pskDir)
			}
		})
	}
}

func TestLoadConfigWithoutFile(t *testing.T) {
	clearConfigEnv(t)
	t.Setenv("MEDFED_CENTRE_NAME", "centre-e")
	t.Setenv("MEDFED_FEDERATION_ID", "medfed-env")
	t.Setenv("MEDFED_DATA_DIR", "/srv/e")
	t.Setenv("MEDFED_P2P_LISTEN", "/ip4/127.0.0.1/tcp/4101, /ip6/::1/udp/4101/quic-v1,")
	t.Setenv("MEDFED_LEDGER_MAX_BATCH", "128")

	cfg, err := loadConfig(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	want := centre.DefaultConfig()
	want.Centre.Name = "centre-e"
	want.Federation.ID = "medfed-env"
	want.Data.Dir = "/srv/e"
	want.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/4101", "/ip6/::1/udp/4101/quic-v1"}
	want.Ledger.MaxBatch = 128
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("loadConfig = %+v, want %+v", cfg, want)
	}

	code, stdout, _ := medfed(t, "config", "check")
	if code != exitOK || !strings.Contains(stdout, "ok (centre centre-e") {
		t.Errorf("config check without a file: exit %d, stdout %q", code, stdout)
	}

	os.Unsetenv("MEDFED_DATA_DIR")
	_, err = loadConfig(nil, "")
	var problems centre.ConfigErrors
	var ue usageError
	if !errors.As(err, &problems) || !errors.As(err, &ue) || len(problems) != 1 || problems[0].Field != "data.dir" {
		t.Errorf("without MEDFED_DATA_DIR: err = %v, want a usage error naming data.dir only", err)
	}
}

func TestBindFlag(t *testing.T) {
	path := writeConfig(t, required+"ledger:\n  max-batch: 100\n")
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		dir      string
		maxBatch int
		listen   []string
		problem  string
	}{
		{
			name:     "file only",
			dir:      "/srv/medfed/centre-t",
			maxBatch: 100,
		},
		{
			name:     "env over file",
			env:      map[string]string{"MEDFED_DATA_DIR": "/env", "MEDFED_LEDGER_MAX_BATCH": "200"},
			dir:      "/env",
			maxBatch: 200,
		},
		{
			name:     "flag over env",
			args:     []string{"--data", "/flag", "--max-batch", "300"},
			env:      map[string]string{"MEDFED_DATA_DIR": "/env", "MEDFED_LEDGER_MAX_BATCH": "200"},
			dir:      "/flag",
			maxBatch: 300,
		},
		{
			name:     "unset flag does not override with its default",
			args:     []string{"--data", "/flag"},
			env:      map[string]string{"MEDFED_DATA_DIR": "/env"},
			dir:      "/flag",
			maxBatch: 100,
		},
		{
			name:     "list flag",
			args:     []string{"--listen", "/ip4/127.0.0.1/tcp/1", "--listen", "/ip4/127.0.0.1/tcp/2"},
			dir:      "/srv/medfed/centre-t",
			maxBatch: 100,
			listen:   []string{"/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2"},
		},
		{
			name:    "flag value validated",
			args:    []string{"--max-batch", "0"},
			problem: "ledger.max-batch: must be between 1 and 65536, got 0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearConfigEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var cfg centre.Config
			cmd := &cobra.Command{
				Use:           "node",
				SilenceUsage:  true,
				SilenceErrors: true,
				RunE: func(cmd *cobra.Command, _ []string) (err error) {
					cfg, err = loadConfig(cmd, path)
					return err
				},
			}
			cmd.Flags().String("data", "", "data directory")
			cmd.Flags().Int("max-batch", 4096, "entries per group commit")
			cmd.Flags().StringSlice("listen", nil, "listen multiaddrs")
			cmd.Flags().Bool("unbound", false, "a flag with no config key")
			bindFlag(cmd, "data", "data.dir")
			bindFlag(cmd, "max-batch", "ledger.max-batch")
			bindFlag(cmd, "listen", "p2p.listen")
			cmd.SetArgs(append(tt.args, "--unbound"))
			err := cmd.Execute()
			if tt.problem != "" {
				if exitCode(err) != exitUsage || !strings.Contains(err.Error(), tt.problem) {
					t.Fatalf("err = %v, want a usage error with %q", err, tt.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Data.Dir != tt.dir || cfg.Ledger.MaxBatch != tt.maxBatch {
				t.Errorf("data.dir = %q, ledger.max-batch = %d; want %q, %d", cfg.Data.Dir, cfg.Ledger.MaxBatch, tt.dir, tt.maxBatch)
			}
			if tt.listen != nil && !slices.Equal(cfg.P2P.Listen, tt.listen) {
				t.Errorf("p2p.listen = %q, want %q", cfg.P2P.Listen, tt.listen)
			}
		})
	}
}

func TestBindFlagUnknownKey(t *testing.T) {
	cmd := &cobra.Command{Use: "x"}
	cmd.Flags().String("data", "", "")
	defer func() {
		if recover() == nil {
			t.Error("bindFlag with an unknown key did not panic")
		}
	}()
	bindFlag(cmd, "data", "data.directory")
}

func TestBindFlagFileOnlyKey(t *testing.T) {
	cmd := &cobra.Command{Use: "x"}
	cmd.Flags().StringSlice("system", nil, "")
	defer func() {
		if recover() == nil {
			t.Error("bindFlag with a list of mappings did not panic")
		}
	}()
	bindFlag(cmd, "system", "pseudonym.systems")
}

func TestConfigKeys(t *testing.T) {
	var names, envs []string
	for _, k := range configKeys().keys {
		names = append(names, k.name)
		envs = append(envs, k.env)
	}
	wantNames := []string{"centre.name", "federation.id", "data.dir", "p2p.listen", "p2p.psk-file", "api.listen", "api.tls.cert", "api.tls.key", "api.tls.hosts", "api.tls.plain", "api.token-lifetime", "ledger.max-batch", "ledger.checkpoint-interval", "ledger.checkpoint-gap", "pseudonym.rate-limit", "pseudonym.rate-window", "pseudonym.systems", "records.classes", "records.locations", "records.types", "patient.page-size", "consent.lease", "prescription.over-prescription", "devices.readings-per-hour", "devices.readings-burst", "log.level", "log.format", "metrics.enabled", "metrics.listen", "tracing.endpoint", "tracing.sample-ratio", "audit.collector", "audit.format", "audit.ca-file", "audit.cert-file", "audit.key-file", "audit.server-name", "audit.hostname", "audit.facility"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("keys = %q, want %q", names, wantNames)
	}
	if envs[11] != "MEDFED_LEDGER_MAX_BATCH" || envs[4] != "MEDFED_P2P_PSK_FILE" || envs[9] != "MEDFED_API_TLS_PLAIN" {
		t.Errorf("environment variables = %q", envs)
	}
}

// Durations: centre.Config has none yet, but the first one must not accept a
// bare number (is 5 seconds or nanoseconds?).
func TestStrictDuration(t *testing.T) {
	tests := []struct {
		name    string
		raw     any
		want    time.Duration
		problem string
	}{
		{name: "string", raw: "1m30s", want: 90 * time.Second},
		{name: "integer", raw: 5, problem: `expected a duration such as "1s", got integer`},
		{name: "float", raw: 1.5, problem: `expected a duration such as "1s", got float`},
		{name: "no unit", raw: "5", problem: `"5" is not a duration`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, problems := decodeStrict("x.timeout", tt.raw, configDurationType)
			if tt.problem != "" {
				if len(problems) != 1 || problems[0].Field != "x.timeout" || !strings.Contains(problems[0].Problem, tt.problem) {
					t.Errorf("problems = %v, want x.timeout: %s", problems, tt.problem)
				}
				return
			}
			if problems != nil || v.Interface() != tt.want {
				t.Errorf("decode = %v, %v; want %v", v, problems, tt.want)
			}
		})
	}
	if _, err := parseEnvValue("5", configDurationType); err == nil {
		t.Error(`environment value "5" accepted as a duration`)
	}
	if v, err := parseEnvValue("250ms", configDurationType); err != nil || v.Interface() != 250*time.Millisecond {
		t.Errorf(`parseEnvValue("250ms") = %v, %v`, v, err)
	}
}
