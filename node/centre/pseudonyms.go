package centre

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/medfed/medfed/node"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/clock"
	"github.com/medfed/medfed/node/durable"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/pseudonym"
)

// ShareFile holds this centre's share of the federation's pseudonym key,
// mode 0600: a centre the charter lists as a holder has one.
// PendingShareFile holds the share a key ceremony gave this centre, until
// the charter version listing the key is adopted (then it becomes
// ShareFile) or another version is (then it is deleted).
const (
	ShareFile        = "oprf.share"
	PendingShareFile = "oprf.share.next"
)

// ErrNoPseudonymKey is returned when the federation's charter lists no
// pseudonym key.
var ErrNoPseudonymKey = node.E(node.Unavailable, "the federation has no pseudonym key")

// pseudonymKeys returns the checked pseudonym key parameters the charter
// lists, or nil when it lists none.
func pseudonymKeys(c federation.Charter) (*pseudonym.Keys, error) {
	if !c.OPRF.Dealt() {
		return nil, nil
	}
	pub := pseudonym.Public{Key: c.OPRF.Key}
	for _, s := range c.OPRF.Shares {
		pub.Holders = append(pub.Holders, pseudonym.Holder{Index: s.Index, ID: s.Holder, Public: s.Public})
	}
	keys, err := pseudonym.NewKeys(c.Federation, c.Policy.OPRFThreshold, pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", node.ErrInvalid, err)
	}
	return keys, nil
}

// deal draws the pseudonym key for a charter being founded, one share per
// member in member order, and lists its public part in c. It returns the
// sealed shares file.
func deal(c *federation.Charter) ([]byte, error) {
	to := make([]pseudonym.Recipient, len(c.Members))
	for i, m := range c.Members {
		to[i] = pseudonym.Recipient{ID: m.ID}
	}
	pub, sealed, err := pseudonym.Deal(c.Federation, c.Policy.OPRFThreshold, to)
	if err != nil {
		return nil, err
	}
	c.OPRF = oprfKeyOf(pub)
	return pseudonym.EncodeSealed(c.Federation, sealed), nil
}

// oprfKeyOf is the charter's listing of a key's public part.
func oprfKeyOf(pub pseudonym.Public) federation.OPRFKey {
	k := federation.OPRFKey{Key: pub.Key}
	for _, h := range pub.Holders {
		k.Shares = append(k.Shares, federation.OPRFShare{Index: h.Index, Holder: h.ID, Public: h.Public})
	}
	return k
}

// installShare opens this centre's share from the sealed shares file of
// the founding and keeps it in ShareFile. Installing the same share again
// changes nothing.
func (c *Centre) installShare(keys *pseudonym.Keys, sealedFile []byte) error {
	share, err := c.openShare(keys, sealedFile)
	if err != nil {
		return err
	}
	data := pseudonym.EncodeShare(share)
	path := filepath.Join(c.dir, ShareFile)
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, data):
		return nil
	case err == nil:
		return fmt.Errorf("%s holds another share already", path)
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	return durable.WriteNew(path, data)
}

// openShare opens and checks this centre's share in a sealed shares file.
func (c *Centre) openShare(keys *pseudonym.Keys, sealedFile []byte) (*pseudonym.Share, error) {
	if sealedFile == nil {
		return nil, errors.New("this centre holds a share of the federation's pseudonym key: give the shares file that federation init wrote with the charter")
	}
	fed, sealed, err := pseudonym.ParseSealed(sealedFile)
	if err != nil {
		return nil, err
	}
	if fed != c.federation {
		return nil, fmt.Errorf("the shares file is for federation %q, this centre is configured for %q", fed, c.federation)
	}
	return pseudonym.Open(keys, sealed, c.key)
}

// keepPending keeps share, this centre's share of a key a ceremony
// produced, in PendingShareFile (mode 0600), replacing any pending one.
func (c *Centre) keepPending(share *pseudonym.Share) error {
	return durable.Replace(filepath.Join(c.dir, PendingShareFile), pseudonym.EncodeShare(share))
}

// pendingShare reads the pending share and checks it is this centre's
// share of keys; os.ErrNotExist when none is pending.
func (c *Centre) pendingShare(keys *pseudonym.Keys) (*pseudonym.Share, error) {
	return c.readShare(PendingShareFile, keys)
}

// installPending makes the pending share, checked against keys, this
// centre's share: it replaces ShareFile in one rename.
func (c *Centre) installPending(keys *pseudonym.Keys) error {
	if _, err := c.pendingShare(keys); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errors.New("this centre holds a share of the federation's pseudonym key, and none is pending here: give the shares file that federation init --deal wrote with the charter")
		}
		return err
	}
	return durable.Rename(filepath.Join(c.dir, PendingShareFile), filepath.Join(c.dir, ShareFile))
}

// readShare reads a share file and checks it is this centre's share of
// keys, which list this centre as a holder; os.ErrNotExist when there is
// no file.
func (c *Centre) readShare(name string, keys *pseudonym.Keys) (*pseudonym.Share, error) {
	h, holder := keys.Holder(c.id)
	if !holder {
		return nil, fmt.Errorf("%w: the charter lists no share of this centre's", pseudonym.ErrKeys)
	}
	path := filepath.Join(c.dir, name)
	data, err := readPrivate(path, "key share", 4096)
	if err != nil {
		return nil, err
	}
	share, err := pseudonym.ParseShare(data, keys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if share.Index != h.Index {
		return nil, fmt.Errorf("%s holds share %d, but the charter gives this centre share %d: it is another centre's file", path, share.Index, h.Index)
	}
	return share, nil
}

// shareOf returns this centre's share of keys, or nil when keys list no
// share of its. A share pending for keys becomes this centre's share; one
// that is not for keys is stale (its ceremony's version was not adopted)
// and deleted, unless starting (the version may still come). A centre
// the keys no longer list deletes its share: the key moved to holders
// whose shares do not combine with it.
func (c *Centre) shareOf(keys *pseudonym.Keys, starting bool) (*pseudonym.Share, error) {
	if _, holder := keys.Holder(c.id); !holder {
		if err := c.drop(ShareFile, "the charter no longer lists this centre as a holder of the pseudonym key"); err != nil {
			return nil, err
		}
		if !starting {
			return nil, c.drop(PendingShareFile, "no adopted version lists its key")
		}
		return nil, nil
	}
	pending, err := c.pendingShare(keys)
	switch {
	case err == nil:
		if err := durable.Rename(filepath.Join(c.dir, PendingShareFile), filepath.Join(c.dir, ShareFile)); err != nil {
			return nil, err
		}
		c.log.Info("pseudonym key share installed from the ceremony", "component", "pseudonym", "index", pending.Index)
		return pending, nil
	case !errors.Is(err, os.ErrNotExist) && !starting:
		c.log.Warn("pending pseudonym key share is not for the adopted key", "component", "pseudonym", "err", err)
		if err := c.drop(PendingShareFile, "no adopted version lists its key"); err != nil {
			return nil, err
		}
	}
	share, err := c.readShare(ShareFile, keys)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("this centre holds a share of the pseudonym key but %s is missing: restore it from backup, or install the charter again with its shares file", filepath.Join(c.dir, ShareFile))
	}
	return share, err
}

// dropStalePending deletes the pending share unless it is this centre's
// share of keys (nil: the charter lists no key).
func (c *Centre) dropStalePending(keys *pseudonym.Keys) error {
	if _, err := os.Stat(filepath.Join(c.dir, PendingShareFile)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if keys != nil {
		if _, err := c.pendingShare(keys); err == nil {
			return nil
		}
	}
	return c.drop(PendingShareFile, "the version adopted is not the one drafted with its key")
}

// drop deletes a share file, if there is one, saying why in the log.
func (c *Centre) drop(name, why string) error {
	path := filepath.Join(c.dir, name)
	err := os.Remove(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	}
	c.log.Info("pseudonym key share deleted", "component", "pseudonym", "file", name, "why", why)
	return durable.SyncDir(c.dir)
}

// ledgerAudit records each batch a holder evaluates on the ledger.
type ledgerAudit struct{ l *ledger.Ledger }

var _ pseudonym.Audit = ledgerAudit{}

func (a ledgerAudit) Evaluated(ctx context.Context, requester peer.ID, n int) error {
	e, err := ledger.NewEvaluation(ledger.Evaluation{Requester: []byte(requester), Count: uint32(n)})
	if err != nil {
		return err
	}
	_, err = a.l.Append(ctx, e)
	return err
}

// startPseudonyms serves the key ceremonies and starts the pseudonym
// services for the charter's key, if it lists one: the client, and the
// evaluator when this centre holds a share, with the rate limiter primed
// from the evaluations the ledger recorded within the window. A holder
// without its share cannot start.
func (n *Node) startPseudonyms(ctx context.Context, cfg Config) error {
	var err error
	if n.rules, err = cfg.Pseudonym.Rules(); err != nil {
		return err
	}
	n.pseudonymCfg = cfg.Pseudonym
	n.ceremonies = pseudonym.NewCeremonies(n.Host, n.base)
	return n.followKey(ctx, n.Membership.Current().Charter, true)
}

// followKey points the pseudonym services at the key charter c lists,
// when it is not the one they use: a key generated or reshared. A share
// pending for the new key becomes this centre's; a share of a key this
// centre no longer holds is deleted. The pseudonyms are the same before
// and after: the key is.
func (n *Node) followKey(ctx context.Context, c federation.Charter, starting bool) error {
	n.keyMu.Lock()
	defer n.keyMu.Unlock()
	return n.followKeyLocked(ctx, c, starting, false)
}

// followKeyLocked is followKey under keyMu; force follows c even if the
// services followed its version already (a share of its key has just
// become pending here).
func (n *Node) followKeyLocked(ctx context.Context, c federation.Charter, starting, force bool) error {
	if !starting && !force && c.Version == n.keyVersion {
		return nil
	}
	n.keyVersion = c.Version
	keys, err := pseudonymKeys(c)
	if err != nil {
		return err
	}
	if !starting && !force && c.OPRF.Key == n.keyOPRF.Key && slices.Equal(c.OPRF.Shares, n.keyOPRF.Shares) {
		// Another change was adopted: a share pending for a version
		// drafted from the one before can no longer be used.
		return n.Centre.dropStalePending(keys)
	}
	if keys == nil {
		return nil
	}
	share, err := n.Centre.shareOf(keys, starting)
	if err != nil {
		if starting {
			return err
		}
		// The centre goes on without its share: it asks the holders, as
		// a centre with none does. A ceremony under way here may yet
		// bring it: the others' approvals can adopt the version before
		// this centre has kept its share (proposeKey then follows again).
		if n.ceremonyBusy.Load() {
			n.log.Info("the adopted charter lists a share of this centre's that the ceremony under way has not given yet", "version", c.Version)
		} else {
			n.log.Error("this centre's share of the pseudonym key is unusable: it evaluates nothing until it is restored", "err", err)
		}
		share = nil
	}
	member := func(id peer.ID) (string, bool) {
		m, ok := n.Membership.Current().Member(id)
		return m.Name, ok
	}
	client, err := pseudonym.NewClient(n.Host, keys, share, pseudonym.ClientOptions{Member: member, Logger: n.base})
	if err != nil {
		return err
	}
	switch {
	case share != nil && n.evaluator != nil:
		if err := n.evaluator.Rekey(keys, share); err != nil {
			return err
		}
	case share != nil:
		spent, err := n.Centre.spentWithin(ctx, n.pseudonymCfg.RateWindow)
		if err != nil {
			return err
		}
		n.evaluator, err = pseudonym.NewEvaluator(n.Host, keys, share, pseudonym.EvaluatorOptions{
			Member: member, Audit: ledgerAudit{n.Centre.Ledger}, Spent: spent,
			Limit: n.pseudonymCfg.RateLimit, Window: n.pseudonymCfg.RateWindow, Logger: n.base,
		})
		if err != nil {
			return err
		}
	case n.evaluator != nil:
		n.evaluator.Close()
		n.evaluator = nil
	}
	n.pseudonyms.Store(client)
	n.keyOPRF = federation.OPRFKey{Key: c.OPRF.Key, Shares: slices.Clone(c.OPRF.Shares)}
	n.share = share
	if !starting {
		n.keySwitched.Store(time.Now().UnixNano())
		index := 0
		if share != nil {
			index = share.Index
		}
		n.log.Info("pseudonym services follow the key of the adopted charter", "version", c.Version,
			"holders", len(keys.Holders), "threshold", keys.Threshold, "share", index)
	}
	return nil
}

// followKeys keeps the pseudonym services on the adopted charter's key,
// until ctx ends: each time a version is adopted, and every
// keyFollowRetry besides, for a follow that failed.
func (n *Node) followKeys(ctx context.Context) {
	for {
		next := n.Membership.Adopted() // before catchUp: no adoption is missed between
		n.catchUp(ctx)
		select {
		case <-ctx.Done():
			return
		case <-next:
		case <-time.After(keyFollowRetry):
		}
	}
}

// keyFollowRetry is how soon a failed follow of the key is tried again
// when no version is adopted meanwhile.
const keyFollowRetry = 30 * time.Second

// spentWithin returns the evaluations the ledger recorded within the last
// window, oldest first, for the rate limiter of a restarted evaluator.
func (c *Centre) spentWithin(ctx context.Context, window time.Duration) ([]pseudonym.Spend, error) {
	entries, err := c.Ledger.EntriesOfKind(ctx, ledger.KindEvaluation)
	if err != nil {
		return nil, err
	}
	since := clock.Now().Add(-window)
	var spent []pseudonym.Spend
	for _, e := range entries {
		if e.Time.Before(since) {
			continue
		}
		v, err := e.Evaluation()
		if err != nil {
			return nil, corrupt("ledger entry", e.Index, err)
		}
		id, err := peer.IDFromBytes(v.Requester)
		if err != nil {
			return nil, corrupt("ledger entry", e.Index, fmt.Errorf("requester: %v", err))
		}
		spent = append(spent, pseudonym.Spend{Requester: id, Count: int(v.Count), At: e.Time})
	}
	return spent, nil
}

// catchUp has the pseudonym services follow the adopted charter's key
// now, should it have changed since they last looked, so that a request
// right after a key ceremony finds the key it made.
func (n *Node) catchUp(ctx context.Context) {
	if err := n.followKey(ctx, n.Membership.Current().Charter, false); err != nil {
		n.log.Error("following the pseudonym key", "err", err)
	}
}

// Pseudonyms derives the federation pseudonyms of ids.
func (n *Node) Pseudonyms(ctx context.Context, ids []pseudonym.Identifier) ([]ledger.Pseudonym, error) {
	n.catchUp(ctx)
	for try := 1; ; try++ {
		client := n.pseudonyms.Load()
		if client == nil {
			return nil, ErrNoPseudonymKey
		}
		version := n.Membership.Current().Version
		ps, err := client.Pseudonyms(ctx, ids)
		// Moments after the key moved to new shares, some holders may
		// still answer with the old ones (or this centre ask with them):
		// each follows the version as it adopts it, within a second or
		// so. A wrong answer is caught by its proof, and asked again.
		recent := time.Since(time.Unix(0, n.keySwitched.Load())) < keySettle || n.Membership.Current().Version != version
		if err == nil || !errors.Is(err, pseudonym.ErrUnavailable) || try == keySettleTries || !recent {
			return ps, err
		}
		n.log.Info("pseudonyms unavailable just after the key moved; asking again", "try", try)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Second):
		}
	}
}

// keySettle is how long after a key moved to new shares a failed
// pseudonym request is asked again, keySettleTries times at most.
const (
	keySettle      = 15 * time.Second
	keySettleTries = 4
)

// MaxPseudonymRequest bounds the identifiers of one request.
const MaxPseudonymRequest = 4096

// PseudonymsOf parses "system|value" identifiers with the configured rules
// and derives their pseudonyms. An error names an identifier by its
// position, never its value.
func (n *Node) PseudonymsOf(ctx context.Context, raw []string) ([]ledger.Pseudonym, error) {
	n.catchUp(ctx)
	if n.pseudonyms.Load() == nil {
		return nil, ErrNoPseudonymKey
	}
	if len(raw) == 0 || len(raw) > MaxPseudonymRequest {
		return nil, fmt.Errorf("%w: %d identifiers, want 1 to %d", pseudonym.ErrInvalidIdentifier, len(raw), MaxPseudonymRequest)
	}
	ids := make([]pseudonym.Identifier, len(raw))
	for i, s := range raw {
		id, err := n.rules.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("identifier %d: %w", i+1, err)
		}
		ids[i] = id
	}
	ps, err := n.Pseudonyms(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]ledger.Pseudonym, len(ps))
	for i, p := range ps {
		out[i] = ledger.Pseudonym(p)
	}
	return out, nil
}
