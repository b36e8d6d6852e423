package api_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/medfed/medfed/node/api"
)

// serveAPI serves the API of centre c as the daemon does, through Serve on
// a real listener (with the server's timeouts, which httptest's server
// lacks), until the test ends; it returns the base URL.
func serveAPI(t *testing.T, c *testCentre) string {
	t.Helper()
	srv, err := api.New(api.Options{Node: c.node, Staff: c.staff})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the API's shutdown: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// slowloris opens a connection to addr and sends a request's headers one
// byte every interval, never finishing them; it returns how long the
// server kept the connection and what it answered.
func slowloris(addr string, interval time.Duration) (time.Duration, []byte, error) {
	start := time.Now()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: medfed\r\nX-Slow: "); err != nil {
		return 0, nil, err
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if _, err := conn.Write([]byte{'a'}); err != nil {
					return
				}
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(conn) // until the server closes
	return time.Since(start), got, err
}

// Twenty clients open connections to the API and send their headers one
// byte every 250 ms (slowloris). ReadHeaderTimeout (5 s) cuts each off
// 5 s after it connected, whatever it trickles, with no answer (net/http
// closes a connection that timed out reading headers without a word:
// what the attacker sees is the connection closing); meanwhile honest
// clients are served promptly. A header block over MaxHeaderBytes is
// refused with 431 at once. None of it reaches a handler: the ledger is
// unchanged. (A slow body is cut off by ReadTimeout, 30 s for the whole
// request: too long to wait for in a unit test, and not tested here.)
func TestAbuseSlowHTTPClient(t *testing.T) {
	a, _ := federation(t)
	base := serveAPI(t, a)
	addr := strings.TrimPrefix(base, "http://")
	admin := a.token(t, "admin")
	head := a.node.Centre.Ledger.Head()

	const attackers = 20
	type cut struct {
		after time.Duration
		got   []byte
		err   error
	}
	cuts := make(chan cut, attackers)
	for range attackers {
		go func() {
			after, got, err := slowloris(addr, 250*time.Millisecond)
			cuts <- cut{after, got, err}
		}()
	}

	// Honest clients, each on a new connection, while the attackers hang on.
	honest := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	var (
		served  int
		slowest time.Duration
	)
	deadline := time.Now().Add(4 * time.Second) // within the attackers' 5 s
	for time.Now().Before(deadline) {
		for _, r := range []struct{ path, token string }{{"/healthz", ""}, {"/v1/federation", admin}} {
			req, err := http.NewRequest("GET", base+r.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.token != "" {
				req.Header.Set("Authorization", "Bearer "+r.token)
			}
			start := time.Now()
			resp, err := honest.Do(req)
			if err != nil {
				t.Fatalf("an honest GET %s during the attack: %v", r.path, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("an honest GET %s during the attack: status %d", r.path, resp.StatusCode)
			}
			served++
			slowest = max(slowest, time.Since(start))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if served < 10 {
		t.Fatalf("honest clients during the attack: %d served, the slowest in %v", served, slowest)
	}
	t.Logf("honest clients during the attack: %d served, the slowest in %v", served, slowest)

	first, last := time.Hour, time.Duration(0)
	for range attackers {
		c := <-cuts
		first, last = min(first, c.after), max(last, c.after)
		switch {
		// Not before ReadHeaderTimeout, and by the server, well before the
		// attacker's own 30 s deadline (no tighter: this VM is shared).
		case c.after < 4900*time.Millisecond || c.after > 25*time.Second:
			t.Errorf("a slowloris connection was cut off after %v, want ReadHeaderTimeout's 5 s", c.after)
		case len(c.got) != 0:
			t.Errorf("a slowloris connection was answered: %q", c.got)
		}
		if c.err != nil && !strings.Contains(c.err.Error(), "reset") {
			t.Errorf("a slowloris connection ended with %v", c.err)
		}
	}
	t.Logf("the attackers see their connections closed, without an answer, after %v to %v", first.Round(time.Millisecond), last.Round(time.Millisecond))

	t.Run("header block over the limit", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: medfed\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 64<<10))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("64 KiB of headers: status %d: %s", resp.StatusCode, body)
		}
		t.Logf("64 KiB of headers: the client sees %s: %q", resp.Status, body)
	})
	if now := a.node.Centre.Ledger.Head(); now != head {
		t.Fatalf("the attack changed the ledger: %+v, then %+v", head, now)
	}
}
