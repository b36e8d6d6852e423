package pseudonym

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gtank/ristretto255"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Floor measures what pseudonyms cost in group operations alone, on every
// core of this process: the rate that the protocol's arithmetic allows on
// this machine, and so the most the network protocol could reach. It runs
// the work of a holder asking for n pseudonyms, in chunks of chunk, with a
// fresh 2-of-3 key held in memory: for each chunk, blinding (hash to the
// group, r·G), the other holder's evaluation and proof (a decode, a scalar
// multiplication per element and the batch's DLEQ proof), the check of that
// proof, the combination with its own part (a two-term multiplication per
// element) and the output hash. What it leaves out is what the protocol
// adds around that: framing, the stream, the evaluator's ledger entry and
// rate limit. It returns pseudonyms per second.
func Floor(n, chunk int) (float64, error) {
	if n <= 0 || chunk <= 0 || chunk > MaxBatch {
		return 0, fmt.Errorf("pseudonym floor: %d pseudonyms in chunks of %d: want both positive, chunks at most %d", n, chunk, MaxBatch)
	}
	keys, shares, err := floorKeys()
	if err != nil {
		return 0, err
	}
	// The asking holder is share 1; share 2 answers. The set and the
	// folded key are fixed for a run, as an evaluator caches them.
	set := []int{1, 2}
	asker := &Client{keys: keys, share: shares[0]}
	other := foldedKey{k: shares[1].folded(set), pkEnc: keys.foldedPublic(set, 2).Bytes()}
	otherPub := keys.foldedPublic(set, 2)
	remote := []Holder{keys.Holders[1]}
	inputs := make([][]byte, n)
	for i := range inputs {
		inputs[i] = fmt.Appendf(nil, "medfed pseudonym floor %d", i)
	}

	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	start := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			outs := make([][64]byte, chunk)
			for from := int(next.Add(int64(chunk))) - chunk; from < n; from = int(next.Add(int64(chunk))) - chunk {
				in := inputs[from:min(from+chunk, n)]
				if err := floorChunk(asker, other, otherPub, set, remote, in, outs[:len(in)]); err != nil {
					mu.Lock()
					first = errors.Join(first, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return 0, fmt.Errorf("pseudonym floor: %w", first)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// floorChunk is one chunk of Floor: the client's and the evaluator's
// arithmetic, as Client.chunk and Evaluator.serve do it, with the
// encodings that cross between them.
func floorChunk(asker *Client, other foldedKey, otherPub *ristretto255.Element, set []int, remote []Holder, inputs [][]byte, outs [][64]byte) error {
	b, err := voprf.blindAdd(inputs)
	if err != nil {
		return err
	}
	// The evaluator decodes what arrives, as it would from the wire.
	served := batch{blindedEnc: b.enc, blinded: make([]*ristretto255.Element, len(b.enc))}
	for i, enc := range b.enc {
		if served.blinded[i], err = decodeElement(enc); err != nil {
			return err
		}
	}
	answer, err := b.check(otherPub, other.evaluate(served))
	if err != nil {
		return err
	}
	asker.combine(set, remote, b, [][]*ristretto255.Element{answer}, inputs, outs)
	for i := range outs {
		_ = derive(asker.keys.Federation, outs[i])
	}
	return nil
}

// floorKeys deals a 2-of-3 key in memory, without sealing the shares: the
// floor's, never a federation's.
func floorKeys() (*Keys, []*Share, error) {
	poly := []*ristretto255.Scalar{randomScalar(), randomScalar()}
	var pub Public
	copy(pub.Key[:], ristretto255.NewIdentityElement().ScalarBaseMult(poly[0]).Bytes())
	var shares []*Share
	for index := 1; index <= 3; index++ {
		k := evalPoly(poly, index)
		h := Holder{Index: index, ID: peer.ID(fmt.Sprintf("floor-holder-%d", index))}
		copy(h.Public[:], ristretto255.NewIdentityElement().ScalarBaseMult(k).Bytes())
		pub.Holders = append(pub.Holders, h)
		shares = append(shares, &Share{Federation: "medfed-floor", Index: index, k: k})
	}
	keys, err := NewKeys("medfed-floor", 2, pub)
	if err != nil {
		return nil, nil, err
	}
	return keys, shares, nil
}
