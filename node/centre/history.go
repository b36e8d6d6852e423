package centre

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

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
// of it, at start. A ledger behind one of them, or holding another
// history, is halted for good (an operator restores a newer backup). A
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
			n.log.Error("this ledger does not extend what a member cosigned of it; halted: it appends and signs nothing", "err", err)
			return
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
