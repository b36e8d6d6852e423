// Package e2e tests medfed as its operators run it: real medfed processes,
// real data directories, real signals.
package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// medfed is the path of the binary built for this test run.
var medfed string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "medfed-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	medfed = filepath.Join(dir, "medfed")
	// With the fault-injection clock (node/clock), which only the chaos
	// test moves: every other test's nodes read no offset file, and run as
	// the binary ships.
	// -buildvcs=auto: the revision stamped, as a release build has it,
	// whatever GOFLAGS says, wherever git can read the checkout.
	build := exec.Command("go", "build", "-buildvcs=auto", "-tags", "medfedfaults", "-o", medfed, "../cmd/medfed")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building medfed:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// medfedCmd runs medfed to completion and returns its exit code and output.
func medfedCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runCmd(t, exec.Command(medfed, args...))
}

// runCmd runs cmd to completion and returns its exit code and output.
func runCmd(t *testing.T, cmd *exec.Cmd) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String(), errOut.String()
	default:
		t.Fatalf("running %v: %v", cmd.Args, err)
		return -1, "", ""
	}
}
