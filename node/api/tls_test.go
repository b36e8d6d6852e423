package api_test

import (
	"bytes"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
)

// TestServerCertificate: a centre makes its certificate once, keeps it
// across starts, makes it again near its end or for a new listen address,
// and serves a configured one instead; a client that pins it is served,
// one that does not is refused at the handshake.
func TestServerCertificate(t *testing.T) {
	dir := t.TempDir()
	cfg := centre.APIConfig{Listen: "127.0.0.1:0"}
	now := time.Now()
	first, err := api.ServerCertificate(dir, cfg, now)
	if err != nil || !first.Made {
		t.Fatalf("first start: %+v, %v", first, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, api.KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the key file: %v, %v", fi, err)
	}
	again, err := api.ServerCertificate(dir, cfg, now.Add(time.Hour))
	if err != nil || again.Made || again.Fingerprint != first.Fingerprint {
		t.Fatalf("a restart: made %v, fingerprint %s, %v", again.Made, again.Fingerprint, err)
	}
	late, err := api.ServerCertificate(dir, cfg, now.Add(340*24*time.Hour))
	if err != nil || !late.Made || late.Fingerprint == first.Fingerprint {
		t.Fatalf("a month before the end: made %v, %v", late.Made, err)
	}
	moved, err := api.ServerCertificate(dir, centre.APIConfig{Listen: "192.0.2.7:8443"}, now)
	if err != nil || !moved.Made {
		t.Fatalf("a new listen address: made %v, %v", moved.Made, err)
	}
	if err := moved.TLS.Certificates[0].Leaf.VerifyHostname("192.0.2.7"); err != nil {
		t.Fatal(err)
	}

	// Served: the pinned client is, a default one is not.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })}
	go srv.Serve(tls.NewListener(ln, moved.TLS))
	t.Cleanup(func() { srv.Close() })
	pinned, err := api.PinnedClient(moved.File)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: pinned}}
	resp, err := c.Get("https://" + ln.Addr().String())
	if err != nil {
		t.Fatalf("the pinned client: %v", err)
	}
	resp.Body.Close()
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get("https://" + ln.Addr().String()); err == nil {
		t.Fatal("a client that does not pin the certificate was served")
	}

	// A configured certificate is served as it is; a broken one is named.
	own := centre.APIConfig{Listen: "127.0.0.1:0", TLS: centre.APITLSConfig{Cert: filepath.Join(dir, api.CertFile), Key: filepath.Join(dir, api.KeyFile)}}
	conf, err := api.ServerCertificate(t.TempDir(), own, now)
	if err != nil || conf.Made || conf.Fingerprint != moved.Fingerprint {
		t.Fatalf("a configured certificate: %+v, %v", conf, err)
	}
	bad := filepath.Join(dir, "bad.crt")
	if err := os.WriteFile(bad, bytes.Repeat([]byte("x"), 10), 0o644); err != nil {
		t.Fatal(err)
	}
	own.TLS.Cert = bad
	if _, err := api.ServerCertificate(t.TempDir(), own, now); err == nil {
		t.Fatal("a configured file that is no certificate was accepted")
	}
}

// TestAbuseInTheClear: nothing travels in clear. A centre configured to
// serve plain HTTP beyond loopback is refused before it starts; on the
// HTTPS port a plain HTTP request and a client that does not pin the
// centre's certificate never reach a route.
func TestAbuseInTheClear(t *testing.T) {
	cfg := centre.DefaultConfig()
	cfg.Centre.Name, cfg.Federation.ID, cfg.Data.Dir = "centre-a", "test-federation", t.TempDir()
	cfg.API.Listen, cfg.API.TLS.Plain = "0.0.0.0:8443", true
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "api.tls.plain") {
		t.Fatalf("plain HTTP on every interface: %v, want api.tls.plain refused", err)
	}
	cert, err := api.ServerCertificate(t.TempDir(), centre.APIConfig{Listen: "127.0.0.1:0"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var reached atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reached.Add(1) })}
	go srv.Serve(tls.NewListener(ln, cert.TLS))
	t.Cleanup(func() { srv.Close() })
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/v1/patients")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP to the HTTPS port: %d", resp.StatusCode)
		}
	}
	if _, err := client.Get("https://" + ln.Addr().String() + "/v1/patients"); err == nil {
		t.Fatal("a client that does not pin the certificate was served")
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("%d requests in clear or unpinned reached a route", n)
	}
}
