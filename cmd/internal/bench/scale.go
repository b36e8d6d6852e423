package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/query"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest/harness"
)

// The scale suite runs federations of growing size in this one process,
// on libp2p's mocknet with WAN latencies, and measures for each size what
// one operation costs the federation (messages, bytes, latency), what
// each centre costs at rest (background traffic, CPU, memory, disk), and
// the directory's bytes per announcement, from which it extrapolates a
// country's directory. See simCentre for what a simulated centre is and
// meter for what a message is.
//
// It grows through the sizes while the next one is projected to fit: in
// memory (scaleMemoryLimit), in file descriptors, and in the machine's
// cores, which a federation's background load must leave room in (a
// simulation that cannot keep up with its own idle traffic measures its
// overload, not the protocols). The projections are per centre, linear
// in the federation's size (what a centre holds and sends at rest grows
// with the members it knows), fitted to the sizes measured.

// scaleSizes are the sizes the full run grows through; scaleQuickSizes
// those of a quick run (and of the test).
var (
	scaleSizes      = []int{10, 100, 300, 500, 1000}
	scaleQuickSizes = []int{10, 30}
)

// scaleMemoryLimit is the most memory a size may be projected to need.
const scaleMemoryLimit = 18 << 30

// WAN-like latencies of the links between centres: one way, drawn per
// pair of centres from a hash of the two, so every run has the same.
const (
	minLatency = 10 * time.Millisecond
	maxLatency = 40 * time.Millisecond
)

// The council of the simulated charters: the first members by name,
// approving a new version at councilQuorum of them.
const (
	councilSize   = 7
	councilQuorum = 4
)

// A country's directory, the extrapolation's subject: 60M patients, each
// held at 4 centres, every announcement stored at its replicas, reprovided
// every 22 h (validity 48 h) and checked at its replicas by the
// directory's sweep every 6 h.
const (
	countryPatients     = 60_000_000
	countryHoldersEach  = 4
	countryReprovide    = 22 * time.Hour
	countrySweep        = 6 * time.Hour
	countryAnnouncement = countryPatients * countryHoldersEach
)

// measureScale is the scale suite: each size in turn, while the next is
// projected to fit, and for a size that is not, whether its charter could
// be adopted at all.
func measureScale(ctx context.Context, env env) (map[string]float64, error) {
	sizes := scaleSizes
	if env.quick {
		sizes = scaleQuickSizes
	}
	m := map[string]float64{}
	var fits []scaleFit
	base := processRSS()
	for _, n := range sizes {
		if why := projectScale(fits, n, base); why != "" {
			env.logf("scale: %d centres not run: %s", n, why)
			p := projected(fits, n, base)
			key := fmt.Sprintf("scale_%d_skipped_", n)
			m[key+"rss_gib"], m[key+"idle_cores"], m[key+"fds"] = p.rss/(1<<30), p.cpu, p.fds
			// Whether it could be founded at all.
			kib, byLedger, byProtocol, err := charterOf(ctx, env.dir, n)
			if err != nil {
				return nil, fmt.Errorf("%d centres' charter: %w", n, err)
			}
			m[fmt.Sprintf("scale_%d_charter_note_kib", n)] = kib
			if byLedger != nil {
				m[fmt.Sprintf("scale_%d_charter_refused_ledger", n)] = 1
				env.logf("scale: %d centres could not be founded either: their charter's note of %.0f KiB is refused: %v", n, kib, byLedger)
			}
			if byProtocol != nil {
				m[fmt.Sprintf("scale_%d_charter_refused_protocol", n)] = 1
				env.logf("scale: %d centres' charter's note of %.0f KiB is refused by the charter protocol: %v", n, kib, byProtocol)
			}
			break
		}
		f, err := runScale(ctx, env, n, m)
		var cannot *unfoundable
		if errors.As(err, &cannot) {
			env.logf("scale: %d centres cannot be founded: %v", n, err)
			m[fmt.Sprintf("scale_%d_charter_note_kib", n)] = cannot.noteKiB
			m[fmt.Sprintf("scale_%d_charter_refused_ledger", n)] = 1
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%d centres: %w", n, err)
		}
		fits = append(fits, f)
		runtime.GC()
		debug.FreeOSMemory()
	}
	return m, nil
}

// scaleFit is what one centre cost at rest in a federation of n.
type scaleFit struct {
	n             int
	rss, cpu, fds float64 // per centre: bytes, cores, descriptors
}

// projected is the whole federation's cost at size n, per-centre figures
// fitted linearly in n through the last two sizes measured (constant,
// with one: the second size is always run, and its growth judged after).
func projected(fits []scaleFit, n int, base float64) scaleFit {
	if len(fits) == 0 {
		return scaleFit{n: n}
	}
	last := fits[len(fits)-1]
	line := func(y func(scaleFit) float64) float64 {
		if len(fits) == 1 {
			return y(last)
		}
		prev := fits[len(fits)-2]
		slope := max(0, (y(last)-y(prev))/float64(last.n-prev.n))
		return y(last) + slope*float64(n-last.n)
	}
	N := float64(n)
	return scaleFit{
		n:   n,
		rss: base + N*line(func(f scaleFit) float64 { return f.rss }),
		cpu: N * line(func(f scaleFit) float64 { return f.cpu }),
		fds: N * line(func(f scaleFit) float64 { return f.fds }),
	}
}

// projectScale says why size n should not be run, or "".
func projectScale(fits []scaleFit, n int, base float64) string {
	if len(fits) == 0 {
		return ""
	}
	p := projected(fits, n, base)
	var limit syscall.Rlimit
	fdLimit := math.Inf(1)
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &limit); err == nil {
		fdLimit = float64(limit.Cur)
	}
	cores := float64(runtime.GOMAXPROCS(0))
	var why []string
	if p.rss > scaleMemoryLimit {
		why = append(why, fmt.Sprintf("projected memory %.1f GiB, more than %d GiB", p.rss/(1<<30), scaleMemoryLimit>>30))
	}
	if p.cpu > cores {
		why = append(why, fmt.Sprintf("projected idle load %.1f cores, more than the %.0f there are", p.cpu, cores))
	}
	if p.fds > 0.9*fdLimit {
		why = append(why, fmt.Sprintf("projected %.0f open files, near the limit of %.0f", p.fds, fdLimit))
	}
	return strings.Join(why, "; ")
}

// simFederation is one simulated federation: its members in name order,
// and the centre its charter change admits.
type simFederation struct {
	env     env
	mn      mocknet.Mocknet
	centres []*simCentre
	joiner  *simCentre
	rng     *rand.Rand
	samples int
}

func (f *simFederation) close() error {
	var (
		mu   sync.Mutex
		errs []error
	)
	all := append(slices.Clone(f.centres), f.joiner)
	// Stopping is mostly waiting for loops to end: many at once.
	inParallel(32, len(all), func(_, i int) error {
		if all[i] != nil {
			err := all[i].close()
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		return nil
	})
	errs = append(errs, f.mn.Close())
	return errors.Join(errs...)
}

// runScale founds a federation of n centres, measures it into m (metrics
// scale_<n>_...) and returns what a centre cost at rest.
func runScale(ctx context.Context, env env, n int, m map[string]float64) (fit scaleFit, err error) {
	root := filepath.Join(env.dir, fmt.Sprintf("scale-%d", n))
	defer os.RemoveAll(root)
	f := &simFederation{env: env, mn: mocknet.New(), rng: rand.New(rand.NewPCG(uint64(n), 1)), samples: env.pick(20, 2)}
	if n >= 300 {
		f.samples = env.pick(10, 2)
	}
	defer func() {
		start := time.Now()
		if cerr := f.close(); cerr != nil && err == nil {
			err = fmt.Errorf("stopping the centres: %w", cerr)
		}
		env.logf("scale: %d centres stopped in %v", n, time.Since(start).Round(time.Millisecond))
	}()
	key := func(name string) string { return fmt.Sprintf("scale_%d_%s", n, name) }
	start := time.Now()
	env.logf("scale: %d centres: opening their data directories and hosts", n)
	if err := f.found(ctx, root, n); err != nil {
		return fit, err
	}
	m[key("setup_s")] = time.Since(start).Seconds()
	env.logf("scale: %d centres founded and connected in %v", n, time.Since(start).Round(time.Millisecond))
	st, err := f.centres[0].directory.Status(ctx)
	if err != nil {
		return fit, err
	}
	m[key("replication")] = float64(st.Replication)

	ps, err := f.patients(ctx, 3*f.samples)
	if err != nil {
		return fit, err
	}
	lookups, queries, consents := ps[:f.samples], ps[f.samples:2*f.samples], ps[2*f.samples:]
	if err := f.measureLookups(ctx, lookups, m, key); err != nil {
		return fit, err
	}
	if err := f.measureCheckpoints(ctx, m, key); err != nil {
		return fit, err
	}
	if err := f.measureConsent(ctx, consents, m, key); err != nil {
		return fit, err
	}
	if err := f.measureQueries(ctx, queries, m, key); err != nil {
		return fit, err
	}
	if fit, err = f.measureIdle(ctx, root, m, key); err != nil {
		return fit, err
	}
	// Last but the charter change, whose new member would be a replica
	// that is not there: the directory's repair goes on after it.
	if err := f.measureAnnounce(ctx, st.Replication, m, key); err != nil {
		return fit, err
	}
	return fit, f.measureCharterChange(ctx, m, key)
}

// found opens n centres and the one to be admitted, links every pair,
// founds the federation (founding), installs its charter chain at every
// member and starts them, connects every pair, and waits until every
// centre's directory is online.
func (f *simFederation) found(ctx context.Context, root string, n int) error {
	all := make([]*simCentre, n+1)
	if err := inParallel(8, n+1, func(_, i int) (err error) {
		all[i], err = openSimCentre(ctx, f.mn, newMeter(), root, i)
		return err
	}); err != nil {
		for _, s := range all {
			if s != nil {
				s.close()
			}
		}
		return err
	}
	f.centres, f.joiner = all[:n], all[n]
	for i, a := range all {
		for _, b := range all[i+1:] {
			l, err := f.mn.LinkPeers(a.c.ID(), b.c.ID())
			if err != nil {
				return err
			}
			l.SetOptions(mocknet.LinkOptions{Latency: linkLatency(a.c.ID(), b.c.ID())})
		}
	}
	chain, err := f.founding(ctx)
	if err != nil {
		return err
	}
	for _, note := range chain {
		if err := centre.NewCharterStore(f.centres[0].c.Ledger).Adopt(ctx, note); err != nil {
			return &unfoundable{noteKiB: float64(len(note)) / 1024, err: err}
		}
	}
	if err := inParallel(runtime.GOMAXPROCS(0), n, func(_, i int) error {
		s := f.centres[i]
		for _, note := range chain {
			if i == 0 {
				break // adopted above
			}
			if err := centre.NewCharterStore(s.c.Ledger).Adopt(ctx, note); err != nil {
				return err
			}
		}
		return s.start(ctx, chain)
	}); err != nil {
		return err
	}
	// Every centre connects now to the initialPeers members after it in
	// the list (so to twice as many in all), as a node's connection
	// manager keeps it connected to some members, not all: in a
	// federation of thousands a full mesh would be millions of
	// connections. Every other member it dials when it first asks it
	// something (every pair of centres is linked).
	if err := inParallel(runtime.GOMAXPROCS(0), n, func(_, i int) error {
		for k := 1; k <= min(initialPeers, (n-1)/2); k++ {
			if _, err := f.mn.ConnectPeers(f.centres[i].c.ID(), f.centres[(i+k)%n].c.ID()); err != nil {
				return err
			}
		}
		return ctx.Err()
	}); err != nil {
		return err
	}
	// The directories start last, all at once: a directory's provider
	// that starts before the others waits, longer and longer, until it
	// finds members online.
	if err := inParallel(runtime.GOMAXPROCS(0), n, func(_, i int) error { return f.centres[i].startDirectory() }); err != nil {
		return err
	}
	if err := f.fillRoutingTables(ctx); err != nil {
		return err
	}
	// The directory's first sweep (directory/sweep.go) checks every
	// announcement made before it ran at every replica: announcing before
	// it would be timing the directory's start.
	var empty, offline, unswept int
	err = harness.WaitFor(ctx, 2*time.Minute, "every centre's directory is online and swept", func() bool {
		empty, offline, unswept = 0, 0, 0
		for _, s := range f.centres {
			st, err := s.directory.Status(ctx)
			if err != nil {
				return false
			}
			if st.RoutingTable == 0 {
				empty++
			}
			if st.Connectivity != "online" {
				offline++
			}
			if st.LastSweep.IsZero() {
				unswept++
			}
		}
		return empty+offline+unswept == 0
	})
	if err != nil {
		return fmt.Errorf("%w (routing table empty at %d, offline at %d, not swept at %d)", err, empty, offline, unswept)
	}
	return nil
}

// fillRoutingTables makes sure every directory has members in its
// routing table. kad-dht fills it from the members it is connected to
// that it knows serve the directory: those whose directory started first
// (identify told of it), and those that start later as they say so
// (identify's push). A directory that started just as another did may
// hear of neither: connecting it to a few members again has identify
// tell it.
func (f *simFederation) fillRoutingTables(ctx context.Context) error {
	for range 10 {
		var empty []*simCentre
		if err := harness.WaitFor(ctx, 2*time.Second, "", func() bool {
			empty = slices.DeleteFunc(slices.Clone(f.centres), func(s *simCentre) bool { return s.directory.RoutingTableSize() > 0 })
			return len(empty) == 0
		}); err == nil {
			return nil
		}
		for _, s := range empty {
			for range min(8, len(f.centres)-1) {
				p := f.centres[f.other(slices.Index(f.centres, s))].c.ID()
				if err := f.mn.DisconnectPeers(s.c.ID(), p); err != nil {
					return err
				}
				if _, err := f.mn.ConnectPeers(s.c.ID(), p); err != nil {
					return err
				}
			}
		}
	}
	return errors.New("a directory's routing table stays empty")
}

// unfoundable is a federation whose charter a centre cannot adopt.
type unfoundable struct {
	noteKiB float64
	err     error
}

func (e *unfoundable) Error() string {
	return fmt.Sprintf("a charter note of %.0f KiB cannot be adopted: %v", e.noteKiB, e.err)
}

func (e *unfoundable) Unwrap() error { return e.err }

// admitBatch is how many centres past the founders a version of a
// simulated federation's founding chain admits, as a council would admit
// the centres that asked to join since the version before.
const admitBatch = 250

// initialPeers is how many members after it in the list a simulated
// centre connects to at the start (and as many before it connect to it).
const initialPeers = 16

// maxFounders is how many centres found a simulated federation; the
// others are admitted admitBatch a version after. Every founder signs
// version 1, and every centre checks each signature when it starts.
const maxFounders = 128

// founding returns the charter chain of the federation of every centre
// (foundingChain).
func (f *simFederation) founding(ctx context.Context) ([][]byte, error) {
	members := make([]federation.Member, len(f.centres))
	keys := make([]ed25519.PrivateKey, len(f.centres))
	for i, s := range f.centres {
		var err error
		if members[i], err = s.member(); err != nil {
			return nil, err
		}
		keys[i] = s.c.Key()
	}
	chain, err := foundingChain(members, keys)
	if err != nil {
		return nil, err
	}
	return chain, ctx.Err()
}

// foundingChain is the charter chain of a federation of members (with
// their keys, in name order): version 1 listing the first maxFounders,
// with the council and its quorum, signed by each of them, and, when
// there are more, versions admitting them admitBatch at a time, each
// approved by the council's quorum.
func foundingChain(members []federation.Member, keys []ed25519.PrivateKey) ([][]byte, error) {
	n := len(members)
	founders := min(n, maxFounders)
	policy := federation.DefaultPolicy(founders)
	council := min(councilSize, n)
	policy.AdmissionQuorum = min(councilQuorum, council)
	ch := federation.Charter{Federation: federationID, Version: 1, Policy: policy, Members: members[:founders]}
	for _, m := range members[:council] {
		ch.Council = append(ch.Council, m.Name)
	}
	v1, err := signedBy(ch, keys[:founders])
	if err != nil {
		return nil, err
	}
	if _, err := federation.VerifyFounding(v1); err != nil {
		return nil, err
	}
	chain := [][]byte{v1}
	for rest := members[founders:]; len(rest) > 0; {
		batch := rest[:min(admitBatch, len(rest))]
		rest = rest[len(batch):]
		next, err := ch.WithMembers(batch)
		if err != nil {
			return nil, err
		}
		note, err := signedBy(next, keys[:policy.AdmissionQuorum])
		if err != nil {
			return nil, err
		}
		if _, err := federation.VerifyNext(ch, note); err != nil {
			return nil, err
		}
		chain, ch = append(chain, note), next
	}
	return chain, nil
}

// charterOf returns the size of the largest note of the charter chain of
// a federation of n (built with keys of its own), and why a centre could
// not adopt it: a ledger refusing it as an entry (node/centre keeps each
// version as one), or the charter protocol refusing to read it.
func charterOf(ctx context.Context, dir string, n int) (kib float64, byLedger, byProtocol error, err error) {
	members := make([]federation.Member, n)
	keys := make([]ed25519.PrivateKey, n)
	for i := range n {
		seed := sha256.Sum256(fmt.Appendf(nil, "medfed scale charter key %d", i))
		keys[i] = ed25519.NewKeyFromSeed(seed[:])
		id, err := centre.PeerID(keys[i])
		if err != nil {
			return 0, nil, nil, err
		}
		a, err := ma.NewMultiaddr(simAddr(i))
		if err != nil {
			return 0, nil, nil, err
		}
		members[i] = federation.Member{Name: fmt.Sprintf("c%04d", i), ID: id, Addrs: []ma.Multiaddr{a}}
	}
	chain, err := foundingChain(members, keys)
	if err != nil {
		return 0, nil, nil, err
	}
	note := slices.MaxFunc(chain, func(a, b []byte) int { return len(a) - len(b) })
	l, err := ledger.Open(ctx, filepath.Join(dir, fmt.Sprintf("charter-%d.db", n)), ledger.Options{Origin: ledger.Origin(federationID, members[0].Name), Key: keys[0]})
	if err != nil {
		return 0, nil, nil, err
	}
	defer l.Close()
	byLedger = centre.NewCharterStore(l).Adopt(ctx, note)
	_, byProtocol = federation.PeekCharter(note)
	return float64(len(note)) / 1024, byLedger, byProtocol, nil
}

// signedBy is the note of ch signed by every key: each signs on its own,
// and the notes are merged pairwise.
func signedBy(ch federation.Charter, keys []ed25519.PrivateKey) ([]byte, error) {
	notes := make([][]byte, len(keys))
	workers := runtime.GOMAXPROCS(0)
	if err := inParallel(workers, len(keys), func(_, i int) (err error) {
		notes[i], err = federation.Sign(ch, nil, keys[i])
		return err
	}); err != nil {
		return nil, err
	}
	for len(notes) > 1 {
		next := make([][]byte, (len(notes)+1)/2)
		if err := inParallel(workers, len(next), func(_, i int) (err error) {
			if 2*i+1 == len(notes) {
				next[i] = notes[2*i]
				return nil
			}
			next[i], err = federation.Merge(notes[2*i], notes[2*i+1])
			return err
		}); err != nil {
			return nil, err
		}
		notes = next
	}
	return notes[0], nil
}

// linkLatency is the one-way latency between a and b: 10 to 40 ms, from
// a hash of the pair.
func linkLatency(a, b peer.ID) time.Duration {
	if a > b {
		a, b = b, a
	}
	h := sha256.Sum256([]byte(string(a) + "|" + string(b)))
	span := uint64(maxLatency - minLatency)
	return minLatency + time.Duration(binary.BigEndian.Uint64(h[:8])%(span+1))
}

// sent is what every centre has sent so far, by class.
func (f *simFederation) sent() tally {
	all := tally{}
	for _, s := range append(slices.Clone(f.centres), f.joiner) {
		if s == nil {
			continue
		}
		for c, n := range s.host.m.snapshot() {
			all[c] = all[c].plus(n)
		}
	}
	return all
}

// patient is a patient of the simulation with the centres holding their
// records.
type patient struct {
	p       ledger.Pseudonym
	holders []int // indexes into centres, sorted
}

// patients records count patients at three centres each, has the
// holders announce them and checkpoint, and waits until a lookup from
// anywhere finds each at exactly its holders.
func (f *simFederation) patients(ctx context.Context, count int) ([]patient, error) {
	n := len(f.centres)
	ps := make([]patient, count)
	byCentre := make([][]ledger.Pseudonym, n)
	for i := range ps {
		ps[i].p = ledger.Pseudonym(sha256.Sum256(fmt.Appendf(nil, "medfed scale patient %d of %d", i, n)))
		ps[i].holders = slices.Sorted(slices.Values(f.rng.Perm(n)[:3]))
		for _, h := range ps[i].holders {
			if err := harness.Visit(ctx, f.centres[h].c, ps[i].p, i); err != nil {
				return nil, err
			}
			byCentre[h] = append(byCentre[h], ps[i].p)
		}
	}
	start := time.Now()
	for h, held := range byCentre {
		if err := f.centres[h].directory.Announce(ctx, held...); err != nil {
			return nil, err
		}
	}
	// The first checkpoints, so that the records are final; a publisher
	// that fails tries again, as a node's does at its next interval.
	if err := inParallel(8, n, func(_, i int) (err error) {
		for range 5 {
			if _, err = f.centres[i].publisher.Publish(ctx); err == nil {
				return nil
			}
			f.env.logf("scale: %d centres: a first checkpoint did not become final, trying again: %v", n, err)
		}
		return err
	}); err != nil {
		return nil, fmt.Errorf("first checkpoints: %w", err)
	}
	if err := f.settleDirectory(ctx); err != nil {
		return nil, err
	}
	if err := harness.WaitFor(ctx, 2*time.Minute, "every patient is found at exactly its holders", func() bool {
		for _, pt := range ps {
			res, err := f.centres[f.rng.IntN(n)].directory.Lookup(ctx, pt.p)
			if err != nil || !slices.Equal(res.Holders, f.ids(pt.holders)) {
				return false
			}
		}
		return true
	}); err != nil {
		return nil, err
	}
	f.env.logf("scale: %d patients at 3 centres each, announced and found everywhere after %v", count, time.Since(start).Round(time.Millisecond))
	return ps, nil
}

// measureAnnounce has one centre announce patients of its own, and
// measures what an announcement costs, until every replica stores it, on
// the wire (a record to each replica) and on the replicas' disks: the
// figures the country's directory is extrapolated from. The directory's
// repair then checks every announcement at each of its replicas
// (directory/repair.go), a request each: its checks so far give a
// check's bytes, and how many it makes a second. It is not waited for.
func (f *simFederation) measureAnnounce(ctx context.Context, replication int, m map[string]float64, key func(string) string) error {
	// A thousand keys, as far as that makes at most 100,000 records; 400
	// in a quick run, so that at its smallest size each replica's new
	// records (over 200, some 25 KiB) outgrow the room left in the pages
	// its file has (a directory database's pages are 16 KiB), and the
	// file's growth measures them.
	k := f.env.pick(min(1000, max(50, 100_000/replication)), 400)
	announcer := f.centres[len(f.centres)-1]
	others := f.centres[:len(f.centres)-1]
	id := announcer.c.ID()
	storedBefore, err := storedBy(others, id)
	if err != nil {
		return err
	}
	bytesBefore, err := directoryBytes(others)
	if err != nil {
		return err
	}
	keys := make([]ledger.Pseudonym, k)
	for i := range keys {
		keys[i] = ledger.Pseudonym(sha256.Sum256(fmt.Appendf(nil, "medfed scale announcement %d of %d", i, len(f.centres))))
	}
	before := f.sent()
	start := time.Now()
	if err := announcer.directory.Announce(ctx, keys...); err != nil {
		return err
	}
	want := storedBefore + k*replication
	var stored int
	if err := harness.WaitFor(ctx, 10*time.Minute, "every announcement is sent and stored at its replicas", func() bool {
		backlog, berr := announcer.directory.Backlog(ctx)
		stored, err = storedBy(others, id)
		return err == nil && berr == nil && backlog == 0 && stored >= want
	}); err != nil {
		return fmt.Errorf("%w (%d of %d)", err, stored-storedBefore, k*replication)
	}
	took := time.Since(start)
	// What is still in flight once the last record is counted settles
	// before the messages are tallied (counting flushed the stores).
	time.Sleep(1500 * time.Millisecond)
	sent := f.sent().since(before)
	if stored, err = storedBy(others, id); err != nil {
		return err
	}
	bytesAfter, err := directoryBytes(others)
	if err != nil {
		return err
	}
	f.announced(k, replication, stored-storedBefore, bytesAfter-bytesBefore, took, sent, m, key)
	// The repair's pace, while it is still at it.
	c0, t0 := f.sent()["kad/GET_PROVIDERS"].Messages, time.Now()
	time.Sleep(time.Duration(f.env.pick(3000, 500)) * time.Millisecond)
	if announcer.directory.RepairBacklog() > 0 {
		m[key("repair_checks_per_s")] = float64(f.sent()["kad/GET_PROVIDERS"].Messages-c0) / time.Since(t0).Seconds()
		f.env.logf("scale: %d centres: the announcer's repair checks %.0f announcements a second at their replicas (%d to check, one request per key and replica)",
			len(f.centres), m[key("repair_checks_per_s")], k*replication)
	}
	return nil
}

// announced records what keys announcements, stored at replication
// members each (records in all, adding bytes to the replicas' files),
// cost on the wire (sent) and on disk.
func (f *simFederation) announced(keys, replication, records int, bytes int64, took time.Duration, sent tally, m map[string]float64, key func(string) string) {
	add := sent["kad/ADD_PROVIDER"]
	checks := sent["kad/GET_PROVIDERS"]
	kad := sent.sum(isKad)
	explore := kad.Messages - add.Messages - checks.Messages
	k, r := float64(keys), float64(records)
	m[key("announce_keys")] = k
	m[key("announce_s")] = took.Seconds()
	m[key("announce_msgs_per_key")] = float64(add.Messages+explore) / k
	m[key("announce_kib_per_key")] = float64(kad.Bytes-checks.Bytes) / k / 1024
	m[key("add_msgs_per_record")] = float64(add.Messages) / r
	m[key("record_wire_bytes")] = float64(add.Bytes) / max(1, float64(add.Messages))
	m[key("record_disk_bytes")] = float64(bytes) / r
	m[key("explore_msgs_per_key")] = float64(explore) / k
	m[key("explore_bytes_per_key")] = float64(kad.Bytes-add.Bytes-checks.Bytes) / k
	m[key("check_wire_bytes")] = float64(checks.Bytes) / max(1, float64(checks.Messages))
	f.env.logf("scale: %d centres: %d announcements stored at %d replicas each (%d records) in %v: %.1f Kademlia messages per key (%d ADD_PROVIDER, %d other; %d repair checks so far), %.0f bytes per record on the wire, %.0f on disk",
		len(f.centres), keys, replication, records, took.Round(time.Millisecond), m[key("announce_msgs_per_key")], add.Messages, explore, checks.Messages, m[key("record_wire_bytes")], m[key("record_disk_bytes")])
	for name, v := range countryDirectory(float64(len(f.centres)), float64(replication), func(name string) float64 { return m[key(name)] }) {
		m[key(name)] = v
	}
}

// ids returns the peer IDs of centres, sorted as lookups sort them.
func (f *simFederation) ids(centres []int) []peer.ID {
	out := make([]peer.ID, len(centres))
	for i, c := range centres {
		out[i] = f.centres[c].c.ID()
	}
	slices.Sort(out)
	return out
}

// settleDirectory waits until no centre has announcements to send or to
// repair.
func (f *simFederation) settleDirectory(ctx context.Context) error {
	return harness.WaitFor(ctx, 10*time.Minute, "every announcement is sent and repaired", func() bool {
		for _, s := range f.centres {
			b, err := s.directory.Backlog(ctx)
			if err != nil || b > 0 || s.directory.RepairBacklog() > 0 {
				return false
			}
		}
		return true
	})
}

// other returns a random centre that is none of not.
func (f *simFederation) other(not ...int) int {
	for {
		if i := f.rng.IntN(len(f.centres)); !slices.Contains(not, i) {
			return i
		}
	}
}

// opStats gathers one kind of operation's samples.
type opStats struct {
	took    []time.Duration
	sent    counts
	byClass tally
}

// measure runs op and adds its time and what the centres sent for it
// (the classes match picks) to the stats. What op set going continues
// after it returns (late answers, broadcasts in the background): the
// count goes on until those classes have been still for a while.
func (f *simFederation) measure(st *opStats, match func(string) bool, op func() error) error {
	return f.measureStill(st, match, f.still(), f.sent, op)
}

// still is how long the classes an operation is counted in must have
// been still for its count to end.
func (f *simFederation) still() time.Duration {
	return time.Duration(f.env.pick(400, 250)) * time.Millisecond
}

// lookingUp counts what every centre sends but Kademlia's requests, and
// those of from, the centre whose operation looks a patient up: the
// others' directory upkeep meanwhile (repairs, sweeps) is not the
// operation's.
func (f *simFederation) lookingUp(from *simCentre) func() tally {
	return func() tally {
		all := tally{}
		for _, s := range f.centres {
			for c, n := range s.host.m.snapshot() {
				if s == from || !isKad(c) {
					all[c] = all[c].plus(n)
				}
			}
		}
		return all
	}
}

// measureStill is measure, counting what sent tells, until the classes
// have been still for still.
func (f *simFederation) measureStill(st *opStats, match func(string) bool, still time.Duration, sentNow func() tally, op func() error) error {
	before := sentNow()
	start := time.Now()
	if err := op(); err != nil {
		return err
	}
	st.took = append(st.took, time.Since(start))
	last, since := sentNow().since(before).sum(match), time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		now := sentNow().since(before).sum(match)
		if now != last {
			last, since = now, time.Now()
		} else if time.Since(since) >= still {
			break
		}
	}
	sent := sentNow().since(before)
	st.sent = st.sent.plus(sent.sum(match))
	if st.byClass == nil {
		st.byClass = tally{}
	}
	for c, n := range sent {
		if match(c) {
			st.byClass[c] = st.byClass[c].plus(n)
		}
	}
	return nil
}

// record puts the stats in m as <name>_msgs, _kib (per operation),
// _p50_ms and _p99_ms.
func (f *simFederation) record(name string, st opStats, m map[string]float64, key func(string) string) {
	k := float64(len(st.took))
	m[key(name+"_msgs")] = float64(st.sent.Messages) / k
	m[key(name+"_streams")] = float64(st.sent.Streams) / k
	m[key(name+"_kib")] = float64(st.sent.Bytes) / k / 1024
	m[key(name+"_p50_ms")] = percentileMillis(st.took, 0.5)
	m[key(name+"_p99_ms")] = percentileMillis(st.took, 0.99)
	for c, n := range st.byClass {
		m[key(name+"_class_"+c+"_msgs")] = float64(n.Messages) / k
	}
	f.env.logf("scale: %d centres: %s: %.1f messages, %.1f KiB per operation (%s); p50 %.1f ms, p99 %.1f ms (%d)",
		len(f.centres), name, m[key(name+"_msgs")], m[key(name+"_kib")], busiest(st.byClass, k), m[key(name+"_p50_ms")], m[key(name+"_p99_ms")], len(st.took))
}

// busiest lists the classes with the most messages, each over per.
func busiest(t tally, per float64) string {
	names := t.names()
	slices.SortFunc(names, func(a, b string) int { return int(t[b].Messages - t[a].Messages) })
	var out []string
	for _, c := range names[:min(len(names), 6)] {
		out = append(out, fmt.Sprintf("%s %s", c, number(float64(t[c].Messages)/per)))
	}
	return strings.Join(out, ", ")
}

// The classes each operation is counted in: what it sends, and not what
// runs in the background anyway (membership's sync, the erasure feed,
// the witnesses' views, the routing table's upkeep). A directory lookup
// is GET_PROVIDERS requests.
var (
	lookupClasses     = func(c string) bool { return c == "kad/GET_PROVIDERS" }
	checkpointClasses = func(c string) bool {
		return isProtocol("witness")(c) && c != "witness/views" && c != "witness/prove"
	}
	consentClasses = func(c string) bool { return isProtocol("consent")(c) && c != "consent/erasures" }
	writeClasses   = func(c string) bool { return consentClasses(c) || lookupClasses(c) }
	queryClasses   = func(c string) bool { return isProtocol("query")(c) || consentClasses(c) || lookupClasses(c) }
	// A charter change: membership's offers and adoptions, and gossip,
	// should membership use any; not its periodic sync (charter/chain).
	charterClasses = func(c string) bool { return c == "charter/propose" || c == "charter/adopt" || isOther(c) }
)

// measureLookups looks each patient up from a centre that does not hold
// them: one hop to the members closest to the key.
func (f *simFederation) measureLookups(ctx context.Context, ps []patient, m map[string]float64, key func(string) string) error {
	var st opStats
	for _, pt := range ps {
		from := f.centres[f.other(pt.holders...)]
		if err := f.measureStill(&st, lookupClasses, f.still(), f.lookingUp(from), func() error {
			res, err := from.directory.Lookup(ctx, pt.p)
			if err != nil {
				return fmt.Errorf("lookup: %w", err)
			}
			if !slices.Equal(res.Holders, f.ids(pt.holders)) {
				return fmt.Errorf("lookup: %d holders found, not the %d that announced", len(res.Holders), len(pt.holders))
			}
			return nil
		}); err != nil {
			return err
		}
	}
	f.record("lookup", st, m, key)
	return nil
}

// measureCheckpoints has random centres append a record and publish a
// checkpoint of it, final once its witness quorum cosigned it.
func (f *simFederation) measureCheckpoints(ctx context.Context, m map[string]float64, key func(string) string) error {
	var st opStats
	failed := 0
	for i := range f.samples {
		s := f.centres[f.rng.IntN(len(f.centres))]
		p := ledger.Pseudonym(sha256.Sum256(fmt.Appendf(nil, "medfed scale checkpoint %d", i)))
		if err := f.measure(&st, checkpointClasses, func() error {
			if err := harness.Visit(ctx, s.c, p, i); err != nil {
				return err
			}
			size := s.c.Ledger.Size()
			final, err := s.publisher.Publish(ctx)
			switch {
			case err != nil:
				// A node publishes again at its next interval: a checkpoint
				// that is not final is a figure, not the end of the run.
				failed++
				f.env.logf("scale: %d centres: a checkpoint did not become final: %v", len(f.centres), err)
			case final.Size < size:
				return fmt.Errorf("checkpoint: final at %d, the ledger is at %d", final.Size, size)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	f.record("checkpoint", st, m, key)
	m[key("checkpoint_failed")] = float64(failed)
	return nil
}

// measureConsent has each patient's first holder attest the patient's key
// and then submit the patient's contract (the write measured: delivered
// to the holders and a majority, and confirmed), then has another centre,
// with no lease on the patient's consent, decide a request (the read
// measured: it reads the state from a majority before it decides).
func (f *simFederation) measureConsent(ctx context.Context, ps []patient, m map[string]float64, key func(string) string) error {
	var write, read opStats
	fed := f.centres[0].membership.Current().Federation
	for i, pt := range ps {
		registrar := f.centres[pt.holders[0]]
		seed := sha256.Sum256(pt.p[:])
		pk := ed25519.NewKeyFromSeed(seed[:])
		if _, err := registrar.consent.Attest(ctx, pt.p, pk.Public().(ed25519.PublicKey), false, ledger.StaffID{}); err != nil {
			return fmt.Errorf("attest: %w", err)
		}
		c := contract(f.ids([]int{0, 1, 2, 3, 4, 5}), pt.p)
		c.Federation, c.Issued = fed, now()
		signed, err := consent.SignContract(pk, c)
		if err != nil {
			return err
		}
		if err := f.measureStill(&write, writeClasses, f.still(), f.lookingUp(registrar), func() error {
			d, err := registrar.consent.Submit(ctx, signed)
			if err != nil {
				return fmt.Errorf("consent write: %w", err)
			}
			if !d.Confirmed {
				return fmt.Errorf("consent write: not confirmed, %d failed", len(d.Failed))
			}
			return nil
		}); err != nil {
			return err
		}
		reader := f.centres[f.other(pt.holders...)]
		q := consent.Request{Centre: reader.c.ID(), Role: consent.Clinician, Action: consent.Access, Purpose: consent.Treatment,
			Class: classes[i%len(classes)], Recorded: time.Now().Add(-time.Hour), Time: time.Now()}
		if err := f.measure(&read, consentClasses, func() error {
			if _, err := reader.consent.Decide(ctx, pt.p, q); err != nil {
				return fmt.Errorf("consent read: %w", err)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	f.record("consent_write", write, m, key)
	f.record("consent_read", read, m, key)
	return nil
}

// measureQueries queries each patient's records from a centre that holds
// none: the lookup, every holder's checks and consent decision (its read
// of the patient's consent, holding no lease), the access on its ledger,
// proofs, sealing, and the requester's verification.
func (f *simFederation) measureQueries(ctx context.Context, ps []patient, m map[string]float64, key func(string) string) error {
	var st opStats
	for _, pt := range ps {
		from := f.centres[f.other(pt.holders...)]
		if err := f.measureStill(&st, queryClasses, f.still(), f.lookingUp(from), func() error {
			res, err := from.client.Query(ctx, query.Spec{Subject: pt.p, Role: consent.Clinician, Purpose: consent.Treatment})
			if err != nil {
				return fmt.Errorf("query: %w", err)
			}
			if len(res.Holders) != len(pt.holders) {
				return fmt.Errorf("query: %d holders answered, want %d", len(res.Holders), len(pt.holders))
			}
			for _, a := range res.Holders {
				if a.Err != nil {
					return fmt.Errorf("query: a holder failed: %w", a.Err)
				}
				if !a.Permit || len(a.Records) != 1 {
					return fmt.Errorf("query: a holder released %d records (permit %v)", len(a.Records), a.Permit)
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	f.record("query", st, m, key)
	return nil
}

// storedBy returns how many announcements by holder the centres store.
func storedBy(centres []*simCentre, holder peer.ID) (int, error) {
	total := 0
	for _, s := range centres {
		n, err := s.directory.Stored(holder)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// directoryBytes returns the bytes of the centres' directory databases,
// as SQLite counts its pages (the write-ahead log's included, as if
// checkpointed), read on a connection of the bench's own.
func directoryBytes(centres []*simCentre) (int64, error) {
	var total int64
	for _, s := range centres {
		path := filepath.Join(s.cfg.Data.Dir, centre.DirectoryFile)
		u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: "mode=ro&_busy_timeout=5000"}
		db, err := sql.Open("sqlite3", u.String())
		if err != nil {
			return 0, err
		}
		var pages, size int64
		err = db.QueryRow("PRAGMA page_count").Scan(&pages)
		if err == nil {
			err = db.QueryRow("PRAGMA page_size").Scan(&size)
		}
		if err := errors.Join(err, db.Close()); err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		total += pages * size
	}
	return total, nil
}

// measureIdle starts every centre's loops, lets them settle, and measures
// the federation at rest: what each centre sends a second, by class, and
// its share of the CPU; then what each holds in memory and on disk.
func (f *simFederation) measureIdle(ctx context.Context, root string, m map[string]float64, key func(string) string) (scaleFit, error) {
	n := len(f.centres)
	for _, s := range f.centres {
		s.startLoops()
	}
	// A round of checkpoints of what the operations appended, and of
	// views, before the window opens.
	time.Sleep(time.Duration(f.env.pick(10, 1)) * time.Second)
	// A whole number of every loop's period (membership's 2 s, views' 5 s,
	// the erasure feed's two leases: 60 s), in the full run; a glimpse in
	// a quick one.
	window := time.Duration(f.env.pick(60, 2)) * time.Second
	before, cpu0, t0 := f.sent(), processCPU(), time.Now()
	select {
	case <-ctx.Done():
		return scaleFit{}, ctx.Err()
	case <-time.After(window):
	}
	sent, cpu, wall := f.sent().since(before), processCPU()-cpu0, time.Since(t0)
	per := func(v int64) float64 { return float64(v) / float64(n) / wall.Seconds() }
	all := sent.sum(func(string) bool { return true })
	m[key("idle_msgs_per_s")] = per(all.Messages)
	m[key("idle_kib_per_s")] = per(all.Bytes) / 1024
	m[key("idle_cpu_pct")] = 100 * cpu.Seconds() / wall.Seconds() / float64(n)
	for _, c := range sent.names() {
		m[key("idle_class_"+c+"_msgs_per_s")] = per(sent[c].Messages)
	}
	peers := 0
	for _, s := range f.centres {
		peers += len(s.host.Network().Peers())
	}
	m[key("idle_peers")] = float64(peers) / float64(n)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss := processRSS()
	fds := openFiles()
	disk, err := dirBytes(root)
	if err != nil {
		return scaleFit{}, err
	}
	m[key("heap_kib")] = float64(ms.HeapInuse) / float64(n) / 1024
	m[key("rss_kib")] = rss / float64(n) / 1024
	m[key("goroutines")] = float64(runtime.NumGoroutine()) / float64(n)
	m[key("fds")] = float64(fds) / float64(n)
	m[key("disk_kib")] = float64(disk) / float64(n+1) / 1024
	f.env.logf("scale: %d centres at rest: %.1f messages/s and %.1f KiB/s per centre, %.2f%% of a core each (%s); %.0f KiB heap, %.0f KiB resident, %.0f KiB on disk per centre",
		n, m[key("idle_msgs_per_s")], m[key("idle_kib_per_s")], m[key("idle_cpu_pct")], busiest(sent, float64(n)*wall.Seconds()), m[key("heap_kib")], m[key("rss_kib")], m[key("disk_kib")])
	return scaleFit{n: n, rss: rss / float64(n), cpu: cpu.Seconds() / wall.Seconds() / float64(n), fds: float64(fds) / float64(n)}, nil
}

// measureCharterChange has the council admit the centre kept aside:
// councilQuorum of its members approve its join request one after the
// other, and the version that adds it spreads as membership spreads
// versions. It measures the time from the first approval until half of
// the members, and until every one, adopted it, and what was sent.
func (f *simFederation) measureCharterChange(ctx context.Context, m map[string]float64, key func(string) string) error {
	n := len(f.centres)
	req, err := f.joiner.c.JoinRequest(f.joiner.cfg.P2P.Listen)
	if err != nil {
		return err
	}
	want := f.centres[0].membership.Current().Version + 1
	var (
		st       opStats
		adopted  []time.Duration
		approved time.Duration
	)
	// Gossip goes on for a few heartbeats (1 s each) after a message.
	if err := f.measureStill(&st, charterClasses, 1500*time.Millisecond, f.sent, func() error {
		start := time.Now()
		// Every member is watched from the first approval on, by a
		// goroutine of its own, so that no adoption waits for the
		// approvals to be timed.
		var (
			mu sync.Mutex
			wg sync.WaitGroup
		)
		watch, stop := context.WithTimeout(ctx, 5*time.Minute)
		defer stop()
		for _, s := range f.centres {
			wg.Go(func() {
				for watch.Err() == nil {
					if s.membership.Current().Version == want {
						mu.Lock()
						adopted = append(adopted, time.Since(start))
						mu.Unlock()
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			})
		}
		var council []*federation.Membership
		for _, c := range f.centres[0].membership.Current().CouncilMembers() {
			council = append(council, f.centres[slices.IndexFunc(f.centres, func(s *simCentre) bool { return s.c.ID() == c.ID })].membership)
		}
		err := harness.ApproveAdmission(ctx, req, want, council...)
		if err != nil {
			err = fmt.Errorf("approving the admission: %w", err)
			stop()
		}
		approved = time.Since(start)
		wg.Wait()
		if err == nil && len(adopted) < n {
			err = fmt.Errorf("after %v, %d of %d members adopted the version that admits a centre", time.Since(start).Round(time.Millisecond), len(adopted), n)
		}
		return err
	}); err != nil {
		return err
	}
	slices.Sort(adopted)
	m[key("charter_approved_ms")] = float64(approved) / float64(time.Millisecond)
	m[key("charter_msgs")] = float64(st.sent.Messages)
	m[key("charter_kib")] = float64(st.sent.Bytes) / 1024
	m[key("charter_half_ms")] = percentileMillis(adopted, 0.5)
	m[key("charter_all_ms")] = percentileMillis(adopted, 1)
	m[key("charter_note_kib")] = float64(len(f.centres[0].membership.Chain()[want-1])) / 1024
	for c, k := range st.byClass {
		m[key("charter_class_"+c+"_msgs")] = float64(k.Messages)
	}
	f.env.logf("scale: %d centres: a charter change (an admission, %d approvals in %.0f ms): %.0f messages, %.0f KiB (%s); half the members adopted it after %.0f ms, all after %.0f ms",
		n, councilQuorum, m[key("charter_approved_ms")], m[key("charter_msgs")], m[key("charter_kib")], busiest(st.byClass, 1), m[key("charter_half_ms")], m[key("charter_all_ms")])
	return nil
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processRSS is this process's resident memory in bytes, from /proc; 0
// where there is none.
func processRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}

// openFiles counts this process's open file descriptors.
func openFiles() int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(es)
}

// dirBytes adds up the sizes of the files under root.
func dirBytes(root string) (int64, error) {
	var total int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		return nil
	})
	return total, err
}
