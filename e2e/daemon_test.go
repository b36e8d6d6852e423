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

func httpStatus(url string) int {
	c := http.Client{Timeout: 2 * time.Second}
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
	logs := &bytes.Buffer{} // one writer for both: exec copies them in one goroutine
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
	waitFor(t, 20*time.Second, "centre-a's /healthz", func() bool { return httpStatus("http://"+a.api+"/healthz") == 200 })
	if s := httpStatus("http://" + a.api + "/readyz"); s != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with no other member running: %d, want 503", s)
	}

	a.refused("api.listen "+a.api, "MEDFED_API_LISTEN="+a.api)
	a.refused("data directory in use", "MEDFED_API_LISTEN=127.0.0.1:0")
	b.refused("p2p.listen", "MEDFED_P2P_LISTEN="+a.p2p)

	other := b.command(nil, "node")
	other.Stdout, other.Stderr = io.Discard, io.Discard
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	waitFor(t, 20*time.Second, "centre-a ready once centre-b runs", func() bool { return httpStatus("http://"+a.api+"/readyz") == 200 })

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
	if s := httpStatus("http://" + a.api + "/healthz"); s != 0 {
		t.Errorf("the API still answers after the node stopped: %d", s)
	}
}
