package prescription

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// ErrRejected is a confirmation that does not verify: not signed by the
// issuer, not an answer to the claim, or not the prescription the secret
// opens. Whether the supply was dispensed is then the issuer's ledger's
// to say.
var ErrRejected = node.E(node.Unavailable, "prescription confirmation rejected")

// ClientOptions configure a Client.
type ClientOptions struct {
	Key     ed25519.PrivateKey // the centre's key: signs claims
	Charter func() federation.Charter
	// Timeout bounds each claim's answer; 10 s when zero.
	Timeout time.Duration
	// Local answers a claim of this centre's own prescriptions
	// (Issuer.Claim), with the same checks as anyone's.
	Local func(ctx context.Context, from peer.ID, raw []byte) ([]byte, error)
	Now   func() time.Time // time.Now when nil
	// Pending keeps the claims to other centres whose outcome is not
	// known yet (see PendingClaims); none are kept when nil.
	Pending *PendingClaims
	Logger  *slog.Logger // discarded when nil
}

// Client claims supplies of prescriptions for the pharmacists of its
// centre.
type Client struct {
	host  host.Host
	opts  ClientOptions
	locks keyedMutex[prescriptionKey] // one claim of a prescription at a time, with its pending claim
	log   *slog.Logger
}

// prescriptionKey names a prescription across the federation.
type prescriptionKey struct {
	issuer peer.ID
	index  int64
}

// NewClient returns a client sending from h.
func NewClient(h host.Host, opts ClientOptions) (*Client, error) {
	if len(opts.Key) != ed25519.PrivateKeySize || opts.Charter == nil {
		return nil, errors.New("prescription client: key and charter are required")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{host: h, opts: opts, log: log.With("component", "prescription")}, nil
}

// Confirmed is a supply the issuer confirmed: dispensed, its entry on
// the issuer's ledger, and what the prescription says to hand over.
type Confirmed struct {
	Confirmation
	Prescription Prescription
	Pharmacist   ledger.StaffID // the claim's: the one the issuer recorded
	// Renewed: the supply answers an earlier claim of this centre, with
	// the same token, whose outcome was unknown (every answer lost); it
	// is the one supply dispensed for both.
	Renewed bool
}

// Claim asks issuer for the next supply of the prescription at index,
// opened by secret, for pharmacist. The confirmation is checked whole; a
// refusal comes back as an error of the kind the issuer gave it, with the
// issuer's reason. An answer lost on the way (the issuer could not be
// reached, or the stream broke) is asked for again with the same claim,
// up to claimTries times within the timeout: the issuer dispensed at most
// once for it, and answers it again with that supply's confirmation, so
// a supply the issuer recorded is not lost to the pharmacy, nor a second
// one dispensed.
//
// With Pending, a claim to another centre whose outcome is still unknown
// when Claim gives up (or when this centre stops) is kept, and the next
// claim of the prescription with the same token sends it again first:
// its supply, whether the issuer dispensed it then or does now, is what
// that claim returns (Renewed); only a refusal that settles it (see
// settledBase) lets a new claim be made.
func (c *Client) Claim(ctx context.Context, issuer peer.ID, index int64, secret Secret, pharmacist ledger.StaffID) (Confirmed, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	local := issuer == c.host.ID() && c.opts.Local != nil
	if c.opts.Pending != nil && !local {
		unlock := c.locks.lock(prescriptionKey{issuer, index})
		defer unlock()
		raw, earlier, err := c.opts.Pending.get(c.host.ID(), issuer, index, secret)
		if err != nil {
			return Confirmed{}, err
		}
		if raw != nil {
			got, err := c.settle(ctx, *earlier, raw)
			if err == nil {
				got.Renewed = true
				return got, nil
			}
			if !final(err) {
				return Confirmed{}, fmt.Errorf("prescription claim: an earlier claim of this prescription from this centre is still unanswered: %w", err)
			}
			// Settled: never dispensed, so a new claim may be.
			c.log.Info("a pending claim settled without a supply", "prescription", index, "err", err)
		}
	}
	claim := Claim{Federation: c.opts.Charter().Federation, Pharmacy: c.host.ID(), Issuer: issuer, Pharmacist: pharmacist,
		Prescription: index, Secret: secret, Time: c.opts.Now().UTC()}
	rand.Read(claim.Nonce[:])
	raw, err := claim.Sign(c.opts.Key)
	if err != nil {
		return Confirmed{}, err
	}
	if local {
		answer, err := c.opts.Local(ctx, issuer, raw)
		if err != nil {
			return Confirmed{}, err
		}
		return c.verify(claim, answer)
	}
	if c.opts.Pending != nil {
		if err := c.opts.Pending.put(issuer, index, secret, raw); err != nil {
			return Confirmed{}, err
		}
	}
	return c.settle(ctx, claim, raw)
}

// settle sends claim, signed as raw, to its issuer until it is answered
// or Claim gives up, and forgets it as pending once it is answered for
// good: confirmed, or refused so that it is settled (see final).
func (c *Client) settle(ctx context.Context, claim Claim, raw []byte) (Confirmed, error) {
	got, err := c.send(ctx, claim, raw)
	if c.opts.Pending == nil || (err != nil && !final(err)) {
		return got, err
	}
	removed, derr := c.opts.Pending.drop(claim.Issuer, claim.Prescription, claim.Secret)
	switch {
	case derr == nil:
	case removed:
		// Gone, only not yet made durable: should it come back after a
		// crash, its supply is confirmed again, renewed.
		c.log.Warn("an answered claim's file removed but not synced", "prescription", claim.Prescription, "err", derr)
	case err == nil:
		// Still there, the supply is not handed over now: the next
		// claim gets it again, renewed, and hands it over then.
		return Confirmed{}, derr
	default:
		return Confirmed{}, errors.Join(err, derr)
	}
	return got, err
}

// final reports whether err, from sending a claim, settles it: the
// issuer refused it after finding no supply dispensed for it, and never
// dispenses it (settledBase). Anything else (no answer, an answer that
// does not verify, a rate limit, a refusal at the door, the issuer's own
// failure) leaves the claim's outcome unknown.
func final(err error) bool { return errors.As(err, new(settledError)) }

// errLost is a claim whose every try's answer was lost.
var errLost = node.E(node.Unavailable, "the issuing centre's answer was lost")

// send sends claim, signed as raw, to its issuer, up to claimTries times
// while the answers are lost, and checks the confirmation.
func (c *Client) send(ctx context.Context, claim Claim, raw []byte) (Confirmed, error) {
	var lost error
	for try := range claimTries {
		if try > 0 {
			select {
			case <-time.After(claimRetry << (try - 1)):
			case <-ctx.Done():
				return Confirmed{}, fmt.Errorf("%w: %v", errLost, lost)
			}
		}
		answer, err := wire.Ask(ctx, c.host, ProtocolID, claim.Issuer, opClaim, raw, maxConfirmation, maxReason)
		var refused *wire.Refused
		switch {
		case errors.As(err, &refused):
			return Confirmed{}, refusedError(refused)
		case err != nil:
			lost = err
			continue
		}
		return c.verify(claim, answer)
	}
	return Confirmed{}, fmt.Errorf("%w (%d tries): %v", errLost, claimTries, lost)
}

// A claim whose answer is lost is sent again claimTries times in all,
// claimRetry after the first, twice as long after each next; all within
// the client's timeout, and well within the claim's MaxSkew.
const (
	claimTries = 4
	claimRetry = 200 * time.Millisecond
)

// refusedError turns an issuer's refusal into an error of the kind its
// status carries, marked when it settles the claim.
func refusedError(r *wire.Refused) error {
	k := node.Unavailable
	switch {
	case r.Status >= refusedBase && r.Status < refusedBase+16:
		k = node.Kind(r.Status - refusedBase)
	case r.Status >= settledBase && r.Status < settledBase+16:
		return settled(node.E(node.Kind(r.Status-settledBase), "the issuing centre refused the claim: "+r.Reason))
	}
	return node.E(k, "the issuing centre refused the claim: "+r.Reason)
}

// verify checks the issuer's answer to claim.
func (c *Client) verify(claim Claim, raw []byte) (Confirmed, error) {
	conf, err := ParseConfirmation(raw)
	if err != nil {
		return Confirmed{}, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	switch {
	case conf.Issuer != claim.Issuer:
		return Confirmed{}, fmt.Errorf("%w: signed by another centre", ErrRejected)
	case conf.Pharmacy != claim.Pharmacy || conf.Nonce != claim.Nonce || conf.Prescription != claim.Prescription || conf.Federation != claim.Federation:
		return Confirmed{}, fmt.Errorf("%w: an answer to another claim", ErrRejected)
	}
	p, err := Parse(conf.Content)
	switch {
	case err != nil:
		return Confirmed{}, fmt.Errorf("%w: %w", ErrRejected, err)
	case p.Issuer != claim.Issuer || !p.Opens(claim.Secret):
		return Confirmed{}, fmt.Errorf("%w: not the prescription the token opens", ErrRejected)
	case int(conf.Supplies) != p.Supplies():
		return Confirmed{}, fmt.Errorf("%w: a supply count that is not the prescription's", ErrRejected)
	}
	return Confirmed{Confirmation: conf, Prescription: p, Pharmacist: claim.Pharmacist}, nil
}
