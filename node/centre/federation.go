package centre

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/medfed/medfed/node"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/ledger"
)

// A charter entry on the ledger holds either an adopted charter version or
// this centre's approval of a draft; its first byte says which. A note
// longer than an entry's body (a founding by hundreds of centres) is kept
// in parts, an entry each, the last one an adopted entry, all appended in
// one commit.
const (
	charterAdopted  byte = 1 // then the signed note, or its last part
	charterApproval byte = 2 // then u64 version, 32-byte draft hash
	charterPart     byte = 3 // then a part of the note the next adopted entry ends
)

// ErrNoCharter is returned when a centre has no charter installed yet.
var ErrNoCharter = node.E(node.Unavailable, "no charter installed")

// federationState reads the charter chain and this centre's approvals from
// the ledger.
func (c *Centre) federationState(ctx context.Context) (federation.State, error) {
	entries, err := c.Ledger.EntriesOfKind(ctx, ledger.KindCharter)
	if err != nil {
		return federation.State{}, err
	}
	return charterState(entries)
}

// ChainOnLedger returns the charter chain adopted on the ledger file at
// path, read without opening it for writing: what ledger verify checks a
// ledger against when it is given no charter.
func ChainOnLedger(ctx context.Context, path string) ([][]byte, error) {
	entries, err := ledger.ReadKind(ctx, path, ledger.KindCharter)
	if err != nil {
		return nil, err
	}
	st, err := charterState(entries)
	return st.Chain, err
}

// charterState reads charter entries.
func charterState(entries []ledger.Entry) (federation.State, error) {
	st := federation.State{Approvals: map[uint64][32]byte{}}
	var parts []byte // of a note not ended yet
	for _, e := range entries {
		body := e.Body
		if len(parts) > 0 && (len(body) < 2 || (body[0] != charterPart && body[0] != charterAdopted)) {
			return st, fmt.Errorf("ledger entry %d: malformed charter entry: a note in parts is not ended", e.Index)
		}
		switch {
		case len(body) > 1 && body[0] == charterPart:
			parts = append(parts, body[1:]...)
		case len(body) > 1 && body[0] == charterAdopted:
			st.Chain = append(st.Chain, append(parts, body[1:]...))
			parts = nil
		case len(body) == 1+8+32 && body[0] == charterApproval:
			st.Approvals[binary.BigEndian.Uint64(body[1:])] = [32]byte(body[9:])
		default:
			return st, fmt.Errorf("ledger entry %d: malformed charter entry", e.Index)
		}
	}
	if len(parts) > 0 {
		return st, errors.New("the last charter entries hold a note in parts that is not ended")
	}
	return st, nil
}

// ledgerStore keeps membership's state on the centre's ledger.
type ledgerStore struct{ l *ledger.Ledger }

// NewCharterStore keeps membership's state on l as a centre does: for a
// simulation of centres (medfed bench scale) that builds its own.
func NewCharterStore(l *ledger.Ledger) federation.Store { return ledgerStore{l} }

func (s ledgerStore) Adopt(ctx context.Context, note []byte) error {
	_, err := s.l.Append(ctx, adoptedEntries(note)...)
	return err
}

// adoptedEntries are the entries that keep an adopted note: one, or its
// parts and an adopted entry ending them.
func adoptedEntries(note []byte) []ledger.Entry {
	const part = ledger.MaxBody - 1
	var out []ledger.Entry
	for len(note) > part {
		out = append(out, ledger.Entry{Kind: ledger.KindCharter, Body: append([]byte{charterPart}, note[:part]...)})
		note = note[part:]
	}
	return append(out, ledger.Entry{Kind: ledger.KindCharter, Body: append([]byte{charterAdopted}, note...)})
}

func (s ledgerStore) Approve(ctx context.Context, version uint64, draft [32]byte) error {
	body := binary.BigEndian.AppendUint64([]byte{charterApproval}, version)
	_, err := s.l.Append(ctx, ledger.Entry{Kind: ledger.KindCharter, Body: append(body, draft[:]...)})
	return err
}

// Charter returns the centre's adopted charter, verified from version 1.
func (c *Centre) Charter(ctx context.Context) (federation.Signed, error) {
	st, err := c.federationState(ctx)
	if err != nil {
		return federation.Signed{}, err
	}
	if len(st.Chain) == 0 {
		return federation.Signed{}, ErrNoCharter
	}
	return federation.VerifyChain(st.Chain)
}

// InstallCharter adopts chain (version 1 first), which must list this
// centre and extend whatever the centre already adopted; it appends the
// versions that are new. Founders install version 1; a centre that was
// admitted installs the chain it fetched from a member.
func (c *Centre) InstallCharter(ctx context.Context, chain [][]byte) (federation.Signed, error) {
	s, err := federation.VerifyChain(chain)
	if err != nil {
		return s, err
	}
	if s.Federation != c.federation {
		return s, fmt.Errorf("%w: the charter is for federation %q, this centre is configured for %q", federation.ErrChain, s.Federation, c.federation)
	}
	if m, ok := s.Member(c.id); !ok || m.Name != c.Name {
		return s, fmt.Errorf("%w: the charter does not list this centre as %s (%s)", federation.ErrNotMember, c.Name, c.id)
	}
	st, err := c.federationState(ctx)
	if err != nil {
		return s, err
	}
	if len(st.Chain) > len(chain) {
		return s, fmt.Errorf("%w: this centre has adopted version %d already", federation.ErrChain, len(st.Chain))
	}
	for i, note := range st.Chain {
		if !bytes.Equal(note, chain[i]) {
			return s, fmt.Errorf("%w: version %d differs from the one this centre adopted", federation.ErrChain, i+1)
		}
	}
	store := ledgerStore{c.Ledger}
	for _, note := range chain[len(st.Chain):] {
		if err := store.Adopt(ctx, note); err != nil {
			return s, err
		}
	}
	return s, nil
}

// MaxBlock is the longest a member can be blocked for at once.
const MaxBlock = 24 * time.Hour

// Block cuts member name off from this centre for d (1 s to MaxBlock):
// its connections close and it is refused, the charter unchanged, until
// then or Unblock. For an incident: a member flooding this centre, or
// suspected of misbehaving while the federation decides on its removal.
// Nothing is persisted: a restart ends every block.
func (n *Node) Block(name string, d time.Duration) (time.Time, error) {
	if d < time.Second || d > MaxBlock {
		return time.Time{}, fmt.Errorf("%w: block for %v: 1s to %v", node.ErrInvalid, d, MaxBlock)
	}
	id, err := n.memberID(name)
	if err != nil {
		return time.Time{}, err
	}
	if id == n.Centre.ID() {
		return time.Time{}, fmt.Errorf("%w: a centre does not block itself", node.ErrInvalid)
	}
	until := time.Now().Add(d)
	n.gater.Block(id, until)
	if err := n.Host.Network().ClosePeer(id); err != nil {
		return until, fmt.Errorf("blocked, but closing its connections: %w", err)
	}
	n.log.Warn("member blocked by the operator", "member", name, "until", until.UTC().Format(time.RFC3339))
	return until, nil
}

// Unblock ends a block of member name.
func (n *Node) Unblock(name string) error {
	id, err := n.memberID(name)
	if err != nil {
		return err
	}
	n.gater.Block(id, time.Time{})
	n.log.Info("member unblocked by the operator", "member", name)
	return nil
}
