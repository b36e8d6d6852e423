package pseudonym

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/wire"
)

// The key ceremonies' transport. The DKG and the resharing are broadcast
// rounds that leave the network to the caller; Ceremonies carries them
// between centres over libp2p. Every participant sends its message of
// each round to every other participant, one stream per message, and
// steps once it holds the round's message of every other participant
// present, or once the round's time is up: a message that did not come
// is a participant that said nothing, which the state machines handle.
//
// The first round waits long (operators start the ceremony on their
// nodes minutes apart) and for everyone; a participant that sent nothing
// in it is absent, not waited for again, and refused from then on. Later
// rounds wait for the present participants only. A sender retries a
// message that found no ceremony yet, or a round not yet reached, until
// its own run ends; a message that comes after its round was stepped is
// refused as late, and its sender, knowing the others decided without
// it, gives up rather than end with a view the others do not share.
//
// The state machines need a broadcast: the same bytes from a sender
// reach every member or none. Point-to-point messages with timeouts do not
// quite give that (a message may arrive at one member just before its
// round ends, at another just after), so the transport checks it: after
// the last round each participant sends the others a hash of the
// transcript it stepped on, every present participant's message of every
// round, and a run succeeds only if every hash that came matches its own.
// Two participants that both succeed and heard each other stepped on the
// same messages, and so hold the same result.
//
// Frames: each message is one node/wire request frame, op 1, whose
// payload is
//
//	u8 version (1) | 32-byte ceremony ID | u16 round (1..64) | message
//
// the message being the state machine's bytes for that round (empty when
// it has nothing to say, which still tells the others it is there), or
// in the last round the 32-byte transcript hash; at most
// MaxCeremonyMessage bytes. The answer is status 0 with no payload when
// the message was taken (or was taken before); status 0 with one byte, 2
// (no such ceremony here yet) or 3 (a round not reached yet), when it
// should come again a little later; or a refusal, status 4 (late: the
// round was stepped without it) or 5 (not a participant, malformed, or
// another message for a round already given), with a reason.
// The ceremony ID binds a run: whoever starts one derives it from
// everything the run is about (the federation, the charter version it
// starts from, the committee, the thresholds, an attempt number), so two
// runs, even of one committee, never exchange a message. Messages are
// buffered per ceremony, round and sender, for the round being collected
// and the next only, from participants only: at most 2 × participants ×
// MaxCeremonyMessage bytes per ceremony, for at most maxCeremonies at
// once; a message for a ceremony not (yet) running here is refused, not
// kept.

// CeremonyProtocolID is the protocol of the key ceremonies' messages.
const CeremonyProtocolID = "/medfed/oprf-ceremony/1"

// CeremonyID names one run of a key ceremony.
type CeremonyID [32]byte

// Stepper is one participant's state in a key ceremony: a *DKG or a
// *Reshare.
type Stepper interface {
	Start() ([]byte, error)
	Step(received map[peer.ID][]byte) ([]byte, error)
	Done() bool
}

var (
	_ Stepper = (*DKG)(nil)
	_ Stepper = (*Reshare)(nil)
)

// CeremonyTimeouts bound the rounds of a ceremony.
type CeremonyTimeouts struct {
	// FirstRound is how long the first round waits for every
	// participant: operators start the ceremony at different times.
	// Default 5 minutes.
	FirstRound time.Duration
	// Round is how long every later round waits for the participants
	// present in the first. Default 30 seconds.
	Round time.Duration
}

// Default ceremony timeouts.
const (
	DefaultFirstRound = 5 * time.Minute
	DefaultRound      = 30 * time.Second
)

func (t CeremonyTimeouts) withDefaults() CeremonyTimeouts {
	if t.FirstRound <= 0 {
		t.FirstRound = DefaultFirstRound
	}
	if t.Round <= 0 {
		t.Round = DefaultRound
	}
	return t
}

const (
	ceremonyVersionByte  = 1
	ceremonyOpMessage    = 1
	ceremonyFrameHeader  = 1 + 32 + 2
	maxCeremonyRounds    = 64
	maxCeremonyReason    = 256
	maxCeremonies        = 4 // running at once on one centre
	maxFinished          = 64
	ceremonyDeliverLimit = 10 * time.Second // one attempt to deliver one message

	// MaxCeremonyMessage bounds one message: a DKG deal of MaxHolders
	// members, the largest message either ceremony sends.
	MaxCeremonyMessage = headerLen + MaxHolders*elementLen + MaxHolders*(2*scalarLen+sealOverhead)
	// maxParticipants: a resharing's old holders and new committee.
	maxParticipants = 2 * MaxHolders
)

// Answers of the ceremony protocol: not yet (the payload of an OK
// answer, so that a sender waiting for others to start is no refusal in
// anyone's log), and the refusals (the answer's status).
const (
	ceremonyUnknown byte = 2 // no such ceremony runs here, or not yet: send again
	ceremonyEarly   byte = 3 // a round the receiver has not reached: send again
	ceremonyLate    byte = 4 // the round was stepped without it, or the sender was absent from the first
	ceremonyRefused byte = 5 // not a participant, malformed, or another message for a round already given
)

// ceremonyRefusal is a refusal the receiver answers with.
type ceremonyRefusal struct {
	code   byte
	reason string
}

func (r *ceremonyRefusal) Error() string { return r.reason }

func refuseCeremony(code byte, format string, args ...any) error {
	return &ceremonyRefusal{code: code, reason: fmt.Sprintf(format, args...)}
}

func ceremonyRefusalOf(err error) (byte, string) {
	var r *ceremonyRefusal
	if errors.As(err, &r) {
		return r.code, r.reason
	}
	return ceremonyRefused, "internal error"
}

// ceremonyFrame is one message as it travels.
type ceremonyFrame struct {
	id    CeremonyID
	round int
	msg   []byte
}

func (f ceremonyFrame) encode() []byte {
	b := make([]byte, 0, ceremonyFrameHeader+len(f.msg))
	b = append(b, ceremonyVersionByte)
	b = append(b, f.id[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(f.round))
	return append(b, f.msg...)
}

// decodeCeremonyFrame parses a frame's payload; the message shares b.
func decodeCeremonyFrame(b []byte) (ceremonyFrame, error) {
	switch {
	case len(b) < ceremonyFrameHeader:
		return ceremonyFrame{}, wire.Malformed("ceremony message", "%d bytes, shorter than a header", len(b))
	case b[0] != ceremonyVersionByte:
		return ceremonyFrame{}, wire.Malformed("ceremony message", "version %d", b[0])
	case len(b)-ceremonyFrameHeader > MaxCeremonyMessage:
		return ceremonyFrame{}, wire.Malformed("ceremony message", "%d bytes, more than %d", len(b)-ceremonyFrameHeader, MaxCeremonyMessage)
	}
	f := ceremonyFrame{id: CeremonyID(b[1:33]), round: int(binary.BigEndian.Uint16(b[33:]))}
	if f.round < 1 || f.round > maxCeremonyRounds {
		return ceremonyFrame{}, wire.Malformed("ceremony message", "round %d, want 1 to %d", f.round, maxCeremonyRounds)
	}
	f.msg = b[ceremonyFrameHeader:len(b):len(b)]
	return f, nil
}

// Ceremonies serves the ceremony protocol on a host and runs this
// centre's side of key ceremonies.
type Ceremonies struct {
	h   host.Host
	log *slog.Logger

	mu       sync.Mutex
	running  map[CeremonyID]*ceremonyRun
	finished map[CeremonyID]bool
	order    []CeremonyID // finished, oldest first
}

// NewCeremonies starts serving the ceremony protocol on h, until Close.
func NewCeremonies(h host.Host, logger *slog.Logger) *Ceremonies {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Ceremonies{h: h, log: logger.With("component", "oprf-ceremony"),
		running: map[CeremonyID]*ceremonyRun{}, finished: map[CeremonyID]bool{}}
	srv := &wire.Server{
		Name: "oprf ceremony", Limit: ceremonyFrameHeader + MaxCeremonyMessage, Timeout: 15 * time.Second, Work: 5 * time.Second,
		MaxReason: maxCeremonyReason, Serve: c.serve, Refuse: ceremonyRefusalOf, Log: c.log,
	}
	h.SetStreamHandler(CeremonyProtocolID, srv.Handle)
	return c
}

// Close stops serving the protocol.
func (c *Ceremonies) Close() { c.h.RemoveStreamHandler(CeremonyProtocolID) }

// RunCeremony runs one ceremony on h and stops serving the protocol when
// it ends: for a host that runs no other ceremony meanwhile (Ceremonies
// serves several).
func RunCeremony(ctx context.Context, h host.Host, id CeremonyID, participants []peer.ID, s Stepper, t CeremonyTimeouts) ([]peer.ID, error) {
	c := NewCeremonies(h, nil)
	defer c.Close()
	return c.Run(ctx, id, participants, s, t)
}

func (c *Ceremonies) serve(_ context.Context, from peer.ID, op byte, payload []byte) ([]byte, error) {
	if op != ceremonyOpMessage {
		return nil, refuseCeremony(ceremonyRefused, "unknown operation %d", op)
	}
	f, err := decodeCeremonyFrame(payload)
	if err != nil {
		return nil, refuseCeremony(ceremonyRefused, "%v", err)
	}
	c.mu.Lock()
	r, finished := c.running[f.id], c.finished[f.id]
	c.mu.Unlock()
	switch {
	case r != nil:
		return r.accept(from, f.round, f.msg)
	case finished:
		return nil, refuseCeremony(ceremonyLate, "the ceremony has ended here")
	}
	return []byte{ceremonyUnknown}, nil
}

// Run runs this centre's side of ceremony id among participants (this
// centre included; the order does not matter), stepping s round by round
// until it is done, then checks that the participants that answered
// stepped on the same messages. It returns the participants absent from
// the first round, whom the others went on without (sorted), or s's
// error, or ErrCeremony when the run cannot be trusted to have given
// every participant the same view; s's Result is then not to be used.
// Run returns once ctx ends, too.
func (c *Ceremonies) Run(ctx context.Context, id CeremonyID, participants []peer.ID, s Stepper, t CeremonyTimeouts) (absent []peer.ID, err error) {
	t = t.withDefaults()
	r, err := c.register(id, participants)
	if err != nil {
		return nil, err
	}
	defer c.unregister(r)
	sendCtx, stop := context.WithCancel(ctx)
	var sending sync.WaitGroup
	finished := false
	defer func() {
		// After a run that finished, the last messages may still be on
		// their way to a participant that needs them: give them a
		// round's time.
		done := make(chan struct{})
		go func() { sending.Wait(); close(done) }()
		if finished {
			select {
			case <-done:
			case <-time.After(t.Round):
			case <-ctx.Done():
			}
		}
		stop()
		<-done
	}()

	transcript := sha256.New()
	transcript.Write([]byte("medfed oprf ceremony transcript v1"))
	transcript.Write(id[:])
	msg, err := s.Start()
	if err != nil {
		return nil, err
	}
	round := 1
	for ; ; round++ {
		if round >= maxCeremonyRounds {
			return nil, fmt.Errorf("oprf ceremony: %w: more than %d rounds", ErrCeremony, maxCeremonyRounds-1)
		}
		c.broadcast(sendCtx, &sending, r, round, msg, true)
		wait := t.Round
		if round == 1 {
			wait = t.FirstRound
		}
		got, err := r.collect(ctx, round, wait)
		if err != nil {
			return nil, err
		}
		r.record(transcript, round, msg, got)
		in := make(map[peer.ID][]byte, len(got))
		for p, m := range got {
			if len(m) > 0 {
				in[p] = m
			}
		}
		if msg, err = s.Step(in); err != nil {
			return nil, err
		}
		if s.Done() {
			break
		}
	}

	// The agreement round: every participant's transcript hash.
	round++
	sum := transcript.Sum(nil)
	// Whether a hash came in time changes nothing but what its receiver
	// can vouch for: one refused is no divergence.
	c.broadcast(sendCtx, &sending, r, round, sum, false)
	got, err := r.collect(ctx, round, t.Round)
	if err != nil {
		return nil, err
	}
	var differ []string
	for _, p := range r.order {
		if m := got[p]; len(m) > 0 && !bytes.Equal(m, sum) {
			differ = append(differ, p.String())
		}
	}
	if len(differ) > 0 {
		return nil, fmt.Errorf("oprf ceremony: %w: %d participants (%s) stepped on other messages than this centre's: a message reached some participants in time and others not; run the ceremony again",
			ErrCeremony, len(differ), joinShort(differ))
	}
	finished = true
	r.mu.Lock()
	for _, p := range r.order {
		if r.absent[p] {
			absent = append(absent, p)
		}
	}
	r.mu.Unlock()
	c.log.Info("ceremony finished", "participants", len(r.order), "absent", len(absent), "rounds", round)
	return absent, nil
}

func joinShort(ids []string) string {
	if len(ids) > 4 {
		return fmt.Sprintf("%s, %s, %s and %d more", ids[0], ids[1], ids[2], len(ids)-3)
	}
	var b bytes.Buffer
	for i, id := range ids {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(id)
	}
	return b.String()
}

// ErrCeremonyBusy is returned for a ceremony that runs here already, ran
// here before, or would be one too many at once.
var ErrCeremonyBusy = node.E(node.Conflict, "OPRF key ceremony refused")

func (c *Ceremonies) register(id CeremonyID, participants []peer.ID) (*ceremonyRun, error) {
	self := c.h.ID()
	r := &ceremonyRun{id: id, self: self, order: slices.Clone(participants), others: map[peer.ID]bool{},
		absent: map[peer.ID]bool{}, inbox: map[int]map[peer.ID][]byte{}, wake: make(chan struct{}, 1), round: 1}
	slices.Sort(r.order)
	if len(r.order) < 2 || len(r.order) > maxParticipants {
		return nil, fmt.Errorf("oprf ceremony: %w: %d participants, want 2 to %d", node.ErrInvalid, len(r.order), maxParticipants)
	}
	if len(slices.Compact(slices.Clone(r.order))) != len(r.order) {
		return nil, fmt.Errorf("oprf ceremony: %w: a participant is listed twice", node.ErrInvalid)
	}
	if _, ok := slices.BinarySearch(r.order, self); !ok {
		return nil, fmt.Errorf("oprf ceremony: %w: this centre is not a participant", node.ErrInvalid)
	}
	for _, p := range r.order {
		if p != self {
			r.others[p] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.running[id] != nil:
		return nil, fmt.Errorf("%w: this ceremony runs on this centre already", ErrCeremonyBusy)
	case c.finished[id]:
		return nil, fmt.Errorf("%w: this ceremony ran on this centre already; start another run (another attempt)", ErrCeremonyBusy)
	case len(c.running) >= maxCeremonies:
		return nil, fmt.Errorf("%w: %d ceremonies run on this centre already", ErrCeremonyBusy, len(c.running))
	}
	c.running[id] = r
	return r, nil
}

func (c *Ceremonies) unregister(r *ceremonyRun) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.running, r.id)
	c.finished[r.id] = true
	c.order = append(c.order, r.id)
	if len(c.order) > maxFinished {
		delete(c.finished, c.order[0])
		c.order = c.order[1:]
	}
}

// broadcast sends msg, this centre's message of round, to every other
// participant present, each in the background until it is taken; counts
// says whether the receiver's refusing it would change what it steps on.
func (c *Ceremonies) broadcast(ctx context.Context, wg *sync.WaitGroup, r *ceremonyRun, round int, msg []byte, counts bool) {
	frame := ceremonyFrame{id: r.id, round: round, msg: msg}.encode()
	for _, p := range r.order {
		if p == r.self || r.isAbsent(p) {
			continue
		}
		wg.Go(func() { c.deliver(ctx, r, p, round, frame, counts && len(msg) > 0) })
	}
}

// deliver sends one message to p until p takes it, refuses it, or ctx
// ends. A message p did not take although it said something means p
// stepped without it: this centre's view is no longer p's.
func (c *Ceremonies) deliver(ctx context.Context, r *ceremonyRun, p peer.ID, round int, frame []byte, said bool) {
	backoff := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, ceremonyDeliverLimit)
		answer, err := wire.Ask(actx, c.h, CeremonyProtocolID, p, ceremonyOpMessage, frame, maxCeremonyReason, maxCeremonyReason)
		cancel()
		var refused *wire.Refused
		switch {
		case err == nil && len(answer) == 0:
			return
		case errors.As(err, &refused):
			c.log.Info("ceremony message refused", "to", p, "round", round, "reason", refused.Reason)
			if said {
				r.diverged(fmt.Errorf("oprf ceremony: %w: %s refused this centre's round %d message (%s): it went on without it; run the ceremony again, every participant starting within the first round's wait",
					ErrCeremony, p, round, refused.Reason))
			}
			return
		}
		// Not taken (unreachable, too slow, or a participant not started
		// yet): tried again until ctx ends, when the run reports it.
		c.log.Debug("ceremony message not delivered", "to", p, "round", round, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if r.isAbsent(p) {
			return // it missed the first round: it will not step on this
		}
		backoff = min(2*backoff, time.Second)
	}
}

// ceremonyRun is one ceremony in progress on this centre.
type ceremonyRun struct {
	id     CeremonyID
	self   peer.ID
	order  []peer.ID        // every participant, sorted: the transcript's order
	others map[peer.ID]bool // every participant but this centre

	mu      sync.Mutex
	round   int                        // the round being collected
	absent  map[peer.ID]bool           // sent nothing in the first round
	inbox   map[int]map[peer.ID][]byte // this round's and the next's, by sender
	wake    chan struct{}              // a message came
	diverge error                      // why this centre's view is not the others'
}

// accept keeps from's message of round, or says why not.
func (r *ceremonyRun) accept(from peer.ID, round int, msg []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !r.others[from]:
		return nil, refuseCeremony(ceremonyRefused, "not a participant of this ceremony")
	case r.absent[from]:
		return nil, refuseCeremony(ceremonyLate, "absent from the first round")
	case round < r.round:
		return nil, refuseCeremony(ceremonyLate, "round %d is over here", round)
	case round > r.round+1:
		return []byte{ceremonyEarly}, nil
	}
	box := r.inbox[round]
	if box == nil {
		box = map[peer.ID][]byte{}
		r.inbox[round] = box
	}
	if have, ok := box[from]; ok {
		if !bytes.Equal(have, msg) {
			return nil, refuseCeremony(ceremonyRefused, "another message for round %d, which was given already", round)
		}
		return nil, nil
	}
	box[from] = bytes.Clone(msg)
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil, nil
}

func (r *ceremonyRun) isAbsent(p peer.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.absent[p]
}

func (r *ceremonyRun) diverged(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.diverge == nil {
		r.diverge = err
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// collect waits until every other present participant's message of round
// came, or wait passed, then closes the round and returns its messages
// by sender (empty ones included). Participants silent in the first
// round are absent from then on.
func (r *ceremonyRun) collect(ctx context.Context, round int, wait time.Duration) (map[peer.ID][]byte, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
wait:
	for !r.complete(round) {
		select {
		case <-r.wake:
		case <-timer.C:
			break wait
		case <-ctx.Done():
			return nil, fmt.Errorf("oprf ceremony: round %d: %w", round, ctx.Err())
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.diverge != nil {
		return nil, r.diverge
	}
	box := r.inbox[round]
	delete(r.inbox, round)
	if round == 1 {
		for p := range r.others {
			if _, ok := box[p]; !ok {
				r.absent[p] = true
				delete(r.inbox[2], p)
			}
		}
	}
	r.round = round + 1
	return box, nil
}

func (r *ceremonyRun) complete(round int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.diverge != nil {
		return true
	}
	box := r.inbox[round]
	for p := range r.others {
		if _, ok := box[p]; !ok && !r.absent[p] {
			return false
		}
	}
	return true
}

// record adds a round to the transcript: every participant's message in
// order, this centre's own included; one that said nothing and one that
// was absent are the same to the state machines, and here.
func (r *ceremonyRun) record(h hash.Hash, round int, own []byte, got map[peer.ID][]byte) {
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(round)))
	var b []byte
	for i, p := range r.order {
		m := got[p]
		if p == r.self {
			m = own
		}
		b = binary.BigEndian.AppendUint16(b[:0], uint16(i))
		b = binary.BigEndian.AppendUint32(b, uint32(len(m)))
		h.Write(b)
		h.Write(m)
	}
}
