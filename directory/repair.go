package directory

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/medfed/medfed/node/ledger"
)

// ADD_PROVIDER has no answer: a replica that dropped an announcement
// (busy, restarting, a stream reset) would lack it until the next
// reprovide, 22 hours later, and a lookup asking the closest members would
// not find the holder. Repair closes that gap: it asks each of the
// Replication members closest to a key whether it stores this centre's
// announcement, sends it to those that do not, and tries again, later and
// later, while a replica cannot be reached. Every announcement is repaired
// once the placement (place.go) has sent it.

// RepairReport is what a repair did.
type RepairReport struct {
	Keys    int       // announcements checked
	Checked int       // replicas that answered
	Resent  int       // of those, replicas that lacked the announcement and were sent it
	Failed  []peer.ID // replicas that could not be asked or sent to, sorted
}

// repairWorkers bounds the replicas asked at once.
const repairWorkers = 16

// Repair checks that this centre's announcement of each pseudonym, which
// it must announce (a patient it holds), is stored at the Replication
// members closest to its key (the members other than this centre), and
// sends it to every one that lacks it. The error is the context's; the
// report names the replicas that failed.
func (d *Directory) Repair(ctx context.Context, ps ...ledger.Pseudonym) (RepairReport, error) {
	keys := make([]mh.Multihash, len(ps))
	for i, p := range ps {
		keys[i] = multihash(digest(d.fed, p))
	}
	rep, _ := d.repair(ctx, keys, "")
	return rep, ctx.Err()
}

// repair repairs keys at their replicas, or only at replica when it is
// not empty (then keys it is no replica of are left out), and returns
// what it did and the keys a replica of which failed, to be tried again.
func (d *Directory) repair(ctx context.Context, keys []mh.Multihash, replica peer.ID) (RepairReport, []mh.Multihash) {
	var rep RepairReport
	members := d.ring()
	self := peer.AddrInfo{ID: d.host.ID(), Addrs: d.dht.FilteredAddrs()}
	type job struct {
		key     mh.Multihash
		replica peer.ID
	}
	jobs := make(chan job)
	var (
		mu     sync.Mutex
		failed = map[peer.ID]bool{}
		again  = map[string]mh.Multihash{}
		wg     sync.WaitGroup
	)
	for range repairWorkers {
		wg.Go(func() {
			for j := range jobs {
				resent, err := d.repairAt(ctx, j.replica, j.key, self)
				mu.Lock()
				switch {
				case err != nil:
					failed[j.replica] = true
					again[string(j.key)] = j.key
				case resent:
					rep.Checked++
					rep.Resent++
				default:
					rep.Checked++
				}
				mu.Unlock()
			}
		})
	}
send:
	for _, k := range keys {
		rs := replicasOf(members, k, d.replication, self.ID)
		if replica != "" {
			if !slices.Contains(rs, replica) {
				continue
			}
			rs = []peer.ID{replica}
		}
		rep.Keys++
		for _, r := range rs {
			select {
			case jobs <- job{k, r}:
			case <-ctx.Done():
				break send
			}
		}
	}
	close(jobs)
	wg.Wait()
	for p := range failed {
		rep.Failed = append(rep.Failed, p)
	}
	slices.Sort(rep.Failed)
	retry := make([]mh.Multihash, 0, len(again))
	for _, k := range again {
		retry = append(retry, k)
	}
	return rep, retry
}

// repairAt asks replica whether it stores this centre's announcement of
// key, and sends it when it does not; resent says it had to.
func (d *Directory) repairAt(ctx context.Context, replica peer.ID, key mh.Multihash, self peer.AddrInfo) (resent bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	provs, err := d.providersAt(ctx, replica, key)
	if err != nil {
		return false, err
	}
	if slices.Contains(provs, self.ID) {
		return false, nil
	}
	if withdrawn, err := d.sendRepair(ctx, replica, key, self); withdrawn || err != nil {
		return !withdrawn, err
	}
	// ADD_PROVIDER has no answer: read it back, so that a send the replica
	// dropped is tried again rather than counted done. (Outside the gate:
	// a withdrawal does not wait for the reading.)
	for wait := 20 * time.Millisecond; ; wait *= 2 {
		select {
		case <-ctx.Done():
			return true, fmt.Errorf("announcement sent to %s, not found there: %w", replica, ctx.Err())
		case <-time.After(wait):
		}
		if d.wasWithdrawn(key) {
			return false, nil
		}
		provs, err := d.providersAt(ctx, replica, key)
		if err != nil {
			return true, err
		}
		if slices.Contains(provs, self.ID) {
			return true, nil
		}
	}
}

// sendRepair sends this centre's announcement of key to replica, unless
// it was withdrawn (then withdrawn is true). A withdrawal waits for a send
// in flight, and a send after it sees it: a repair never puts back what
// was withdrawn.
func (d *Directory) sendRepair(ctx context.Context, replica peer.ID, key mh.Multihash, self peer.AddrInfo) (withdrawn bool, err error) {
	d.repairGate.RLock()
	defer d.repairGate.RUnlock()
	if d.wasWithdrawn(key) {
		return true, nil
	}
	return false, d.messenger.PutProviderAddrs(ctx, replica, key, self)
}

// withdrawnFor is how long a withdrawn key stays refused to repairs: far
// longer than a repair round, or a directory check, takes.
const withdrawnFor = 10 * time.Minute

// forgetRepairs drops keys, being withdrawn, from the repair queue, and
// has repairs refuse them from now on; it waits for any send in flight.
func (d *Directory) forgetRepairs(keys []mh.Multihash) {
	d.repairGate.Lock()
	defer d.repairGate.Unlock()
	d.repairMu.Lock()
	defer d.repairMu.Unlock()
	now := time.Now()
	if d.withdrawn == nil {
		d.withdrawn = map[string]time.Time{}
	}
	for k, at := range d.withdrawn {
		if now.Sub(at) > withdrawnFor {
			delete(d.withdrawn, k)
		}
	}
	for _, k := range keys {
		d.withdrawn[string(k)] = now
	}
	d.repairQueue = slices.DeleteFunc(d.repairQueue, func(k mh.Multihash) bool { _, gone := d.withdrawn[string(k)]; return gone })
}

// wasWithdrawn reports whether key was withdrawn lately: a mark is
// dropped when announced again, or at a withdrawal withdrawnFor later,
// long after the repair queue dropped the key.
func (d *Directory) wasWithdrawn(key mh.Multihash) bool {
	d.repairMu.Lock()
	defer d.repairMu.Unlock()
	_, ok := d.withdrawn[string(key)]
	return ok
}

// Backoff of a repair whose replicas failed: doubling from the first to
// the last, then every last.
const (
	repairFirst = time.Second
	repairLast  = time.Minute
)

// maxRepairQueue bounds the announcements waiting for their repair (34
// bytes each, and five requests each to repair): a centre announcing its
// million patients as it joins leaves those past the bound to the sweeps
// and the reprovide.
const maxRepairQueue = 1 << 16

// unwithdraw has repairs no longer refuse keys announced again.
func (d *Directory) unwithdraw(keys []mh.Multihash) {
	d.repairMu.Lock()
	defer d.repairMu.Unlock()
	for _, k := range keys {
		delete(d.withdrawn, string(k))
	}
}

// requeueRepair has keys repaired (again), but for those withdrawn since.
func (d *Directory) requeueRepair(keys []mh.Multihash) {
	d.repairMu.Lock()
	keys = slices.DeleteFunc(slices.Clone(keys), func(k mh.Multihash) bool { _, gone := d.withdrawn[string(k)]; return gone })
	room := max(0, maxRepairQueue-len(d.repairQueue))
	left := len(keys) - min(room, len(keys))
	d.repairQueue = append(d.repairQueue, keys[:len(keys)-left]...)
	d.repairMu.Unlock()
	if left > 0 {
		d.log.Warn("announcements past the repair queue's bound are left to the sweeps and the reprovide", "keys", left)
	}
}

// RepairBacklog returns how many announcements wait for their repair or
// are being repaired.
func (d *Directory) RepairBacklog() int {
	d.repairMu.Lock()
	defer d.repairMu.Unlock()
	return len(d.repairQueue) + d.repairing
}

// repairLoop repairs the queued announcements once the placement's
// backlog is empty, trying the keys a replica of which failed again after
// a backoff, until the directory closes.
func (d *Directory) repairLoop() {
	defer close(d.repairDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-d.stop; cancel() }()
	wait := repairFirst
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = d.repairRound(ctx, wait)
	}
}

// repairRound repairs what is queued and returns how long to wait before
// the next round.
func (d *Directory) repairRound(ctx context.Context, wait time.Duration) time.Duration {
	d.repairMu.Lock()
	n := len(d.repairQueue)
	d.repairMu.Unlock()
	if n == 0 {
		return repairFirst
	}
	switch backlog, err := d.Backlog(ctx); {
	case err != nil:
		d.log.Warn("reading the placement's backlog; the repair waits", "err", err)
		return repairFirst
	case backlog > 0:
		return repairFirst // the placement is still sending
	}
	d.repairMu.Lock()
	keys := d.repairQueue
	d.repairQueue, d.repairing = nil, len(keys)
	d.repairMu.Unlock()
	rep, retry := d.repair(ctx, keys, "")
	d.counts.resent.Add(uint64(rep.Resent))
	d.counts.retries.Add(uint64(len(retry)))
	d.repairMu.Lock()
	d.repairing = 0
	d.repairMu.Unlock()
	if rep.Resent > 0 || len(retry) > 0 {
		d.log.Info("announcements repaired at their replicas", "keys", rep.Keys, "resent", rep.Resent, "failed_replicas", len(rep.Failed), "to_retry", len(retry))
	}
	if len(retry) == 0 {
		return repairFirst
	}
	d.requeueRepair(retry)
	return min(2*wait, repairLast)
}
