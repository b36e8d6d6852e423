package prescription

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
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
}

// Client claims supplies of prescriptions for the pharmacists of its
// centre.
type Client struct {
	host  host.Host
	opts  ClientOptions
	locks keyedMutex // by prescription index: one claim of it at a time, with its pending claim
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
	return &Client{host: h, opts: opts}, nil
}

// Confirmed is a supply the issuer confirmed: dispensed, its entry on
// the issuer's ledger, and what the prescription says to hand over.
type Confirmed struct {
	Confirmation
	Prescription Prescription
	// Renewed: the supply of an earlier claim of this centre, whose
	// answer was lost, confirmed now; no new supply was dispensed.
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
// With Pending, a claim whose outcome is still unknown when Claim gives
// up (or when this centre stops) is kept, and the next claim of the
// prescription sends it again first: its supply, when the issuer had
// dispensed it, is what that claim returns (Renewed); only a refusal of
// it for good lets a new claim be made.
func (c *Client) Claim(ctx context.Context, issuer peer.ID, index int64, secret Secret, pharmacist ledger.StaffID) (Confirmed, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	local := issuer == c.host.ID() && c.opts.Local != nil
	if c.opts.Pending != nil && !local {
		unlock := c.locks.lock(index)
		defer unlock()
		raw, earlier, err := c.opts.Pending.get(c.host.ID(), issuer, index)
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
				return Confirmed{}, fmt.Errorf("an earlier claim of this prescription from this centre is still unanswered: %w", err)
			}
			// Refused for good: never dispensed, so a new claim may be.
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
		if err := c.opts.Pending.put(issuer, index, raw); err != nil {
			return Confirmed{}, err
		}
	}
	return c.settle(ctx, claim, raw)
}

// settle sends claim, signed as raw, to its issuer until it is answered
// or Claim gives up, and forgets it as pending once it is answered for
// good: confirmed, or refused in a way that is final (see final).
func (c *Client) settle(ctx context.Context, claim Claim, raw []byte) (Confirmed, error) {
	got, err := c.send(ctx, claim, raw)
	if c.opts.Pending != nil && (err == nil || final(err)) {
		// Not forgotten, the confirmed supply is not handed over: the
		// next claim gets it again, renewed, and hands it over then.
		if derr := c.opts.Pending.drop(claim.Issuer, claim.Prescription); derr != nil {
			return Confirmed{}, derr
		}
	}
	return got, err
}

// final reports whether err, an issuer's refusal of a claim, is final:
// the issuer read the prescription and will never dispense that claim
// (stale, replayed, cancelled, none left, out of its validity, no such
// prescription, a claim it cannot accept). Anything else (no answer,
// an answer that does not verify, a rate limit, the issuer's own
// failure) leaves the claim's outcome unknown.
func final(err error) bool {
	if errors.Is(err, ErrRejected) || errors.Is(err, errLost) {
		return false
	}
	k := node.KindOf(err)
	return k != node.Unavailable && k != node.Internal
}

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
// status carries.
func refusedError(r *wire.Refused) error {
	k := node.Unavailable
	if r.Status >= refusedBase && r.Status < refusedBase+16 {
		k = node.Kind(r.Status - refusedBase)
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
	return Confirmed{Confirmation: conf, Prescription: p}, nil
}
