package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
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
