package directory

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-base32"

	"github.com/medfed/medfed/node/stats"
)

// Status is a snapshot of this centre's part of the directory.
type Status struct {
	Announced     int       // keys this centre announces
	Pending       int64     // of those, keys queued to be sent
	Provided      int64     // keys sent since the directory started
	LastReprovide time.Time // zero before the first reprovide
	NextReprovide time.Time // zero when nothing is scheduled
	Stored        int       // announcements by other centres this centre stores
	RoutingTable  int       // members in the routing table
	Connectivity  string    // online (connected to a member, or the only one) or offline
	Replication   int
	LookupWidth   int
	RepairBacklog int // announcements sent, yet to be checked at their replicas
	// The last sweep of every announcement made before, at every replica
	// (sweep.go): when it ended (zero before the first), the keys it
	// checked, those it sent again, and the replicas it could not reach.
	LastSweep   time.Time
	SweepKeys   int
	SweepResent int
	SweepFailed int
}

// counts are what the directory did since it started.
type counts struct {
	lookups, misses, incomplete stats.Counter // lookups; those that found no holder; those too few replicas answered
	resent, retries             stats.Counter // announcements a replica lacked and was sent again; checks to be retried
}

// Stats are the directory's counts since it started, for the operators'
// metrics.
type Stats struct {
	Lookups    uint64 // lookups of a patient's holders
	Misses     uint64 // of those, lookups that found no holder
	Incomplete uint64 // of those, lookups fewer replicas answered than asked
	Resent     uint64 // announcements a replica lacked, sent again
	Retries    uint64 // announcement checks that failed, queued to be retried
	Pending    int64  // announcements queued to be sent
	Repair     int    // announcements sent, yet to be checked at their replicas
}

// Stats returns the directory's counts and backlogs; unlike Status, it
// reads nothing from disk.
func (d *Directory) Stats() Stats {
	st := Stats{Lookups: d.counts.lookups.Load(), Misses: d.counts.misses.Load(), Incomplete: d.counts.incomplete.Load(),
		Resent: d.counts.resent.Load(), Retries: d.counts.retries.Load(), Repair: d.RepairBacklog(), Pending: d.pending()}
	return st
}

// Status reports what this centre announces and stores.
func (d *Directory) Status(ctx context.Context) (Status, error) {
	st := Status{RoutingTable: d.RoutingTableSize(), Replication: d.replication, LookupWidth: d.width, RepairBacklog: d.RepairBacklog()}
	sw := d.LastSweep()
	st.LastSweep, st.SweepKeys, st.SweepResent, st.SweepFailed = sw.At, sw.Keys, sw.Resent, len(sw.Failed)
	d.place.mu.Lock()
	st.Pending = int64(len(d.place.queue) + d.place.sending)
	st.Provided = d.place.provided
	st.LastReprovide = d.place.last
	d.place.mu.Unlock()
	st.Connectivity = "offline"
	others := d.others()
	if len(others) == 0 || slices.ContainsFunc(others, func(m peer.AddrInfo) bool {
		return d.host.Network().Connectedness(m.ID) == network.Connected
	}) {
		st.Connectivity = "online"
	}
	st.Announced = d.keys.len()
	all, err := d.store.count(recordsNS.String()+records.ProvidersKeyPrefix, "")
	if err != nil {
		return Status{}, fmt.Errorf("directory status: %w", err)
	}
	own, err := d.Stored(d.host.ID())
	if err != nil {
		return Status{}, fmt.Errorf("directory status: %w", err)
	}
	st.Stored = all - own
	if st.Announced > 0 {
		st.NextReprovide = d.nextReprovide()
	}
	return st, nil
}

// Stored returns how many announcements by holder this centre stores
// for the directory: provider records naming it. This centre's own
// announcements are its keystore's rows, not records (memberRecords).
func (d *Directory) Stored(holder peer.ID) (int, error) {
	return d.store.count(recordsNS.String()+records.ProvidersKeyPrefix, "/"+base32.RawStdEncoding.EncodeToString([]byte(holder)))
}
