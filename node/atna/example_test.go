package atna_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/atna"
	"github.com/medfed/medfed/node/centre"
)

// A running node's audit trail sent to a collector over mutual TLS, in
// the FHIR format (atna.DICOM(n.Name()) for the DICOM one), until ctx
// ends; the cursor is kept beside the centre's data.
func Example() {
	var n *centre.Node // a running node (centre.Start)
	ctx := context.Background()
	dataDir := "/var/lib/medfed"

	ca, err := os.ReadFile("/etc/medfed/audit-ca.pem")
	if err != nil {
		slog.Error("audit CA", "err", err)
		return
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair("/etc/medfed/audit-client.pem", "/etc/medfed/audit-client-key.pem")
	if err != nil {
		slog.Error("audit client certificate", "err", err)
		return
	}
	x, err := atna.New(atna.Options{
		Collector: "audit.example.org:6514",
		TLS:       &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Origin:    n.Centre.Ledger.Origin(),
		Dir:       filepath.Join(dataDir, "audit"),
		Source:    n,
		Format:    atna.FHIR(func(e centre.AuditEntry) ([]byte, error) { return api.AuditEvent(n.Name(), e) }),
		Logger:    slog.Default(),
	})
	if err != nil {
		slog.Error("audit export", "err", err)
		return
	}
	if err := x.Run(ctx); err != nil {
		slog.Error("audit export", "err", err)
	}
}
