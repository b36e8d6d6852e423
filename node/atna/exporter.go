package atna

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/clock"
)

// Source is what the exporter reads of a centre: its audit trail, page by
// page from a cursor, and where its ledger ends, with a channel closed
// when it grows. *centre.Node is one.
type Source interface {
	AuditTrail(ctx context.Context, from int64, limit int) (centre.AuditPage, error)
	AuditHead() (size int64, grown <-chan struct{})
}

var _ Source = (*centre.Node)(nil)

// Options configure an Exporter. Collector, TLS, Origin, Dir, Source and
// Format are required; New documents the defaults of the others.
type Options struct {
	// Collector is the syslog collector's address, host:port (6514 is
	// syslog over TLS's port).
	Collector string
	// TLS is the client's TLS configuration, which the caller builds:
	// the CA pool that verifies the collector (RootCAs) and, for mutual
	// TLS, the client's certificate. ServerName defaults to the
	// collector's host.
	TLS *tls.Config
	// Hostname is the messages' HOSTNAME: this host's name, as the
	// collector should file the messages under.
	Hostname string
	// AppName is the messages' APP-NAME.
	AppName string
	// Facility is the messages' facility.
	Facility Facility
	// Origin is the ledger's origin (ledger.Origin): with an entry's
	// index, the unique id of its message.
	Origin string
	// Dir is the directory that holds the outbox's cursor (CursorFile).
	Dir string
	// Source is the centre whose audit trail is sent.
	Source Source
	// Format is how each entry is written: DICOM or FHIR.
	Format Format
	// Batch is the most ledger entries read, and messages sent, at once.
	Batch int
	// MinBackoff is the wait before the first retry after a failure; it
	// doubles with each consecutive failure up to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds a connection and its TLS handshake; WriteTimeout
	// the writing of one batch.
	DialTimeout, WriteTimeout time.Duration
	// ProbeWait is how long the read after each batch waits for the
	// collector to close the connection: about a round trip to it.
	ProbeWait time.Duration
	// IdleProbe is how often an idle connection is checked, so that a
	// collector gone away is seen (and retried) before there is
	// something to send.
	IdleProbe time.Duration
	// Logger receives the exporter's events. It never sees a pseudonym.
	Logger *slog.Logger
}

// LogValue keeps the TLS configuration, which may hold the client's
// private key, out of logs.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(slog.String("collector", o.Collector), slog.String("format", o.Format.Name),
		slog.String("hostname", o.Hostname), slog.String("dir", o.Dir))
}

// The defaults New fills in.
const (
	DefaultAppName      = "medfed"
	DefaultFacility     = FacilityAuthPriv
	DefaultBatch        = 256
	DefaultMinBackoff   = 100 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
	DefaultDialTimeout  = 10 * time.Second
	DefaultWriteTimeout = 30 * time.Second
	DefaultProbeWait    = 100 * time.Millisecond
	DefaultIdleProbe    = 5 * time.Second
)

// validate fills in the defaults and names every field that is wrong.
func (o *Options) validate() error {
	if o.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("Hostname: not given, and the host's: %w", err)
		}
		o.Hostname = h
	}
	if o.AppName == "" {
		o.AppName = DefaultAppName
	}
	if o.Facility == 0 {
		o.Facility = DefaultFacility
	}
	defaults := []struct {
		d   *time.Duration
		def time.Duration
	}{{&o.MinBackoff, DefaultMinBackoff}, {&o.MaxBackoff, DefaultMaxBackoff}, {&o.DialTimeout, DefaultDialTimeout},
		{&o.WriteTimeout, DefaultWriteTimeout}, {&o.ProbeWait, DefaultProbeWait}, {&o.IdleProbe, DefaultIdleProbe}}
	for _, d := range defaults {
		if *d.d == 0 {
			*d.d = d.def
		}
	}
	if o.Batch == 0 {
		o.Batch = DefaultBatch
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if _, _, err := net.SplitHostPort(o.Collector); err != nil {
		errs = append(errs, errors.New("Collector: want host:port"))
	}
	if o.TLS == nil {
		errs = append(errs, errors.New("TLS: syslog is sent over TLS only"))
	}
	if !headerField(o.Hostname, maxHostname) {
		errs = append(errs, errors.New("Hostname: want 1 to 255 printable ASCII characters"))
	}
	if !headerField(o.AppName, maxAppName) {
		errs = append(errs, errors.New("AppName: want 1 to 48 printable ASCII characters"))
	}
	if o.Facility > 23 {
		errs = append(errs, errors.New("Facility: syslog's are 0 to 23"))
	}
	if o.Origin == "" {
		errs = append(errs, errors.New("Origin: required"))
	}
	if o.Dir == "" {
		errs = append(errs, errors.New("Dir: required"))
	}
	if o.Source == nil {
		errs = append(errs, errors.New("Source: required"))
	}
	if err := o.Format.validate(); err != nil {
		errs = append(errs, err)
	}
	if o.Batch < 0 {
		errs = append(errs, errors.New("Batch: negative"))
	}
	for _, d := range defaults {
		if *d.d < 0 {
			errs = append(errs, errors.New("a negative duration"))
			break
		}
	}
	if o.MaxBackoff < o.MinBackoff {
		errs = append(errs, errors.New("MaxBackoff: less than MinBackoff"))
	}
	return errors.Join(errs...)
}

// Status is what an operator, or a metrics adapter, sees of an exporter.
type Status struct {
	Collector string
	// Connected: a connection to the collector is open.
	Connected bool
	// Next is the index of the next ledger entry to export; Backlog the
	// ledger entries from it to the ledger's end, of every kind: what
	// remains to read, of which the audited kinds are sent.
	Next, Backlog int64
	// Exported counts the messages delivered since the exporter started.
	Exported uint64
	// LastDelivery is when a batch was last delivered; zero if none was
	// since the exporter started.
	LastDelivery time.Time
	// Failures counts the failures since the last success (a batch
	// delivered, or an idle connection found open), and LastError is the
	// latest of them.
	Failures  int
	LastError error
}

// Exporter sends a centre's audit trail to a syslog collector. Run sends;
// Status may be called from any goroutine.
type Exporter struct {
	opts Options
	log  *slog.Logger

	conn  *conn // Run's alone
	saved int64 // the cursor on disk; Run's alone
	// unsaved: messages were delivered past the cursor on disk, which
	// must be written before anything else is sent; Run's alone.
	unsaved bool

	mu        sync.Mutex // guards the fields below, which Status reads
	next      int64
	connected bool
	exported  uint64
	delivered time.Time
	failures  int
	lastErr   error
}

// New returns an exporter configured by opts, resuming from the cursor
// kept in opts.Dir (created if missing); a new one starts at the ledger's
// first entry, so the whole audit trail is sent. The defaults: AppName
// "medfed", Facility authpriv, Batch 256, a backoff from 100ms to 30s,
// DialTimeout 10s, WriteTimeout 30s, ProbeWait 100ms, IdleProbe 5s, the
// host's name as Hostname, and a Logger that discards.
func New(opts Options) (*Exporter, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("atna: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("atna: %w", err)
	}
	next, err := loadCursor(opts.Dir, opts.Origin)
	if err != nil {
		return nil, err
	}
	x := &Exporter{opts: opts, log: opts.Logger.With("component", "atna"), next: next, saved: next}
	if size, _ := opts.Source.AuditHead(); next > size {
		// A ledger restored from an older backup recovers the entries it
		// lost from its witnesses: the same entries at the same indexes,
		// which were sent already. The cursor waits for them.
		x.log.Warn("the ledger ends before the audit cursor: waiting for it to recover its entries", "next", next, "size", size)
	}
	return x, nil
}

// Status returns the exporter's state now.
func (x *Exporter) Status() Status {
	size, _ := x.opts.Source.AuditHead()
	x.mu.Lock()
	defer x.mu.Unlock()
	return Status{Collector: x.opts.Collector, Connected: x.connected, Next: x.next, Backlog: max(0, size-x.next),
		Exported: x.exported, LastDelivery: x.delivered, Failures: x.failures, LastError: x.lastErr}
}

// Run sends the audit trail until ctx ends, then writes the cursor,
// closes the connection and returns; its error is the cursor's, which a
// restart would otherwise find behind what was sent (and send again).
// Every failure while it runs (the collector down or refusing the
// handshake, an entry the centre cannot read or the format cannot write,
// the cursor's file) is logged, counted in Status and retried with a
// backoff, from the cursor: an entry is never skipped.
func (x *Exporter) Run(ctx context.Context) error {
	x.log.Info("audit export starting", "collector", x.opts.Collector, "format", x.opts.Format.Name, "next", x.cursor())
	defer x.disconnect(nil)
	wait := time.Duration(0)
	for {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			if err := x.saveCursor(); err != nil {
				return err
			}
			x.log.Info("audit export stopped", "next", x.cursor())
			return nil
		}
		if err := x.round(ctx); err != nil {
			if ctx.Err() != nil {
				continue
			}
			wait = x.failed(err, wait)
			continue
		}
		wait = 0
	}
}

// round does one step: it connects when it is not connected, and sends
// one batch when the ledger has entries past the cursor or waits for it
// to grow (probing the idle connection) when not.
//
// The cursor is written after each batch delivered and before each wait:
// not after a page with no audited entry, so that a ledger of many
// records costs no write per page (a restart reads those pages again and
// sends nothing of them).
func (x *Exporter) round(ctx context.Context) error {
	if x.unsaved {
		if err := x.saveCursor(); err != nil {
			return err
		}
	}
	if x.conn == nil {
		if err := x.connect(ctx); err != nil {
			return err
		}
	}
	next := x.cursor()
	size, grown := x.opts.Source.AuditHead()
	if next >= size {
		if err := x.saveCursor(); err != nil {
			return err
		}
		t := time.NewTimer(x.opts.IdleProbe)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil
		case <-grown:
			return nil
		case <-t.C:
			if err := x.conn.probe(time.Millisecond); err != nil {
				x.disconnect(err)
				return fmt.Errorf("idle connection: %w", err)
			}
			x.mu.Lock()
			x.failures, x.lastErr = 0, nil
			x.mu.Unlock()
			return nil
		}
	}
	page, err := x.opts.Source.AuditTrail(ctx, next, x.opts.Batch)
	if err != nil {
		return err
	}
	if page.Next <= next {
		return fmt.Errorf("the audit trail from %d did not move on", next)
	}
	if len(page.Entries) == 0 {
		x.mu.Lock()
		x.next = page.Next
		x.mu.Unlock()
		return nil
	}
	batch, err := x.frames(page.Entries)
	if err != nil {
		return err
	}
	if err := x.conn.send(batch); err != nil {
		if !x.conn.used {
			// Under TLS 1.3 a collector checks the client's certificate
			// once the handshake has completed on the client's side.
			err = fmt.Errorf("%w (the first batch on this connection: does the collector accept the client's certificate?)", err)
		}
		x.disconnect(err)
		return err
	}
	x.mu.Lock()
	x.next = page.Next
	x.exported += uint64(len(page.Entries))
	x.delivered = clock.Now()
	x.failures, x.lastErr = 0, nil
	x.mu.Unlock()
	x.unsaved = true
	x.log.Debug("audit messages delivered", "count", len(page.Entries), "next", page.Next)
	return x.saveCursor()
}

// frames returns the framed messages of entries, in order.
func (x *Exporter) frames(entries []centre.AuditEntry) ([]byte, error) {
	var out, msg []byte
	for _, e := range entries {
		body, err := x.opts.Format.Encode(e)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", e.Index, err)
		}
		severity := uint8(severityNotice)
		if e.Refused() || e.Emergency() {
			severity = severityWarning
		}
		m := message{facility: x.opts.Facility, severity: severity, time: e.Time, hostname: x.opts.Hostname, appName: x.opts.AppName,
			msgID: x.opts.Format.MsgID, origin: x.opts.Origin, index: e.Index, kind: e.Kind.String(), body: body}
		msg = m.appendTo(msg[:0])
		out = appendFrame(out, msg)
	}
	return out, nil
}

// connect opens a connection to the collector.
func (x *Exporter) connect(ctx context.Context) error {
	c, err := dial(ctx, x.opts.Collector, x.opts.TLS, x.opts.DialTimeout)
	if err != nil {
		return fmt.Errorf("connecting to the collector: %w", err)
	}
	x.conn = &conn{tls: c, writeTimeout: x.opts.WriteTimeout, probeWait: x.opts.ProbeWait}
	// A connection made is no success yet: a collector that refuses the
	// client's certificate says so after a TLS 1.3 handshake completes.
	x.mu.Lock()
	x.connected = true
	x.mu.Unlock()
	x.log.Info("connected to the audit collector", "collector", x.opts.Collector, "tls", tls.VersionName(c.ConnectionState().Version))
	return nil
}

// disconnect closes the connection, if any: because of why, or (nil)
// because the exporter stops.
func (x *Exporter) disconnect(why error) {
	if x.conn == nil {
		return
	}
	err := x.conn.close()
	x.conn = nil
	x.mu.Lock()
	x.connected = false
	x.mu.Unlock()
	switch {
	case err != nil && why == nil:
		x.log.Warn("closing the connection to the audit collector", "err", err)
	case err != nil:
		// Closing a connection the collector broke fails as a rule (the
		// close_notify has nowhere to go): why is the news.
		x.log.Debug("closing a broken connection to the audit collector", "err", err)
	}
}

// failed records err and returns the wait before the next try: the
// backoff after the wait before this one.
func (x *Exporter) failed(err error, wait time.Duration) time.Duration {
	wait = min(max(2*wait, x.opts.MinBackoff), x.opts.MaxBackoff)
	x.mu.Lock()
	x.failures++
	x.lastErr = err
	n := x.failures
	x.mu.Unlock()
	x.log.Warn("audit export failed; trying again", "err", err, "failures", n, "retry_in", wait)
	return wait
}

func (x *Exporter) cursor() int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.next
}

// saveCursor writes the cursor when it moved since it was last written.
func (x *Exporter) saveCursor() error {
	next := x.cursor()
	if next == x.saved {
		return nil
	}
	if err := saveCursor(x.opts.Dir, x.opts.Origin, next); err != nil {
		return err
	}
	x.saved, x.unsaved = next, false
	return nil
}
