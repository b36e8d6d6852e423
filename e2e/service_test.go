package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The systemd unit in configs/ is one systemd accepts, runs the binary it
// names, and keeps the hardening a hospital's IT team expects: systemd's
// own exposure score at most 2.0 of 10 ("OK"), the data directory the only
// writable path.
func TestServiceUnitIsValidAndHardened(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed here")
	}
	unit, err := os.ReadFile("../configs/medfed.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ProtectSystem=strict", "NoNewPrivileges=yes", "DynamicUser=yes", "StateDirectory=medfed", "ExecStart=/usr/local/bin/medfed node --config /etc/medfed/centre.yaml"} {
		if !strings.Contains(string(unit), "\n"+want+"\n") {
			t.Errorf("the unit lacks %q", want)
		}
	}
	// The unit names the installed binary; verify checks that it exists,
	// so it is checked here against the one built for this run.
	path := filepath.Join(t.TempDir(), "medfed.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/medfed", medfed)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCmd(t, exec.Command(analyze, "verify", path)); code != 0 || errOut != "" {
		t.Errorf("systemd-analyze verify: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCmd(t, exec.Command(analyze, "security", "--offline=true", "--threshold=20", path)); code != 0 {
		t.Errorf("systemd-analyze security: exposure above 2.0 (exit %d)\n%s%s", code, out, errOut)
	}
}

// The container recipe in configs/ builds from this module's Go release,
// runs as a user that is not root, publishes the ports its configuration
// listens on, and starts a node with a configuration medfed accepts. (The
// image itself is built where a registry is reachable: its base images
// are pulled.)
func TestContainerRecipeMatchesTheRepository(t *testing.T) {
	recipe, err := os.ReadFile("../configs/container/Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	var (
		froms, exposed []string
		copies         [][]string
		user, cmd      string
	)
	for _, line := range strings.Split(string(recipe), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "FROM":
			froms = append(froms, f[1])
		case "EXPOSE":
			exposed = append(exposed, f[1:]...)
		case "COPY":
			copies = append(copies, f[1:])
		case "USER":
			user = f[1]
		case "CMD":
			cmd = strings.Join(f[1:], " ")
		}
	}
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if len(froms) != 2 || goVersion == nil || !strings.Contains(froms[0], "golang:"+string(goVersion[1])+"-") {
		t.Errorf("the build stage is %v, want Go %s's image and a runtime stage", froms, goVersion)
	}
	if user == "" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
		t.Errorf("the image runs as %q, want a user that is not root", user)
	}
	if cmd != `["node", "--config", "/etc/medfed/centre.yaml"]` {
		t.Errorf("the image runs %s, want medfed node with /etc/medfed/centre.yaml", cmd)
	}
	var config string
	for _, c := range copies {
		if c[len(c)-1] == "/etc/medfed/centre.yaml" {
			config = filepath.Join("..", c[len(c)-2])
		}
	}
	if config == "" {
		t.Fatal("the recipe copies no configuration to /etc/medfed/centre.yaml")
	}
	check := exec.Command(medfed, "config", "check", "--config", config)
	check.Env = append(os.Environ(), "MEDFED_CENTRE_NAME=st-marys", "MEDFED_FEDERATION_ID=north")
	if code, out, errOut := runCmd(t, check); code != 0 {
		t.Fatalf("medfed config check of %s: exit %d\n%s%s", config, code, out, errOut)
	}
	// The ports the configuration listens on, and the metrics', are the
	// ones published.
	yaml, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	ports := regexp.MustCompile(`(?:tcp/|:)(\d+)\s*$`)
	want := []string{"9464/tcp"}
	for _, line := range strings.Split(string(yaml), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if m := ports.FindStringSubmatch(line); m != nil {
			want = append(want, m[1]+"/tcp")
		}
	}
	if len(want) < 3 {
		t.Fatalf("found the ports %v in %s, want the p2p and API ones too", want, config)
	}
	for _, p := range want {
		if !slices.Contains(exposed, p) {
			t.Errorf("the recipe publishes %v, not %s, which the node listens on", exposed, p)
		}
	}
}
