// Package nodetest starts real medfed centres for tests: configurations
// on free 127.0.0.1 ports, a federation founded offline, running nodes
// stopped when the test ends, and the turn the heavy suites take.
//
// Its functions are the testing.TB face of node/nodetest/harness, which
// does the work and returns its errors: a test ends where the harness
// would return one. The harness is a package of its own so that the demo
// and the benchmarks, which run inside the medfed binary, found their
// federations the same way without linking this package's testing.
package nodetest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/nodetest/harness"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// Config is the configuration of centre name under root, of the
// federation "test-federation", listening on a free port.
func Config(t testing.TB, root, name string) centre.Config {
	t.Helper()
	cfg, err := harness.Config(root, name, "test-federation")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Offline runs f on the centre of cfg opened without its node.
func Offline(t testing.TB, cfg centre.Config, f func(*centre.Centre)) {
	t.Helper()
	if err := harness.Offline(context.Background(), cfg, func(c *centre.Centre) error { f(c); return nil }); err != nil {
		t.Fatal(err)
	}
}

// Request is the join request of the centre of cfg.
func Request(t testing.TB, cfg centre.Config) []byte {
	t.Helper()
	req, err := harness.Request(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// KeyNotice is the key notice of the federations Found founds: a
// patient's key can erase a second after it is attested, not 72 hours.
const KeyNotice = time.Second

// SettleKey waits until a patient key attested before the call has been
// in force for KeyNotice (attestations are dated to the second), so that
// it can erase.
func SettleKey() { time.Sleep(KeyNotice + time.Second) }

// Found has the first config's centre found a federation with the others,
// with the default policy but for a key notice of KeyNotice, and installs
// the charter at every founder.
func Found(t testing.TB, cfgs ...centre.Config) { FoundWith(t, nil, cfgs...) }

// FoundWith is Found with the policy changed by tweak first.
func FoundWith(t testing.TB, tweak func(*federation.Policy), cfgs ...centre.Config) {
	t.Helper()
	if _, err := harness.Found(context.Background(), policy(cfgs, tweak), cfgs...); err != nil {
		t.Fatal(err)
	}
}

// FoundWithoutKey is Found with a charter that lists no pseudonym key,
// as operators found a federation: the founders generate the key on
// their running nodes (centre.Node.GenerateKey).
func FoundWithoutKey(t testing.TB, cfgs ...centre.Config) {
	t.Helper()
	if _, err := harness.FoundWithoutKey(context.Background(), policy(cfgs, nil), cfgs...); err != nil {
		t.Fatal(err)
	}
}

func policy(cfgs []centre.Config, tweak func(*federation.Policy)) federation.Policy {
	pol := federation.DefaultPolicy(len(cfgs))
	pol.KeyNotice = KeyNotice
	if tweak != nil {
		tweak(&pol)
	}
	return pol
}

// Start starts the node of cfg and stops it when the test ends.
func Start(t testing.TB, cfg centre.Config) *centre.Node {
	t.Helper()
	n, err := harness.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Stop(); err != nil {
			t.Errorf("stopping %s: %v", cfg.Centre.Name, err)
		}
	})
	return n.Node
}

// Eventually fails the test unless ok holds within the time given.
func Eventually(t testing.TB, within time.Duration, what string, ok func() bool) {
	t.Helper()
	if err := harness.WaitFor(context.Background(), within, what, ok); err != nil {
		t.Fatal(err)
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
// the API's, the demo's, the benchmarks' and the command's (federations in process)
// and the chaos test (five busy node processes) starve each other's waits
// on a two-core machine, so they take turns. The lock is a file in the temporary
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

// InTurn has a heavy test take its turn (see TakeTurn) until it ends.
func InTurn(t testing.TB) {
	t.Helper()
	release, err := TakeTurn()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := release(); err != nil {
			t.Error(err)
		}
	})
}

// RunInTurn runs m's tests in their turn (see TakeTurn) and returns the
// exit code, for a TestMain: os.Exit(nodetest.RunInTurn(m)).
//
// A fuzzing run does not take the turn: CI fuzzes one target at a time,
// and the fuzzing engine's workers run TestMain too, so a coordinator
// holding the turn would keep its own workers waiting for it for ever.
func RunInTurn(m *testing.M) int {
	flag.Parse()
	if fuzzing() {
		return m.Run()
	}
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

// fuzzing reports whether this test binary runs as a fuzzing engine's
// coordinator or worker (-test.fuzz, -test.fuzzworker).
func fuzzing() bool {
	f, w := flag.Lookup("test.fuzz"), flag.Lookup("test.fuzzworker")
	return (f != nil && f.Value.String() != "") || (w != nil && w.Value.String() == "true")
}
