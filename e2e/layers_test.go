package e2e

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/medfed/medfed/"

// floors are the layers of the house, bottom up: a package imports only
// packages on its own floor or below (README, "How the pieces fit").
var floors = []struct {
	name     string
	packages []string
}{
	{"ground", []string{"node", "node/clock", "node/closest", "node/durable", "node/enum", "node/heap", "node/ledger", "node/limit", "node/records", "node/schema", "node/sealed", "node/stats", "node/wire", "node/wire/passkeytest"}},
	{"protocols", []string{"federation", "federation/consent", "federation/query", "federation/patient", "federation/prescription", "federation/device", "directory", "pseudonym"}},
	{"centre", []string{"node/centre"}},
	{"adapters", []string{"node/api", "node/smart", "node/web", "node/admin", "node/metrics", "node/atna", "node/tracing"}},
	{"harness", []string{"node/nodetest/harness", "node/nodetest"}},
	{"commands", []string{"cmd/internal/bench", "cmd/internal/demo", "cmd/medfed"}},
}

// The imports of every package point down, and the rules the design
// states hold: federation, pseudonym and directory do not import each
// other; only node/centre creates a libp2p host; only cmd imports viper;
// below the adapters nothing speaks JSON (the API's field names live in
// node/api and node/admin), but the consent terms format that patients
// write (federation/consent's Spec), which the API shows as it is, and
// WebAuthn's client data, which a passkey's signature covers (node/wire
// checks it; node/wire/passkeytest writes it for tests).
func TestImportsPointDown(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	floor := map[string]int{}
	for i, f := range floors {
		for _, p := range f.packages {
			floor[p] = i
		}
	}
	siblings := []string{"federation", "pseudonym", "directory"}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(p.ImportPath, module)
		if name == "e2e" {
			continue
		}
		own, ok := floor[name]
		if !ok {
			t.Errorf("%s is on no floor: place it in floors and in the README", name)
			continue
		}
		seen++
		for _, imp := range p.Imports {
			switch {
			case imp == "github.com/libp2p/go-libp2p" && name != "node/centre":
				t.Errorf("%s creates a libp2p host; only node/centre does", name)
			case strings.HasPrefix(imp, "github.com/spf13/viper") && !strings.HasPrefix(name, "cmd/"):
				t.Errorf("%s imports viper; only the commands read configuration", name)
			case imp == "encoding/json" && own < floor["node/api"] && !slices.Contains([]string{"federation/consent", "node/wire", "node/wire/passkeytest"}, name):
				t.Errorf("%s speaks JSON; only the adapters (and the consent terms format) do", name)
			}
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			if floor[dep] > own {
				t.Errorf("%s (%s) imports %s (%s): imports point down", name, floors[own].name, dep, floors[floor[dep]].name)
			}
			if top := strings.Split(dep, "/")[0]; slices.Contains(siblings, top) && slices.Contains(siblings, strings.Split(name, "/")[0]) && top != strings.Split(name, "/")[0] {
				t.Errorf("%s imports %s: federation, pseudonym and directory do not import each other", name, dep)
			}
		}
	}
	if seen == 0 {
		t.Fatal("go list listed no package")
	}
}
