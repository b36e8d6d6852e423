// Package metrics serves a running centre's Prometheus metrics on a
// listener of its own: medfed's counts (appends and their commits,
// finality and each witness's lag, the directory's backlog, retries,
// lookups and misses, consent reads and decisions, the latency of the
// holders' answers by outcome, rate-limit refusals, pseudonym
// evaluations, the API certificate's expiry), go-libp2p's own (the
// resource manager's connections, streams by protocol and memory; the
// node registers them with the registry it is started with) and the Go
// runtime's.
//
// Every medfed metric is read from a snapshot (centre.Stats) at scrape
// time, so that nothing is counted twice and a scrape costs no disk read.
// Labels are member names, outcomes and protocols: never a patient's
// pseudonym, identifier or payload.
package metrics

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/stats"
)

// Source is what the metrics read: a running centre.
type Source interface {
	Stats() centre.Stats
}

// Options configure the metrics.
type Options struct {
	// Source is the running centre; required.
	Source Source
	// Registry holds what else is exported beside medfed's own: the node
	// registers go-libp2p's metrics with it (centre.WithMetrics). Nil: a
	// new registry.
	Registry *prometheus.Registry
	// Certificate is the API's certificate, whose expiry is exported;
	// nil when the API serves plain HTTP.
	Certificate func() *x509.Certificate
	// Throttled counts the API's requests refused by its rate limits;
	// nil when there is no API.
	Throttled func() uint64
	// Audit reads the ATNA export's state; nil when there is none.
	Audit func() Audit
	// Build labels medfed_build_info: the module version and revision.
	Version, Revision string
	Logger            *slog.Logger
}

// Audit is the state of the export of the audit trail to the hospital's
// audit record repository (node/atna).
type Audit struct {
	Backlog      int64     // ledger entries not yet read for export
	Exported     uint64    // messages delivered since the node started
	Connected    bool      // to the collector
	Failures     int       // since the last success
	LastDelivery time.Time // zero before the first
}

// Server serves /metrics.
type Server struct {
	reg *prometheus.Registry
	log *slog.Logger
}

// New registers medfed's collector and the Go runtime's with the
// registry.
func New(o Options) (*Server, error) {
	if o.Source == nil {
		return nil, errors.New("metrics: a source is required")
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for _, c := range []prometheus.Collector{
		&collector{o: o},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := o.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return &Server{reg: o.Registry, log: o.Logger.With("component", "metrics")}, nil
}

// Handler answers GET /metrics in Prometheus's text (or OpenMetrics)
// format; any other path is not found.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		EnableOpenMetrics: true,
		Timeout:           10 * time.Second,
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "only GET /metrics is served here", http.StatusNotFound)
	})
	return mux
}

// Serve answers on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("metrics: %w", err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shut)
	if serveErr := <-done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// collector turns a centre's snapshot into metrics at each scrape.
type collector struct {
	o Options
}

// desc is one medfed metric.
func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("medfed_"+name, help, labels, nil)
}

var (
	buildInfo          = desc("build_info", "The medfed build: its module version and VCS revision.", "version", "revision")
	ledgerEntries      = desc("ledger_entries", "Entries on this centre's ledger.")
	ledgerFinal        = desc("ledger_final_entries", "Entries of the ledger in its latest final checkpoint (cosigned by the witness quorum).")
	ledgerAppends      = desc("ledger_appends_total", "Entries appended to the ledger since the node started.")
	ledgerFailed       = desc("ledger_commit_failures_total", "Ledger commits that failed (every append they held failed).")
	ledgerCommitSize   = desc("ledger_commit_entries", "Entries per ledger commit (group commit batch size).")
	ledgerCommitTime   = desc("ledger_commit_seconds", "Time of a ledger commit, from its first append taken to its acknowledgement.")
	finalAt            = desc("checkpoint_final_timestamp_seconds", "When the publisher last made a checkpoint final, Unix seconds; 0 before the first.")
	checkpointsFinal   = desc("checkpoints_final_total", "Checkpoints made final since the node started.")
	checkpointsFailed  = desc("checkpoint_failures_total", "Publishing rounds that failed to reach the witness quorum.")
	finality           = desc("checkpoint_finality_seconds", "Time from a checkpoint's signature to its witness quorum.")
	witnessLag         = desc("witness_lag_entries", "Entries of this centre's ledger beyond what the witness last cosigned.", "witness")
	witnessLast        = desc("witness_last_cosignature_timestamp_seconds", "When the witness last cosigned this centre's ledger, Unix seconds; 0 if not since the node started.", "witness")
	announcePending    = desc("directory_announce_backlog", "Directory announcements queued to be sent.")
	repairBacklog      = desc("directory_repair_backlog", "Directory announcements sent, yet to be checked at their replicas.")
	announceResent     = desc("directory_announce_resent_total", "Announcements a replica lacked and was sent again.")
	announceRetries    = desc("directory_announce_retries_total", "Announcement checks that failed and were queued to be retried.")
	lookups            = desc("directory_lookups_total", "Lookups of a patient's holders.")
	lookupMisses       = desc("directory_lookup_misses_total", "Lookups that found no holder.")
	lookupsIncomplete  = desc("directory_lookups_incomplete_total", "Lookups fewer replicas answered than were asked.")
	consentSyncs       = desc("consent_syncs_total", "Reads of a patient's consent state from a majority of its set, by result (ok, stale).", "result")
	consentDecisions   = desc("consent_decisions_total", "Access decisions this centre made as a holder, by decision (released, refused).", "decision")
	consentPatients    = desc("consent_patients", "Patients whose consent state this centre keeps in memory.")
	queryLatency       = desc("query_answer_seconds", "Latency of a holder's answer to this centre's query, from the request sent to the answer verified, by outcome.", "outcome")
	rateLimited        = desc("rate_limited_total", "Requests refused by a rate limit, by limit (member: the charter's member-rate; pseudonym: this centre's evaluations for another; api: the API's routes without a token).", "limit")
	evaluations        = desc("pseudonym_evaluations_total", "Pseudonym elements this centre evaluated for other centres with its key share.")
	members            = desc("federation_members", "Members in the charter in force.")
	connected          = desc("federation_connected_members", "Other members this centre has a connection to.")
	charterVersion     = desc("charter_version", "Version of the charter in force.")
	auditBacklog       = desc("audit_backlog_entries", "Ledger entries not yet read for the audit export (ATNA).")
	auditExported      = desc("audit_exported_total", "Audit messages delivered to the collector since the node started.")
	auditConnected     = desc("audit_connected", "1 while a connection to the audit collector is open.")
	auditFailures      = desc("audit_failures", "Failures of the audit export since its last success.")
	auditLast          = desc("audit_last_delivery_timestamp_seconds", "When audit messages were last delivered, Unix seconds; 0 before the first.")
	certificateExpires = desc("tls_certificate_expiry_timestamp_seconds", "When the certificate expires, Unix seconds.", "listener")
)

// Describe sends every medfed metric's description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{buildInfo, ledgerEntries, ledgerFinal, ledgerAppends, ledgerFailed, ledgerCommitSize, ledgerCommitTime,
		finalAt, checkpointsFinal, checkpointsFailed, finality, witnessLag, witnessLast, announcePending, repairBacklog, announceResent,
		announceRetries, lookups, lookupMisses, lookupsIncomplete, consentSyncs, consentDecisions, consentPatients, queryLatency,
		rateLimited, evaluations, members, connected, charterVersion, auditBacklog, auditExported, auditConnected, auditFailures, auditLast,
		certificateExpires} {
		ch <- d
	}
}

// Collect reads the centre's snapshot and sends every metric.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.o.Source.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	histogram := func(d *prometheus.Desc, s stats.Snapshot, labels ...string) {
		buckets := make(map[float64]uint64, len(s.Bounds))
		for i, b := range s.Bounds {
			buckets[b] = s.Cumulative[i]
		}
		ch <- prometheus.MustNewConstHistogram(d, s.Count, s.Sum, buckets, labels...)
	}
	unix := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return float64(t.UnixNano()) / 1e9
	}

	gauge(buildInfo, 1, c.o.Version, c.o.Revision)
	gauge(ledgerEntries, float64(st.Size))
	gauge(ledgerFinal, float64(st.FinalSize))
	counter(ledgerAppends, st.Ledger.Appended)
	counter(ledgerFailed, st.Ledger.FailedCommits)
	histogram(ledgerCommitSize, st.Ledger.CommitSizes)
	histogram(ledgerCommitTime, st.Ledger.CommitSeconds)
	gauge(finalAt, unix(st.Publisher.FinalAt))
	counter(checkpointsFinal, st.Publisher.Finalised)
	counter(checkpointsFailed, st.Publisher.Failed)
	histogram(finality, st.Publisher.Finality)
	for _, w := range st.Publisher.Witnesses {
		gauge(witnessLag, float64(max(st.Size-w.Size, 0)), w.Name)
		gauge(witnessLast, unix(w.At), w.Name)
	}
	gauge(announcePending, float64(st.Directory.Pending))
	gauge(repairBacklog, float64(st.Directory.Repair))
	counter(announceResent, st.Directory.Resent)
	counter(announceRetries, st.Directory.Retries)
	counter(lookups, st.Directory.Lookups)
	counter(lookupMisses, st.Directory.Misses)
	counter(lookupsIncomplete, st.Directory.Incomplete)
	counter(consentSyncs, st.Consent.Synced, "ok")
	counter(consentSyncs, st.Consent.Stale, "stale")
	counter(consentDecisions, st.Consent.Released, "released")
	counter(consentDecisions, st.Consent.Refused, "refused")
	gauge(consentPatients, float64(st.Consent.Patients))
	for outcome, s := range st.Queries {
		histogram(queryLatency, s, outcome)
	}
	counter(rateLimited, st.RateRefused, "member")
	counter(rateLimited, st.Pseudonyms.Limited, "pseudonym")
	if c.o.Throttled != nil {
		counter(rateLimited, c.o.Throttled(), "api")
	}
	counter(evaluations, st.Pseudonyms.Evaluated)
	gauge(members, float64(st.Members))
	gauge(connected, float64(st.Connected))
	gauge(charterVersion, float64(st.Version))
	if c.o.Audit != nil {
		a := c.o.Audit()
		gauge(auditBacklog, float64(a.Backlog))
		counter(auditExported, a.Exported)
		up := 0.0
		if a.Connected {
			up = 1
		}
		gauge(auditConnected, up)
		gauge(auditFailures, float64(a.Failures))
		gauge(auditLast, unix(a.LastDelivery))
	}
	if c.o.Certificate != nil {
		if cert := c.o.Certificate(); cert != nil {
			gauge(certificateExpires, unix(cert.NotAfter), "api")
		}
	}
}
