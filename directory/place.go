package directory

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio/pbio"
	"github.com/medfed/medfed/node"
	mh "github.com/multiformats/go-multihash"
)

// Placement. Every announcement is stored at its replicas: the
// Replication members other than the announcer closest to its key by XOR
// distance, read from the charter's member list (a centre knows the whole
// membership, so no walk of the DHT finds them). Announce puts the keys
// in the keystore and queues them, a batch at a time, no more than
// maxQueued waiting, so that the first are sent while the next are
// written; the placement loop takes up to placeBatch queued keys at a
// time, groups them by replica and sends each replica its keys written
// back to back on a stream (ADD_PROVIDER, a message a key), placeWorkers
// replicas at once. It writes no record of its own: the keystore's row
// answers for this centre (memberRecords). A key that a replica of could
// not be sent goes to the repair's retries (repair.go), and every key
// sent is queued for its repair too, which reads it back at each replica.
// Every ReprovideInterval the loop sends the whole keystore again, a
// keyspace prefix at a time, well within provider records' 48 h validity.
//
// This is what go-libp2p-kad-dht's sweep provider did, without its two
// faults at a federation's size: v0.42.1 allocates a keyspace region's
// keys to the region's peers comparing bits at the wrong depth, so once a
// federation has more than twice Replication members records land away
// from the closest members and a lookup had to ask every member; and it
// counts a region done once a fifth of its peers took the records. So
// each announcement costs Replication messages and Replication rows,
// whatever the federation's size, and a lookup asks LookupWidth members.

const (
	// placeBatch bounds the keys one round of the placement sends, and
	// so the memory its grouping by replica takes.
	placeBatch = 1 << 16
	// placeWorkers bounds the replicas sent to at once.
	placeWorkers = 32
	// maxQueued is how many keys may wait to be sent before an
	// announcement of a batch or more waits for room (AnnounceNew), so
	// that a centre announcing all its patients holds a few batches of
	// keys, not all of them: the rest wait in the ledger.
	maxQueued = 2 * placeBatch
)

// placement is the queue of announcements to send and what was sent.
type placement struct {
	mu       sync.Mutex
	queue    []mh.Multihash
	sending  int
	provided int64
	wake     chan struct{}
	room     chan struct{} // closed, and replaced, when the loop takes keys from the queue
	done     chan struct{}
	last     time.Time // the last reprovide that ended; zero before the first
	started  time.Time
	interval time.Duration
}

// nextReprovide returns when the next reprovide is due.
func (d *Directory) nextReprovide() time.Time {
	d.place.mu.Lock()
	defer d.place.mu.Unlock()
	if d.place.last.IsZero() {
		return d.place.started.Add(d.place.interval)
	}
	return d.place.last.Add(d.place.interval)
}

// lastReprovideKey is where, in the directory's store, the time of the
// last reprovide is kept (Unix seconds, decimal).
var lastReprovideKey = ds.NewKey("/place/last-reprovide")

// startPlacement starts the placement loop, reading when the last
// reprovide was.
func (d *Directory) startPlacement(interval time.Duration) error {
	d.place.wake, d.place.room, d.place.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	d.place.started, d.place.interval = time.Now().UTC(), interval
	v, err := d.store.Get(context.Background(), lastReprovideKey)
	switch {
	case errors.Is(err, ds.ErrNotFound):
	case err != nil:
		return fmt.Errorf("directory: reading the last reprovide: %w", err)
	default:
		sec, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return fmt.Errorf("directory: the last reprovide's time %q: %w", v, err)
		}
		d.place.last = time.Unix(sec, 0).UTC()
	}
	go d.placeLoop()
	return nil
}

// enqueue queues keys to be sent to their replicas.
func (d *Directory) enqueue(keys []mh.Multihash) {
	d.place.mu.Lock()
	d.place.queue = append(d.place.queue, keys...)
	d.place.mu.Unlock()
	select {
	case d.place.wake <- struct{}{}:
	default:
	}
}

// waitForRoom waits until fewer than maxQueued keys wait to be sent.
// Every announcement waiting wakes when the loop takes keys, and looks
// again.
func (d *Directory) waitForRoom(ctx context.Context) error {
	for {
		d.place.mu.Lock()
		queued, room := len(d.place.queue), d.place.room
		d.place.mu.Unlock()
		if queued < maxQueued {
			return nil
		}
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		case <-d.stop:
			return errClosed
		}
	}
}

// errClosed is returned by a call that the directory's closing cut short.
var errClosed = node.E(node.Unavailable, "directory closed")

// Backlog returns how many announced keys wait to be sent to their
// replicas or are being sent: zero once every announcement has left this
// centre.
func (d *Directory) Backlog(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("directory backlog: %w", err)
	}
	return d.pending(), nil
}

// pending is how many announcements are queued or being sent.
func (d *Directory) pending() int64 {
	d.place.mu.Lock()
	defer d.place.mu.Unlock()
	return int64(len(d.place.queue) + d.place.sending)
}

// placeLoop sends what is queued, and reprovides every interval after
// the last reprovide (or after start, before the first: keys announced
// since were just sent, and those of an earlier process were sent then
// and are swept at start), until the directory closes.
func (d *Directory) placeLoop() {
	defer close(d.place.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-d.stop; cancel() }()
	next := d.nextReprovide()
	for {
		if keys := d.take(); len(keys) > 0 {
			sent, _ := d.send(ctx, keys)
			d.place.mu.Lock()
			d.place.sending = 0
			d.place.provided += int64(sent)
			d.place.mu.Unlock()
			// Every key goes to the repair: those sent to be read back at
			// their replicas, those that failed to be sent again.
			d.requeueRepair(keys)
			continue
		}
		if !time.Now().Before(next) {
			err := d.reprovide(ctx)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				next = time.Now().Add(repairLast) // tried again, not at once
				d.log.Warn("reprovide failed; trying again", "in", repairLast, "err", err)
			default:
				next = d.nextReprovide()
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-d.place.wake:
		case <-time.After(time.Until(next)):
		}
	}
}

// take takes up to placeBatch keys from the queue to send, and wakes
// the announcements waiting for room, which look again.
func (d *Directory) take() []mh.Multihash {
	d.place.mu.Lock()
	defer d.place.mu.Unlock()
	keys := d.place.queue[:min(len(d.place.queue), placeBatch)]
	d.place.queue = d.place.queue[len(keys):]
	if len(d.place.queue) == 0 {
		d.place.queue = nil // let the backing array go
	}
	d.place.sending = len(keys)
	if len(keys) > 0 {
		close(d.place.room)
		d.place.room = make(chan struct{})
	}
	return keys
}

// reprovide sends every key of the keystore to its replicas again, a
// keyspace prefix at a time, and records when it ended.
func (d *Directory) reprovide(ctx context.Context) error {
	start := time.Now()
	var total, failed int
	for i := range 1 << keyPageBits {
		keys, err := d.keys.page(ctx, i)
		if err != nil {
			return fmt.Errorf("reading the keystore: %w", err)
		}
		keys = slices.DeleteFunc(keys, d.wasWithdrawn)
		for len(keys) > 0 {
			batch := keys[:min(len(keys), placeBatch)]
			keys = keys[len(batch):]
			sent, bad := d.send(ctx, batch)
			total, failed = total+sent, failed+len(bad)
			d.place.mu.Lock()
			d.place.provided += int64(sent)
			d.place.mu.Unlock()
			d.requeueRepair(bad)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	now := time.Now().UTC()
	if err := d.store.Put(ctx, lastReprovideKey, []byte(strconv.FormatInt(now.Unix(), 10))); err != nil {
		return fmt.Errorf("recording the reprovide: %w", err)
	}
	d.place.mu.Lock()
	d.place.last = now
	d.place.mu.Unlock()
	d.log.Info("reprovided", "keys", total, "failed", failed, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// send sends each key to its replicas and returns how many keys reached
// every replica and those a replica of which could not be sent (a key
// withdrawn meanwhile counts as neither).
func (d *Directory) send(ctx context.Context, keys []mh.Multihash) (sent int, failed []mh.Multihash) {
	self := peer.AddrInfo{ID: d.host.ID(), Addrs: d.dht.FilteredAddrs()}
	r := d.ring()
	to := map[peer.ID][]mh.Multihash{}
	for _, k := range keys {
		for _, p := range replicasOf(r, k, d.replication, self.ID) {
			to[p] = append(to[p], k)
		}
	}
	var (
		mu   sync.Mutex
		bad  = map[string]bool{}
		jobs = make(chan peer.ID)
		wg   sync.WaitGroup
	)
	for range min(placeWorkers, len(to)) {
		wg.Go(func() {
			for p := range jobs {
				lost := d.sendTo(ctx, p, to[p], self)
				mu.Lock()
				for _, k := range lost {
					bad[string(k)] = true
				}
				mu.Unlock()
			}
		})
	}
	for p := range to {
		jobs <- p
	}
	close(jobs)
	wg.Wait()
	for _, k := range keys {
		switch {
		case bad[string(k)]:
			failed = append(failed, k)
		case d.wasWithdrawn(k):
		default:
			sent++
		}
	}
	return sent, failed
}

// kadProtocol is the directory's Kademlia protocol, whose requests the
// placement writes itself.
const kadProtocol = protocol.ID(ProtocolPrefix + "/kad/1.0.0")

// sendTo sends keys to replica, one ADD_PROVIDER each, written back to
// back on a stream of their own (kad-dht's message sender flushes each
// and sends one at a time a peer), and returns those that may not have
// arrived: all of them, if the stream failed. It holds the repair gate,
// as a repair's send does, and sends no key withdrawn.
func (d *Directory) sendTo(ctx context.Context, replica peer.ID, keys []mh.Multihash, self peer.AddrInfo) []mh.Multihash {
	// Long enough for a replica taking a batch at a few thousand a second.
	ctx, cancel := context.WithTimeout(ctx, d.timeout+time.Duration(len(keys))*time.Millisecond)
	defer cancel()
	d.repairGate.RLock()
	defer d.repairGate.RUnlock()
	fail := func(err error) []mh.Multihash {
		d.log.Debug("sending announcements to a replica", "replica", replica, "keys", len(keys), "err", err)
		return keys
	}
	s, err := d.host.NewStream(ctx, replica, kadProtocol)
	if err != nil {
		return fail(err)
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	bw := bufio.NewWriterSize(s, 64<<10)
	w := pbio.NewDelimitedWriter(bw)
	msg := pb.NewMessage(pb.Message_ADD_PROVIDER, nil, 0)
	msg.ProviderPeers = pb.RawPeerInfosToPBPeers([]peer.AddrInfo{self})
	for _, k := range keys {
		if d.wasWithdrawn(k) {
			continue
		}
		msg.Key = k
		if err := w.WriteMsg(msg); err != nil {
			s.Reset()
			return fail(err)
		}
	}
	if err := bw.Flush(); err != nil {
		s.Reset()
		return fail(err)
	}
	if err := s.Close(); err != nil {
		return fail(err)
	}
	return nil
}
