package federation

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// A witness keeps, besides the checkpoint it last cosigned of each log, a
// mirror of the log's entries up to it, sealed by the log's centre to
// itself (AES-256-GCM under a key only that centre derives): the witness
// holds no clear text, and answers a mirror read from the log's own
// centre alone. After a checkpoint is final, the publisher sends each
// witness that cosigned it the entries it lacks (opMirror); a centre
// restored from an old backup reads them back (FetchMirror) and appends
// them as they were (ledger.Recover), so that nothing it acknowledged is
// lost and its root meets the cosigned checkpoint again.
const (
	// opMirror: u64 start, u64 count, then the sealed chunk; the answer
	// is a u64: where the witness's mirror of the asker's log ends once
	// the chunk is in (a chunk that does not start there is not kept).
	opMirror byte = 5
	// opMirrorRead: u64 from; the answer is the chunks of the asker's
	// own log from that index on, each u64 start, u64 count, u32 length
	// and the sealed chunk, up to about maxMirrorRead bytes.
	opMirrorRead byte = 6

	maxMirrorEntries = 512     // entries in one chunk
	maxMirrorBlob    = 1 << 19 // sealed bytes in one chunk
	maxMirrorRead    = 768 << 10
	mirrorPerRound   = 8 // chunks sent to one witness per publishing round
)

// MirrorSealer seals a centre's ledger entries for its witnesses' mirrors
// and opens them again.
type MirrorSealer struct {
	aead   cipher.AEAD
	origin string
}

// NewMirrorSealer returns the sealer of the log origin under key, 32
// bytes that only the log's centre can derive.
func NewMirrorSealer(key []byte, origin string) (*MirrorSealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("mirror sealer: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("mirror sealer: %w", err)
	}
	return &MirrorSealer{aead: aead, origin: origin}, nil
}

// ad binds a sealed chunk to its log and place in it.
func (s *MirrorSealer) ad(start, count int64) []byte {
	var w wire.Writer
	w.Str(s.origin)
	w.U64(uint64(start))
	w.U64(uint64(count))
	return w.B
}

// Seal seals the encodings of the entries from start.
func (s *MirrorSealer) Seal(start int64, encs [][]byte) (ledger.MirrorChunk, error) {
	// One buffer: the nonce, then the entries, sealed in place.
	n, size := s.aead.NonceSize(), 0
	for _, e := range encs {
		size += 4 + len(e)
	}
	w := wire.Writer{B: make([]byte, n, n+size+s.aead.Overhead())}
	if _, err := rand.Read(w.B); err != nil {
		return ledger.MirrorChunk{}, err
	}
	for _, e := range encs {
		w.Blob(e)
	}
	count := int64(len(encs))
	// The ciphertext overwrites the plaintext exactly, as crypto/tls seals
	// a record after its header: the AEAD refuses only an inexact overlap.
	return ledger.MirrorChunk{Start: start, Count: count, Blob: s.aead.Seal(w.B[:n], w.B[:n], w.B[n:], s.ad(start, count))}, nil
}

// Open returns the entries' encodings sealed in c, each checked to be the
// entry at its index.
func (s *MirrorSealer) Open(c ledger.MirrorChunk) ([][]byte, error) {
	n := s.aead.NonceSize()
	if len(c.Blob) < n {
		return nil, fmt.Errorf("%w: a mirror chunk of %d bytes", node.ErrInvalid, len(c.Blob))
	}
	plain, err := s.aead.Open(nil, c.Blob[:n], c.Blob[n:], s.ad(c.Start, c.Count))
	if err != nil {
		return nil, fmt.Errorf("%w: a mirror chunk of %s from %d does not open: %w", ledger.ErrRecovered, s.origin, c.Start, err)
	}
	r := wire.NewReader(plain, "mirror chunk")
	var out [][]byte
	for r.Len() > 0 && r.Err() == nil {
		b := r.Blob("entry", ledger.MaxEntrySize)
		if r.Err() != nil {
			break
		}
		e, err := ledger.Decode(b)
		if err != nil {
			return nil, err
		}
		if e.Index != c.Start+int64(len(out)) {
			return nil, fmt.Errorf("%w: entry %d in the mirror chunk from %d", ledger.ErrRecovered, e.Index, c.Start)
		}
		out = append(out, b)
	}
	if r.Err() != nil {
		return nil, r.Err()
	}
	if int64(len(out)) != c.Count {
		return nil, fmt.Errorf("%w: a mirror chunk of %d entries holds %d", ledger.ErrRecovered, c.Count, len(out))
	}
	return out, nil
}

// Mirrors is what a witness keeps its mirrors in.
type Mirrors interface {
	AddMirror(ctx context.Context, origin string, c ledger.MirrorChunk) (int64, error)
	MirrorChunks(ctx context.Context, origin string, from int64, maxBytes int) ([]ledger.MirrorChunk, error)
}

// originOf returns the origin of member from's log.
func (w *Witness) originOf(from peer.ID) (string, error) {
	c := w.charter()
	m, ok := c.Member(from)
	if !ok {
		return "", fmt.Errorf("%w: %s is not a member", ErrUnknownLog, from)
	}
	return ledger.Origin(c.Federation, m.Name), nil
}

// serveMirror keeps a chunk of member from's log.
func (w *Witness) serveMirror(ctx context.Context, from peer.ID, body []byte) ([]byte, error) {
	origin, err := w.originOf(from)
	if err != nil {
		return nil, err
	}
	r := wire.NewReader(body, "mirror chunk")
	c := ledger.MirrorChunk{Start: int64(r.U64("start")), Count: int64(r.U64("count"))}
	c.Blob = r.Take(r.Len(), "sealed entries")
	if r.Err() != nil {
		return nil, r.Err()
	}
	if c.Count > maxMirrorEntries || len(c.Blob) > maxMirrorBlob {
		return nil, protocolError("a mirror chunk of %d entries, %d bytes", c.Count, len(c.Blob))
	}
	end, err := w.state.AddMirror(ctx, origin, c)
	if err != nil && !errors.Is(err, ledger.ErrMirrorGap) {
		return nil, err
	}
	// Kept, or not where the mirror ends: the answer says where it does.
	var out wire.Writer
	out.U64(uint64(end))
	return out.B, nil
}

// serveMirrorRead returns member from's own mirrored chunks.
func (w *Witness) serveMirrorRead(ctx context.Context, from peer.ID, body []byte) ([]byte, error) {
	origin, err := w.originOf(from)
	if err != nil {
		return nil, err
	}
	r := wire.NewReader(body, "mirror read")
	at := int64(r.U64("from"))
	r.End("mirror read")
	if r.Err() != nil {
		return nil, r.Err()
	}
	chunks, err := w.state.MirrorChunks(ctx, origin, at, maxMirrorRead)
	if err != nil {
		return nil, err
	}
	return encodeChunks(chunks), nil
}

func encodeChunks(chunks []ledger.MirrorChunk) []byte {
	var w wire.Writer
	for _, c := range chunks {
		w.U64(uint64(c.Start))
		w.U64(uint64(c.Count))
		w.Blob(c.Blob)
	}
	return w.B
}

// decodeChunks parses a mirror read's answer: chunks in order, without a
// gap, the first holding index from.
func decodeChunks(b []byte, from int64) ([]ledger.MirrorChunk, error) {
	var out []ledger.MirrorChunk
	r := wire.NewReader(b, "mirror read answer")
	for r.Len() > 0 {
		c := ledger.MirrorChunk{Start: int64(r.U64("start")), Count: int64(r.U64("count"))}
		c.Blob = r.Blob("sealed entries", maxMirrorBlob)
		if r.Err() != nil {
			return nil, r.Err()
		}
		switch {
		case c.Count <= 0 || c.Count > maxMirrorEntries || c.Start < 0:
			return nil, protocolError("a mirror chunk of %d entries from %d", c.Count, c.Start)
		case len(out) == 0 && (c.Start > from || c.Start+c.Count <= from):
			return nil, protocolError("a mirror read from %d answered from %d", from, c.Start)
		case len(out) > 0 && c.Start != out[len(out)-1].Start+out[len(out)-1].Count:
			return nil, protocolError("a gap in the mirror at %d", c.Start)
		}
		out = append(out, c)
	}
	return out, nil
}

// FetchMirror reads what witness w mirrors of this centre's log from
// index from on: some chunks, in order (fewer than all when there are
// many: ask again from where they end).
func FetchMirror(ctx context.Context, h host.Host, w peer.ID, from int64) ([]ledger.MirrorChunk, error) {
	var req wire.Writer
	req.U64(uint64(from))
	b, err := askOn(ctx, h, WitnessProtocolID, w, opMirrorRead, req.B)
	if err != nil {
		return nil, err
	}
	return decodeChunks(b, from)
}

// mirror sends witness w the entries it lacks up to size, at most
// mirrorPerRound chunks, and remembers where its mirror ends.
func (p *Publisher) mirror(ctx context.Context, w peer.ID, size int64) error {
	p.mu.Lock()
	start := p.mirrored[w]
	p.mu.Unlock()
	for range mirrorPerRound {
		if start >= size {
			return nil
		}
		es, err := p.ledger.Entries(ctx, start, min(size, start+maxMirrorEntries))
		if err != nil {
			return err
		}
		var encs [][]byte
		bytes := 0
		for _, e := range es {
			b, err := e.Encode()
			if err != nil {
				return err
			}
			if len(encs) > 0 && bytes+len(b) > maxMirrorBlob-1024 {
				break
			}
			encs, bytes = append(encs, b), bytes+len(b)+4
		}
		c, err := p.sealer.Seal(start, encs)
		if err != nil {
			return err
		}
		var req wire.Writer
		req.U64(uint64(c.Start))
		req.U64(uint64(c.Count))
		req.Bytes(c.Blob)
		answer, err := askOn(ctx, p.host, WitnessProtocolID, w, opMirror, req.B)
		if err != nil {
			return err
		}
		if len(answer) != 8 {
			return protocolError("a mirror answer of %d bytes", len(answer))
		}
		start = int64(binary.BigEndian.Uint64(answer))
		p.mu.Lock()
		p.mirrored[w] = start
		p.mu.Unlock()
	}
	return nil
}
