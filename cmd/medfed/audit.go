package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"

	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/atna"
	"github.com/medfed/medfed/node/centre"
)

// newAuditExporter is the ATNA export the configuration asks for, over
// the running node n: its TLS client from the configured PEM files, its
// cursor in the data directory.
func newAuditExporter(cfg centre.Config, n *centre.Node, log *slog.Logger) (*atna.Exporter, error) {
	a := cfg.Audit
	ca, err := os.ReadFile(a.CAFile)
	if err != nil {
		return nil, fmt.Errorf("audit.ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("audit.ca-file %s: no PEM certificate in it", a.CAFile)
	}
	tc := &tls.Config{RootCAs: pool, ServerName: a.ServerName, MinVersion: tls.VersionTLS12}
	if a.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(a.CertFile, a.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("audit.cert-file and audit.key-file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	format := atna.DICOM(n.Name())
	if a.Format == "fhir" {
		format = atna.FHIR(func(e centre.AuditEntry) ([]byte, error) { return api.AuditEvent(n.Name(), e) })
	}
	facility := atna.FacilityAuthPriv
	if a.Facility == "log-audit" {
		facility = atna.FacilityLogAudit
	}
	return atna.New(atna.Options{
		Collector: a.Collector,
		TLS:       tc,
		Hostname:  a.Hostname,
		Facility:  facility,
		Origin:    n.Centre.Ledger.Origin(),
		Dir:       cfg.Data.Dir,
		Source:    n,
		Format:    format,
		Logger:    log.With("centre", cfg.Centre.Name),
	})
}
