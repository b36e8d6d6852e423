package query

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/enum"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// Direction says which side of a transfer a ledger entry records.
type Direction uint8

const (
	// In: a record copied here from another centre.
	In Direction = 1
	// Out: a record of this centre copied to another.
	Out Direction = 2
)

var directions = enum.New[Direction]("direction", []string{In: "in", Out: "out"})

func (d Direction) String() string { return directions.String(d) }

// Transfer is the body of a ledger transfer entry: one record copied
// between centres when a patient switches provider. A copy's record entry
// and its In entry are appended together, atomically, the In entry right
// after the record: the entry before an In entry is its copy.
type Transfer struct {
	Direction Direction
	Centre    peer.ID // the other centre: the source of an In, the destination of an Out
	Source    int64   // the record's index on the source's ledger
	Access    int64   // the source's access entry that released it
	Copy      int64   // Out: the copy's index on the destination's ledger
	// Provenance, on an In entry: the source's entry as released, and its
	// inclusion proof against the source's final checkpoint (Size, Root).
	Entry []byte
	Size  int64
	Root  tlog.Hash
	Proof tlog.RecordProof
}

// Transfer entry body, version 1: u8 version, u8 direction, str centre,
// u64 source, u64 access, u64 copy, blob entry, u64 size, [32] root, u8
// count and [32] proof hashes.
const transferV1 = 1

// NewTransfer returns the ledger entry recording t about patient p.
func NewTransfer(p ledger.Pseudonym, t Transfer) (ledger.Entry, error) {
	if err := t.check(); err != nil {
		return ledger.Entry{}, err
	}
	w := wire.Writer{B: []byte{transferV1, byte(t.Direction)}}
	w.Str(string(t.Centre))
	w.U64(uint64(t.Source))
	w.U64(uint64(t.Access))
	w.U64(uint64(t.Copy))
	w.Blob(t.Entry)
	w.U64(uint64(t.Size))
	w.Bytes(t.Root[:])
	w.U8(uint8(len(t.Proof)))
	for _, h := range t.Proof {
		w.Bytes(h[:])
	}
	return ledger.Entry{Kind: ledger.KindTransfer, Subject: p, Body: w.B}, nil
}

func (t Transfer) check() error {
	switch {
	case !directions.Valid(t.Direction):
		return malformed("transfer direction %d", uint8(t.Direction))
	case t.Centre == "" || len(t.Centre) > 64:
		return malformed("transfer centre")
	case t.Source < 0 || t.Access < 0 || t.Copy < 0 || t.Size < 0:
		return malformed("transfer index")
	case len(t.Proof) > maxProof || len(t.Entry) > ledger.MaxEntrySize/2:
		return malformed("transfer provenance")
	case t.Direction == In && (t.Copy != 0 || len(t.Entry) == 0 || t.Size <= t.Source):
		return malformed("a transfer in without its provenance")
	case t.Direction == Out && (len(t.Entry) != 0 || len(t.Proof) != 0 || t.Size != 0 || t.Root != tlog.Hash{}):
		return malformed("a transfer out with provenance")
	}
	return nil
}

// DecodeTransfer decodes the body of a transfer entry; it accepts only
// what NewTransfer writes.
func DecodeTransfer(e ledger.Entry) (Transfer, error) {
	var t Transfer
	if e.Kind != ledger.KindTransfer {
		return t, malformed("a %s entry is not a transfer", e.Kind)
	}
	r := wire.NewReader(e.Body, "transfer entry")
	if v := r.U8("version"); r.Err() == nil && v != transferV1 {
		r.Fail("transfer version %d", v)
	}
	t.Direction = Direction(r.U8("direction"))
	t.Centre = peer.ID(r.Str("centre"))
	t.Source = int64(r.U64("source"))
	t.Access = int64(r.U64("access"))
	t.Copy = int64(r.U64("copy"))
	t.Entry = r.Blob("entry", ledger.MaxEntrySize/2)
	t.Size = int64(r.U64("size"))
	r.Fixed(t.Root[:], "root")
	n := int(r.U8("proof"))
	if n > maxProof {
		r.Fail("a proof of %d hashes", n)
		n = 0
	}
	for range n {
		var h tlog.Hash
		r.Fixed(h[:], "proof")
		t.Proof = append(t.Proof, h)
	}
	r.End("transfer")
	if r.Err() != nil {
		return Transfer{}, r.Err()
	}
	return t, t.check()
}

// Copied is one record of a receipt: its index at the source, and its
// copy's at the destination.
type Copied struct{ Source, Copy int64 }

// Receipt is what a destination tells a source after copying records
// the source released to it, so that both ledgers record the transfer.
type Receipt struct {
	Federation string
	Requester  peer.ID // the destination
	Holder     peer.ID // the source
	Subject    ledger.Pseudonym
	Nonce      [16]byte // the copy request's
	Access     int64    // the source's access entry for it
	Copies     []Copied
}

const maxReceipt = 128 << 10

var receiptMessage = wire.Message{What: "transfer receipt", Context: "medfed/query/v1 receipt", Version: 1, Max: maxReceipt}

// Encoding, version 1: u8 version, str federation, str requester, str
// holder, [32] subject, [16] nonce, u64 access, u32 count, copies (u64
// source, u64 copy); then [64] the requester's Ed25519 signature over
// "medfed/query/v1 receipt" || 0x00 || the bytes before it.
func (t *Receipt) write(w *wire.Writer) {
	w.Str(t.Federation)
	w.Str(string(t.Requester))
	w.Str(string(t.Holder))
	w.Bytes(t.Subject[:])
	w.Bytes(t.Nonce[:])
	w.U64(uint64(t.Access))
	w.U32(uint32(len(t.Copies)))
	for _, c := range t.Copies {
		w.U64(uint64(c.Source))
		w.U64(uint64(c.Copy))
	}
}

func (t *Receipt) check() error {
	switch {
	case t.Federation == "" || len(t.Federation) > 64:
		return malformed("federation")
	case t.Requester == "" || len(t.Requester) > 64 || t.Holder == "" || len(t.Holder) > 64:
		return malformed("centres")
	case t.Subject.IsZero() || t.Access < 0:
		return malformed("patient or access")
	case len(t.Copies) == 0 || len(t.Copies) > maxItems:
		return malformed("%d copies", len(t.Copies))
	}
	for _, c := range t.Copies {
		if c.Source < 0 || c.Copy < 0 {
			return malformed("copy index")
		}
	}
	return nil
}

// Sign returns the receipt signed with the destination's key.
func (t Receipt) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	return receiptMessage.Sign(key, t.write)
}

// ParseReceipt decodes a signed receipt; it accepts only what Sign writes
// and checks the signature against the requester's peer ID.
func ParseReceipt(b []byte) (Receipt, error) {
	var t Receipt
	o, err := receiptMessage.Open(b, t.read)
	if err != nil {
		return Receipt{}, err
	}
	if err := t.check(); err != nil {
		return Receipt{}, err
	}
	if err := verifyPeer(t.Requester, o); err != nil {
		return Receipt{}, err
	}
	return t, nil
}

func (t *Receipt) read(r *wire.Reader) {
	t.Federation = r.Str("federation")
	t.Requester = peer.ID(r.Str("requester"))
	t.Holder = peer.ID(r.Str("holder"))
	r.Fixed(t.Subject[:], "subject")
	r.Fixed(t.Nonce[:], "nonce")
	t.Access = int64(r.U64("access"))
	n := r.U32("copies")
	if n > maxItems {
		r.Fail("%d copies", n)
		return
	}
	for range n {
		if r.Err() != nil {
			break
		}
		t.Copies = append(t.Copies, Copied{Source: int64(r.U64("source")), Copy: int64(r.U64("copy"))})
	}
}

// verifyPeer checks the signature of a message signed by the centre of
// peer ID id.
func verifyPeer(id peer.ID, o wire.Opened) error {
	if err := federation.VerifyPeer(id, o.Signed, o.Sig); err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	return nil
}

// Acknowledge checks a receipt from member from and records the transfer
// on this (the source's) ledger: one Out entry per record copied, each
// listed as released to that member, for copying, by the access entry the
// receipt names. A copy recorded before is not recorded again.
func (s *Holder) Acknowledge(ctx context.Context, from peer.ID, raw []byte) error {
	t, err := ParseReceipt(raw)
	if err != nil {
		return err
	}
	switch {
	case t.Requester != from:
		return fmt.Errorf("%w: a receipt signed by another centre than the one sending it", ErrSignature)
	case t.Holder != s.host.ID() || t.Federation != s.opts.Charter().Federation:
		return malformed("a receipt for another centre or federation")
	}
	ae, err := s.opts.Ledger.Entry(ctx, t.Access)
	if errors.Is(err, node.ErrNotFound) {
		return malformed("no access entry %d", t.Access)
	}
	if err != nil {
		return err
	}
	a, err := consent.DecodeAccess(ae)
	switch {
	case err != nil || ae.Subject != t.Subject:
		return malformed("entry %d is not an access to this patient", t.Access)
	case a.Requester != from || a.Nonce != t.Nonce || a.Action != consent.Copy || !a.Permitted:
		return malformed("access %d did not release records to this centre for copying", t.Access)
	}
	for _, c := range t.Copies {
		if !slices.Contains(a.Records, c.Source) {
			return malformed("access %d did not release record %d", t.Access, c.Source)
		}
	}
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	known, err := s.opts.Ledger.EntriesForKinds(ctx, t.Subject, ledger.KindTransfer)
	if err != nil {
		return err
	}
	recorded := map[int64]bool{}
	for _, e := range known {
		if x, err := DecodeTransfer(e); err == nil && x.Direction == Out && x.Centre == from {
			recorded[x.Source] = true
		}
	}
	var out []ledger.Entry
	for _, c := range t.Copies {
		if recorded[c.Source] {
			continue
		}
		x, err := NewTransfer(t.Subject, Transfer{Direction: Out, Centre: from, Source: c.Source, Access: t.Access, Copy: c.Copy})
		if err != nil {
			return err
		}
		recorded[c.Source] = true
		out = append(out, x)
	}
	if len(out) == 0 {
		return nil
	}
	if _, err := s.opts.Ledger.Append(ctx, out...); err != nil {
		return err
	}
	s.log.Info("transfer recorded", "to", from, "pseudonym", t.Subject, "records", len(out))
	return nil
}

// Acknowledge sends a signed receipt to the source of copied records.
func (c *Client) Acknowledge(ctx context.Context, t Receipt) error {
	t.Federation, t.Requester = c.opts.Charter().Federation, c.host.ID()
	raw, err := t.Sign(c.opts.Key)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	_, err = c.pool.Ask(ctx, t.Holder, opReceipt, raw, maxReason, maxReason)
	return err
}
