package prescription

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// ErrSignature: a signature that does not verify, or a signer who is not
// the member it claims to be.
var ErrSignature = node.E(node.Forbidden, "prescription signature")

// Sizes of the messages.
const (
	maxClaim        = 1 << 10
	maxConfirmation = 4 << 10 // the content is at most about 1.4 KiB
	maxContent      = 2 << 10
	maxReason       = 512
)

var (
	claimMessage        = wire.Message{What: "prescription claim", Context: "medfed/prescription/v1 claim", Version: 1, Max: maxClaim}
	confirmationMessage = wire.Message{What: "prescription confirmation", Context: "medfed/prescription/v1 confirmation", Version: 1, Max: maxConfirmation}
)

// Claim is a dispensing member's signed claim of the next supply of a
// prescription, on behalf of one of its pharmacists.
type Claim struct {
	Federation   string
	Pharmacy     peer.ID // the claiming member: it signs
	Issuer       peer.ID // the issuing centre the claim is for
	Pharmacist   ledger.StaffID
	Prescription int64 // the prescription's index on the issuer's ledger
	Secret       Secret
	Nonce        [16]byte
	Time         time.Time // to the millisecond
}

// Encoding, version 1: u8 version, str federation, str pharmacy, str
// issuer, [16] pharmacist, u64 prescription, [16] secret, [16] nonce, u64
// Unix milliseconds; then [64] the pharmacy's Ed25519 signature over
// "medfed/prescription/v1 claim" || 0x00 || the bytes before it.
func (c *Claim) write(w *wire.Writer) {
	w.Str(c.Federation)
	w.Str(string(c.Pharmacy))
	w.Str(string(c.Issuer))
	w.Bytes(c.Pharmacist[:])
	w.U64(uint64(c.Prescription))
	w.Bytes(c.Secret[:])
	w.Bytes(c.Nonce[:])
	w.Millis(c.Time)
}

func (c *Claim) read(r *wire.Reader) {
	c.Federation = r.Str("federation")
	c.Pharmacy = peer.ID(r.Str("pharmacy"))
	c.Issuer = peer.ID(r.Str("issuer"))
	r.Fixed(c.Pharmacist[:], "pharmacist")
	c.Prescription = int64(r.U64("prescription"))
	r.Fixed(c.Secret[:], "secret")
	r.Fixed(c.Nonce[:], "nonce")
	c.Time = r.Millis("time")
}

func (c *Claim) check() error {
	switch {
	case c.Federation == "" || len(c.Federation) > 64:
		return wire.Malformed("prescription claim", "federation")
	case c.Pharmacy == "" || len(c.Pharmacy) > maxPeerIDLen || c.Issuer == "" || len(c.Issuer) > maxPeerIDLen:
		return wire.Malformed("prescription claim", "centres")
	case c.Prescription <= 0 || uint64(c.Prescription) >= 1<<62:
		return wire.Malformed("prescription claim", "prescription index")
	case c.Pharmacist.IsZero():
		return wire.Malformed("prescription claim", "a claim names its pharmacist (a staff ID)")
	case c.Nonce == [16]byte{}:
		return wire.Malformed("prescription claim", "no nonce")
	case c.Time.UnixMilli() <= 0 || c.Time.Unix() >= wire.MaxUnix:
		return wire.Malformed("prescription claim", "time")
	}
	return nil
}

// Sign returns the claim signed with the pharmacy's key.
func (c Claim) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	return claimMessage.Sign(key, c.write)
}

// ParseClaim decodes a signed claim; it accepts only what Sign writes,
// and checks the signature against the pharmacy's peer ID. Whether the
// pharmacy is a member is the issuer's to check.
func ParseClaim(b []byte) (Claim, error) {
	var c Claim
	o, err := claimMessage.Open(b, c.read)
	if err != nil {
		return Claim{}, err
	}
	if err := c.check(); err != nil {
		return Claim{}, err
	}
	if err := verifyPeer(c.Pharmacy, o); err != nil {
		return Claim{}, fmt.Errorf("claim: %w", err)
	}
	return c, nil
}

// Confirmation is the issuing centre's signed answer to a claim: the
// supply is dispensed, its entry on the issuer's ledger.
type Confirmation struct {
	Federation   string
	Issuer       peer.ID // it signs
	Pharmacy     peer.ID
	Subject      ledger.Pseudonym
	Prescription int64
	Fill         uint8 // the supply dispensed: 1 the first
	Supplies     uint8 // how many the prescription allows
	Dispense     int64 // the dispense entry's index on the issuer's ledger
	Nonce        [16]byte
	Time         time.Time // when the dispense entry was appended, to the millisecond
	Content      []byte    // the prescription (Parse): what to dispense
}

// Encoding, version 1: u8 version, str federation, str issuer, str
// pharmacy, [32] subject, u64 prescription, u8 fill, u8 supplies, u64
// dispense, [16] nonce, u64 Unix milliseconds, u16 length and the
// content; then [64] the issuer's Ed25519 signature over
// "medfed/prescription/v1 confirmation" || 0x00 || the bytes before it.
func (c *Confirmation) write(w *wire.Writer) {
	w.Str(c.Federation)
	w.Str(string(c.Issuer))
	w.Str(string(c.Pharmacy))
	w.Bytes(c.Subject[:])
	w.U64(uint64(c.Prescription))
	w.U8(c.Fill)
	w.U8(c.Supplies)
	w.U64(uint64(c.Dispense))
	w.Bytes(c.Nonce[:])
	w.Millis(c.Time)
	w.U16(uint16(len(c.Content)))
	w.Bytes(c.Content)
}

func (c *Confirmation) read(r *wire.Reader) {
	c.Federation = r.Str("federation")
	c.Issuer = peer.ID(r.Str("issuer"))
	c.Pharmacy = peer.ID(r.Str("pharmacy"))
	r.Fixed(c.Subject[:], "subject")
	c.Prescription = int64(r.U64("prescription"))
	c.Fill = r.U8("fill")
	c.Supplies = r.U8("supplies")
	c.Dispense = int64(r.U64("dispense"))
	r.Fixed(c.Nonce[:], "nonce")
	c.Time = r.Millis("time")
	n := int(r.U16("content"))
	if n > maxContent {
		r.Fail("content of %d bytes", n)
		return
	}
	c.Content = append([]byte(nil), r.Take(n, "content")...)
}

func (c *Confirmation) check() error {
	bad := func(what string) error { return wire.Malformed("prescription confirmation", "%s", what) }
	switch {
	case c.Federation == "" || len(c.Federation) > 64:
		return bad("federation")
	case c.Pharmacy == "" || len(c.Pharmacy) > maxPeerIDLen || c.Issuer == "" || len(c.Issuer) > maxPeerIDLen:
		return bad("centres")
	case c.Subject.IsZero():
		return bad("no patient")
	case c.Prescription <= 0 || uint64(c.Prescription) >= 1<<62 || c.Dispense <= c.Prescription || uint64(c.Dispense) >= 1<<62:
		return bad("indexes")
	case c.Fill == 0 || c.Fill > c.Supplies:
		return bad("supply")
	case c.Nonce == [16]byte{}:
		return bad("no nonce")
	case c.Time.UnixMilli() <= 0 || c.Time.Unix() >= wire.MaxUnix:
		return bad("time")
	case len(c.Content) == 0 || len(c.Content) > maxContent:
		return bad("content")
	}
	return nil
}

// Sign returns the confirmation signed with the issuer's key.
func (c Confirmation) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	return confirmationMessage.Sign(key, c.write)
}

// ParseConfirmation decodes a signed confirmation; it accepts only what
// Sign writes, and checks the signature against the issuer's peer ID.
func ParseConfirmation(b []byte) (Confirmation, error) {
	var c Confirmation
	o, err := confirmationMessage.Open(b, c.read)
	if err != nil {
		return Confirmation{}, err
	}
	if err := c.check(); err != nil {
		return Confirmation{}, err
	}
	if err := verifyPeer(c.Issuer, o); err != nil {
		return Confirmation{}, fmt.Errorf("confirmation: %w", err)
	}
	return c, nil
}

// verifyPeer checks the signature of a message signed by the centre of
// peer ID id.
func verifyPeer(id peer.ID, o wire.Opened) error {
	if err := federation.VerifyPeer(id, o.Signed, o.Sig); err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	return nil
}
