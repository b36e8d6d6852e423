package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	node "github.com/medfed/medfed/node/centre"
)

type ack struct {
	index int64
	hash  string
}

// soakUntilKilled runs "medfed ledger soak" on dir, lets it acknowledge at
// least minAcks entries, kills it with SIGKILL mid-stream and returns every
// entry it acknowledged.
func soakUntilKilled(t *testing.T, dir string, minAcks int) []ack {
	t.Helper()
	cmd := exec.Command(medfed, "ledger", "soak", "--data", dir, "--writers", "16")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	var acks []ack
	deadline := time.Now().Add(30 * time.Second)
	killed := false
	for lines.Scan() {
		var a ack
		if _, err := fmt.Sscanf(lines.Text(), "ack %d %s", &a.index, &a.hash); err != nil {
			t.Fatalf("soak printed %q: %v", lines.Text(), err)
		}
		acks = append(acks, a)
		if !killed && (len(acks) >= minAcks || time.Now().After(deadline)) {
			// Kill while writers are mid-append; keep reading what it
			// printed before it died.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	if err := lines.Err(); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("soak ended with %v, not by SIGKILL; stderr: %s", err, stderr.String())
	}
	if len(acks) < minAcks {
		t.Fatalf("soak acknowledged only %d entries", len(acks))
	}
	return acks
}

// A medfed process appending in a loop is killed with SIGKILL, three times
// over; after each, every entry it acknowledged is in the ledger and the
// ledger verifies.
func TestSIGKILLLosesNoAcknowledgedEntry(t *testing.T) {
	dir := t.TempDir()
	var all []ack
	for round, minAcks := range []int{500, 3000, 1200} {
		all = append(all, soakUntilKilled(t, dir, minAcks)...)

		code, out, errOut := medfedCmd(t, "ledger", "verify", "--data", dir)
		if code != 0 {
			t.Fatalf("round %d: verify after SIGKILL exited %d: %s %s", round, code, out, errOut)
		}

		cfg := node.DefaultConfig()
		cfg.Centre.Name, cfg.Federation.ID, cfg.Data.Dir = "soak", "soak", dir
		c, err := node.Open(context.Background(), cfg, nil)
		if err != nil {
			t.Fatalf("round %d: reopening: %v", round, err)
		}
		for _, a := range all {
			e, err := c.Ledger.Entry(context.Background(), a.index)
			if err != nil {
				c.Close()
				t.Fatalf("round %d: acknowledged entry %d: %v", round, a.index, err)
			}
			if got := fmt.Sprintf("%x", sha256.Sum256(e.Body)); got != a.hash {
				c.Close()
				t.Fatalf("round %d: entry %d holds another entry than was acknowledged", round, a.index)
			}
		}
		t.Logf("round %d: %d acknowledged entries present, ledger of %d verifies", round, len(all), c.Ledger.Size())
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestASecondProcessCannotOpenTheSameDataDirectory(t *testing.T) {
	dir := t.TempDir()
	first := exec.Command(medfed, "ledger", "soak", "--data", dir, "--writers", "1")
	stdout, err := first.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		first.Process.Kill()
		first.Wait()
	}()
	if !bufio.NewScanner(stdout).Scan() { // it holds the directory once it acknowledges
		t.Fatal("first soak printed nothing")
	}
	go io.Copy(io.Discard, stdout)
	code, _, errOut := medfedCmd(t, "ledger", "soak", "--data", dir, "--duration", "1s")
	if code == 0 || !strings.Contains(errOut, "data directory in use by another medfed process (pid") {
		t.Fatalf("second process exited %d: %s", code, errOut)
	}
}

// soak refuses a real centre's data directory: its ledger has another
// origin.
func TestSoakRefusesARealCentre(t *testing.T) {
	keep := t.TempDir()
	if code, _, errOut := medfedCmd(t, "demo", "--keep", keep); code != 0 {
		t.Fatalf("demo: %s", errOut)
	}
	code, _, errOut := medfedCmd(t, "ledger", "soak", "--data", keep+"/centre-a", "--duration", "1s")
	if code == 0 || !strings.Contains(errOut, "belongs to") {
		t.Fatalf("soak on a real centre exited %d: %s", code, errOut)
	}
}
