package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/medfed/medfed/directory"
	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/query"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/records"
)

// A simCentre is one centre of the scale simulation: a real centre's data
// directory (centre.Open: its key, SQLite ledger and record store) and
// the federation services a `medfed node` runs, built with their public
// constructors as node/centre builds them, on a mocknet host instead of
// the TCP host centre.Start makes (it takes no host from outside):
// membership, witness, publisher with mirrors, the directory (kad-dht on
// its own SQLite file), consent, and the query holder and client. It runs
// the loops `medfed node` runs: membership, publishing every checkpoint
// interval and the witnesses' views. It has no HTTP API, admin socket,
// pseudonym services (the charter deals no pseudonym key) or patient
// service; its host has no connection gater (membership keeps one up to
// date, unused) or resource manager, which mocknet cannot be given. It
// has a node's connection manager (centre.NewConnManager), beside the
// host.
type simCentre struct {
	name string
	cfg  centre.Config
	c    *centre.Centre
	host meteredHost

	membership *federation.Membership
	witness    *federation.Witness
	publisher  *federation.Publisher
	directory  *directory.Directory
	consent    *consent.Service
	holder     *query.Holder
	client     *query.Client

	life    context.CancelFunc // ends membership's loop
	lifeWG  sync.WaitGroup
	loops   context.CancelFunc // ends publishing and views; nil while they are stopped
	loopsWG sync.WaitGroup
}

// simAddr is the address the charter lists for centre i: never dialled
// (mocknet connects hosts by their links), but it must be one a charter
// accepts.
func simAddr(i int) string {
	return fmt.Sprintf("/ip4/10.%d.%d.%d/tcp/4001", (i+1)>>16&255, (i+1)>>8&255, (i+1)&255)
}

// openSimCentre opens centre i's data directory under root and adds its
// host to mn.
func openSimCentre(ctx context.Context, mn mocknet.Mocknet, m *meter, root string, i int) (*simCentre, error) {
	cfg := centre.DefaultConfig()
	cfg.Centre.Name = fmt.Sprintf("c%04d", i)
	cfg.Federation.ID = federationID
	cfg.Data.Dir = filepath.Join(root, cfg.Centre.Name)
	cfg.P2P.Listen = []string{simAddr(i)}
	c, err := centre.Open(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	sk, err := crypto.UnmarshalEd25519PrivateKey(c.Key())
	if err != nil {
		return nil, errors.Join(err, c.Close())
	}
	addr, err := ma.NewMultiaddr(simAddr(i))
	if err != nil {
		return nil, errors.Join(err, c.Close())
	}
	h, err := mn.AddPeer(sk, addr)
	if err != nil {
		return nil, errors.Join(err, c.Close())
	}
	// A node's connection manager, kept beside the host: it learns of
	// connections from the network, and trims by closing them.
	cm, err := centre.NewConnManager()
	if err != nil {
		return nil, errors.Join(err, c.Close())
	}
	h.Network().Notify(cm.Notifee())
	return &simCentre{name: cfg.Centre.Name, cfg: cfg, c: c, host: meteredHost{Host: h, m: m, cm: cm}}, nil
}

// member is the centre as the charter lists it.
func (s *simCentre) member() (federation.Member, error) {
	a, err := ma.NewMultiaddr(s.cfg.P2P.Listen[0])
	return federation.Member{Name: s.name, ID: s.c.ID(), Addrs: []ma.Multiaddr{a}}, err
}

// derive is a key of the centre's for purpose, as node/centre derives its
// own (HKDF-SHA256 of the key's seed).
func derive(key ed25519.PrivateKey, purpose string) ([]byte, error) {
	return hkdf.Key(sha256.New, key.Seed(), nil, purpose, 32)
}

// start starts the centre's services on its adopted chain, as
// centre.Start does, and membership's loop; the directory starts with
// startDirectory, publishing and views with startLoops.
func (s *simCentre) start(ctx context.Context, chain [][]byte) (err error) {
	st := federation.State{Chain: chain, Approvals: map[uint64][32]byte{}}
	key := s.c.Key()
	if s.membership, err = federation.NewMembership(s.host, st, federation.Options{Key: key, Store: centre.NewCharterStore(s.c.Ledger), Gater: federation.NewGater()}); err != nil {
		return err
	}
	charter := func() federation.Charter { return s.membership.Current().Charter }
	if s.witness, err = federation.NewWitness(s.host, key, s.c.Ledger, charter, nil); err != nil {
		return err
	}
	s.publisher = federation.NewPublisher(s.host, s.c.Ledger, charter, nil)
	mk, err := derive(key, "medfed ledger mirror seal v1")
	if err != nil {
		return err
	}
	sealer, err := federation.NewMirrorSealer(mk, s.c.Ledger.Origin())
	if err != nil {
		return err
	}
	s.publisher.Mirror(sealer)
	if s.consent, err = consent.New(s.host, consent.Options{
		Key:       key,
		Ledger:    s.c.Ledger,
		Charter:   charter,
		Holders:   s.holders,
		Holds:     s.holds,
		Erase:     s.erase,
		Lease:     s.cfg.Consent.Lease,
		LeaseFile: filepath.Join(s.cfg.Data.Dir, centre.LeaseFile),
	}); err != nil {
		return err
	}
	if err := s.consent.Load(nil); err != nil { // a new ledger holds no consent yet
		return err
	}
	if s.holder, err = query.NewHolder(ctx, s.host, query.HolderOptions{
		Key:     key,
		Ledger:  s.c.Ledger,
		Consent: s.consent,
		Payloads: func(ctx context.Context, r ledger.Record) ([]byte, records.Opening, error) {
			return s.c.Records.Get(ctx, records.ID(r.Payload))
		},
		Charter: charter,
		Rate:    federation.NewMemberRate(charter),
	}); err != nil {
		return err
	}
	if s.client, err = query.NewClient(s.host, query.ClientOptions{Key: key, Charter: charter, Holders: s.holders, Local: s.holder.Answer}); err != nil {
		return err
	}
	life, end := context.WithCancel(context.WithoutCancel(ctx))
	s.life = end
	s.lifeWG.Go(func() { s.membership.Run(life) })
	return nil
}

// startDirectory starts the centre's part of the directory, as
// node/centre configures it (the replication and lookup width its
// defaults give). Until it has, the services that ask the directory
// (consent's and the query's holders) must not be asked anything.
func (s *simCentre) startDirectory() (err error) {
	s.directory, err = directory.New(s.host, directory.Options{
		Federation: s.membership.Current().Federation,
		Path:       filepath.Join(s.cfg.Data.Dir, centre.DirectoryFile),
		RowKey:     s.c.RowKey(centre.DirectoryFile),
		Members: func() []peer.AddrInfo {
			ms := s.membership.Current().Members
			out := make([]peer.AddrInfo, len(ms))
			for i, m := range ms {
				out[i] = peer.AddrInfo{ID: m.ID, Addrs: m.Addrs}
			}
			return out
		},
		IsMember: func(id peer.ID) bool {
			_, ok := s.membership.Current().Member(id)
			return ok
		},
		MembersVersion: func() uint64 { return s.membership.Current().Version },
	})
	return err
}

// startLoops starts what a node runs besides membership: publishing every
// checkpoint interval and the witnesses' exchange of views every 5 s (as
// node/centre's Run).
func (s *simCentre) startLoops() {
	if s.loops != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.loops = cancel
	s.loopsWG.Go(func() {
		s.publisher.Run(ctx, s.cfg.Ledger.CheckpointInterval, min(s.cfg.Ledger.CheckpointGap, s.cfg.Ledger.CheckpointInterval))
	})
	s.loopsWG.Go(func() { s.witness.RunViews(ctx, 5*time.Second) })
}

// stopLoops stops publishing and views, so that an operation measured is
// not mixed with a checkpoint the loop publishes.
func (s *simCentre) stopLoops() {
	if s.loops == nil {
		return
	}
	s.loops()
	s.loopsWG.Wait()
	s.loops = nil
}

// holders is node/centre's: the members the directory lists as holding
// p, with this centre when its ledger holds p's records.
func (s *simCentre) holders(ctx context.Context, p ledger.Pseudonym) ([]peer.ID, error) {
	res, err := s.directory.Lookup(ctx, p)
	ids := res.Holders
	if !slices.Contains(ids, s.c.ID()) {
		held, herr := s.holds(ctx, p)
		if herr != nil {
			return ids, errors.Join(err, herr)
		}
		if held {
			ids = append(ids, s.c.ID())
		}
	}
	return ids, err
}

// holds reports whether the ledger holds a record of p.
func (s *simCentre) holds(ctx context.Context, p ledger.Pseudonym) (bool, error) {
	es, err := s.c.Ledger.EntriesForKinds(ctx, p, ledger.KindRecord, ledger.KindAmendment)
	return len(es) > 0, err
}

// erase carries out a patient's erasure.
func (s *simCentre) erase(ctx context.Context, p ledger.Pseudonym, before time.Time) error {
	if _, err := s.c.EraseBefore(ctx, p, before); err != nil {
		return err
	}
	held, err := s.holds(ctx, p)
	if err != nil || held {
		return err
	}
	return s.directory.Withdraw(ctx, p)
}

// close stops everything the centre started and closes it.
func (s *simCentre) close() error {
	s.stopLoops()
	if s.life != nil {
		s.life()
		s.lifeWG.Wait()
	}
	var errs []error
	if s.holder != nil {
		s.holder.Close()
	}
	if s.consent != nil {
		s.consent.Close()
	}
	if s.membership != nil {
		s.membership.Close()
	}
	if s.directory != nil {
		errs = append(errs, s.directory.Close())
	}
	if s.host.cm != nil {
		errs = append(errs, s.host.cm.Close())
	}
	errs = append(errs, s.host.Close(), s.c.Close())
	return errors.Join(errs...)
}
