package centre

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
)

// ErrUnconfirmedRestore is why a restored centre's ledger is halted until
// every other member has confirmed it is not behind what it cosigned.
var ErrUnconfirmedRestore = node.E(node.Unavailable, "restored from a backup: waiting for every other member to confirm the ledger is not behind what it cosigned")

// historyTimeout bounds one round of asking the members what they
// cosigned of this centre's ledger; historyRetry spaces the rounds of a
// restored centre waiting for members it could not reach.
const (
	historyTimeout = 10 * time.Second
	historyRetry   = 5 * time.Second
)

// guardHistory compares the ledger with what the other members cosigned
// of it, at start. A ledger behind one of them gets the entries it lacks
// back from the witnesses' mirrors (recoverEntries); one it cannot bring
// up to what was cosigned, or holding another history, is halted for
// good (an operator restores a newer backup). A
// centre restored from a backup (RestoredFile) starts halted and stays so
// until every other member has answered; then it resumes and drops the
// mark. Otherwise members that do not answer are left to the publisher,
// which checks each witness before it proves anything to it.
func (n *Node) guardHistory(ctx context.Context) {
	marker := filepath.Join(n.Centre.dir, RestoredFile)
	restored := errors.Is(n.Centre.Ledger.Halted(), ErrUnconfirmedRestore)
	for {
		unreached, err := federation.CheckHistory(ctx, n.Host, n.Membership.Current().Charter, n.Centre.Ledger, historyTimeout)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			n.Centre.Ledger.Halt(err)
			if rerr := n.recoverEntries(ctx, err); rerr != nil {
				n.log.Error("this ledger does not extend what a member cosigned of it; halted: it appends and signs nothing", "err", err, "recovery", rerr)
				return
			}
			if !restored {
				n.Centre.Ledger.Resume()
			}
			continue // compare again: another member may have cosigned more
		case !restored:
			if len(unreached) > 0 {
				n.log.Info("members not asked what they cosigned of this ledger; the publisher asks each before proving to it", "unreached", strings.Join(unreached, ", "))
			}
			return
		case len(unreached) == 0:
			if err := os.Remove(marker); err != nil {
				n.log.Error("restored ledger confirmed, but its mark stays", "err", err)
				return
			}
			n.Centre.Ledger.Resume()
			n.log.Info("restored ledger confirmed by every other member: appending again", "size", n.Centre.Ledger.Size())
			return
		}
		n.log.Warn("restored ledger: waiting for members to confirm it", "unreached", strings.Join(unreached, ", "))
		select {
		case <-ctx.Done():
			return
		case <-time.After(historyRetry):
		}
	}
}

// recoverEntries brings a ledger behind a cosigned checkpoint (err, a
// *federation.HistoryError) up to it with the entries the witnesses
// mirror, sealed by this centre: the entries appended after the backup
// it was restored from come back as they were, index, time and all, and
// ledger.Recover appends them only if the root then is the one cosigned.
// A payload of a record among them is not in the backup's records store:
// that record stays on the ledger, its payload lost (the record's reads
// say so).
func (n *Node) recoverEntries(ctx context.Context, err error) error {
	var he *federation.HistoryError
	if !errors.As(err, &he) || he.Fork {
		return errors.New("not a ledger behind: nothing to recover")
	}
	from := n.Centre.Ledger.Size()
	var encs [][]byte
	var problems []error
	// The witness that cosigned the checkpoint first, then the others.
	order := []peer.ID{he.WitnessID}
	for _, m := range n.Membership.Current().Charter.Members {
		if m.ID != he.WitnessID && m.ID != n.Centre.ID() {
			order = append(order, m.ID)
		}
	}
	for _, w := range order {
		for int64(len(encs)) < he.Held-from {
			at := from + int64(len(encs))
			rctx, cancel := context.WithTimeout(ctx, historyTimeout)
			chunks, err := federation.FetchMirror(rctx, n.Host, w, at)
			cancel()
			if err == nil && len(chunks) == 0 {
				err = fmt.Errorf("its mirror ends before %d", at)
			}
			if err != nil {
				problems = append(problems, fmt.Errorf("%s: %w", n.memberName(w), err))
				break
			}
			bad := false
			for _, c := range chunks {
				got, err := n.mirror.Open(c)
				if err != nil { // another witness may hold a good copy
					problems = append(problems, fmt.Errorf("%s: %w", n.memberName(w), err))
					bad = true
					break
				}
				skip := max(0, at-c.Start) // the first chunk may begin before
				encs = append(encs, got[min(skip, int64(len(got))):]...)
				at = from + int64(len(encs))
			}
			if bad {
				break
			}
		}
		if int64(len(encs)) >= he.Held-from {
			break
		}
	}
	if int64(len(encs)) < he.Held-from {
		return fmt.Errorf("the witnesses' mirrors hold %d of the %d entries missing: %w", len(encs), he.Held-from, errors.Join(problems...))
	}
	if err := n.Centre.Ledger.Recover(ctx, encs[:he.Held-from], he.Root); err != nil {
		return err
	}
	n.log.Warn("ledger entries recovered from the witnesses' mirrors", "from", from, "to", he.Held)
	// What the services built from the ledger at start, brought up to
	// the entries recovered: consent documents and token uses, and the
	// directory's announcements of the patients they hold.
	recovered, err := n.Centre.Ledger.Entries(ctx, from, he.Held)
	if err != nil {
		return err
	}
	if err := n.Consent.Replay(recovered); err != nil {
		return err
	}
	go retry(ctx, time.Second, time.Minute, func() error {
		_, err := n.AnnounceHeld(ctx)
		if err != nil {
			n.log.Error("announcing the patients of the recovered entries; trying again", "err", err)
		}
		return err
	})
	return nil
}
