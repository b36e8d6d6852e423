package consent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/ledger"
)

// DefaultLease is how long a lease on a patient's consent state lasts
// unless Options.Lease says otherwise: the longest a document's
// confirmation waits for a leaseholder that cannot be reached.
const DefaultLease = 30 * time.Second

// MaxLease is the longest lease a centre grants, or waits for: a member
// that cannot be told of a document delays its confirmation by no more.
const MaxLease = 5 * time.Minute

// maxLeasesPerMember bounds the live leases one member holds from this
// centre; beyond it a member is granted none, and cannot decide for the
// patient (ErrStale) until one of its leases runs out.
const maxLeasesPerMember = 1 << 16

// Lease times are read from the monotonic clock (time.Now), never from
// Options.Now: a lease is a span measured on each side, and a jump of the
// wall clock shortens or lengthens neither. The holder counts its lease
// from before it asked, the granting member from when it granted, so the
// holder's lease always runs out first.

// horizon is how far the leases this centre granted may reach, kept in
// a file so that a restarted process knows it: it is moved to twice the
// lease term ahead whenever a lease would reach past it (one write per
// lease term at most), and read at start. It is wall-clock time, the
// only time two processes share.
type horizon struct {
	mu      sync.Mutex
	path    string
	until   time.Time // wall clock: no lease granted reaches past it
	unknown time.Time // monotonic: until when leases of an earlier process may live
}

// load reads the horizon an earlier process left.
func (h *horizon) load(path string) error {
	h.path = path
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("consent: the lease horizon: %w", err)
	}
	ms, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return fmt.Errorf("consent: the lease horizon %s: %w", path, err)
	}
	prev := time.UnixMilli(ms)
	if left := time.Until(prev); left > 0 {
		h.unknown = time.Now().Add(min(left, 2*MaxLease))
	}
	return nil
}

// cover makes sure the horizon reaches until, moving it to ahead if not;
// false when it cannot be written (no lease may then be granted).
func (h *horizon) cover(until time.Time, ahead time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.path == "" || !until.After(h.until) {
		return true
	}
	next := time.Now().Add(ahead)
	tmp := h.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err == nil {
		_, err = fmt.Fprintf(f, "%d\n", next.UnixMilli())
		err = errors.Join(err, f.Sync(), f.Close())
	}
	if err == nil {
		err = os.Rename(tmp, h.path)
	}
	if err != nil {
		return false
	}
	h.until = next
	return true
}

// wait is how long leases of an earlier process may still live.
func (h *horizon) wait() time.Duration { return max(0, time.Until(h.unknown)) }

// leases are those this centre granted: patient, leaseholder, expiry.
type leases struct {
	mu    sync.Mutex
	by    map[ledger.Pseudonym]map[peer.ID]time.Time
	count map[peer.ID]int
	swept time.Time
}

// add records a lease on p for m until until; false when m holds as many
// as it may.
func (l *leases) add(p ledger.Pseudonym, m peer.ID, until time.Time, term time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.swept) > term {
		l.sweep(now)
	}
	held := l.by[p]
	if _, ok := held[m]; !ok {
		if l.count[m] >= maxLeasesPerMember {
			return false
		}
		if held == nil {
			held = map[peer.ID]time.Time{}
			l.by[p] = held
		}
		l.count[m]++
	}
	if until.After(held[m]) {
		held[m] = until
	}
	return true
}

// sweep drops the leases that ran out.
func (l *leases) sweep(now time.Time) {
	l.swept = now
	for p, held := range l.by {
		l.expire(p, held, now)
	}
}

func (l *leases) expire(p ledger.Pseudonym, held map[peer.ID]time.Time, now time.Time) {
	for m, until := range held {
		if !until.After(now) {
			delete(held, m)
			if l.count[m]--; l.count[m] <= 0 {
				delete(l.count, m)
			}
		}
	}
	if len(held) == 0 {
		delete(l.by, p)
	}
}

// live returns the live leases on p, but except's.
func (l *leases) live(p ledger.Pseudonym, except peer.ID) map[peer.ID]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	held := l.by[p]
	if held == nil {
		return nil
	}
	l.expire(p, held, time.Now())
	out := make(map[peer.ID]time.Time, len(held))
	for m, until := range held {
		if m != except {
			out[m] = until
		}
	}
	return out
}

// grant answers member m's read of p's state: the documents held here,
// and a lease of at most this centre's term. The documents are read and
// the lease recorded under the patient's lock, which accept holds while
// it changes the state: a document accepted before the grant is in the
// answer, one accepted after finds the lease (see notify).
func (s *Service) grant(p ledger.Pseudonym, m peer.ID, ask time.Duration) ([]Document, time.Duration) {
	term := min(ask, s.lease).Truncate(time.Millisecond)
	e := s.acquire(p)
	defer s.release(e)
	e.mu.Lock()
	defer e.mu.Unlock()
	docs := e.p.syncable(maxDocs)
	if term <= 0 {
		return docs, 0
	}
	if !s.horizon.cover(time.Now().Add(term), 2*s.lease) {
		s.log.Error("consent lease not granted: its horizon cannot be written")
		return docs, 0
	}
	if !s.granted.add(p, m, time.Now().Add(term), s.lease) {
		term = 0
	}
	return docs, term
}

// notify sends a pushed bundle about p to every member holding a live
// lease on p from this centre, but except (the sender, which has it),
// and returns how long until the last lease of those it could not reach
// runs out: the pusher waits that long before it counts the document
// confirmed, so that no leaseholder decides on a state without it.
// (The leases an earlier process granted are not known here: see
// horizon.)
func (s *Service) notify(ctx context.Context, p ledger.Pseudonym, except peer.ID, payload []byte) (time.Duration, []peer.ID) {
	held := s.granted.live(p, except)
	delete(held, s.host.ID())
	if len(held) == 0 {
		return 0, nil
	}
	// Half the exchange timeout: the push this answers must not time out
	// at its sender while this centre waits on a leaseholder.
	ctx, cancel := context.WithTimeout(ctx, s.timeout/2)
	defer cancel()
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		last    time.Time
		unreach []peer.ID
	)
	for m, until := range held {
		wg.Go(func() {
			_, err := s.exchange(ctx, m, opNotify, payload)
			if err == nil {
				return
			}
			s.log.Warn("consent document not delivered to a leaseholder: waiting out its lease", "pseudonym", p, "to", m, "lease", time.Until(until).Round(time.Millisecond), "err", err)
			mu.Lock()
			defer mu.Unlock()
			unreach = append(unreach, m)
			if until.After(last) {
				last = until
			}
		})
	}
	wg.Wait()
	return max(0, time.Until(last)), unreach
}

// fresh makes sure this centre holds patient e's current documents before
// it decides, and has carried out the patient's erasure: it holds a live lease from each member of a majority of the
// federation, or reads the state from a majority again and takes new
// leases. A lease in its last third is renewed in the background, so that
// a patient asked about often is not read again in the way of a decision.
func (s *Service) fresh(ctx context.Context, e *entry) error {
	if err := s.current(ctx, e); err != nil {
		return err
	}
	// Nothing is released of records the patient had erased.
	return s.carryOutErasure(ctx, e)
}

// current holds a live lease on patient e's state, or reads it again.
func (s *Service) current(ctx context.Context, e *entry) error {
	e.mu.Lock()
	until, term := e.leased, e.term
	e.mu.Unlock()
	now := time.Now()
	if now.Before(until) {
		if until.Sub(now) < term/3 {
			s.hold(e)
			go func() {
				defer s.release(e)
				ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
				defer cancel()
				if err := s.read(ctx, e, false); err != nil {
					s.log.Debug("consent lease not renewed", "pseudonym", e.subject, "err", err)
				}
			}()
		}
		return nil
	}
	return s.read(ctx, e, true)
}

// read asks the other members of patient e's consent set for the
// documents they hold about e, with a lease, merges them (each verified,
// new ones appended to the ledger) and goes on once a majority of the
// set, this centre included when it is in it, has answered: every
// confirmed document is held by a majority of the set, and two majorities
// meet. With fewer answers it fails with ErrStale,
// naming the members that failed. The lease held is the shortest of
// those granted by the members counted, from before they were asked. A
// renewal (wait false) gives way to a read under way.
func (s *Service) read(ctx context.Context, e *entry, wait bool) error {
	if !wait {
		if !e.sync.TryLock() {
			return nil
		}
	} else {
		e.sync.Lock()
	}
	defer e.sync.Unlock()
	e.mu.Lock()
	until, term := e.leased, e.term
	e.mu.Unlock()
	if left := time.Until(until); (wait && left > 0) || (!wait && left >= term/3) {
		return nil // read meanwhile
	}
	set := consentSet(s.opts.Charter(), e.subject)
	var others []peer.ID
	for _, id := range set.order {
		if id != s.host.ID() {
			others = append(others, id)
		}
	}
	need := set.quorum
	if set.in[s.host.ID()] {
		need-- // what this centre holds counts as one
	}
	type answer struct {
		from  peer.ID
		lease time.Duration
		err   error
	}
	answers := make(chan answer, len(others))
	start := time.Now()
	// The fetches outlive an early return: late answers are merged too.
	fetchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	var wg sync.WaitGroup
	for _, m := range others {
		// Each fetch holds the entry: it may outlive the caller's hold,
		// and what it accepts must land in the entry that stays.
		s.hold(e)
		wg.Go(func() {
			defer s.release(e)
			docs, lease, err := s.fetch(fetchCtx, m, e.subject)
			if err == nil && len(docs) > 0 {
				_, err = s.accept(fetchCtx, e, docs, nil)
			}
			answers <- answer{m, lease, err}
		})
	}
	go func() { wg.Wait(); cancel() }()
	answered := 0
	lease := s.lease
	var failed []error
	for range others {
		if answered >= need {
			break
		}
		a := <-answers
		if a.err != nil {
			failed = append(failed, fmt.Errorf("%s: %w", a.from, a.err))
			continue
		}
		answered++
		lease = min(lease, a.lease)
	}
	if answered < need {
		s.counts.stale.Inc()
		return fmt.Errorf("%w for %s: %d of %d other members answered, %d needed: %w", ErrStale, e.subject, answered, len(others), need, errors.Join(failed...))
	}
	s.counts.synced.Inc()
	e.mu.Lock()
	e.leased, e.term = start.Add(lease), lease
	e.mu.Unlock()
	// Without a live lease, a document confirmed between this read and
	// the decision would be neither told nor waited for.
	if !time.Now().Before(start.Add(lease)) {
		return fmt.Errorf("%w for %s: the members' leases ran out before their answers were in (shortest granted: %v)", ErrStale, e.subject, lease)
	}
	if e.kept.Load() {
		// Kept for good already: the renewals of a patient asked about
		// often do not read the ledger again to learn it.
		return nil
	}
	if s.opts.Holds != nil {
		holds, err := s.opts.Holds(ctx, e.subject)
		if err != nil {
			return fmt.Errorf("consent: %w", err)
		}
		if !holds {
			return nil
		}
	}
	// A patient this centre holds stays in memory with its lease: kept,
	// or every decision about them would read the state again.
	e.kept.Store(true)
	return nil
}

// fetch asks member m for the documents it holds about p, with a lease.
func (s *Service) fetch(ctx context.Context, m peer.ID, p ledger.Pseudonym) ([]Document, time.Duration, error) {
	payload, err := s.exchange(ctx, m, opLease, encodeLease(p, s.lease))
	if err != nil {
		return nil, 0, err
	}
	docs, lease, err := decodeGrant(payload, p)
	return docs, min(lease, s.lease), err
}
