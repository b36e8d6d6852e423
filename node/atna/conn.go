package atna

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// errClosed is what a probe returns when the collector closed the
// connection cleanly.
var errClosed = errors.New("the collector closed the connection")

// conn is a TLS connection to the collector.
type conn struct {
	tls          *tls.Conn
	writeTimeout time.Duration
	probeWait    time.Duration
	used         bool // a batch went through it
}

// dial connects to the collector and completes the TLS handshake, which
// checks the collector's certificate (and presents the client's, for
// mutual TLS) as cfg says.
func dial(ctx context.Context, addr string, cfg *tls.Config, timeout time.Duration) (*tls.Conn, error) {
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		cfg.ServerName = host
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}, Config: cfg}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*tls.Conn), nil
}

// probe reports whether the collector closed the connection, waiting at
// most wait for it to say so. A syslog collector never writes on the
// connection (RFC 5425), so a read that times out means it is open, and
// one that ends with EOF, a reset or any other error means it is not.
// Bytes the collector did send (a TLS session ticket is handled inside
// crypto/tls and never seen here) are read and dropped.
func (c *conn) probe(wait time.Duration) error {
	if err := c.tls.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return err
	}
	var buf [512]byte
	for {
		_, err := c.tls.Read(buf[:])
		switch {
		case err == nil:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil
		case errors.Is(err, io.EOF):
			return errClosed
		default:
			return err
		}
	}
}

// send writes batch, the frames of one batch of messages, and reports
// whether it knows the batch reached a connection that was open: it
// probes before writing, since a collector that closed the connection
// while the exporter waited would otherwise take the batch into its
// kernel's buffer and drop it, and after writing, for a close during the
// write. A nil error does not prove the collector stored the messages
// (syslog has no acknowledgement); an error means they may not have
// reached it and must be sent again.
func (c *conn) send(batch []byte) error {
	if err := c.probe(time.Millisecond); err != nil {
		return fmt.Errorf("before sending: %w", err)
	}
	if err := c.tls.SetWriteDeadline(time.Now().Add(c.writeTimeout)); err != nil {
		return err
	}
	if _, err := c.tls.Write(batch); err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	if err := c.probe(c.probeWait); err != nil {
		return fmt.Errorf("after sending: %w", err)
	}
	c.used = true
	return nil
}

// close closes the connection, telling the collector first (TLS
// close_notify) when it can.
func (c *conn) close() error {
	if err := c.tls.SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
		return errors.Join(err, c.tls.NetConn().Close())
	}
	return c.tls.Close()
}
