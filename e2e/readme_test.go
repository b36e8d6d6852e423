package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medfed/medfed/node/nodetest"
)

// tourBlock is one shell block of the README's tour, for one terminal.
type tourBlock struct {
	terminal int
	script   string
}

// readmeTour returns the sh blocks of the README's tour section, each
// headed by the terminal it is typed in.
func readmeTour(t *testing.T) []tourBlock {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start := strings.Index(text, "### Tour:")
	if start < 0 {
		t.Fatal("the README has no tour section (### Tour:)")
	}
	text = text[start:]
	if end := regexp.MustCompile(`\n##+ `).FindStringIndex(text[4:]); end != nil {
		text = text[:end[0]+4]
	}
	head := regexp.MustCompile(`^# terminal (\d)`)
	var blocks []tourBlock
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(text, -1) {
		h := head.FindStringSubmatch(m[1])
		if h == nil {
			t.Fatalf("a tour block does not say which terminal it is for:\n%s", m[1])
		}
		blocks = append(blocks, tourBlock{terminal: int(h[1][0] - '0'), script: m[1]})
	}
	if len(blocks) < 4 {
		t.Fatalf("the tour has %d blocks", len(blocks))
	}
	return blocks
}

// tourDir makes a directory that looks like a fresh clone to the tour:
// the module's sources (linked) and a copy of configs/, so that the
// centres' data goes to its own data/.
func tourDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"go.mod", "go.sum", "cmd", "node", "federation", "pseudonym", "directory"} {
		if err := os.Symlink(filepath.Join(repo, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.CopyFS(filepath.Join(dir, "configs"), os.DirFS(filepath.Join(repo, "configs"))); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestTheREADMETourWorksAsWritten runs every command of the README's
// tour, as written, in a copy of the repository: terminals 1 and 2 run in
// the background, terminal 3's blocks one after the other, each in bash
// with -e, so any failing command fails the test.
func TestTheREADMETourWorksAsWritten(t *testing.T) {
	for _, tool := range []string{"curl", "jq", "bash", "base64"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("MEDFED_REQUIRE_TOUR") != "" {
				t.Fatalf("the README's tour needs %s", tool)
			}
			t.Skipf("the README's tour needs %s (CI installs it and sets MEDFED_REQUIRE_TOUR)", tool)
		}
	}
	blocks := readmeTour(t)
	dir := tourDir(t)
	var (
		background []*exec.Cmd
		logs       []*nodetest.Log
		shells     []*exec.Cmd // terminal 3's, whose & jobs outlive them
	)
	defer func() {
		// centre-c's node, started with & in terminal 3, outlives its
		// shell: stop it and wait for it to go (the next test uses its
		// ports), finding it by the pid in its data directory's lock.
		if pid, err := os.ReadFile(filepath.Join(dir, "data", "centre-c", "medfed.lock")); err == nil {
			var p int
			if _, err := fmt.Sscan(string(pid), &p); err == nil && p > 0 {
				syscall.Kill(p, syscall.SIGTERM)
				for i := 0; i < 200 && syscall.Kill(p, 0) == nil; i++ {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}
		for _, c := range shells {
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL) // anything else left behind
		}
		for i, c := range background {
			syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- c.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("terminal %d's node did not stop cleanly on SIGTERM: %v\n%s", i+1, err, logs[i])
				}
			case <-time.After(20 * time.Second):
				syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
				t.Errorf("terminal %d's node did not stop within 20 s of SIGTERM\n%s", i+1, logs[i])
			}
		}
	}()
	var out bytes.Buffer
	for _, b := range blocks {
		switch b.terminal {
		case 1, 2:
			cmd := exec.Command("bash", "-c", b.script)
			cmd.Dir = dir
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			log := &nodetest.Log{}
			cmd.Stdout, cmd.Stderr = log, log
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			background, logs = append(background, cmd), append(logs, log)
		case 3:
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", b.script)
			cmd.Dir = dir
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			var blockOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &blockOut, &blockOut
			err := cmd.Run()
			cancel()
			shells = append(shells, cmd)
			out.Write(blockOut.Bytes())
			if err != nil {
				var nodes strings.Builder
				for i, l := range logs {
					fmt.Fprintf(&nodes, "--- terminal %d\n%s", i+1, l)
				}
				c3, _ := os.ReadFile(filepath.Join(dir, "centre-c.log"))
				t.Fatalf("the tour failed (%v) in the block:\n%s\n--- its output\n%s\n%s--- centre-c.log\n%s", err, b.script, blockOut.String(), nodes.String(), c3)
			}
		default:
			t.Fatalf("the tour names terminal %d; it has three", b.terminal)
		}
	}
	got := out.String()
	for _, want := range []string{
		"the patient's pseudonym: ",
		"synthetic HbA1c 48 mmol/mol",    // the payload, released to centre-c and decrypted
		"centre-b: 1 record(s) released", // the holder's part, proven
		"centre-b: denied",               // after the revocation
		"centre-b: 1 record(s), ",        // the patient's own view
		"every signature valid",          // three ledgers verified
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the tour's output lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "every signature valid"); n != 3 {
		t.Errorf("%d ledgers verified, want 3:\n%s", n, got)
	}
	all := got
	for _, l := range logs {
		all += l.String()
	}
	c3, err := os.ReadFile(filepath.Join(dir, "centre-c.log"))
	if err != nil {
		t.Fatal(err)
	}
	all += string(c3)
	for _, secret := range []string{"9434765919", "943 476 5919", "synthetic HbA1c"} {
		if strings.Contains(all[len(got):], secret) {
			t.Errorf("a node's log holds the NHS number or the payload (%q)", secret)
		}
	}
	if !strings.Contains(all, `msg=request`) || !strings.Contains(all, "route=/v1/query") {
		t.Errorf("the API's requests are not in the nodes' logs")
	}
}
