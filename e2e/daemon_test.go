package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medfed/medfed/node/nodetest"
)

// daemon is a centre of configs/ on ports of its own, so that this test
// shares nothing with the others.
type daemon struct {
	t       *testing.T
	name    string
	env     []string
	api     string
	p2p     string
	dataDir string
}

func newDaemon(t *testing.T, root, name string) *daemon {
	d := &daemon{t: t, name: name, dataDir: filepath.Join(root, name),
		p2p: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", nodetest.FreePort(t)), api: fmt.Sprintf("127.0.0.1:%d", nodetest.FreePort(t))}
	d.env = append(os.Environ(), "MEDFED_DATA_DIR="+d.dataDir, "MEDFED_P2P_LISTEN="+d.p2p, "MEDFED_API_LISTEN="+d.api)
	return d
}

func (d *daemon) command(extra []string, args ...string) *exec.Cmd {
	cmd := exec.Command(medfed, append(args, "--config", filepath.Join("..", "configs", d.name+".yaml"))...)
	cmd.Env = append(append([]string{}, d.env...), extra...)
	return cmd
}

func (d *daemon) run(args ...string) string {
	d.t.Helper()
	code, out, errOut := runCmd(d.t, d.command(nil, args...))
	if code != 0 {
		d.t.Fatalf("%s: medfed %s exited %d: %s%s", d.name, strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// refused runs "medfed node" with extra environment and wants it to exit
// 1 at once with an error naming what is wrong.
func (d *daemon) refused(want string, extra ...string) {
	d.t.Helper()
	cmd := d.command(extra, "node")
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
	}()
	code, out, errOut := runCmd(d.t, cmd)
	close(done)
	if code != 1 || !strings.Contains(errOut, want) {
		d.t.Fatalf("%s: medfed node with %v exited %d, want 1 and %q: %s%s", d.name, extra, code, want, out, errOut)
	}
}

// status is the status of GET path at the daemon's API over HTTPS,
// pinning its certificate; 0 when no answer came.
func (d *daemon) status(path string) int {
	c, err := pinnedClient(d.dataDir, 2*time.Second)
	if err != nil {
		return 0
	}
	return httpStatus(c, "https://"+d.api+path)
}

func httpStatus(c *http.Client, url string) int {
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestTheDaemonStartsStopsAndSaysWhatIsWrong: medfed node refuses a
// centre without a charter, an API port in use, a data directory in use
// and a libp2p port in use, each with an error naming it; /healthz says
// alive while /readyz waits for another member; SIGTERM stops it cleanly.
func TestTheDaemonStartsStopsAndSaysWhatIsWrong(t *testing.T) {
	root := t.TempDir()
	a, b := newDaemon(t, root, "centre-a"), newDaemon(t, root, "centre-b")
	file := func(name string) string { return filepath.Join(root, name) }
	b.run("federation", "request", "--out", file("b.txt"))
	a.run("federation", "init", "--member", file("b.txt"), "--out", file("charter.txt"))
	b.run("federation", "sign", file("charter.txt"))
	a.run("federation", "install", file("charter.txt"))

	b.refused("no charter installed")
	b.run("federation", "install", file("charter.txt"))

	node := a.command(nil, "node")
	logs := &nodetest.Log{} // one writer for both, read while the node runs
	node.Stdout, node.Stderr = logs, logs
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if node.ProcessState == nil {
			node.Process.Kill()
			node.Wait()
		}
	})
	waitFor(t, 20*time.Second, "centre-a's /healthz", func() bool { return a.status("/healthz") == 200 })
	if s := a.status("/readyz"); s != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with no other member running: %d, want 503", s)
	}
	// The API is HTTPS only, with the certificate centre-a made at its
	// first start: plain HTTP is refused, and a client that does not pin
	// the certificate does not trust it.
	plain := &http.Client{Timeout: 2 * time.Second}
	if s := httpStatus(plain, "http://"+a.api+"/healthz"); s != http.StatusBadRequest {
		t.Fatalf("plain HTTP to the API: %d, want 400 (an HTTP request to an HTTPS server)", s)
	}
	if _, err := plain.Get("https://" + a.api + "/healthz"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client that does not pin centre-a's certificate: %v", err)
	}
	made, err := os.ReadFile(filepath.Join(a.dataDir, "api.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `msg="api certificate made"`) {
		t.Fatalf("centre-a's log does not say it made its certificate:\n%s", logs)
	}

	a.refused("api.listen "+a.api, "MEDFED_API_LISTEN="+a.api)
	a.refused("data directory in use", "MEDFED_API_LISTEN=127.0.0.1:0")
	// Plain HTTP off loopback is a configuration error (exit 2), found
	// before anything starts.
	if code, out, errOut := runCmd(t, a.command([]string{"MEDFED_API_TLS_PLAIN=true", "MEDFED_API_LISTEN=0.0.0.0:0"}, "node")); code != 2 || !strings.Contains(errOut, "api.tls.plain") {
		t.Fatalf("plain HTTP on every interface: exited %d: %s%s", code, out, errOut)
	}
	b.refused("p2p.listen", "MEDFED_P2P_LISTEN="+a.p2p)

	other := b.command(nil, "node")
	other.Stdout, other.Stderr = io.Discard, io.Discard
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	waitFor(t, 20*time.Second, "centre-a ready once centre-b runs", func() bool { return a.status("/readyz") == 200 })

	if err := node.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := node.Wait(); err != nil {
		t.Fatalf("centre-a did not stop cleanly on SIGTERM: %v\n%s", err, logs)
	}
	for _, want := range []string{`msg="api listening"`, `msg="node stopped"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("centre-a's log lacks %s:\n%s", want, logs)
		}
	}
	if s := a.status("/healthz"); s != 0 {
		t.Errorf("the API still answers after the node stopped: %d", s)
	}
	// A restart keeps the certificate clients pinned.
	again := a.command(nil, "node")
	again.Stdout, again.Stderr = io.Discard, io.Discard
	if err := again.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { again.Process.Kill(); again.Wait() })
	waitFor(t, 20*time.Second, "centre-a's /healthz after a restart", func() bool { return a.status("/healthz") == 200 })
	if kept, err := os.ReadFile(filepath.Join(a.dataDir, "api.crt")); err != nil || !bytes.Equal(kept, made) {
		t.Fatalf("the restart changed centre-a's certificate (%v)", err)
	}
}

// `medfed version` names the build: the module's version and, built from a
// git checkout, the commit it was built from.
func TestVersionNamesTheRevision(t *testing.T) {
	code, out, errOut := medfedCmd(t, "version")
	if code != 0 || !strings.HasPrefix(out, "medfed ") {
		t.Fatalf("medfed version: exit %d, %q %s", code, out, errOut)
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout, so the build carries no revision: %v", err)
	}
	if want := "revision " + strings.TrimSpace(string(head)); !strings.Contains(out, want) {
		t.Errorf("medfed version printed %q, want it to name %q", out, want)
	}
}
