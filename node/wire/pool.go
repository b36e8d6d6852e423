package wire

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// A Pool asks a protocol's requests on streams it keeps open between
// them, one request at a time on each: opening a stream (yamux's frames,
// multistream-select, a handler started at the peer) is three quarters
// of a small exchange's CPU over libp2p, and a kept stream pays it once
// rather than once per request. The peer serves the kept protocol with
// Server.HandleKept; a peer that speaks only the other (one request a
// stream) is asked as Ask asks, on a stream of its own.
//
// A request must be safe to send twice: a kept stream that breaks before
// any of the answer arrives is replaced and the request sent again
// (Exchange), and the peer may have served it the first time. The query
// protocol's are: a query carries a nonce its holder keeps (a repeat is
// refused as a replay), and a receipt records each copy once.
type Pool struct {
	host      host.Host
	kept, one protocol.ID

	mu     sync.Mutex
	free   map[peer.ID][]freeStream // the most recently used last
	swept  time.Time                // when every peer's stale streams were last closed
	closed bool
}

type freeStream struct {
	s     network.Stream
	since time.Time
}

const (
	// keptIdle is how long a stream stays free before it is closed rather
	// than used again: well within a Server's Idle, how long it waits for
	// the next request (4 times as long unless set).
	keptIdle = 5 * time.Second
	// keptFree is how many free streams are kept to each peer: as many
	// as the requests a busy centre has in flight to one peer at once
	// (tens of queries, a third of them to each holder), so that a burst
	// does not open streams the next one could have used; beyond, a
	// stream costs the peer a handler for nothing.
	keptFree = 16
)

// NewPool returns a pool asking peers through h on protocol kept, or one
// when a peer does not speak kept.
func NewPool(h host.Host, kept, one protocol.ID) *Pool {
	return &Pool{host: h, kept: kept, one: one, free: map[peer.ID][]freeStream{}}
}

// Ask sends one request to peer to and returns the answer's payload, as
// Ask does; the context bounds it.
func (p *Pool) Ask(ctx context.Context, to peer.ID, op byte, payload []byte, limit, maxReason int) ([]byte, error) {
	status, answer, err := p.Exchange(ctx, to, op, payload, limit)
	return answerOf(status, answer, err, maxReason)
}

// Exchange sends one request frame to peer to and returns the answer
// frame, as Exchange does. A free stream that fails before any of the
// answer arrives (the peer closed it, or its connection) is dropped and
// the request sent once more on a new stream: the peer read none of it, or
// answers a repeat as it answers a replay.
func (p *Pool) Exchange(ctx context.Context, to peer.ID, op byte, payload []byte, limit int) (byte, []byte, error) {
	if s := p.take(to); s != nil {
		status, answer, began, err := p.exchange(ctx, to, s, op, payload, limit)
		dl, ok := ctx.Deadline()
		if err == nil || began || ctx.Err() != nil || (ok && !time.Now().Before(dl)) {
			return status, answer, err
		}
	}
	s, err := p.host.NewStream(ctx, to, p.kept, p.one)
	if err != nil {
		return 0, nil, err
	}
	if s.Protocol() != p.kept {
		return once(ctx, s, op, payload, limit)
	}
	status, answer, _, err := p.exchange(ctx, to, s, op, payload, limit)
	return status, answer, err
}

// exchange asks on kept stream s and, when the answer came whole, frees
// it for the next request; began is whether any of the answer arrived.
func (p *Pool) exchange(ctx context.Context, to peer.ID, s network.Stream, op byte, payload []byte, limit int) (status byte, answer []byte, began bool, err error) {
	dl, _ := ctx.Deadline() // none: the zero time, no deadline
	if err := s.SetDeadline(dl); err != nil {
		s.Reset()
		return 0, nil, false, err
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	r := &countingReader{r: s}
	if err = Write(s, op, payload); err == nil {
		status, answer, err = Read(r, limit)
	}
	if !stop() { // ctx ended: the stream is reset, the answer kept if whole
		if err != nil {
			err = errors.Join(err, ctx.Err())
		}
		return status, answer, r.n > 0, err
	}
	if err == nil {
		err = s.SetDeadline(time.Time{})
	}
	if err != nil {
		s.Reset()
		if ctx.Err() != nil {
			err = errors.Join(err, ctx.Err())
		}
		return 0, nil, r.n > 0, err
	}
	p.put(to, s)
	return status, answer, true, nil
}

// take returns the most recently freed stream to peer to, closing those
// free longer than keptIdle; nil when there is none.
func (p *Pool) take(to peer.ID) network.Stream {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeStale(to, time.Now())
	free := p.free[to]
	if len(free) == 0 {
		return nil
	}
	s := free[len(free)-1].s
	p.free[to] = free[:len(free)-1]
	return s
}

// put frees s for the next request to peer to, or closes it when the
// pool is closed or keeps keptFree streams to that peer already. Once
// every keptIdle, the stale streams to every peer are closed: a peer
// asked once and never again would keep them, and their handlers at the
// peer, until Close.
func (p *Pool) put(to peer.ID, s network.Stream) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.swept) > keptIdle {
		for q := range p.free {
			p.closeStale(q, now)
		}
		p.swept = now
	}
	if p.closed || len(p.free[to]) >= keptFree {
		s.Close()
		return
	}
	p.free[to] = append(p.free[to], freeStream{s: s, since: now})
}

// closeStale closes the streams to q free longer than keptIdle. p.mu is
// held.
func (p *Pool) closeStale(q peer.ID, now time.Time) {
	free := p.free[q]
	stale := 0
	for stale < len(free) && now.Sub(free[stale].since) > keptIdle {
		free[stale].s.Close()
		stale++
	}
	if stale == len(free) {
		delete(p.free, q)
	} else {
		p.free[q] = free[stale:]
	}
}

// Close closes every free stream; streams in use are closed as their
// requests end.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for to, free := range p.free {
		for _, f := range free {
			f.s.Close()
		}
		delete(p.free, to)
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}
