package federation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/stats"
)

// OwnLedger is what publishing needs of the centre's own ledger.
type OwnLedger interface {
	Size() int64
	Grown() <-chan struct{}
	Sign(ctx context.Context) (ledger.SignedCheckpoint, error)
	ProveConsistency(ctx context.Context, older, newer int64) (tlog.TreeProof, error)
	MarkFinal(ctx context.Context, size int64, cosigned []byte) error
	LatestFinal() (ledger.SignedCheckpoint, bool)
	Entries(ctx context.Context, from, to int64) ([]ledger.Entry, error)
	HistoryLedger
	Halt(reason error)
}

// Publisher gets the centre's checkpoints cosigned by its log's witness
// set (Charter.Witnesses). A checkpoint is final once the charter's
// witness quorum of the log and its set stand behind it: the centre's own
// signature counts as one, each valid cosignature of a witness in the set
// as another, so rewriting a final checkpoint takes the centre and
// quorum-1 of its witnesses colluding.
type Publisher struct {
	host    host.Host
	ledger  OwnLedger
	charter func() Charter
	log     *slog.Logger

	mu       sync.Mutex
	held     map[peer.ID]int64     // the size each witness last cosigned, as far as we know
	mirrored map[peer.ID]int64     // where each witness's mirror of the ledger ends, as far as we know
	checked  finalCheck            // the latest final checkpoint known final under the charter in force
	lastAt   map[peer.ID]time.Time // when each witness last cosigned
	finalAt  time.Time             // when the last checkpoint was made final

	sealer *MirrorSealer // nil: no mirrors

	finalised, failed stats.Counter
	finality          *stats.Histogram // from a checkpoint's signature to its quorum
}

// PublisherStats are what the publisher did since it started, and what
// each witness of the log last cosigned, for the operators' metrics.
type PublisherStats struct {
	Finalised, Failed uint64         // checkpoints made final, and rounds that failed
	Finality          stats.Snapshot // seconds from a checkpoint's signature to its quorum
	FinalAt           time.Time      // when the last checkpoint was made final; zero before
	Witnesses         []WitnessStats // the log's witness set under the charter in force
}

// WitnessStats is what one witness last cosigned of this centre's ledger.
type WitnessStats struct {
	Name string    // the witness's member name
	Size int64     // the size it last cosigned; 0 when it has not since the start
	At   time.Time // when; zero when it has not
}

// Stats returns the publisher's counts and its witnesses' last
// cosignatures.
func (p *Publisher) Stats() PublisherStats {
	st := PublisherStats{Finalised: p.finalised.Load(), Failed: p.failed.Load(), Finality: p.finality.Snapshot()}
	p.mu.Lock()
	st.FinalAt = p.finalAt
	p.mu.Unlock()
	c := p.charter()
	self, ok := c.MemberByName(originCentre(c, p.ledger.Origin()))
	if !ok {
		return st
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range c.Witnesses(self.Name) {
		st.Witnesses = append(st.Witnesses, WitnessStats{Name: m.Name, Size: p.held[m.ID], At: p.lastAt[m.ID]})
	}
	return st
}

// NewPublisher returns a publisher of the checkpoints of l to the members
// of the charter that charter returns.
func NewPublisher(h host.Host, l OwnLedger, charter func() Charter, log *slog.Logger) *Publisher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{host: h, ledger: l, charter: charter, log: log.With("component", "publisher"), held: map[peer.ID]int64{}, mirrored: map[peer.ID]int64{},
		lastAt: map[peer.ID]time.Time{}, finality: stats.NewHistogram(stats.LatencyBounds...)}
}

// Mirror has the witnesses keep the ledger's entries, sealed with s,
// from now on (see FetchMirror).
func (p *Publisher) Mirror(s *MirrorSealer) { p.sealer = s }

// Run publishes a checkpoint as soon as the ledger grows, until ctx ends.
// Publishing is one at a time: what is appended while a checkpoint is out
// for cosigning goes into the next, which starts as soon as that one ends,
// so a burst of appends costs one checkpoint and an append waits at most
// for the one in flight and its own. Two checkpoints start at least gap
// apart: a ledger that grows all the time asks its witnesses for at most
// one cosignature per gap. After a failure it waits for the next tick,
// however busy the ledger. Every interval it also publishes whether or
// not the ledger grew: a retry of a checkpoint not yet final and the
// hand-over after a charter change.
func (p *Publisher) Run(ctx context.Context, interval, gap time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	grown := p.ledger.Grown()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-grown:
		}
		if wait := gap - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		last = time.Now()
		// Taken before publishing: growth while the checkpoint is out
		// wakes the next round at once.
		grown = p.ledger.Grown()
		if _, err := p.Publish(ctx); err != nil && ctx.Err() == nil {
			p.failed.Inc()
			p.log.Warn("checkpoint not final yet", "err", err)
			grown = nil // the retry waits for the tick, not the next append
		}
	}
}

// Publish signs a checkpoint of the ledger if it grew, gathers cosignatures
// from the log's witness set in parallel and, at the witness quorum, marks
// it final. When a new charter version changed the witness set, the new
// set cosigns the latest final checkpoint, which the old set cosigned, so
// that it is final again under the charter in force: the new witnesses
// start from it. It returns the latest final checkpoint.
func (p *Publisher) Publish(ctx context.Context) (ledger.SignedCheckpoint, error) {
	c := p.charter()
	final, ok := p.ledger.LatestFinal()
	if ok && p.ledger.Size() == final.Size {
		if p.finalUnder(c, final) {
			p.catchUp(ctx)
			return final, nil
		}
		return p.finalise(ctx, c, final)
	}
	sc, err := p.ledger.Sign(ctx)
	if err != nil {
		return final, err
	}
	return p.finalise(ctx, c, sc)
}

// finalUnder reports whether final is final under charter c, remembering
// the answer for c's version.
func (p *Publisher) finalUnder(c Charter, final ledger.SignedCheckpoint) bool {
	p.mu.Lock()
	checked := p.checked
	p.mu.Unlock()
	if checked == (finalCheck{c.Version, final.Size}) {
		return true
	}
	self, ok := c.MemberByName(originCentre(c, final.Origin))
	if !ok {
		return true // not a member: nothing to hand over
	}
	if _, err := OpenFinal(c, self, final.Note); err != nil {
		p.log.Info("the witness set changed with the charter; handing the latest final checkpoint over to the new set", "version", c.Version, "size", final.Size)
		return false
	}
	p.mu.Lock()
	p.checked = finalCheck{c.Version, final.Size}
	p.mu.Unlock()
	return true
}

// finalCheck is a final checkpoint's size known to be final under a
// charter version.
type finalCheck struct {
	version uint64
	size    int64
}

// finalise gathers the witness set's cosignatures of sc, a checkpoint
// the log signed, and marks it final at the quorum.
func (p *Publisher) finalise(ctx context.Context, c Charter, sc ledger.SignedCheckpoint) (ledger.SignedCheckpoint, error) {
	signedAt := time.Now()
	final, _ := p.ledger.LatestFinal()
	origin := sc.Origin
	self, ok := c.MemberByName(originCentre(c, origin))
	if !ok {
		return final, fmt.Errorf("publish: %s is not a member of the charter", origin)
	}
	pub, err := self.PublicKey()
	if err != nil {
		return final, err
	}
	logVerifier, err := ledger.NewVerifier(origin, pub)
	if err != nil {
		return final, err
	}
	signed, err := note.Open(sc.Note, note.VerifierList(logVerifier))
	if err != nil {
		return final, err
	}
	own := signed.Sigs[0]
	// A final checkpoint handed over carries the old set's cosignatures:
	// the witnesses are asked for theirs over the log's signature alone.
	if sc.Note, err = note.Sign(&note.Note{Text: signed.Text, Sigs: []note.Signature{own}}); err != nil {
		return final, err
	}

	// The checkpoint is final at the quorum. The answers after it are
	// waited for a moment (stragglerWait), so that the cosignatures of
	// every witness that answers at once are kept with it, and no longer:
	// a witness down or slow would hold back every checkpoint. Their
	// requests run on to their timeout.
	asking, cancel := context.WithTimeout(ctx, 10*time.Second)
	type answer struct {
		m    Member
		note []byte
		err  error
	}
	witnesses := c.Witnesses(self.Name)
	answers := make(chan answer, len(witnesses))
	for _, m := range witnesses {
		go func() {
			n, err := p.cosign(asking, m.ID, sc)
			answers <- answer{m, n, err}
		}()
	}
	left := len(witnesses)
	defer func() {
		go func(left int) {
			for range left {
				<-answers
			}
			cancel()
		}(left)
	}()
	sigs := map[string]note.Signature{}
	var failures []error
	take := func(a answer) {
		if a.err != nil {
			failures = append(failures, fmt.Errorf("%s: %w", a.m.Name, a.err))
			return
		}
		cv, err := NewCosignatureVerifier(a.m)
		if err != nil {
			failures = append(failures, err)
			return
		}
		// The log's own signature was checked above: of the answer, only
		// the witness's cosignature over the same text.
		n, err := note.Open(a.note, note.VerifierList(cv))
		if err != nil || n.Text != sc.Text() {
			failures = append(failures, fmt.Errorf("%s: answered with an invalid cosignature", a.m.Name))
			return
		}
		for _, s := range n.Sigs {
			if s.Name == a.m.ID.String() {
				sigs[s.Name] = s
			}
		}
	}
	for ; left > 0 && 1+len(sigs) < c.Policy.WitnessQuorum; left-- {
		take(<-answers)
	}
	if left > 0 && 1+len(sigs) >= c.Policy.WitnessQuorum {
		straggling := time.NewTimer(stragglerWait)
	stragglers:
		for ; left > 0; left-- {
			select {
			case a := <-answers:
				take(a)
			case <-straggling.C:
				break stragglers
			}
		}
		straggling.Stop()
	}
	if 1+len(sigs) < c.Policy.WitnessQuorum {
		return final, fmt.Errorf("checkpoint %d has %d of %d: %w", sc.Size, 1+len(sigs), c.Policy.WitnessQuorum, errors.Join(failures...))
	}
	n := &note.Note{Text: sc.Text(), Sigs: []note.Signature{own}}
	for _, m := range witnesses {
		if s, ok := sigs[m.ID.String()]; ok {
			n.Sigs = append(n.Sigs, s)
		}
	}
	cosigned, err := note.Sign(n)
	if err != nil {
		return final, err
	}
	if err := p.ledger.MarkFinal(ctx, sc.Size, cosigned); err != nil {
		return final, err
	}
	p.mu.Lock()
	p.checked, p.finalAt = finalCheck{c.Version, sc.Size}, time.Now()
	p.mu.Unlock()
	p.finalised.Inc()
	p.finality.Observe(time.Since(signedAt).Seconds())
	p.catchUp(ctx)
	p.log.Debug("checkpoint final", "size", sc.Size, "cosignatures", len(sigs))
	return ledger.SignedCheckpoint{Checkpoint: sc.Checkpoint, Note: cosigned}, nil
}

// stragglerWait is how long, once a checkpoint has its quorum, the
// publisher waits for the other witnesses' cosignatures to keep with it.
const stragglerWait = 250 * time.Millisecond

// catchUp sends each witness the entries its mirror lacks of what it
// cosigned, a few chunks each time: called at every publishing round,
// the ledger grown or not, so that a mirror behind (a send that failed,
// a burst of entries) catches up.
func (p *Publisher) catchUp(ctx context.Context) {
	if p.sealer == nil {
		return
	}
	p.mu.Lock()
	behind := map[peer.ID]int64{}
	for w, size := range p.held {
		if p.mirrored[w] < size {
			behind[w] = size
		}
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for w, size := range behind {
		wg.Go(func() {
			if err := p.mirror(ctx, w, size); err != nil {
				p.log.Warn("ledger entries not mirrored at a witness yet", "witness", w, "err", err)
			}
		})
	}
	wg.Wait()
}

// checkHeld compares the ledger with what witness w cosigned of it, and
// halts the ledger when it is behind or beside it.
func (p *Publisher) checkHeld(ctx context.Context, w peer.ID) error {
	c := p.charter()
	m, ok := c.Member(w)
	if !ok {
		return fmt.Errorf("%s is not a member", w)
	}
	err := CheckHeld(ctx, p.host, c, m, p.ledger)
	if errors.Is(err, ErrBehind) {
		p.ledger.Halt(err)
		p.log.Error("this ledger does not extend what a witness cosigned of it; halted: it appends and signs nothing", "err", err)
	}
	return err
}

// originCentre returns the centre name of a log origin of charter c.
func originCentre(c Charter, origin string) string {
	m, _ := c.memberByOrigin(origin)
	return m.Name
}

// cosign asks witness w to cosign sc, proving consistency from the size it
// holds; a witness that holds another size than we thought says so, and we
// prove from there.
func (p *Publisher) cosign(ctx context.Context, w peer.ID, sc ledger.SignedCheckpoint) ([]byte, error) {
	p.mu.Lock()
	old := p.held[w]
	p.mu.Unlock()
	for range 2 {
		if old > sc.Size {
			return nil, fmt.Errorf("the witness holds size %d, beyond this checkpoint's %d", old, sc.Size)
		}
		proof, err := p.ledger.ProveConsistency(ctx, old, sc.Size)
		if err != nil {
			return nil, err
		}
		cosigned, err := RequestCosignature(ctx, p.host, w, AddRequest{OldSize: old, Proof: proof, Note: sc.Note})
		var stale *OldSizeError
		if errors.As(err, &stale) {
			// A size this centre did not know the witness holds: before
			// proving from it, check that this ledger extends what the
			// witness cosigned. Proving from a checkpoint of another
			// history would hand the witness evidence of equivocation.
			if err := p.checkHeld(ctx, w); err != nil {
				return nil, err
			}
			old = stale.Held
			continue
		}
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.held[w], p.lastAt[w] = sc.Size, time.Now()
		p.mu.Unlock()
		return cosigned, nil
	}
	return nil, errors.New("the witness's held size keeps changing")
}
