package centre

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/medfed/medfed/node"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/clock"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/pseudonym"
)

// ShareFile holds this centre's share of the federation's pseudonym key,
// mode 0600. Only founders hold one.
const ShareFile = "oprf.share"

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
	c.OPRF.Key = pub.Key
	for _, h := range pub.Holders {
		c.OPRF.Shares = append(c.OPRF.Shares, federation.OPRFShare{Index: h.Index, Holder: h.ID, Public: h.Public})
	}
	return pseudonym.EncodeSealed(c.Federation, sealed), nil
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
	return writeNewFile(path, data)
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

// loadShare reads this centre's share when the charter lists it as a
// holder; a holder whose share file is missing cannot start.
func (c *Centre) loadShare(keys *pseudonym.Keys) (*pseudonym.Share, error) {
	h, holder := keys.Holder(c.id)
	if !holder {
		return nil, nil
	}
	path := filepath.Join(c.dir, ShareFile)
	data, err := readPrivate(path, "key share", 4096)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("this centre holds a share of the pseudonym key but %s is missing: restore it from backup, or install the charter again with its shares file", path)
	}
	if err != nil {
		return nil, err
	}
	share, err := pseudonym.ParseShare(data, keys)
	if err != nil {
		return nil, err
	}
	if share.Index != h.Index {
		return nil, fmt.Errorf("%s holds share %d, but the charter gives this centre share %d: it is another centre's file", path, share.Index, h.Index)
	}
	return share, nil
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

// startPseudonyms starts the pseudonym client, and the evaluator when
// this centre holds a share, with the rate limiter primed from the
// evaluations the ledger recorded within the window.
func (n *Node) startPseudonyms(ctx context.Context, cfg Config) error {
	keys, err := pseudonymKeys(n.Membership.Current().Charter)
	if err != nil || keys == nil {
		return err
	}
	if n.rules, err = cfg.Pseudonym.Rules(); err != nil {
		return err
	}
	share, err := n.Centre.loadShare(keys)
	if err != nil {
		return err
	}
	member := func(id peer.ID) (string, bool) {
		m, ok := n.Membership.Current().Member(id)
		return m.Name, ok
	}
	if share != nil {
		spent, err := n.Centre.spentWithin(ctx, cfg.Pseudonym.RateWindow)
		if err != nil {
			return err
		}
		n.evaluator, err = pseudonym.NewEvaluator(n.Host, keys, share, pseudonym.EvaluatorOptions{
			Member: member, Audit: ledgerAudit{n.Centre.Ledger}, Spent: spent,
			Limit: cfg.Pseudonym.RateLimit, Window: cfg.Pseudonym.RateWindow, Logger: n.base,
		})
		if err != nil {
			return err
		}
	}
	n.pseudonyms, err = pseudonym.NewClient(n.Host, keys, share, pseudonym.ClientOptions{Member: member, Logger: n.base})
	return err
}

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

// Pseudonyms derives the federation pseudonyms of ids.
func (n *Node) Pseudonyms(ctx context.Context, ids []pseudonym.Identifier) ([]ledger.Pseudonym, error) {
	if n.pseudonyms == nil {
		return nil, ErrNoPseudonymKey
	}
	return n.pseudonyms.Pseudonyms(ctx, ids)
}

// MaxPseudonymRequest bounds the identifiers of one request.
const MaxPseudonymRequest = 4096

// PseudonymsOf parses "system|value" identifiers with the configured rules
// and derives their pseudonyms. An error names an identifier by its
// position, never its value.
func (n *Node) PseudonymsOf(ctx context.Context, raw []string) ([]ledger.Pseudonym, error) {
	if n.pseudonyms == nil {
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
