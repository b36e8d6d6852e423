package directory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

// The sweep is the repair of announcements made before: those of an
// earlier process, which Announce does not send again, and those a
// replica lost (a crash before its store's flush, a restore from a
// backup). It walks the keystore a keyspace prefix at a time and repairs
// each key at its replicas (repair.go):
//   - every key at every replica once the directory starts (as soon as the
//     placement has sent what it had pending), and every sweepEvery
//     after;
//   - every key that a member is a replica of, whenever that member
//     connects again after it had no connection to this centre, at most
//     once every sweepBackEvery a member: a member that restarts is
//     refilled by every holder within a sweep. A member's first
//     connection since this centre started is no return (the sweep at
//     start checked it), and a federation of thousands, whose members
//     connect and part as they ask each other things, does not sweep at
//     every reconnection.
//
// A key whose replica fails is queued for the repair's retries, as far as
// the repair queue has room; past it, the sweep when that replica
// connects again, or the next sweep of every replica, sends it.

const (
	// sweepEvery is how often every announcement is checked at its
	// replicas, besides at start and when a replica comes back.
	sweepEvery = 6 * time.Hour
	// sweepBackEvery is the least time between two sweeps of a member
	// that came back.
	sweepBackEvery = time.Minute
)

// sweeper holds what the sweep loop reads: the members that came back,
// which watch gathers from the host's events as they come (an event bus
// subscriber must never hold up the host), and a wake-up call.
type sweeper struct {
	connected event.Subscription // EvtPeerConnectednessChanged
	mu        sync.Mutex
	back      map[peer.ID]bool
	seen      map[peer.ID]time.Time // members connected before, and when last swept on their return
	wake      chan struct{}

	lastMu sync.Mutex
	last   SweepStatus
}

// SweepStatus is the last sweep of every replica that ended.
type SweepStatus struct {
	At time.Time // when it ended; zero before the first
	RepairReport
	Err error
}

func (d *Directory) startSweeps() error {
	// Connectedness, not connections: a peer's first connection is told
	// once, however many are dialled at the same moment.
	sub, err := d.host.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	d.sweeps.connected, d.sweeps.back, d.sweeps.wake = sub, map[peer.ID]bool{}, make(chan struct{}, 1)
	d.sweeps.seen = map[peer.ID]time.Time{}
	d.sweepDone = make(chan struct{})
	go d.watch()
	go d.sweepLoop()
	return nil
}

// watch notes each member that connects again, until the subscription
// closes.
func (d *Directory) watch() {
	for e := range d.sweeps.connected.Out() {
		ev := e.(event.EvtPeerConnectednessChanged)
		if ev.Connectedness != network.Connected || !d.isMember(ev.Peer) {
			continue
		}
		d.sweeps.mu.Lock()
		last, before := d.sweeps.seen[ev.Peer]
		due := before && time.Since(last) >= sweepBackEvery
		if !before {
			d.sweeps.seen[ev.Peer] = time.Now().Add(-sweepBackEvery) // its next return is swept
		} else if due {
			d.sweeps.seen[ev.Peer] = time.Now()
			d.sweeps.back[ev.Peer] = true
		}
		d.sweeps.mu.Unlock()
		if !due {
			continue
		}
		select {
		case d.sweeps.wake <- struct{}{}:
		default:
		}
	}
}

// Sweep checks each announcement in this centre's keystore at its
// replicas, or only at replica when it is not empty, and sends it to
// every one that lacks it. A key a replica of which failed is queued for
// the repair's retries; the report names those replicas. The error is
// the keystore's or the context's.
func (d *Directory) Sweep(ctx context.Context, replica peer.ID) (RepairReport, error) {
	var (
		total RepairReport
		again []mh.Multihash // keys a replica of which failed, to retry
	)
	failed := map[peer.ID]bool{}
	for i := range 1 << keyPageBits {
		keys, err := d.keys.page(ctx, i)
		if err != nil {
			return total, fmt.Errorf("directory sweep: %w", err)
		}
		keys = slices.DeleteFunc(keys, d.wasWithdrawn)
		if len(keys) == 0 {
			continue
		}
		rep, retry := d.repair(ctx, keys, replica)
		total.Keys += rep.Keys
		total.Checked += rep.Checked
		total.Resent += rep.Resent
		for _, p := range rep.Failed {
			failed[p] = true
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
		again = append(again, retry[:min(len(retry), maxRepairQueue-len(again))]...)
	}
	d.requeueRepair(again)
	for p := range failed {
		total.Failed = append(total.Failed, p)
	}
	slices.Sort(total.Failed)
	return total, nil
}

// LastSweep returns the last sweep of every replica that ended.
func (d *Directory) LastSweep() SweepStatus {
	d.sweeps.lastMu.Lock()
	defer d.sweeps.lastMu.Unlock()
	return d.sweeps.last
}

// sweepLoop runs the sweeps until the directory closes: every replica at
// start and every sweepEvery, and the members that came back meanwhile.
func (d *Directory) sweepLoop() {
	defer close(d.sweepDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-d.stop; cancel() }()
	if !d.readyToSweep(ctx) {
		return
	}
	next := time.Now() // every replica, first at start
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		case <-d.sweeps.wake:
		}
		d.sweeps.mu.Lock()
		back := d.sweeps.back
		d.sweeps.back = map[peer.ID]bool{}
		d.sweeps.mu.Unlock()
		if !time.Now().Before(next) {
			d.sweepOnce(ctx, "") // covers every member that came back
			next = time.Now().Add(sweepEvery)
			continue
		}
		for _, p := range slices.Sorted(maps.Keys(back)) {
			d.sweepOnce(ctx, p)
		}
	}
}

// readyToSweep waits, before the first sweep, until the placement has
// sent what it had pending (a sweep would check keys not sent yet)
// and a member is in the routing table; false once the directory closes.
func (d *Directory) readyToSweep(ctx context.Context) bool {
	var said error
	for {
		backlog, err := d.Backlog(ctx)
		switch {
		case err == nil && backlog == 0 && (d.RoutingTableSize() > 0 || len(d.others()) == 0):
			return true
		case err != nil && (said == nil || err.Error() != said.Error()):
			d.log.Warn("reading the placement's backlog; the first sweep waits", "err", err)
			said = err
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(repairFirst):
		}
	}
}

// sweepOnce runs one sweep and, for a sweep of every replica, keeps its
// outcome for LastSweep.
func (d *Directory) sweepOnce(ctx context.Context, replica peer.ID) {
	rep, err := d.Sweep(ctx, replica)
	if ctx.Err() != nil {
		return // closing
	}
	if replica == "" {
		d.sweeps.lastMu.Lock()
		d.sweeps.last = SweepStatus{At: time.Now(), RepairReport: rep, Err: err}
		d.sweeps.lastMu.Unlock()
		// A member this sweep could not reach is swept when it connects,
		// first connection or not.
		d.sweeps.mu.Lock()
		for _, p := range rep.Failed {
			d.sweeps.seen[p] = time.Now().Add(-sweepBackEvery)
		}
		d.sweeps.mu.Unlock()
	}
	switch {
	case err != nil:
		d.log.Warn("sweeping the announcements made before", "err", err)
	case rep.Resent > 0 || len(rep.Failed) > 0:
		d.log.Info("announcements made before, repaired at their replicas", "replica", replica, "keys", rep.Keys, "resent", rep.Resent, "failed_replicas", len(rep.Failed))
	}
}
