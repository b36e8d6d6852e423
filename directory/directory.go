package directory

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dsq "github.com/ipfs/go-datastore/query"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-base32"
	mh "github.com/multiformats/go-multihash"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/closest"
	"github.com/medfed/medfed/node/ledger"
)

// ProtocolPrefix is the prefix of the directory's Kademlia protocol:
// /medfed/kad/1.0.0.
const ProtocolPrefix = "/medfed"

// domain separates directory keys from every other use of a pseudonym.
const domain = "medfed/directory/v1"

// Key returns the directory key of a pseudonym in a federation:
// CIDv1(raw, sha2-256("medfed/directory/v1" || u16 len || federation ||
// pseudonym)). The length prefix keeps federation IDs from running into
// the pseudonym.
func Key(federation string, p ledger.Pseudonym) cid.Cid {
	return cid.NewCidV1(cid.Raw, multihash(digest(federation, p)))
}

func digest(federation string, p ledger.Pseudonym) [32]byte {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(federation))))
	h.Write([]byte(federation))
	h.Write(p[:])
	return [32]byte(h.Sum(nil))
}

// multihash wraps a SHA-256 digest as a multihash.
func multihash(d [32]byte) mh.Multihash {
	m, err := mh.Encode(d[:], mh.SHA2_256)
	if err != nil {
		panic(err) // SHA2_256 with 32 bytes always encodes
	}
	return m
}

// recordsNS is where the store keeps the DHT's provider records.
var recordsNS = ds.NewKey("/records")

// memberRecords is the provider-record datastore: it refuses a record
// naming a provider that is not a member, so an outsider that reaches the
// DHT (the node's connection gater keeps them out; this is the second
// wall) cannot make a centre store its announcements.
//
// It also answers for this centre's own announcements: reading a key's
// records, which is how the DHT's provider manager reads them (a query
// of the key's prefix), adds this centre's record when the keystore
// holds the key. The record is the keystore's row, so nothing is written
// a second time to announce a key, and a key withdrawn, which leaves the
// keystore, goes with it.
type memberRecords struct {
	ds.Batching
	isMember func(peer.ID) bool
	self     peer.ID
	// announced reports whether this centre announces key.
	announced func(ctx context.Context, key mh.Multihash) (bool, error)
	log       *slog.Logger
}

// ErrNotMember is returned when a provider record names a non-member.
var ErrNotMember = node.E(node.Forbidden, "provider is not a member")

func (m memberRecords) Put(ctx context.Context, k ds.Key, v []byte) error {
	if err := m.check(k); err != nil {
		return err
	}
	return m.Batching.Put(ctx, k, v)
}

func (m memberRecords) Batch(ctx context.Context) (ds.Batch, error) {
	b, err := m.Batching.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return memberBatch{b, m}, nil
}

// Query is the store's query, with this centre's own record added to the
// records of a key it announces.
func (m memberRecords) Query(ctx context.Context, q dsq.Query) (dsq.Results, error) {
	res, err := m.Batching.Query(ctx, q)
	key, ok := recordsOf(q)
	if err != nil || !ok {
		return res, err
	}
	defer res.Close()
	entries, err := res.Rest()
	if err != nil {
		return nil, err
	}
	own, err := m.announced(ctx, key)
	if err != nil {
		// Others' records still answer: only this centre's is missing,
		// from this answer.
		m.log.Warn("reading the keystore for this centre's own announcement", "err", err)
		return dsq.ResultsWithEntries(q, entries), nil
	}
	if own {
		// A record of its own in the table (written by AnnounceEach, or
		// by a medfed from before) gives way to the fresh one: it may be
		// about to expire.
		mine := recordKey(key, m.self).String()
		entries = slices.DeleteFunc(entries, func(e dsq.Entry) bool { return e.Key == mine })
		v := binary.AppendVarint(nil, time.Now().UnixNano()) // as kad-dht writes a record's time
		entries = append(entries, dsq.Entry{Key: mine, Value: v, Size: len(v)})
	}
	return dsq.ResultsWithEntries(q, entries), nil
}

// recordsOf returns the key whose records q reads, the provider manager's
// query: no more than the prefix /providers/<key>.
func recordsOf(q dsq.Query) (mh.Multihash, bool) {
	if len(q.Filters) > 0 || len(q.Orders) > 0 || q.Limit > 0 || q.Offset > 0 || q.KeysOnly {
		return nil, false
	}
	list := ds.NewKey(q.Prefix).List()
	if len(list) != 2 || "/"+list[0]+"/" != records.ProvidersKeyPrefix {
		return nil, false
	}
	key, ok := canonicalBase32(list[1])
	if !ok {
		return nil, false
	}
	return mh.Multihash(key), true
}

// check refuses a provider record, /providers/<key>/<provider>, whose
// provider is not a member.
func (m memberRecords) check(k ds.Key) error {
	list := k.List()
	if len(list) != 3 || "/"+list[0]+"/" != records.ProvidersKeyPrefix {
		return nil
	}
	id, err := base32.RawStdEncoding.DecodeString(list[2])
	if err != nil {
		return fmt.Errorf("provider record key: %w", err)
	}
	if !m.isMember(peer.ID(id)) {
		return ErrNotMember
	}
	return nil
}

type memberBatch struct {
	ds.Batch
	m memberRecords
}

func (b memberBatch) Put(ctx context.Context, k ds.Key, v []byte) error {
	if err := b.m.check(k); err != nil {
		return err
	}
	return b.Batch.Put(ctx, k, v)
}

// Options configure a Directory.
type Options struct {
	// Federation is the charter's federation ID; it is part of every key.
	Federation string
	// Path is the SQLite file holding the provider records this centre
	// stores for others and the keys it announces. Required.
	Path string
	// Members returns the charter's current members with their addresses,
	// this centre included. Only members are bootstrapped from, queried,
	// kept in the routing table and returned by lookups. Required.
	Members func() []peer.AddrInfo
	// IsMember reports whether a peer is a current member; checked for
	// every provider record stored, so it should not allocate. Derived
	// from Members when nil.
	IsMember func(peer.ID) bool
	// MembersVersion changes whenever what Members returns does (the
	// charter's version): the members are indexed by their keys once a
	// version. When nil, they are indexed again at every use.
	MembersVersion func() uint64
	// LookupTimeout bounds a lookup; 5 s when zero.
	LookupTimeout time.Duration
	// Replication is how many of the members closest to a key store each
	// announcement (the announcer aside); 5 when zero. Kademlia's default
	// of 20 is sized for the churn of a public network; a federation's
	// members are servers that stay up, and every replica costs each
	// announcement a message and a row at another centre.
	Replication int
	// LookupWidth is how many of the members closest to a key a lookup
	// reads the announcements of (Kademlia's resiliency); 3 when zero, at
	// most Replication.
	LookupWidth int
	// ReprovideInterval is how often every announcement is sent again, well
	// within provider records' 48 h validity; 22 h when zero.
	ReprovideInterval time.Duration
	// RowKey is the key of the MAC each row of Path carries, 32 bytes
	// (the centre's row key for the file): CheckStore checks them with
	// it. When nil, a key of this process's own, for a directory whose
	// file no one checks (a simulation's).
	RowKey []byte
	// Logger receives the directory's logs; nothing when nil.
	Logger *slog.Logger
}

// Directory is this centre's part of the Patient Directory: a server of
// the federation's DHT and the announcer of this centre's patients.
type Directory struct {
	host        host.Host
	fed         string
	members     func() []peer.AddrInfo
	memberCheck func(peer.ID) bool
	version     func() uint64
	timeout     time.Duration
	width       int
	replication int
	log         *slog.Logger

	store     *store
	dht       *dht.IpfsDHT
	messenger *pb.ProtocolMessenger
	keys      *keystore   // keys.go
	recs      ds.Batching // the DHT's provider records, edited by withdrawals
	place     placement   // place.go

	ringMu sync.Mutex
	ringAt uint64 // the members' version ringOf indexes
	ringOf *closest.Ring

	repairMu    sync.Mutex
	repairQueue []mh.Multihash // announced, to be checked at their replicas (repair.go)
	repairing   int            // announcements the running repair round checks
	withdrawn   map[string]time.Time
	repairGate  sync.RWMutex // a repair's send holds it read, a withdrawal write
	repairDone  chan struct{}
	sweeps      sweeper // sweep.go
	sweepDone   chan struct{}
	stop        chan struct{}
	done        chan struct{}

	counts counts
}

// New starts the directory on h. Close stops it; it does not close h.
func New(h host.Host, opts Options) (*Directory, error) {
	switch {
	case opts.Federation == "":
		return nil, errors.New("directory: no federation")
	case opts.Path == "":
		return nil, errors.New("directory: no database path")
	case opts.Members == nil:
		return nil, errors.New("directory: no member list")
	}
	d := &Directory{
		host:        h,
		fed:         opts.Federation,
		members:     opts.Members,
		memberCheck: opts.IsMember,
		version:     opts.MembersVersion,
		timeout:     opts.LookupTimeout,
		width:       opts.LookupWidth,
		log:         opts.Logger,
	}
	if d.timeout <= 0 {
		d.timeout = 5 * time.Second
	}
	d.replication = opts.Replication
	if d.replication <= 0 {
		d.replication = 5
	}
	if d.width <= 0 {
		d.width = 3
	}
	if d.width > d.replication {
		return nil, fmt.Errorf("directory: lookup width %d exceeds replication %d", d.width, d.replication)
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	reprovide := opts.ReprovideInterval
	if reprovide <= 0 {
		reprovide = 22 * time.Hour
	}
	var err error
	key := opts.RowKey
	if key == nil {
		key = make([]byte, 32)
		rand.Read(key)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("directory: a row key is 32 bytes, not %d", len(key))
	}
	if d.store, err = openStore(opts.Path, key); err != nil {
		return nil, err
	}
	if d.keys, err = openKeystore(context.Background(), d.store); err != nil {
		d.store.Close()
		return nil, err
	}
	d.recs = memberRecords{namespace.Wrap(d.store, recordsNS), d.isMember, h.ID(), d.keys.has, d.log}
	if err := dropSweepProviderState(d.store); err != nil {
		d.store.Close()
		return nil, err
	}
	memberFilter := func(_ any, p peer.ID) bool { return d.isMember(p) }
	d.dht, err = dht.New(h,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix(ProtocolPrefix),
		dht.BootstrapPeersFunc(d.bootstrap),
		// No walks every 10 minutes to refill the routing table (a
		// FIND_NODE query per bucket, each dialling the dozens of members
		// it meets): placement and lookups read their members from the
		// charter, and the table fills from the members connected.
		dht.DisableAutoRefresh(),
		dht.DisableValues(),
		dht.ProviderDatastore(d.recs),
		// Every read goes to the store: a withdrawal must take effect at
		// once, and a cached provider set would outlive it.
		dht.ProviderManagerOpts(records.Cache(uncached{})),
		dht.RoutingTableFilter(memberFilter),
		dht.QueryFilter(func(_ any, ai peer.AddrInfo) bool { return d.isMember(ai.ID) }),
	)
	if err != nil {
		d.store.Close()
		return nil, fmt.Errorf("directory: %w", err)
	}
	if d.messenger, err = pb.NewProtocolMessenger(d.dht.MessageSender()); err != nil {
		d.Close()
		return nil, fmt.Errorf("directory: %w", err)
	}
	h.SetStreamHandler(WithdrawProtocolID, d.withdrawServer().Handle)
	d.stop, d.repairDone = make(chan struct{}), make(chan struct{})
	if err := d.startPlacement(reprovide); err != nil {
		d.Close()
		return nil, err
	}
	go d.repairLoop()
	if err := d.startSweeps(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// dropSweepProviderState deletes what go-libp2p-kad-dht's sweep provider
// kept under /sweep in a directory file written before the placement
// replaced it (its schedule and reprovide history, of no use now).
func dropSweepProviderState(store *store) error {
	ctx := context.Background()
	res, err := store.Query(ctx, dsq.Query{Prefix: "/sweep", KeysOnly: true})
	if err != nil {
		return fmt.Errorf("directory: reading the sweep provider's state: %w", err)
	}
	entries, err := res.Rest()
	if err != nil {
		return fmt.Errorf("directory: reading the sweep provider's state: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	b, err := store.Batch(ctx)
	if err != nil {
		return fmt.Errorf("directory: dropping the sweep provider's state: %w", err)
	}
	for _, e := range entries {
		if err := b.Delete(ctx, ds.NewKey(e.Key)); err != nil {
			return fmt.Errorf("directory: dropping the sweep provider's state: %w", err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("directory: dropping the sweep provider's state: %w", err)
	}
	return nil
}

// ring returns the current members ordered by their Kademlia keys.
func (d *Directory) ring() *closest.Ring {
	if d.version == nil {
		return memberRing(d.members())
	}
	v := d.version() // before the members: a newer list under an older version is indexed again
	d.ringMu.Lock()
	defer d.ringMu.Unlock()
	if d.ringOf == nil || v != d.ringAt {
		d.ringOf, d.ringAt = memberRing(d.members()), v
	}
	return d.ringOf
}

func memberRing(members []peer.AddrInfo) *closest.Ring {
	ids := make([]peer.ID, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	return closest.New(ids)
}

// replicasOf returns the n members closest to key in r, leaving out skip.
func replicasOf(r *closest.Ring, key mh.Multihash, n int, skip peer.ID) []peer.ID {
	return r.Closest(closest.Key(key), n, skip)
}

// isMember reports whether p is a current member.
func (d *Directory) isMember(p peer.ID) bool {
	if d.memberCheck != nil {
		return d.memberCheck(p)
	}
	if d.version == nil { // no index kept: a scan, not a ring built per record
		return slices.ContainsFunc(d.members(), func(m peer.AddrInfo) bool { return m.ID == p })
	}
	return d.ring().Contains(p)
}

// others returns the members other than this centre.
func (d *Directory) others() []peer.AddrInfo {
	return slices.DeleteFunc(d.members(), func(m peer.AddrInfo) bool { return m.ID == d.host.ID() })
}

// bootstrap returns the DHT's bootstrap peers, which it dials, every one
// at once, whenever its routing table runs low (at start, among others):
// the bootstrapPeers members closest to this centre, not every member,
// so that a centre starting in a federation of thousands dials a few.
// Placement and lookups take their members from the charter, not from
// the routing table.
func (d *Directory) bootstrap() []peer.AddrInfo {
	self := d.host.ID()
	near := d.ring().Closest(closest.Key([]byte(self)), bootstrapPeers, self)
	return slices.DeleteFunc(d.members(), func(m peer.AddrInfo) bool { return !slices.Contains(near, m.ID) })
}

// bootstrapPeers is how many members the DHT bootstraps from.
const bootstrapPeers = 16

// Refresh refills the routing table from the connected members. Call it
// after connecting to members; lookups fail on an empty table.
func (d *Directory) Refresh(ctx context.Context) error {
	select {
	case err := <-d.dht.RefreshRoutingTable():
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RoutingTableSize returns how many members the routing table holds.
func (d *Directory) RoutingTableSize() int { return d.dht.RoutingTable().Size() }

// Announce makes this centre discoverable as a holder of every pseudonym
// given. The keys are on disk when Announce returns, so an announcement
// survives a restart; the placement (place.go) sends them to their
// replicas in the background, then reads them back there (repair.go), and
// sends them again every ReprovideInterval. Pseudonyms announced before
// are left to the reprovide.
func (d *Directory) Announce(ctx context.Context, ps ...ledger.Pseudonym) error {
	_, err := d.AnnounceNew(ctx, ps...)
	return err
}

// announceBatch is how many keys an announcement writes to the keystore
// at a time, in one transaction, before it queues them for the placement:
// the placement sends the first batch while the next is written, and a
// centre announcing a million patients never holds them all.
const announceBatch = 1 << 16

// AnnounceNew is Announce, and returns how many of the pseudonyms were not
// announced before (a pseudonym given twice counts once). It writes and
// queues them announceBatch at a time. Announcing a batch's worth or
// more (a centre's start, an import), it queues each batch once the
// placement has room for it (see maxQueued): the batches before are on
// disk and queued whatever the error. A smaller announcement, a record
// written, never waits.
func (d *Directory) AnnounceNew(ctx context.Context, ps ...ledger.Pseudonym) (int, error) {
	fresh, keys := 0, make([]mh.Multihash, 0, min(len(ps), announceBatch))
	for batch := range slices.Chunk(ps, announceBatch) {
		if len(ps) >= announceBatch {
			if err := d.waitForRoom(ctx); err != nil {
				return fresh, fmt.Errorf("directory announce: %w", err)
			}
		}
		keys = keys[:0]
		for _, p := range batch {
			keys = append(keys, multihash(digest(d.fed, p)))
		}
		added, err := d.keys.put(ctx, keys)
		if err != nil {
			return fresh, fmt.Errorf("directory announce: %w", err)
		}
		if len(added) > 0 { // otherwise all announced before: the reprovide has them
			d.unwithdraw(added)
			d.enqueue(added)
		}
		fresh += len(added)
	}
	if fresh > 0 {
		d.log.Info("announced", "keys", fresh, "already_announced", len(ps)-fresh)
	}
	return fresh, nil
}

// AnnounceEach announces pseudonyms the classic Kademlia way, one
// provide per key: a walk to the key's closest members, then a record to
// each. Unlike Announce it keeps nothing for reprovides; it is here to
// compare Announce with.
func (d *Directory) AnnounceEach(ctx context.Context, ps ...ledger.Pseudonym) error {
	for _, p := range ps {
		if err := d.dht.Provide(ctx, Key(d.fed, p), true); err != nil {
			return fmt.Errorf("directory provide: %w", err)
		}
	}
	return nil
}

// Close stops the directory and closes its database.
func (d *Directory) Close() error {
	d.host.RemoveStreamHandler(WithdrawProtocolID)
	if d.stop != nil {
		close(d.stop)
		<-d.repairDone
	}
	if d.place.done != nil {
		<-d.place.done
	}
	if d.sweepDone != nil {
		<-d.sweepDone
		d.sweeps.connected.Close() // ends watch
	}
	var errs []error
	if d.dht != nil {
		errs = append(errs, d.dht.Close())
	}
	errs = append(errs, d.store.Close())
	return errors.Join(errs...)
}
