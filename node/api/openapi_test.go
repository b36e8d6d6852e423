package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/node/api"
)

// servedDoc is /openapi.json as a centre serves it (the document needs
// no federation: it is built from the route table).
func servedDoc(t *testing.T) []byte {
	t.Helper()
	srv, err := api.New(api.Options{Node: failing{}, Staff: openStaff(t)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return call(t, "GET", hs.URL+"/openapi.json", "", nil).want(t, 200, "openapi.json").raw
}

// redocly is the OpenAPI linter the CI installs (npm ci --prefix
// e2e/fhirjs); without it the lint is skipped, unless MEDFED_REQUIRE_NODE
// says it must run.
func redocly(t *testing.T) (node, cli string) {
	t.Helper()
	cli, err := filepath.Abs("../../e2e/fhirjs/node_modules/@redocly/cli/bin/cli.js")
	if err != nil {
		t.Fatal(err)
	}
	node, lookErr := exec.LookPath("node")
	_, statErr := os.Stat(cli)
	if lookErr == nil && statErr == nil {
		return node, cli
	}
	if os.Getenv("MEDFED_REQUIRE_NODE") == "1" {
		t.Fatalf("MEDFED_REQUIRE_NODE=1, but the linter cannot run (npm ci --prefix e2e/fhirjs installs it): %v", errors.Join(lookErr, statErr))
	}
	t.Skip("no node or no e2e/fhirjs/node_modules (npm ci --prefix e2e/fhirjs): the OpenAPI lint is skipped")
	return "", ""
}

// A third party builds clients and patient apps from /openapi.json:
// @redocly/cli's recommended rules find no error in it. Its warnings
// are logged.
func TestOpenAPILintsClean(t *testing.T) {
	node, cli := redocly(t)
	dir := t.TempDir() // the linter's working directory: no redocly.yaml in it
	file := filepath.Join(dir, "openapi.json")
	if err := os.WriteFile(file, servedDoc(t), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, cli, "lint", "--format=stylish", "--extends=recommended", "--max-problems=1000", file)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true")
	out, err := cmd.CombinedOutput()
	problems := regexp.MustCompile(`(?m)^\s+\d+:\d+\s+(error|warning)\s+(\S+)\s+(.*)$`).FindAllStringSubmatch(string(out), -1)
	var errs []string
	for _, p := range problems {
		if p[1] == "error" {
			errs = append(errs, p[2]+": "+p[3])
		} else {
			t.Logf("warning %s: %s", p[2], p[3])
		}
	}
	if err != nil || len(errs) > 0 {
		t.Fatalf("redocly lint: %v; %d error(s):\n%s\n%s", err, len(errs), strings.Join(errs, "\n"), out)
	}
	if !strings.Contains(string(out), "valid") {
		t.Fatalf("redocly lint did not say the document is valid:\n%s", out)
	}
}

// Every operation is grouped under a tag the document describes, has an
// ID of its own and says what it does beyond its summary; every
// parameter has a schema, and the identifiers have their patterns.
func TestOpenAPIDescribesEveryOperation(t *testing.T) {
	var doc struct {
		Servers []struct {
			URL       string
			Variables map[string]struct{ Default string }
		}
		Tags  []struct{ Name, Description string }
		Paths map[string]map[string]struct {
			OperationID string
			Summary     string
			Description string
			Tags        []string
			Security    *[]map[string][]string
			Parameters  []struct {
				Name   string
				Schema map[string]any
			}
			Responses map[string]any
		}
		Components struct {
			Schemas map[string]map[string]any
		}
	}
	if err := json.Unmarshal(servedDoc(t), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Servers) != 1 || !strings.Contains(doc.Servers[0].URL, "{host}") || doc.Servers[0].Variables["host"].Default == "" {
		t.Errorf("servers: %+v, want one templated on the centre's host", doc.Servers)
	}
	tags := map[string]bool{}
	for _, tag := range doc.Tags {
		if tag.Description == "" {
			t.Errorf("tag %s has no description", tag.Name)
		}
		tags[tag.Name] = true
	}
	ids := map[string]string{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			name := strings.ToUpper(method) + " " + path
			if prev, ok := ids[op.OperationID]; ok || op.OperationID == "" {
				t.Errorf("%s: operationId %q, as %s's", name, op.OperationID, prev)
			}
			ids[op.OperationID] = name
			if len(op.Tags) != 1 || !tags[op.Tags[0]] {
				t.Errorf("%s: tags %v, want one of the document's", name, op.Tags)
			}
			if len(op.Description) <= len(op.Summary) {
				t.Errorf("%s: the description says no more than the summary", name)
			}
			if op.Security == nil {
				t.Errorf("%s: no security (a public route says [])", name)
			}
			for _, p := range op.Parameters {
				if p.Schema["type"] == nil {
					t.Errorf("%s: parameter %s has no schema", name, p.Name)
				}
				if p.Name == "pseudonym" && p.Schema["pattern"] != "^[0-9a-fA-F]{64}$" {
					t.Errorf("%s: the pseudonym's pattern is %v", name, p.Schema["pattern"])
				}
			}
			for status := range op.Responses {
				if status >= "400" && !slices.Contains([]string{"400", "401", "403", "404", "405", "409", "410", "413", "429", "500", "503", "504"}, status) {
					t.Errorf("%s: status %s is not described", name, status)
				}
			}
		}
	}
	// What reflection cannot see, the body types' tags say.
	query := doc.Components.Schemas["QueryBody"]["properties"].(map[string]any)
	if e := query["purpose"].(map[string]any)["enum"]; !slices.Equal(asStrings(e), []string{"treatment", "research"}) {
		t.Errorf("QueryBody.purpose: enum %v", e)
	}
	if p := query["classes"].(map[string]any)["items"].(map[string]any)["pattern"]; p == nil {
		t.Error("QueryBody.classes: its items have no pattern")
	}
	reason := doc.Components.Schemas["EmergencyBody"]["properties"].(map[string]any)["reason"].(map[string]any)
	if !slices.Equal(asStrings(reason["enum"]), []string{"unconscious", "life-threatening", "urgent-treatment", "public-health"}) {
		t.Errorf("EmergencyBody.reason: enum %v", reason["enum"])
	}
	document := doc.Components.Schemas["DocumentBody"]["properties"].(map[string]any)["document"].(map[string]any)
	if document["$ref"] != "#/components/schemas/SignedConsentDocument" {
		t.Errorf("DocumentBody.document: %v, want the signed document's layout", document)
	}
}

func asStrings(v any) []string {
	var out []string
	for _, s := range asSlice(v) {
		out = append(out, s.(string))
	}
	return out
}
