package api

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/centre"
)

// The certificate a centre makes for its API at first start, in its data
// directory. Clients pin CertFile: it is its own authority.
const (
	CertFile = "api.crt"
	KeyFile  = "api.key"
)

// Self-made certificates last a year and are made again at start within a
// month of their end, or when they no longer cover the listen address.
const (
	certLifetime = 365 * 24 * time.Hour
	certRenewal  = 30 * 24 * time.Hour
)

// Certificate is the API's certificate as a server presents it.
type Certificate struct {
	TLS *tls.Config
	// File is where clients find the certificate to pin (CertFile in the
	// data directory, or the configured one).
	File string
	// Fingerprint is the SHA-256 of the leaf certificate's DER, in hex.
	Fingerprint string
	// Made is set when the certificate was made (or made again) now.
	Made bool
}

// Serves says whether a request's Host names a host the certificate
// covers (as a client verifies it: wildcards, any case) on port, the
// port left out meaning 443: the names the API answers to (Options.Hosts).
func (c Certificate) Serves(port int) func(host string) bool {
	return func(hostport string) bool {
		host, p, err := net.SplitHostPort(hostport)
		if err != nil {
			host, p = hostport, "443"
		}
		if p != strconv.Itoa(port) {
			return false
		}
		return slices.ContainsFunc(c.TLS.Certificates, func(cert tls.Certificate) bool {
			return cert.Leaf != nil && covers(cert.Leaf, []string{host})
		})
	}
}

// ServerCertificate returns the API's certificate: the configured one, or
// the centre's own from its data directory dir, made (again) when missing,
// expiring or not covering the listen address.
func ServerCertificate(dir string, cfg centre.APIConfig, now time.Time) (Certificate, error) {
	if cfg.TLS.Cert != "" {
		pair, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return Certificate{}, node.E(node.Invalid, fmt.Sprintf("api.tls: %v", err))
		}
		return certificate(pair, cfg.TLS.Cert, false), nil
	}
	hosts := certHosts(cfg)
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return Certificate{}, fmt.Errorf("the API's certificate %s: %w (remove %s and %s to have a new one made)", certPath, err, CertFile, KeyFile)
	case covers(pair.Leaf, hosts) && now.Add(certRenewal).Before(pair.Leaf.NotAfter):
		return certificate(pair, certPath, false), nil
	}
	pair, err = makeCertificate(certPath, keyPath, hosts, now)
	if err != nil {
		return Certificate{}, err
	}
	return certificate(pair, certPath, true), nil
}

func certificate(pair tls.Certificate, file string, made bool) Certificate {
	fp := sha256.Sum256(pair.Certificate[0])
	return Certificate{
		TLS:         &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		File:        file,
		Fingerprint: hex.EncodeToString(fp[:]),
		Made:        made,
	}
}

// certHosts are the names and addresses a self-made certificate covers:
// localhost, the loopback addresses, the listen host unless it is every
// interface, and the configured hosts.
func certHosts(cfg centre.APIConfig) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(cfg.Listen); err == nil {
		if ip := net.ParseIP(h); h != "" && (ip == nil || !ip.IsUnspecified()) {
			hosts = append(hosts, h)
		}
	}
	hosts = append(hosts, cfg.TLS.Hosts...)
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

// covers reports whether leaf names every host.
func covers(leaf *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// makeCertificate makes a self-signed ECDSA P-256 certificate for hosts,
// its own authority, and writes it and its key (mode 0600), each replaced
// whole.
func makeCertificate(certPath, keyPath string, hosts []string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// The serial in the subject makes each centre's certificate's name
		// its own: a client that trusts several centres' certificates finds
		// each issuer by its name, and OpenSSL (node, curl) tries only the
		// first of several certificates of one name.
		Subject:               pkix.Name{CommonName: "medfed centre API", Organization: []string{"medfed"}, SerialNumber: serial.Text(16)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // clients pin it as their only authority
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	// The key first: a certificate on disk always has its key beside it.
	if err := writeWhole(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeWhole(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// writeWhole replaces path with b: written to a temporary file, synced,
// then renamed over it.
func writeWhole(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing is there
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// PinnedClient returns TLS settings that trust the certificate in the PEM
// file certFile, and nothing else: how a script or a test talks to a
// centre whose certificate it was given.
func PinnedClient(certFile string) (*tls.Config, error) {
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bytes.TrimSpace(pemBytes)) {
		return nil, fmt.Errorf("%s holds no PEM certificate", certFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
