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

func (d Direction) String() string {
	switch d {
	case In:
		return "in"
	case Out:
		return "out"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

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
	case t.Direction != In && t.Direction != Out:
		return fmt.Errorf("%w: transfer direction %d", ErrMalformed, uint8(t.Direction))
	case t.Centre == "" || len(t.Centre) > 64:
		return fmt.Errorf("%w: transfer centre", ErrMalformed)
	case t.Source < 0 || t.Access < 0 || t.Copy < 0 || t.Size < 0:
		return fmt.Errorf("%w: transfer index", ErrMalformed)
	case len(t.Proof) > maxProof || len(t.Entry) > ledger.MaxEntrySize/2:
		return fmt.Errorf("%w: transfer provenance", ErrMalformed)
	case t.Direction == In && (t.Copy != 0 || len(t.Entry) == 0 || t.Size <= t.Source):
		return fmt.Errorf("%w: a transfer in without its provenance", ErrMalformed)
	case t.Direction == Out && (len(t.Entry) != 0 || len(t.Proof) != 0 || t.Size != 0 || t.Root != tlog.Hash{}):
		return fmt.Errorf("%w: a transfer out with provenance", ErrMalformed)
	}
	return nil
}

// DecodeTransfer decodes the body of a transfer entry; it accepts only
// what NewTransfer writes.
func DecodeTransfer(e ledger.Entry) (Transfer, error) {
	var t Transfer
	if e.Kind != ledger.KindTransfer {
		return t, fmt.Errorf("%w: a %s entry is not a transfer", ErrMalformed, e.Kind)
	}
	r := wire.NewReader(e.Body, ErrMalformed)
	if v := r.U8("version"); r.Err() == nil && v != transferV1 {
		return t, fmt.Errorf("%w: transfer version %d", ErrMalformed, v)
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
		return Transfer{}, fmt.Errorf("%w: a proof of %d hashes", ErrMalformed, n)
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
	if len(t.Entry) == 0 {
		t.Entry = nil
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

const (
	receiptV1        = 1
	receiptSignature = "medfed/query/v1 receipt"
	maxReceipt       = 128 << 10
)

// Encoding, version 1: u8 version, str federation, str requester, str
// holder, [32] subject, [16] nonce, u64 access, u32 count, copies (u64
// source, u64 copy); then [64] the requester's Ed25519 signature over
// "medfed/query/v1 receipt" || 0x00 || the bytes before it.
func (t *Receipt) body() []byte {
	w := wire.Writer{B: []byte{receiptV1}}
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
	return w.B
}

func (t *Receipt) check() error {
	switch {
	case t.Federation == "" || len(t.Federation) > 64:
		return fmt.Errorf("%w: federation", ErrMalformed)
	case t.Requester == "" || len(t.Requester) > 64 || t.Holder == "" || len(t.Holder) > 64:
		return fmt.Errorf("%w: centres", ErrMalformed)
	case t.Subject.IsZero() || t.Access < 0:
		return fmt.Errorf("%w: patient or access", ErrMalformed)
	case len(t.Copies) == 0 || len(t.Copies) > maxItems:
		return fmt.Errorf("%w: %d copies", ErrMalformed, len(t.Copies))
	}
	for _, c := range t.Copies {
		if c.Source < 0 || c.Copy < 0 {
			return fmt.Errorf("%w: copy index", ErrMalformed)
		}
	}
	return nil
}

// Sign returns the receipt signed with the destination's key.
func (t Receipt) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	b := t.body()
	return append(b, ed25519.Sign(key, wire.Signed(receiptSignature, b))...), nil
}

// ParseReceipt decodes a signed receipt; it accepts only what Sign writes
// and checks the signature against the requester's peer ID.
func ParseReceipt(b []byte) (Receipt, error) {
	var t Receipt
	r, body, sig, err := wire.OpenSigned(b, maxReceipt, receiptV1, "receipt", ErrMalformed)
	if err != nil {
		return t, err
	}
	t.Federation = r.Str("federation")
	t.Requester = peer.ID(r.Str("requester"))
	t.Holder = peer.ID(r.Str("holder"))
	r.Fixed(t.Subject[:], "subject")
	r.Fixed(t.Nonce[:], "nonce")
	t.Access = int64(r.U64("access"))
	n := r.U32("copies")
	if n > maxItems {
		return Receipt{}, fmt.Errorf("%w: %d copies", ErrMalformed, n)
	}
	for range n {
		if r.Err() != nil {
			break
		}
		t.Copies = append(t.Copies, Copied{Source: int64(r.U64("source")), Copy: int64(r.U64("copy"))})
	}
	r.End("receipt")
	if r.Err() != nil {
		return Receipt{}, r.Err()
	}
	if err := t.check(); err != nil {
		return Receipt{}, err
	}
	if err := verifyPeer(t.Requester, wire.Signed(receiptSignature, body), sig); err != nil {
		return Receipt{}, err
	}
	return t, nil
}

// verifyPeer checks a signature by the centre of peer ID id.
func verifyPeer(id peer.ID, msg, sig []byte) error {
	if err := federation.VerifyPeer(id, msg, sig); err != nil {
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
		return fmt.Errorf("%w: a receipt for another centre or federation", ErrMalformed)
	}
	ae, err := s.opts.Ledger.Entry(ctx, t.Access)
	if errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("%w: no access entry %d", ErrMalformed, t.Access)
	}
	if err != nil {
		return err
	}
	a, err := consent.DecodeAccess(ae)
	switch {
	case err != nil || ae.Subject != t.Subject:
		return fmt.Errorf("%w: entry %d is not an access to this patient", ErrMalformed, t.Access)
	case a.Requester != from || a.Nonce != t.Nonce || a.Action != consent.Copy || !a.Permitted:
		return fmt.Errorf("%w: access %d did not release records to this centre for copying", ErrMalformed, t.Access)
	}
	for _, c := range t.Copies {
		if !slices.Contains(a.Records, c.Source) {
			return fmt.Errorf("%w: access %d did not release record %d", ErrMalformed, t.Access, c.Source)
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
	status, answer, err := wire.Exchange(ctx, c.host, ProtocolID, t.Holder, opReceipt, raw, maxReason)
	switch {
	case err != nil:
		return err
	case status == statusRefused:
		return fmt.Errorf("refused: %s", wire.Printable(answer[:min(len(answer), maxReason)]))
	case status != statusOK:
		return fmt.Errorf("%w: status %d", wire.ErrFrame, status)
	}
	return nil
}
