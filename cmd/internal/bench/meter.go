package bench

import (
	"context"
	"encoding/binary"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/medfed/medfed/directory"
	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/query"
)

// A meter counts what one centre of a simulation sends the others, by
// class of message; the federation's figures are the sum over its
// centres. It sits where every medfed protocol (and kad-dht) opens its
// streams, the host's NewStream (meteredHost), and counts on the
// opener's side only, so that each byte is counted once:
//   - a message is one request the opener writes: for medfed's protocols,
//     one frame on a stream of its own (node/wire), so messages = streams
//     opened; for Kademlia, one RPC on the streams kad-dht keeps open and
//     reuses, so there messages are the RPCs, not the streams;
//   - its bytes are what the opener writes and what it reads back, the
//     answer included: the payload, without multistream-select's header
//     (about 40 bytes each way per stream) or the framing of a security
//     and muxer layer, which mocknet does not have.
//
// The class is the protocol and the request's kind: for medfed's
// one-request protocols the operation (the frame's first byte), for
// Kademlia the message type; any other protocol (gossip, should one be
// added) is a class of its own. libp2p's own identify and ping, which the
// host runs without asking anyone, are not counted.
type meter struct {
	mu      sync.Mutex
	classes map[string]*traffic
}

// traffic is one class's counters.
type traffic struct {
	streams, messages, bytes atomic.Int64
}

func newMeter() *meter { return &meter{classes: map[string]*traffic{}} }

func (m *meter) class(name string) *traffic {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.classes[name]
	if !ok {
		t = &traffic{}
		m.classes[name] = t
	}
	return t
}

// counts is a class's figures at one moment, or between two.
type counts struct {
	Streams, Messages, Bytes int64
}

func (c counts) plus(d counts) counts {
	return counts{c.Streams + d.Streams, c.Messages + d.Messages, c.Bytes + d.Bytes}
}

// tally is every class's counts.
type tally map[string]counts

func (m *meter) snapshot() tally {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := make(tally, len(m.classes))
	for name, c := range m.classes {
		t[name] = counts{c.streams.Load(), c.messages.Load(), c.bytes.Load()}
	}
	return t
}

// since returns what was counted after earlier.
func (t tally) since(earlier tally) tally {
	out := tally{}
	for name, c := range t {
		e := earlier[name]
		if d := (counts{c.Streams - e.Streams, c.Messages - e.Messages, c.Bytes - e.Bytes}); d != (counts{}) {
			out[name] = d
		}
	}
	return out
}

// sum adds up the classes that match.
func (t tally) sum(match func(class string) bool) counts {
	var c counts
	for name, n := range t {
		if match(name) {
			c = c.plus(n)
		}
	}
	return c
}

// names returns the classes, sorted.
func (t tally) names() []string { return slices.Sorted(maps.Keys(t)) }

// The classes of medfed's one-request protocols, by protocol and
// operation. The operations are the packages' own (unexported) codes;
// one missing here is counted as protocol#code.
var wireProtocols = map[protocol.ID]struct {
	short string
	ops   map[byte]string
}{
	federation.ProtocolID:        {"charter", map[byte]string{1: "chain", 2: "propose", 3: "adopt"}},
	federation.WitnessProtocolID: {"witness", map[byte]string{1: "add", 2: "views", 3: "prove", 4: "held", 5: "mirror", 6: "mirror-read"}},
	consent.ProtocolID:           {"consent", map[byte]string{1: "push", 2: "sync", 3: "stop", 4: "lease", 5: "notify", 6: "erasures"}},
	query.ProtocolID:             {"query", map[byte]string{1: "query", 2: "receipt"}},
	directory.WithdrawProtocolID: {"withdraw", map[byte]string{1: "withdraw"}},
}

// kadProtocol is the directory's Kademlia protocol.
const kadProtocol = protocol.ID(directory.ProtocolPrefix + "/kad/1.0.0")

// kadTypes names Kademlia's message types (pb.Message_MessageType).
var kadTypes = map[uint64]string{0: "PUT_VALUE", 1: "GET_VALUE", 2: "ADD_PROVIDER", 3: "GET_PROVIDERS", 4: "FIND_NODE", 5: "PING"}

// classOf names the class of a request p written on a stream of proto.
func classOf(proto protocol.ID, p []byte) string {
	if w, ok := wireProtocols[proto]; ok {
		if len(p) == 0 {
			return w.short
		}
		if op, ok := w.ops[p[0]]; ok {
			return w.short + "/" + op
		}
		return w.short + "#" + strconv.Itoa(int(p[0]))
	}
	if proto == kadProtocol {
		// A varint-delimited protobuf whose first field, when the type is
		// not 0, is field 1 (the type) as a varint: tag 0x08.
		_, n := binary.Uvarint(p)
		if n <= 0 {
			return "kad/other"
		}
		if n >= len(p) || p[n] != 0x08 {
			return "kad/" + kadTypes[0]
		}
		t, k := binary.Uvarint(p[n+1:])
		if name, ok := kadTypes[t]; ok && k > 0 {
			return "kad/" + name
		}
		return "kad/other"
	}
	return string(proto)
}

// isKad, isProtocol and isOther sort classes by protocol.
func isKad(class string) bool { return strings.HasPrefix(class, "kad/") }

func isProtocol(short string) func(string) bool {
	return func(class string) bool {
		return class == short || strings.HasPrefix(class, short+"/") || strings.HasPrefix(class, short+"#")
	}
}

// isOther is a class of a protocol that is neither medfed's one-request
// protocols nor Kademlia: gossip, should membership use it.
func isOther(class string) bool {
	if isKad(class) {
		return false
	}
	for _, w := range wireProtocols {
		if isProtocol(w.short)(class) {
			return false
		}
	}
	return true
}

// meteredHost is a host whose streams the meter counts, and whose
// streams, those it opens and those it answers, keep their link's
// latency (latentStream).
type meteredHost struct {
	host.Host
	m  *meter
	cm connmgr.ConnManager // nil: the host's own
}

// ConnManager is the one the host was given, if any: mocknet's hosts
// take none, so the simulation keeps its own beside (openSimCentre).
func (h meteredHost) ConnManager() connmgr.ConnManager {
	if h.cm != nil {
		return h.cm
	}
	return h.Host.ConnManager()
}

var _ host.Host = meteredHost{}

func (h meteredHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	proto := s.Protocol()
	if proto == "" && len(pids) > 0 {
		proto = pids[0]
	}
	return &meteredStream{Stream: &latentStream{Stream: s}, m: h.m, proto: proto}, nil
}

func (h meteredHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, func(s network.Stream) { handler(&latentStream{Stream: s}) })
}

func (h meteredHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, match, func(s network.Stream) { handler(&latentStream{Stream: s}) })
}

// latentStream keeps its link's latency when it is closed. A mocknet
// stream delays each write by the link's latency, but hands over what it
// still holds at once when it is closed, and it holds every write of
// under 256 bytes until its time comes: a request written and closed
// (every medfed protocol's), or an answer written and closed, would
// arrive at once. So a close waits until the last write is due.
type latentStream struct {
	network.Stream

	mu      sync.Mutex
	latency time.Duration // the link's, 0 until the first write
	due     time.Time     // when the last write arrives
}

func (s *latentStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	if s.latency == 0 {
		s.latency = linkLatency(s.Conn().LocalPeer(), s.Conn().RemotePeer())
	}
	s.due = time.Now().Add(s.latency)
	s.mu.Unlock()
	return s.Stream.Write(p)
}

// wait waits until the last write is due.
func (s *latentStream) wait() {
	s.mu.Lock()
	d := time.Until(s.due)
	s.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
}

func (s *latentStream) CloseWrite() error {
	s.wait()
	return s.Stream.CloseWrite()
}

func (s *latentStream) Close() error {
	s.wait()
	return s.Stream.Close()
}

// meteredStream counts a stream the host opened: each write is a request
// of the class classOf names, the first one opening the stream, and each
// read is the answer to the last request written.
type meteredStream struct {
	network.Stream
	m     *meter
	proto protocol.ID

	mu     sync.Mutex
	opened bool
	last   *traffic // the class of the last request written

	// A Kademlia stream may carry many messages in one write (the
	// directory's placement writes a replica's records back to back),
	// and a message may span two: the bytes of the message being
	// written still to come, and the start of one whose header (length
	// and type) is not all written yet.
	pending int
	head    []byte
}

func (s *meteredStream) Write(p []byte) (int, error) {
	if s.proto == kadProtocol {
		s.mu.Lock()
		s.countKad(p)
		s.mu.Unlock()
		return s.Stream.Write(p)
	}
	t := s.m.class(classOf(s.proto, p))
	s.mu.Lock()
	if !s.opened {
		s.opened = true
		t.streams.Add(1)
	}
	s.last = t
	s.mu.Unlock()
	t.messages.Add(1)
	n, err := s.Stream.Write(p)
	t.bytes.Add(int64(n))
	return n, err
}

func (s *meteredStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	if n > 0 {
		s.mu.Lock()
		t := s.last
		s.mu.Unlock()
		if t == nil {
			t = s.m.class(string(s.proto) + " (read first)")
		}
		t.bytes.Add(int64(n))
	}
	return n, err
}

// countKad counts the Kademlia messages in p, each varint-delimited, of
// the class its type names. Called with s.mu held.
func (s *meteredStream) countKad(p []byte) {
	for len(p) > 0 {
		if s.pending > 0 {
			k := min(s.pending, len(p))
			s.last.bytes.Add(int64(k))
			s.pending -= k
			p = p[k:]
			continue
		}
		hdr := p
		if len(s.head) > 0 {
			hdr = append(s.head, p[:min(len(p), 16)]...)
		}
		l, n := binary.Uvarint(hdr)
		switch {
		case n < 0:
			t := s.m.class("kad/other")
			t.messages.Add(1)
			t.bytes.Add(int64(len(s.head) + len(p)))
			s.head, s.last = nil, t
			return
		case n == 0 || len(hdr) < n+min(int(l), 2): // the length and the type's tag and value are not all here
			s.head = slices.Clone(hdr)
			return
		}
		t := s.m.class(classOf(kadProtocol, hdr))
		if !s.opened {
			s.opened = true
			t.streams.Add(1)
		}
		t.messages.Add(1)
		t.bytes.Add(int64(len(s.head)))
		s.pending = n + int(l) - len(s.head)
		s.head, s.last = nil, t
	}
}
