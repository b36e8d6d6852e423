// Package nodetest starts real medfed centres for tests: configurations
// on free 127.0.0.1 ports, a federation founded offline, and running
// nodes stopped when the test ends.
package nodetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/centre"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Config is the configuration of centre name under root, of the
// federation "test-federation", listening on a free port.
func Config(t testing.TB, root, name string) centre.Config {
	t.Helper()
	cfg := centre.DefaultConfig()
	cfg.Centre.Name, cfg.Federation.ID = name, "test-federation"
	cfg.Data.Dir = filepath.Join(root, name)
	cfg.P2P.Listen = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", FreePort(t))}
	return cfg
}

// Offline runs f on the centre of cfg opened without its node.
func Offline(t testing.TB, cfg centre.Config, f func(*centre.Centre)) {
	t.Helper()
	c, err := centre.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	f(c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// Request is the join request of the centre of cfg.
func Request(t testing.TB, cfg centre.Config) []byte {
	t.Helper()
	var req []byte
	Offline(t, cfg, func(c *centre.Centre) {
		var err error
		if req, err = c.JoinRequest(cfg.P2P.Listen); err != nil {
			t.Fatal(err)
		}
	})
	return req
}

// Found has the first config's centre found a federation with the others,
// with the default policy, and installs the charter at every founder.
func Found(t testing.TB, cfgs ...centre.Config) {
	t.Helper()
	var reqs [][]byte
	for _, cfg := range cfgs[1:] {
		reqs = append(reqs, Request(t, cfg))
	}
	var draft, shares []byte
	Offline(t, cfgs[0], func(c *centre.Centre) {
		var err error
		if draft, shares, err = c.Found(cfgs[0].P2P.Listen, reqs, federation.DefaultPolicy(len(cfgs))); err != nil {
			t.Fatal(err)
		}
	})
	for _, cfg := range cfgs[1:] {
		Offline(t, cfg, func(c *centre.Centre) {
			var err error
			if draft, err = c.SignCharter(draft, shares); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, cfg := range cfgs {
		Offline(t, cfg, func(c *centre.Centre) {
			if _, err := c.InstallFounding(context.Background(), draft, shares); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Start starts the node of cfg and stops it when the test ends.
func Start(t testing.TB, cfg centre.Config) *centre.Node {
	t.Helper()
	n, err := centre.Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stopping %s: %v", cfg.Centre.Name, err)
		}
	})
	return n
}

// Eventually fails the test unless ok holds within the time given.
func Eventually(t testing.TB, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Log is a buffer a process or a server writes while the test reads it.
type Log struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TakeTurn waits until no other heavy test on this machine holds the
// turn, and holds it until release is called. go test runs packages side
// by side; the directory's tests (federations of up to twenty real hosts),
// the command's (the demo and the benchmarks in process) and the chaos
// test (five busy node processes) starve each other's waits on a two-core
// machine, so they take turns. The lock is a file in the temporary
// directory; the kernel drops it if the process dies.
func TakeTurn() (release func() error, err error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "medfed-heavy-tests.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("the heavy tests' turn: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return nil, errors.Join(fmt.Errorf("the heavy tests' turn: %w", err), f.Close())
	}
	return f.Close, nil
}

// RunInTurn runs m's tests in their turn (see TakeTurn) and returns the
// exit code, for a TestMain: os.Exit(nodetest.RunInTurn(m)).
func RunInTurn(m *testing.M) int {
	release, err := TakeTurn()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if err := release(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	return code
}
