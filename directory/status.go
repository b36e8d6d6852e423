package directory

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	dsq "github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-base32"
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
	Connectivity  string    // the sweep provider's view: online, disconnected or offline
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

// Status reports what this centre announces and stores.
func (d *Directory) Status(ctx context.Context) (Status, error) {
	st := Status{RoutingTable: d.RoutingTableSize(), Replication: d.replication, LookupWidth: d.width, RepairBacklog: d.RepairBacklog()}
	sw := d.LastSweep()
	st.LastSweep, st.SweepKeys, st.SweepResent, st.SweepFailed = sw.At, sw.Keys, sw.Resent, len(sw.Failed)
	ps, err := d.prov.Stats(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("directory status: %w", err)
	}
	st.Pending = ps.Queues.PendingKeyProvides
	st.Provided = ps.Operations.Past.KeysProvided
	st.NextReprovide = ps.Schedule.NextReprovideAt
	st.Connectivity = ps.Connectivity.Status
	if st.Announced, err = d.keys.Size(ctx); err != nil {
		return Status{}, fmt.Errorf("directory status: %w", err)
	}
	all, err := d.store.count(recordsNS.String()+records.ProvidersKeyPrefix, "")
	if err != nil {
		return Status{}, fmt.Errorf("directory status: %w", err)
	}
	own, err := d.Stored(d.host.ID())
	if err != nil {
		return Status{}, fmt.Errorf("directory status: %w", err)
	}
	st.Stored = all - own
	if st.LastReprovide, err = d.lastReprovide(ctx); err != nil {
		return Status{}, fmt.Errorf("directory status: %w", err)
	}
	return st, nil
}

// Stored returns how many announcements by holder this centre stores
// for the directory.
func (d *Directory) Stored(holder peer.ID) (int, error) {
	return d.store.count(recordsNS.String()+records.ProvidersKeyPrefix, "/"+base32.RawStdEncoding.EncodeToString([]byte(holder)))
}

// lastReprovide reads the sweep provider's reprovide history, whose keys
// are /history/<unix seconds, 8 hex digits>/<region>.
func (d *Directory) lastReprovide(ctx context.Context) (time.Time, error) {
	res, err := d.sweep.Query(ctx, dsq.Query{Prefix: "/history", KeysOnly: true})
	if err != nil {
		return time.Time{}, err
	}
	defer res.Close()
	var last int64
	for r := range res.Next() {
		if r.Error != nil {
			return time.Time{}, r.Error
		}
		parts := strings.Split(r.Key, "/")
		if len(parts) < 3 {
			continue
		}
		if t, err := strconv.ParseInt(parts[2], 16, 64); err == nil && t > last {
			last = t
		}
	}
	if last == 0 {
		return time.Time{}, nil
	}
	return time.Unix(last, 0).UTC(), nil
}

// Backlog returns how many announced keys the sweep provider has yet to
// send or is sending: zero once every announcement has left this centre.
// Unlike Status it reads no table, so it can be asked often.
func (d *Directory) Backlog(ctx context.Context) (int64, error) {
	ps, err := d.prov.Stats(ctx)
	if err != nil {
		return 0, fmt.Errorf("directory backlog: %w", err)
	}
	d.unsentMu.Lock()
	unsent := len(d.unsent)
	d.unsentMu.Unlock()
	return ps.Queues.PendingKeyProvides + int64(ps.Operations.Ongoing.KeyProvides) + int64(unsent), nil
}
