package centre

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/directory"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/heap"
	"github.com/medfed/medfed/node/ledger"
)

// DirectoryFile is the SQLite file of this centre's part of the Patient
// Directory: the announcements it stores for the federation and the keys
// it announces itself.
const DirectoryFile = "directory.db"

func (n *Node) startDirectory() error {
	d, err := directory.New(n.Host, directory.Options{
		Federation: n.Membership.Current().Federation,
		Path:       filepath.Join(n.Centre.dir, DirectoryFile),
		RowKey:     n.Centre.RowKey(DirectoryFile),
		Members:    n.memberAddrs,
		IsMember: func(id peer.ID) bool {
			_, ok := n.Membership.Current().Member(id)
			return ok
		},
		MembersVersion: func() uint64 { return n.Membership.Current().Version },
		Logger:         n.base.With("component", "directory"),
	})
	if err != nil {
		return err
	}
	n.Directory = d
	return nil
}

// memberAddrs lists the charter's current members and their addresses.
func (n *Node) memberAddrs() []peer.AddrInfo {
	c := n.Membership.Current().Charter
	out := make([]peer.AddrInfo, len(c.Members))
	for i, m := range c.Members {
		out[i] = peer.AddrInfo{ID: m.ID, Addrs: m.Addrs}
	}
	return out
}

// AnnounceHeld announces in the directory every patient this centre's
// ledger holds records of, and returns how many of them the directory did
// not list yet. Patients announced before are not sent again (the
// directory reprovides them on its schedule), so a centre calls it at
// every start: a centre joining with its existing patients announces them
// all at once.
//
// The records are read one at a time and announced heldBatch at a time,
// as they are read: a centre of a million patients holds a batch of
// pseudonyms, not a million, and its first announcements leave while the
// rest are read. A patient's records read in different batches are
// announced twice, the second time for nothing (the directory's keystore
// knows it). A record erased while the records are read may have been
// announced after the erasure withdrew its patient: those patients are
// withdrawn again once the reading ends, if nothing of theirs is left.
func (n *Node) AnnounceHeld(ctx context.Context) (int, error) {
	before, err := n.erased(ctx)
	if err != nil {
		return 0, err
	}
	fresh := 0
	batch := make([]ledger.Pseudonym, 0, heldBatch)
	announce := func() error {
		k, err := n.Directory.AnnounceNew(ctx, batch...)
		fresh += k
		batch = batch[:0]
		return err
	}
	for _, k := range []ledger.Kind{ledger.KindRecord, ledger.KindAmendment} {
		if err := n.Centre.Ledger.EachOfKind(ctx, k, func(e ledger.Entry) error {
			if !stillHeld(e, before) {
				return nil
			}
			if batch = append(batch, e.Subject); len(batch) == heldBatch {
				return announce()
			}
			return nil
		}); err != nil {
			return fresh, err
		}
	}
	if err := announce(); err != nil {
		return fresh, err
	}
	return fresh, n.withdrawErasedSince(ctx, before)
}

// heldBatch is how many pseudonyms AnnounceHeld reads before it announces
// them: as many as the directory writes to its keystore in a transaction.
const heldBatch = 1 << 16

// withdrawErasedSince withdraws the patients of the records erased since
// before (the records erased then) that hold nothing now, as their
// erasure did: AnnounceHeld may have announced them again after it. A
// withdrawal that does not reach every member is logged, as the erasure's
// own would be: the members that missed it keep the announcement until it
// expires.
func (n *Node) withdrawErasedSince(ctx context.Context, before map[int64]bool) error {
	var since []ledger.Pseudonym
	err := n.Centre.Ledger.EachOfKind(ctx, ledger.KindErasure, func(e ledger.Entry) error {
		x, err := e.Erasure()
		if err != nil {
			return corrupt("erasure entry", e.Index, err)
		}
		if !before[x.Target] {
			since = append(since, e.Subject)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range since {
		ever, held, err := n.holding(ctx, p)
		if err != nil {
			return err
		}
		if !ever || held {
			continue
		}
		if err := n.Directory.Withdraw(ctx, p); err != nil {
			n.log.Warn("withdrawing a patient erased while the held patients were announced", "err", err)
		}
	}
	return nil
}

// held returns the patients the ledger holds records of: those with a
// record or amendment whose payload is not erased, in order of first
// appearance. Records are read one at a time: a centre of a million
// patients holds their pseudonyms here, not a million entries. Erasures,
// rare, are read before and again after: a record erased while the
// records were being read is read again without it.
func (n *Node) held(ctx context.Context) ([]ledger.Pseudonym, error) {
	for {
		before, err := n.erased(ctx)
		if err != nil {
			return nil, err
		}
		seen := map[ledger.Pseudonym]bool{}
		var out []ledger.Pseudonym
		for _, k := range []ledger.Kind{ledger.KindRecord, ledger.KindAmendment} {
			if err := n.Centre.Ledger.EachOfKind(ctx, k, func(e ledger.Entry) error {
				if stillHeld(e, before) && !seen[e.Subject] {
					seen[e.Subject] = true
					out = append(out, e.Subject)
				}
				return nil
			}); err != nil {
				return nil, err
			}
		}
		after, err := n.erased(ctx)
		if err != nil || len(after) == len(before) {
			return out, err
		}
	}
}

// erased returns the indexes of the records the ledger's erasure entries
// erased.
func (n *Node) erased(ctx context.Context) (map[int64]bool, error) {
	erased := map[int64]bool{}
	err := n.Centre.Ledger.EachOfKind(ctx, ledger.KindErasure, func(e ledger.Entry) error { return markErased(erased, e) })
	return erased, err
}

// markErased adds the record that e, an erasure entry, erased.
func markErased(erased map[int64]bool, e ledger.Entry) error {
	x, err := e.Erasure()
	if err != nil {
		return corrupt("erasure entry", e.Index, err)
	}
	erased[x.Target] = true
	return nil
}

// stillHeld says whether e, a record or amendment entry, is still held:
// its payload is not erased.
func stillHeld(e ledger.Entry, erased map[int64]bool) bool {
	return (e.Kind == ledger.KindRecord || e.Kind == ledger.KindAmendment) && !erased[e.Index]
}

// announceAtStart announces the held patients once the directory has a
// member to send them to. A failure is logged, makes the node not ready
// (a lookup would miss this centre), and is tried again, later and later,
// until it succeeds.
func (n *Node) announceAtStart(ctx context.Context) {
	for n.Directory.RoutingTableSize() == 0 && len(n.Membership.Current().Members) > 1 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	retry(ctx, time.Second, time.Minute, func() error {
		count, err := n.AnnounceHeld(ctx)
		n.announceErr.Store(&err)
		if err != nil {
			n.log.Error("announcing held patients; trying again", "err", err)
			return err
		}
		n.log.Info("held patients announced", "new", count)
		heap.Trim() // what reading and queueing them all allocated
		return nil
	})
}

// retry calls f until it returns nil or ctx ends, waiting first and then
// twice as long after each failure, at most last.
func retry(ctx context.Context, first, last time.Duration, f func() error) {
	wait := first
	for f() != nil {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, last)
	}
}

// Lookup is a lookup's answer for operators: the holders by name.
type Lookup struct {
	Pseudonym ledger.Pseudonym
	Holders   []Member // in order of name
	Problem   error    // why the lookup is incomplete; nil when complete
	Answered  int
	Failed    []string // members asked that did not answer, by name
	Elapsed   time.Duration
}

// Member is a member centre: its name and peer ID.
type Member struct {
	Name string
	ID   peer.ID
}

// LookupFor is Holders asked by asker (a staff member, or the operator
// with a zero staff ID): the question is on this centre's ledger first,
// who asked and for what, as every question about a person is where it is
// asked; the patient sees it in their view through this centre.
func (n *Node) LookupFor(ctx context.Context, p ledger.Pseudonym, asker Asker) (Lookup, error) {
	if err := n.AuditLookup(ctx, p, asker); err != nil {
		return Lookup{}, err
	}
	return n.Holders(ctx, p)
}

// AuditLookup appends the access entry of a directory lookup for p, made
// by asker: what every lookup made for a person costs first.
func (n *Node) AuditLookup(ctx context.Context, p ledger.Pseudonym, asker Asker) error {
	e, err := consent.NewAccess(p, consent.AccessEntry{Event: consent.EventLookup, Requester: n.Centre.ID(), Staff: asker.Staff, Role: asker.Role,
		Purpose: asker.Purpose, Reason: asker.Reason, Permitted: true})
	if err != nil {
		return err
	}
	if _, err := n.Centre.Ledger.Append(ctx, e); err != nil {
		return fmt.Errorf("recording the lookup: %w", err)
	}
	return nil
}

// Lookup finds every member holding records of pseudonym p, as the
// directory lists them.
func (n *Node) Lookup(ctx context.Context, p ledger.Pseudonym) (Lookup, error) {
	return n.lookup(ctx, p, false)
}

// lookup is Lookup, with this centre added when self is set and its own
// ledger holds records of p (see withOwn).
func (n *Node) lookup(ctx context.Context, p ledger.Pseudonym, self bool) (Lookup, error) {
	start := time.Now()
	var (
		res      directory.Result
		err, own error
	)
	if self {
		res, err, own = n.withOwn(ctx, p, n.Directory.Lookup)
	} else {
		res, err = n.Directory.Lookup(ctx, p)
	}
	out := Lookup{Pseudonym: p, Answered: res.Answered, Elapsed: time.Since(start)}
	if err != nil {
		if !errors.Is(err, directory.ErrIncomplete) {
			return Lookup{}, err
		}
		out.Problem = err
	}
	if own != nil {
		return Lookup{}, own
	}
	c := n.Membership.Current().Charter
	for _, id := range res.Holders {
		m, _ := c.Member(id)
		out.Holders = append(out.Holders, Member{Name: m.Name, ID: id})
	}
	slices.SortFunc(out.Holders, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	for _, id := range res.Failed {
		m, _ := c.Member(id)
		out.Failed = append(out.Failed, m.Name)
	}
	return out, nil
}

// Holders lists the members that hold records of patient p, by name: the
// centres a query, a consent document or the patient's own request goes
// to (holders). It is the directory's answer, with this centre added when
// its own ledger holds records of p that it has not announced yet.
func (n *Node) Holders(ctx context.Context, p ledger.Pseudonym) (Lookup, error) {
	return n.lookup(ctx, p, true)
}

// DirectoryCheck is what a check of the directory against the ledger found.
type DirectoryCheck struct {
	Patients int // patients the ledger holds records of
	Report   directory.RepairReport
	Failed   []Member // Report.Failed by name
}

// CheckDirectory compares the ledger with the directory: every patient the
// ledger holds records of must be announced at each of its replicas; a
// replica that lacks an announcement is sent it (directory.Repair).
func (n *Node) CheckDirectory(ctx context.Context) (DirectoryCheck, error) {
	held, err := n.held(ctx)
	if err != nil {
		return DirectoryCheck{}, err
	}
	rep, err := n.Directory.Repair(ctx, held...)
	out := DirectoryCheck{Patients: len(held), Report: rep}
	c := n.Membership.Current().Charter
	for _, id := range rep.Failed {
		m, _ := c.Member(id)
		out.Failed = append(out.Failed, Member{Name: m.Name, ID: id})
	}
	return out, err
}
