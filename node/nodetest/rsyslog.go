package nodetest

// The audit collector a centre's ATNA export (node/atna) is sent to in
// tests: a real rsyslogd, with the gtls network stream driver (Debian's
// rsyslog and rsyslog-gnutls), receiving syslog over mutual TLS. It lives
// here rather than in node/nodetest/harness because no binary needs it:
// only tests, node/atna's and the end-to-end ones, start a collector.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// RequireRsyslogEnv, set to 1 (as CI does), makes the tests that need
// rsyslogd and its TLS driver fail without them rather than skip.
const RequireRsyslogEnv = "MEDFED_REQUIRE_RSYSLOG"

// Rsyslogd returns the path of rsyslogd, skipping the test when it or its
// TLS driver is missing (failing it under MEDFED_REQUIRE_RSYSLOG=1).
func Rsyslogd(t testing.TB) string {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		if os.Getenv(RequireRsyslogEnv) == "1" {
			t.Fatalf("%s, and %s=1: install rsyslog and rsyslog-gnutls", what, RequireRsyslogEnv)
		}
		t.Skipf("%s (apt-get install rsyslog rsyslog-gnutls; %s=1 makes this a failure)", what, RequireRsyslogEnv)
	}
	path, err := exec.LookPath("rsyslogd")
	if err != nil {
		path = "/usr/sbin/rsyslogd" // not in a user's PATH on Debian
		if _, err := os.Stat(path); err != nil {
			missing("no rsyslogd")
		}
	}
	var drivers []string
	for _, pattern := range []string{"/usr/lib/*/rsyslog/lmnsd_gtls.so", "/usr/lib/rsyslog/lmnsd_gtls.so", "/usr/lib64/rsyslog/lmnsd_gtls.so"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		drivers = append(drivers, m...)
	}
	if len(drivers) == 0 {
		missing("no rsyslog gtls driver (lmnsd_gtls.so)")
	}
	return path
}

// SyslogCerts are the certificates of a syslog collector and of its
// client, PEM files in one directory: a CA, a server certificate for
// 127.0.0.1 and a client certificate it signed. The client's files are
// what a node's audit.ca-file, audit.cert-file and audit.key-file name.
type SyslogCerts struct {
	// CAFile is the CA's certificate, which both sides trust.
	CAFile string
	// CertFile and KeyFile are the client's certificate and key, for
	// mutual TLS.
	CertFile, KeyFile string
	// ServerCertFile and ServerKeyFile are the collector's.
	ServerCertFile, ServerKeyFile string
	// TLS is the client's configuration, made of the same certificates:
	// the CA to trust and the client certificate.
	TLS *tls.Config
}

// NewSyslogCerts makes a CA, and a server and a client certificate it
// signed, and writes them into dir.
func NewSyslogCerts(t testing.TB, dir string) SyslogCerts {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(0)
	template := func(cn string) *x509.Certificate {
		serial++
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	}
	caKey := newKey()
	caTmpl := template("medfed test audit CA")
	caTmpl.IsCA, caTmpl.BasicConstraintsValid, caTmpl.KeyUsage = true, true, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(tmpl *x509.Certificate) ([]byte, *ecdsa.PrivateKey) {
		k := newKey()
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	serverTmpl := template("127.0.0.1")
	serverTmpl.IPAddresses, serverTmpl.ExtKeyUsage = []net.IP{net.IPv4(127, 0, 0, 1)}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	serverDER, serverKey := issue(serverTmpl)
	clientTmpl := template("medfed test centre")
	clientTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	clientDER, clientKey := issue(clientTmpl)

	c := SyslogCerts{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client-key.pem"),
		ServerCertFile: filepath.Join(dir, "server.pem"), ServerKeyFile: filepath.Join(dir, "server-key.pem")}
	writePEM := func(path, typ string, der []byte) {
		t.Helper()
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeKey := func(path string, k *ecdsa.PrivateKey) {
		t.Helper()
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(path, "PRIVATE KEY", der)
	}
	writePEM(c.CAFile, "CERTIFICATE", caDER)
	writePEM(c.ServerCertFile, "CERTIFICATE", serverDER)
	writeKey(c.ServerKeyFile, serverKey)
	writePEM(c.CertFile, "CERTIFICATE", clientDER)
	writeKey(c.KeyFile, clientKey)

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	c.TLS = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{{Certificate: [][]byte{clientDER}, PrivateKey: clientKey}}, MinVersion: tls.VersionTLS12}
	return c
}

// SyslogCollector is an rsyslogd listening for syslog over TLS (RFC
// 5425) on 127.0.0.1, requiring a client certificate its CA signed
// (mutual TLS), and writing each message it receives, raw, as one line
// of a file. It keeps its port across Stop and Start, as a collector
// restarted does. The test that made it stops it when it ends.
type SyslogCollector struct {
	// SyslogCerts are its certificates and its client's, files and all:
	// another process can connect with CAFile, CertFile and KeyFile.
	SyslogCerts

	t      testing.TB
	bin    string
	dir    string
	port   int
	out    string // the messages' file
	log    *Log   // rsyslogd's own output
	cmd    *exec.Cmd
	exited chan error
}

// NewSyslogCollector configures a collector on a free port, in a
// directory of its own; Start starts it. It skips the test when rsyslogd
// or its TLS driver is missing (see Rsyslogd).
func NewSyslogCollector(t testing.TB) *SyslogCollector {
	t.Helper()
	c := &SyslogCollector{t: t, bin: Rsyslogd(t), dir: t.TempDir(), port: FreePort(t), log: &Log{}}
	c.SyslogCerts = NewSyslogCerts(t, c.dir)
	c.out = filepath.Join(c.dir, "messages.log")
	if err := os.Mkdir(filepath.Join(c.dir, "work"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`global(
  workDirectory=%[1]q
  maxMessageSize="64k"
  defaultNetstreamDriverCAFile=%[2]q
  defaultNetstreamDriverCertFile=%[3]q
  defaultNetstreamDriverKeyFile=%[4]q
)
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="x509/certvalid")
template(name="raw" type="string" string="%%rawmsg%%\n")
ruleset(name="audit") {
  action(type="omfile" file=%[5]q template="raw")
}
input(type="imtcp" address="127.0.0.1" port="%[6]d" ruleset="audit")
`, filepath.Join(c.dir, "work"), c.CAFile, c.ServerCertFile, c.ServerKeyFile, c.out, c.port)
	if err := os.WriteFile(filepath.Join(c.dir, "rsyslog.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.cmd != nil {
			c.Stop()
		}
		if t.Failed() {
			t.Logf("rsyslogd on %s said:\n%s", c.Addr(), c.log)
		}
	})
	return c
}

// Addr is the collector's host:port.
func (c *SyslogCollector) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)) }

// Start runs rsyslogd in the foreground and waits until it completes a
// TLS handshake with the client's certificate.
func (c *SyslogCollector) Start() {
	c.t.Helper()
	if c.cmd != nil {
		c.t.Fatalf("the collector on %s is running already", c.Addr())
	}
	c.cmd = exec.Command(c.bin, "-n", "-f", filepath.Join(c.dir, "rsyslog.conf"), "-i", filepath.Join(c.dir, "rsyslogd.pid"))
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		c.cmd = nil
		c.t.Fatal(err)
	}
	exited := make(chan error, 1)
	c.exited = exited
	cmd := c.cmd
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", c.Addr(), c.TLS)
		if err == nil {
			if err := conn.Close(); err != nil {
				c.t.Fatal(err)
			}
			return
		}
		select {
		case err := <-exited:
			c.cmd = nil
			c.t.Fatalf("rsyslogd exited at start: %v\n%s", err, c.log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("rsyslogd does not accept TLS connections on %s: %v", c.Addr(), err)
		}
	}
}

// Stop stops rsyslogd gracefully (SIGTERM: it closes its connections and
// writes what it received) and waits for it to exit.
func (c *SyslogCollector) Stop() {
	c.t.Helper()
	if c.cmd == nil {
		c.t.Fatalf("the collector on %s is not running", c.Addr())
	}
	defer func() { c.cmd = nil }()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatal(err)
	}
	select {
	case err := <-c.exited:
		if err != nil {
			c.t.Errorf("rsyslogd: %v", err)
		}
	case <-time.After(20 * time.Second):
		c.t.Error("rsyslogd did not stop on SIGTERM")
		if err := c.cmd.Process.Kill(); err != nil {
			c.t.Error(err)
		}
		<-c.exited
	}
}

// SyslogMessage is one audit message as the collector wrote it: the
// RFC 5424 header fields a medfed exporter sets, the structured data
// that names its ledger entry, [medfed@32473 ledger="…" index="…"
// kind="…"], and the body after its byte order mark.
type SyslogMessage struct {
	PRI                      int // facility × 8 + severity
	Hostname, AppName, MsgID string
	Origin                   string // the ledger's
	Index                    int64  // the entry's
	Kind                     string
	Body                     []byte
}

var syslogLine = regexp.MustCompile(`^<(\d+)>1 \S+ (\S+) (\S+) - (\S+) \[medfed@32473 ledger="([^"]*)" index="(\d+)" kind="([a-z-]+)"\] \x{FEFF}(.*)$`)

// Messages returns the messages the collector has written so far, in
// the order it wrote them; a last line rsyslogd has not ended yet is left
// for the next call. It fails the test on a line that is not an audit
// message.
func (c *SyslogCollector) Messages() []SyslogMessage {
	c.t.Helper()
	b := c.Raw()
	b = b[:bytes.LastIndexByte(b, '\n')+1]
	var out []SyslogMessage
	s := bufio.NewScanner(bytes.NewReader(b))
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		m := syslogLine.FindSubmatch(s.Bytes())
		if m == nil {
			c.t.Fatalf("the collector on %s wrote a line that is not an audit message: %q", c.Addr(), s.Bytes())
		}
		pri, err := strconv.Atoi(string(m[1]))
		if err != nil {
			c.t.Fatalf("PRI of %q: %v", s.Bytes(), err)
		}
		index, err := strconv.ParseInt(string(m[6]), 10, 64)
		if err != nil {
			c.t.Fatalf("index of %q: %v", s.Bytes(), err)
		}
		out = append(out, SyslogMessage{PRI: pri, Hostname: string(m[2]), AppName: string(m[3]), MsgID: string(m[4]), Origin: string(m[5]),
			Index: index, Kind: string(m[7]), Body: bytes.Clone(m[8])})
	}
	if err := s.Err(); err != nil {
		c.t.Fatal(err)
	}
	return out
}

// Raw returns the collector's file as it is: everything it received,
// for a test to search for what must never reach it.
func (c *SyslogCollector) Raw() []byte {
	c.t.Helper()
	b, err := os.ReadFile(c.out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		c.t.Fatal(err)
	}
	return b
}
