package patient

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// ProtocolID is the patient protocol: one signed request per stream (a
// frame of op 1), answered by a frame of status 0 and a signed Answer, or
// of status 1 and the reason of a refusal.
const ProtocolID = "/medfed/patient/1"

const (
	opRequest     byte = 1
	statusOK      byte = 0
	statusRefused byte = 1
)

// Ledger is what a holder needs of its ledger.
type Ledger interface {
	EntriesFor(ctx context.Context, p ledger.Pseudonym) ([]ledger.Entry, error)
	Size() int64
}

// Authenticator checks a patient's signature against the keys members
// attested (consent.Service).
type Authenticator interface {
	Authenticate(ctx context.Context, p ledger.Pseudonym, key ed25519.PublicKey, msg, sig []byte, issued time.Time) error
}

// Options configure a Service.
type Options struct {
	Key     ed25519.PrivateKey // the centre's key: signs answers
	Ledger  Ledger
	Consent Authenticator
	// Erase crypto-shreds the payload of the record at index and returns
	// its erasure entry's index; erasing again returns the same index.
	Erase func(ctx context.Context, index int64) (int64, error)
	// Withdraw takes this centre out of the directory for p.
	Withdraw func(ctx context.Context, p ledger.Pseudonym) error
	// Holders finds the centres holding p's records (the directory).
	Holders func(ctx context.Context, p ledger.Pseudonym) ([]peer.ID, error)
	Charter func() federation.Charter
	Timeout time.Duration    // per holder, as relay; 10 s when zero
	Now     func() time.Time // time.Now when nil
	Logger  *slog.Logger
}

// Service answers patients' requests as a holder and relays them as the
// centre a patient asks through.
type Service struct {
	host host.Host
	opts Options
	log  *slog.Logger
}

// New answers /medfed/patient/1 on h.
func New(h host.Host, opts Options) (*Service, error) {
	if len(opts.Key) != ed25519.PrivateKeySize || opts.Ledger == nil || opts.Consent == nil || opts.Erase == nil ||
		opts.Withdraw == nil || opts.Holders == nil || opts.Charter == nil {
		return nil, errors.New("patient service: key, ledger, consent, erase, withdraw, holders and charter are required")
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
	s := &Service{host: h, opts: opts, log: log.With("component", "patient")}
	h.SetStreamHandler(ProtocolID, s.handle)
	return s, nil
}

// Close stops answering.
func (s *Service) Close() { s.host.RemoveStreamHandler(ProtocolID) }

func (s *Service) handle(st network.Stream) {
	defer st.Close()
	if err := st.SetDeadline(time.Now().Add(60 * time.Second)); err != nil {
		st.Reset()
		return
	}
	from := st.Conn().RemotePeer()
	var (
		answer []byte
		err    error
	)
	if _, member := s.opts.Charter().Member(from); !member {
		err = fmt.Errorf("patient: %w", federation.ErrNotMember)
	} else {
		var (
			op  byte
			req []byte
		)
		if op, req, err = wire.Read(st, maxRequest); err != nil {
			s.log.Debug("patient request unreadable", "from", from, "err", err)
			st.Reset()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
		defer cancel()
		if op != opRequest {
			err = fmt.Errorf("%w: unknown operation %d", ErrMalformed, op)
		} else {
			answer, err = s.Answer(ctx, from, req)
		}
	}
	if err != nil {
		s.log.Info("patient request refused", "from", from, "err", err)
		reason := peerReason(err)
		if err := wire.Write(st, statusRefused, []byte(reason[:min(len(reason), maxProblem)])); err != nil {
			s.log.Debug("patient refusal not delivered", "to", from, "err", err)
		}
		return
	}
	if err := wire.Write(st, statusOK, answer); err != nil {
		s.log.Info("patient answer not delivered", "to", from, "err", err)
	}
}

// peerReason is what a relay is told of a refusal: the protocol's own
// refusals in full, anything else as a fixed text (the detail stays in
// this centre's log).
func peerReason(err error) string {
	for _, known := range []error{ErrMalformed, ErrSignature, ErrStale, federation.ErrNotMember, consent.ErrMalformed, consent.ErrSignature, consent.ErrStale} {
		if errors.Is(err, known) {
			return err.Error()
		}
	}
	return "the holder could not answer (an internal error, logged there)"
}

// Answer checks a request relayed by member from and answers it as a
// holder.
func (s *Service) Answer(ctx context.Context, from peer.ID, raw []byte) ([]byte, error) {
	q, err := s.check(ctx, raw)
	if err != nil {
		return nil, err
	}
	if q.Relay != from {
		return nil, fmt.Errorf("%w: a request for another relay", ErrSignature)
	}
	es, err := s.opts.Ledger.EntriesFor(ctx, q.Subject)
	if err != nil {
		return nil, err
	}
	a := Answer{Op: q.Op, Holder: s.host.ID(), Subject: q.Subject, Nonce: q.Nonce}
	switch q.Op {
	case View:
		for _, e := range es {
			if e.Kind == ledger.KindConsent || e.Kind == ledger.KindRevocation {
				continue // the patient's own documents: consent show has them
			}
			b, err := e.Encode()
			if err != nil {
				return nil, err
			}
			a.Entries = append(a.Entries, b)
		}
	case Erase:
		if a.Entries, err = s.erase(ctx, q.Subject, es); err != nil {
			return nil, err
		}
		if err := s.opts.Withdraw(ctx, q.Subject); err != nil {
			// The payloads are gone: say so, and why the announcement
			// stays until it expires.
			a.Problem = "the directory announcement is not withdrawn everywhere: " + err.Error()
			a.Problem = a.Problem[:min(len(a.Problem), maxProblem)]
		} else {
			a.Withdrawn = true
		}
		s.log.Info("patient's records erased", "pseudonym", q.Subject, "erasures", len(a.Entries), "withdrawn", a.Withdrawn)
	}
	a.Size = s.opts.Ledger.Size()
	return a.Sign(s.opts.Key)
}

// check parses a request and authenticates the patient.
func (s *Service) check(ctx context.Context, raw []byte) (Request, error) {
	q, err := ParseRequest(raw)
	if err != nil {
		return q, err
	}
	if fed := s.opts.Charter().Federation; q.Federation != fed {
		return q, fmt.Errorf("%w: a request for federation %q", ErrMalformed, q.Federation)
	}
	if d := s.opts.Now().Sub(q.Time); d > MaxSkew || d < -MaxSkew {
		return q, fmt.Errorf("%w: made %v from this centre's clock, at most %v", ErrStale, d.Round(time.Second), MaxSkew)
	}
	if err := s.opts.Consent.Authenticate(ctx, q.Subject, q.Key, q.msg, q.sig, q.Time); err != nil {
		return q, err
	}
	return q, nil
}

// erase crypto-shreds every payload of patient p's record entries es
// and returns p's erasure entries, as the ledger holds them.
func (s *Service) erase(ctx context.Context, p ledger.Pseudonym, es []ledger.Entry) ([][]byte, error) {
	erased := 0
	for _, e := range es {
		if e.Kind != ledger.KindRecord && e.Kind != ledger.KindAmendment {
			continue
		}
		if _, err := s.opts.Erase(ctx, e.Index); err != nil {
			return nil, err
		}
		erased++
	}
	if erased == 0 {
		return nil, nil
	}
	after, err := s.opts.Ledger.EntriesFor(ctx, p)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, e := range after {
		if e.Kind == ledger.KindErasure {
			b, err := e.Encode()
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
	}
	return out, nil
}
