package centre

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/medfed/medfed/directory"
	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/device"
	"github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/federation/prescription"
	"github.com/medfed/medfed/federation/query"
	"github.com/medfed/medfed/node/heap"
	"github.com/medfed/medfed/pseudonym"
)

// Node is a running centre: its data, its libp2p host and the federation
// services on it.
type Node struct {
	Centre     *Centre
	Host       host.Host
	Membership *federation.Membership
	Witness    *federation.Witness
	Publisher  *federation.Publisher
	Directory  *directory.Directory
	Consent    *consent.Service
	Query      *query.Client
	Patient    *patient.Service
	// Prescription claims supplies of prescriptions from their issuers.
	Prescription *prescription.Client

	holder           *query.Holder
	prescriptions    *prescription.Issuer // dispenses and cancels what this centre issued
	overPrescription string               // the rule checked at issue
	devices          *device.Registry     // the devices patients registered here
	rules            *pseudonym.Rules

	// The pseudonym services follow the adopted charter's key (followKey).
	keyMu        sync.Mutex
	keyVersion   uint64                           // the charter version last followed
	keyOPRF      federation.OPRFKey               // the key the services use
	share        *pseudonym.Share                 // this centre's share of it, or nil
	evaluator    *pseudonym.Evaluator             // when this centre holds a share
	pseudonyms   atomic.Pointer[pseudonym.Client] // when the federation has a key
	keySwitched  atomic.Int64                     // when the services last moved to new shares, Unix ns
	pseudonymCfg PseudonymConfig
	ceremonies   *pseudonym.Ceremonies // the key ceremonies this node takes part in
	ceremonyBusy atomic.Bool           // one key ceremony at a time

	memberRate *federation.MemberRate // shared by the query holder and the patient service
	interval   time.Duration          // the checkpoints' retry interval
	gap        time.Duration          // and the least time between two
	vocabulary RecordsConfig          // what a record's class and location may be
	mirror     *federation.MirrorSealer
	gater      *federation.Gater
	pageSize   int // entries per page of a patient's view
	transferMu sync.Mutex

	announceErr atomic.Pointer[error] // the start-up announce's last failure; nil or a nil error once it succeeded

	closeOnce sync.Once
	closeErr  error
	base      *slog.Logger // scoped to the centre; components add their name
	log       *slog.Logger
}

// An Option changes how Start starts a node.
type Option func(*startOptions)

type startOptions struct {
	metrics prometheus.Registerer
	tracer  trace.TracerProvider
}

// WithMetrics registers go-libp2p's metrics of the node's host with reg:
// its connections, streams by protocol, memory and dials. Without it the
// host keeps none. The centre's own counts are read with Node.Stats.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(o *startOptions) { o.metrics = reg }
}

// WithTracing traces the queries this node asks and answers with tp
// (OpenTelemetry); without it, none are traced.
func WithTracing(tp trace.TracerProvider) Option {
	return func(o *startOptions) { o.tracer = tp }
}

// Start opens the centre described by cfg and starts its services. The
// centre must have a charter installed.
func Start(ctx context.Context, cfg Config, log *slog.Logger, opts ...Option) (*Node, error) {
	var o startOptions
	for _, opt := range opts {
		opt(&o)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := Open(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	n := &Node{Centre: c, base: log.With("centre", c.Name), vocabulary: cfg.Records, pageSize: cfg.Patient.PageSize}
	n.log = n.base.With("component", "node")
	switch _, err := os.Stat(filepath.Join(c.dir, RestoredFile)); {
	case err == nil:
		// Before any service can append: see guardHistory.
		c.Ledger.Halt(ErrUnconfirmedRestore)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, errors.Join(err, c.Close())
	}
	if err := n.start(ctx, cfg, o); err != nil {
		n.Close()
		return nil, err
	}
	n.log.Info("node started", "peer", c.ID(), "addrs", n.Host.Addrs(), "charter_version", n.Membership.Current().Version)
	return n, nil
}

func (n *Node) start(ctx context.Context, cfg Config, o startOptions) error {
	st, err := n.Centre.federationState(ctx)
	if err != nil {
		return err
	}
	if len(st.Chain) == 0 {
		return fmt.Errorf("%w: found a federation with medfed federation init/sign/install, or join one with medfed federation join", ErrNoCharter)
	}
	gater := federation.NewGater()
	gater.Log(n.base.With("component", "gater"))
	n.gater = gater
	if n.Host, err = newHost(cfg.P2P, n.Centre.key, gater, o.metrics); err != nil {
		return err
	}
	n.Membership, err = federation.NewMembership(n.Host, st, federation.Options{
		Key:    n.Centre.key,
		Store:  ledgerStore{n.Centre.Ledger},
		Gater:  gater,
		Logger: n.base,
	})
	if err != nil {
		return err
	}
	charter := func() federation.Charter { return n.Membership.Current().Charter }
	if n.Witness, err = federation.NewWitness(n.Host, n.Centre.key, n.Centre.Ledger, charter, n.base); err != nil {
		return err
	}
	n.Publisher = federation.NewPublisher(n.Host, n.Centre.Ledger, charter, n.base)
	if n.mirror, err = federation.NewMirrorSealer(mirrorKey(n.Centre.key), n.Centre.Ledger.Origin()); err != nil {
		return err
	}
	n.Publisher.Mirror(n.mirror)
	if err := n.startDirectory(); err != nil {
		return err
	}
	if err := n.startPseudonyms(ctx, cfg); err != nil {
		return err
	}
	if err := n.startConsent(ctx, cfg.Consent); err != nil {
		return err
	}
	// One bound for each member's queries and patients' requests together,
	// as the charter's member-rate says.
	n.memberRate = federation.NewMemberRate(charter)
	if err := n.startQuery(ctx, o.tracer); err != nil {
		return err
	}
	if err := n.startPatient(ctx); err != nil {
		return err
	}
	if err := n.startPrescriptions(ctx, cfg.Prescription); err != nil {
		return err
	}
	if err := n.startDevices(ctx, cfg.Records, cfg.Devices); err != nil {
		return err
	}
	n.interval, n.gap = cfg.Ledger.CheckpointInterval, min(cfg.Ledger.CheckpointGap, cfg.Ledger.CheckpointInterval)
	return nil
}

// Run serves until ctx ends, then closes everything.
func (n *Node) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(7)
	go func() { defer wg.Done(); n.guardHistory(ctx) }()
	go func() { defer wg.Done(); n.followKeys(ctx) }()
	go func() { defer wg.Done(); n.Membership.Run(ctx) }()
	go func() { defer wg.Done(); n.announceAtStart(ctx) }()
	go func() { defer wg.Done(); n.Publisher.Run(ctx, n.interval, n.gap) }()
	go func() { defer wg.Done(); n.Witness.RunViews(ctx, viewsInterval) }()
	go func() { defer wg.Done(); heap.Run(ctx, trimInterval) }()
	wg.Wait()
	return n.Close()
}

// trimInterval is how often a centre gives the C heap's free pages back
// to the system: the SQLite caches of connections closed after a burst
// (the start-up announce, a backup, a busy hour) would otherwise stay
// resident.
const trimInterval = 10 * time.Second

// viewsInterval is how often a centre tells the other members which
// checkpoint of each log it last cosigned, so that a log showing different
// histories to different witnesses is caught.
const viewsInterval = 5 * time.Second

// Close stops the services and closes the centre; closing again returns
// the first close's error.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.close() })
	return n.closeErr
}

func (n *Node) close() error {
	var errs []error
	n.keyMu.Lock()
	if n.evaluator != nil {
		n.evaluator.Close()
	}
	n.keyMu.Unlock()
	if n.ceremonies != nil {
		n.ceremonies.Close()
	}
	if n.Patient != nil {
		n.Patient.Close()
	}
	if n.holder != nil {
		n.holder.Close()
	}
	if n.Query != nil {
		n.Query.Close()
	}
	if n.prescriptions != nil {
		n.prescriptions.Close()
	}
	if n.devices != nil {
		errs = append(errs, n.devices.Close())
	}
	if n.Consent != nil {
		n.Consent.Close()
	}
	if n.Membership != nil {
		n.Membership.Close()
	}
	if n.Directory != nil {
		errs = append(errs, n.Directory.Close())
	}
	if n.Host != nil {
		errs = append(errs, n.Host.Close())
	}
	if n.Centre != nil {
		errs = append(errs, n.Centre.Close())
	}
	err := errors.Join(errs...)
	n.log.Info("node stopped", "err", err)
	return err
}
