package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio/pbio"
	mh "github.com/multiformats/go-multihash"

	"github.com/medfed/medfed/directory"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest/harness"
)

// announceLimit bounds every wait for announcements to reach their
// replicas.
const announceLimit = 10 * time.Minute

// settleLimit bounds the wait until every lookup in the lookup federation
// is exact; its announcements are a few hundred per centre, sent in well
// under a second.
const settleLimit = 2 * time.Minute

// measureDirectory measures the Patient Directory on 127.0.0.1. Announce:
// a centre joining a federation of nine announces its patients, placed
// at their replicas grouped by replica, timed until every announcement is stored at its
// replicas; the baseline is classic Kademlia, one provide (a walk, then
// the records) per key, from the same centre in the same federation; the
// floor is the announcements' messages alone (measureAnnounceFloor).
// Lookup: in a federation of twenty, the one-hop lookup of a patient held
// at one to five centres, beside kad-dht's iterative walk. Every lookup
// must return exactly the centres that hold the patient.
func measureDirectory(ctx context.Context, env env) (map[string]float64, error) {
	m := map[string]float64{}
	if err := measureAnnounce(ctx, env, m); err != nil {
		return nil, err
	}
	if !env.quick {
		if err := measureMillionFloor(ctx, env, m); err != nil {
			return nil, err
		}
	}
	if err := measureLookup(ctx, env, m); err != nil {
		return nil, err
	}
	return m, nil
}

// measureAnnounce measures announcements from the tenth centre of a
// federation, the one that joined.
func measureAnnounce(ctx context.Context, env env, m map[string]float64) (err error) {
	nodes, err := startFederation(ctx, filepath.Join(env.dir, "directory-announce"), 9, 10, time.Hour)
	defer func() { err = errors.Join(err, nodes.Stop()) }()
	if err != nil {
		return err
	}
	joiner, others := nodes[9], nodes[:9]
	id := joiner.Centre.ID()
	st, err := joiner.Directory.Status(ctx)
	if err != nil {
		return err
	}
	replication := st.Replication

	n := env.pick(100_000, 10_000)
	if m["directory_announce_floor_per_s"], err = measureAnnounceFloor(ctx, env, joiner, others, n, replication); err != nil {
		return err
	}
	floorStored, err := storedAt(others, id)
	if err != nil {
		return err
	}
	ps := randomPseudonyms(n)
	env.logf("directory: the joining centre announces %d patients to 9 others (replication %d)", n, replication)
	start := time.Now()
	if err := joiner.Directory.Announce(ctx, ps...); err != nil {
		return err
	}
	took, err := waitStored(ctx, env, joiner, others, id, floorStored+n*replication, start)
	if err != nil {
		return err
	}
	m["directory_announce_per_s"] = float64(n) / took.Seconds()
	env.logf("directory: %d announcements stored at their replicas in %v: %.0f per second, %.0f %% of the floor",
		n, took.Round(time.Millisecond), m["directory_announce_per_s"], 100*m["directory_announce_per_s"]/m["directory_announce_floor_per_s"])

	for range 200 {
		p := ps[mrand.IntN(len(ps))]
		res, err := nodes[mrand.IntN(len(nodes))].Directory.Lookup(ctx, p)
		if err != nil {
			return fmt.Errorf("looking up an announced patient: %w", err)
		}
		if !slices.Contains(res.Holders, id) {
			return fmt.Errorf("an announced patient is not found at the joining centre (holders %v)", res.Holders)
		}
	}
	env.logf("directory: 200 announced patients looked up from random centres: all found")
	if err := waitRepaired(ctx, env, joiner, start); err != nil {
		return err
	}

	mb := env.pick(2_000, 500)
	base := randomPseudonyms(mb)
	start = time.Now()
	if err := joiner.Directory.AnnounceEach(ctx, base...); err != nil {
		return err
	}
	m["directory_announce_baseline_per_s"] = float64(mb) / time.Since(start).Seconds()
	env.logf("directory: baseline, one Kademlia provide per key: %d in %v: %.0f per second; Announce is %.1f times as fast",
		mb, time.Since(start).Round(time.Millisecond), m["directory_announce_baseline_per_s"],
		m["directory_announce_per_s"]/m["directory_announce_baseline_per_s"])

	if env.quick {
		return nil
	}
	const big = 1_000_000
	// The baseline's last records may still be on their way.
	before, err := settledStored(others, id)
	if err != nil {
		return err
	}
	more := randomPseudonyms(big)
	env.logf("directory: the joining centre announces %d more patients", big)
	stop, err := profile("announce")
	if err != nil {
		return err
	}
	start = time.Now()
	if err := joiner.Directory.Announce(ctx, more...); err != nil {
		return errors.Join(err, stop())
	}
	env.logf("directory: Announce of %d returned after %v", big, time.Since(start).Round(time.Millisecond))
	took, err = waitStored(ctx, env, joiner, others, id, before+big*replication, start)
	if err := errors.Join(err, stop()); err != nil {
		return err
	}
	m["directory_announce_1m_s"] = took.Seconds()
	env.logf("directory: %d announcements stored at their replicas in %v", big, took.Round(time.Millisecond))
	return waitRepaired(ctx, env, joiner, start)
}

// measureMillionFloor measures directory_announce_1m_floor_s, the floor
// of directory_announce_1m_s: a million announcements' ADD_PROVIDER
// messages alone (measureAnnounceFloor), sent by the tenth centre of a
// federation of its own to the other nine, whose stores grow from empty
// to what a million announcements leave there, as the replicas' stores
// grew in the million's announce (which found about 100,000 there).
func measureMillionFloor(ctx context.Context, env env, m map[string]float64) (err error) {
	nodes, err := startFederation(ctx, filepath.Join(env.dir, "directory-floor"), 9, 10, time.Hour)
	defer func() { err = errors.Join(err, nodes.Stop()) }()
	if err != nil {
		return err
	}
	joiner, others := nodes[9], nodes[:9]
	st, err := joiner.Directory.Status(ctx)
	if err != nil {
		return err
	}
	const big = 1_000_000
	perS, err := measureAnnounceFloor(ctx, env, joiner, others, big, st.Replication)
	if err != nil {
		return err
	}
	m["directory_announce_1m_floor_s"] = big / perS
	return nil
}

// measureAnnounceFloor measures the floor of an announcement on this
// machine's cores, directory_announce_floor_per_s: its ADD_PROVIDER
// messages alone, replication of them an announcement, as the placement
// sends them (one stream per replica, the messages back to back) but
// written here, without the directory. Counted, from the first message
// written until the last record is stored: encoding each message
// (protobuf, varint-delimited), sending it (Noise, yamux, TCP on
// 127.0.0.1), reading and handling it at the replica (kad-dht's
// ADD_PROVIDER handler and provider manager, the member check) and
// storing its provider record there (the store's overlay, then its
// grouped SQLite transactions, the row's MAC). Left out: everything else
// an announcement costs its announcer (the keystore's durable write, the
// grouping by replica, the repair's reading back) and the replicas' fewer
// records before (the floor's stores start empty). The n keys are random,
// each sent to replication of the other centres in turn, to all of them
// at once, so every core is busy as in the announce itself.
func measureAnnounceFloor(ctx context.Context, env env, from *harness.Node, replicas []*harness.Node, n, replication int) (float64, error) {
	to := make([][]mh.Multihash, len(replicas))
	for i := range n {
		var d [32]byte
		rand.Read(d[:])
		k, err := mh.Encode(d[:], mh.SHA2_256)
		if err != nil {
			return 0, err
		}
		for j := range replication {
			r := (i + j) % len(replicas)
			to[r] = append(to[r], k)
		}
	}
	self := peer.AddrInfo{ID: from.Host.ID(), Addrs: from.Host.Addrs()}
	before, err := storedAt(replicas, self.ID)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	errs := make([]error, len(replicas))
	var wg sync.WaitGroup
	for i, r := range replicas {
		wg.Go(func() { errs[i] = sendProviderRecords(ctx, from.Host, r.Host.ID(), self, to[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, fmt.Errorf("directory floor: %w", err)
	}
	if _, err := waitStored(ctx, env, from, replicas, self.ID, before+n*replication, start); err != nil {
		return 0, fmt.Errorf("directory floor: %w", err)
	}
	took := time.Since(start)
	floor := float64(n) / took.Seconds()
	env.logf("directory: floor, %d announcements' ADD_PROVIDER messages alone (%d each), sent and stored in %v: %.0f announcements per second",
		n, replication, took.Round(time.Millisecond), floor)
	return floor, nil
}

// sendProviderRecords writes an ADD_PROVIDER message naming self for each
// key on one stream to replica, as the directory's placement does.
func sendProviderRecords(ctx context.Context, h host.Host, replica peer.ID, self peer.AddrInfo, keys []mh.Multihash) error {
	s, err := h.NewStream(ctx, replica, protocol.ID(directory.ProtocolPrefix+"/kad/1.0.0"))
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(s, 64<<10)
	w := pbio.NewDelimitedWriter(bw)
	msg := pb.NewMessage(pb.Message_ADD_PROVIDER, nil, 0)
	msg.ProviderPeers = pb.RawPeerInfosToPBPeers([]peer.AddrInfo{self})
	for _, k := range keys {
		msg.Key = k
		if err := w.WriteMsg(msg); err != nil {
			s.Reset()
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		s.Reset()
		return err
	}
	return s.Close()
}

// waitRepaired waits until the announcer has checked every announcement
// it queued for repair at its replicas (directory.Directory.Repair), so
// that the next measurement does not share the CPU with the repair.
func waitRepaired(ctx context.Context, env env, announcer *harness.Node, start time.Time) error {
	for announcer.Directory.RepairBacklog() > 0 {
		if time.Since(start) > announceLimit {
			return fmt.Errorf("after %v, %d announcements are still to be checked at their replicas", announceLimit, announcer.Directory.RepairBacklog())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	env.logf("directory: every queued announcement checked at its replicas %v after the announce began", time.Since(start).Round(time.Millisecond))
	return nil
}

// measureLookup measures lookups in a federation of twenty centres.
func measureLookup(ctx context.Context, env env, m map[string]float64) (err error) {
	// All twenty found the federation: version 1 lists them all, so no
	// admission rounds are needed.
	nodes, err := startFederation(ctx, filepath.Join(env.dir, "directory-lookup"), 20, 20, time.Hour)
	defer func() { err = errors.Join(err, nodes.Stop()) }()
	if err != nil {
		return err
	}
	np := env.pick(2_000, 500)
	patients := randomPseudonyms(np)
	holders := make([][]peer.ID, np)
	byCentre := make([][]ledger.Pseudonym, len(nodes))
	for i, p := range patients {
		for _, c := range mrand.Perm(len(nodes))[:1+i%5] {
			holders[i] = append(holders[i], nodes[c].Centre.ID())
			byCentre[c] = append(byCentre[c], p)
		}
		slices.Sort(holders[i])
	}
	env.logf("directory: %d patients, each held at 1 to 5 of 20 centres, announced by their holders", np)
	for c, ps := range byCentre {
		if err := nodes[c].Directory.Announce(ctx, ps...); err != nil {
			return err
		}
	}
	start := time.Now()
	pending := make([]int, np)
	for i := range pending {
		pending[i] = i
	}
	for len(pending) > 0 {
		if time.Since(start) > settleLimit {
			walked := 0
			for _, i := range pending {
				res, err := nodes[mrand.IntN(len(nodes))].Directory.LookupWalk(ctx, patients[i])
				if err == nil && slices.Equal(res.Holders, holders[i]) {
					walked++
				}
			}
			return fmt.Errorf("after %v, a lookup finds %d of %d patients not at exactly their holders; Kademlia's walk finds exactly the holders of %d of those %d",
				settleLimit, len(pending), np, walked, len(pending))
		}
		var still []int
		for _, i := range pending {
			res, err := nodes[mrand.IntN(len(nodes))].Directory.Lookup(ctx, patients[i])
			if err != nil || !slices.Equal(res.Holders, holders[i]) {
				still = append(still, i)
			}
		}
		if pending = still; len(pending) > 0 {
			time.Sleep(250 * time.Millisecond)
		}
	}
	env.logf("directory: every patient found at exactly its holders after %v", time.Since(start).Round(time.Millisecond))

	// The central floor: the same holders in one SQLite index on one node.
	central, err := openCentral(filepath.Join(env.dir, "directory-central.db"))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, central.Close()) }()
	if err := central.addHolders(ctx, patients, holders); err != nil {
		return err
	}
	// from is a random centre, for the lookups that start at one.
	federated := func(lookup func(*directory.Directory, context.Context, ledger.Pseudonym) (directory.Result, error)) func(int, ledger.Pseudonym) ([]peer.ID, error) {
		return func(from int, p ledger.Pseudonym) ([]peer.ID, error) {
			res, err := lookup(nodes[from].Directory, ctx, p)
			return res.Holders, err
		}
	}
	for _, run := range []struct {
		name, metric string
		count        int
		lookup       func(from int, p ledger.Pseudonym) ([]peer.ID, error)
	}{
		{"lookup", "directory_lookup", env.pick(5_000, 1_000), federated((*directory.Directory).Lookup)},
		{"lookup_walk", "directory_lookup_walk", env.pick(5_000, 1_000) / 5, federated((*directory.Directory).LookupWalk)},
		{"central lookup", "central_lookup", env.pick(5_000, 1_000), func(_ int, p ledger.Pseudonym) ([]peer.ID, error) { return central.holdersOf(ctx, p) }},
	} {
		took := make([]time.Duration, run.count)
		for k := range took {
			i := mrand.IntN(np)
			from := mrand.IntN(len(nodes))
			t := time.Now()
			got, err := run.lookup(from, patients[i])
			took[k] = time.Since(t)
			if err != nil {
				return fmt.Errorf("%s: %w", run.name, err)
			}
			if !slices.Equal(got, holders[i]) {
				return fmt.Errorf("%s: found %d holders, not the %d that announced", run.name, len(got), len(holders[i]))
			}
		}
		p50, p99 := percentileMillis(took, 0.50), percentileMillis(took, 0.99)
		m[run.metric+"_p50_ms"] = p50
		m[run.metric+"_p99_ms"] = p99
		env.logf("directory: %d %ss: p50 %.3f ms, p99 %.3f ms", run.count, run.name, p50, p99)
	}
	return nil
}

// waitStored returns the time from start until nodes store want
// announcements by the holder, announcer. Counting reads every node's whole
// table, which at millions of records costs seconds of the very CPU being
// measured, so it first waits, cheaply, until the announcer has nothing
// left to send; the count that ends the wait is included in the time.
func waitStored(ctx context.Context, env env, announcer *harness.Node, nodes []*harness.Node, holder peer.ID, want int, start time.Time) (time.Duration, error) {
	for {
		backlog, err := announcer.Directory.Backlog(ctx)
		if err != nil {
			return 0, err
		}
		if backlog == 0 {
			break
		}
		if time.Since(start) > announceLimit {
			return 0, fmt.Errorf("after %v, %d announcements are still to be sent", announceLimit, backlog)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	lastLog := time.Now()
	for {
		poll := time.Now()
		got, err := storedAt(nodes, holder)
		if err != nil {
			return 0, err
		}
		took := time.Since(start)
		polled := time.Since(poll)
		if got >= want {
			if got > want {
				env.logf("directory: %d announcements stored, %d more than the replication factor asks", got, got-want)
			}
			return took, nil
		}
		if took > announceLimit {
			return 0, fmt.Errorf("after %v, %d of %d announcements are stored at their replicas", announceLimit, got, want)
		}
		if time.Since(lastLog) >= 10*time.Second {
			env.logf("directory: %v: %d of %d announcements stored (counting them took %v)", took.Round(time.Second), got, want, polled.Round(time.Millisecond))
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// storedAt returns how many announcements by holder the nodes store in
// all, asking them at once.
func storedAt(nodes []*harness.Node, holder peer.ID) (int, error) {
	counts := make([]int, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, r := range nodes {
		wg.Go(func() { counts[i], errs[i] = r.Directory.Stored(holder) })
	}
	wg.Wait()
	total := 0
	for _, c := range counts {
		total += c
	}
	return total, errors.Join(errs...)
}

// settledStored returns storedAt once two polls a second apart agree, or
// after a minute.
func settledStored(nodes []*harness.Node, holder peer.ID) (int, error) {
	last := -1
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		n, err := storedAt(nodes, holder)
		if err != nil || n == last || time.Now().After(deadline) {
			return n, err
		}
		last = n
	}
}
