package pseudonym

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gtank/ristretto255"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/ledger"
)

// countingAudit records what an evaluator's ledger would: requester and
// count per batch.
type countingAudit struct {
	mu      sync.Mutex
	batches []auditEntry
}

type auditEntry struct {
	from peer.ID
	n    int
}

func (a *countingAudit) Evaluated(_ context.Context, from peer.ID, n int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.batches = append(a.batches, auditEntry{from, n})
	return nil
}

func (a *countingAudit) total(from peer.ID) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, b := range a.batches {
		if b.from == from {
			n += b.n
		}
	}
	return n
}

// testCentre is one centre of a test federation: a real libp2p host on
// 127.0.0.1, its key, and (for holders) its share and evaluator.
type testCentre struct {
	name  string
	key   ed25519.PrivateKey
	host  host.Host
	share *Share
	eval  *Evaluator
	audit *countingAudit
}

// testFederation founds a federation of n centres on loopback, the first
// holders of them holding shares of a t-of-holders key dealt the way
// founding deals it, and returns the centres and the keys.
func testFederation(t testing.TB, n, holders, threshold, limit int) ([]*testCentre, *Keys) {
	t.Helper()
	centres := make([]*testCentre, n)
	var to []Recipient
	names := map[peer.ID]string{}
	for i := range centres {
		seed := sha256.Sum256(fmt.Appendf(nil, "centre %d", i))
		key := ed25519.NewKeyFromSeed(seed[:])
		sk, err := crypto.UnmarshalEd25519PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		h, err := libp2p.New(libp2p.Identity(sk), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		c := &testCentre{name: fmt.Sprintf("centre-%c", 'a'+i), key: key, host: h, audit: &countingAudit{}}
		centres[i] = c
		names[h.ID()] = c.name
		if i < holders {
			to = append(to, Recipient{ID: h.ID()})
		}
	}
	for _, a := range centres {
		for _, b := range centres {
			if a != b {
				a.host.Peerstore().AddAddrs(b.host.ID(), b.host.Addrs(), time.Hour)
			}
		}
	}
	pub, sealed, err := Deal("test-fed", threshold, to)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := NewKeys("test-fed", threshold, pub)
	if err != nil {
		t.Fatal(err)
	}
	member := func(id peer.ID) (string, bool) { name, ok := names[id]; return name, ok }
	for _, c := range centres[:holders] {
		if c.share, err = Open(keys, sealed, c.key); err != nil {
			t.Fatal(err)
		}
		c.eval, err = NewEvaluator(c.host, keys, c.share, EvaluatorOptions{
			Member: member, Audit: c.audit, Limit: limit, Window: time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.eval.Close)
	}
	return centres, keys
}

func (c *testCentre) client(t testing.TB, keys *Keys, centres []*testCentre) *Client {
	t.Helper()
	names := map[peer.ID]string{}
	for _, o := range centres {
		names[o.host.ID()] = o.name
	}
	cl, err := NewClient(c.host, keys, c.share, ClientOptions{
		Member: func(id peer.ID) (string, bool) { name, ok := names[id]; return name, ok },
		Chunk:  64, Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func testIdentifiers(t testing.TB, n int) []Identifier {
	t.Helper()
	ids := make([]Identifier, n)
	for i := range ids {
		ids[i] = Identifier{System: NHS.URI, Value: fmt.Sprintf("%010d", 1000000000+i)}
	}
	return ids
}

// reference computes pseudonyms with the whole key, interpolated from t
// shares, as a single party would.
func reference(t testing.TB, keys *Keys, shares []*Share, ids []Identifier) []ledger.Pseudonym {
	t.Helper()
	var set []int
	for _, s := range shares {
		set = append(set, s.Index)
	}
	k := ristretto255.NewScalar()
	for _, s := range shares {
		k.Add(k, s.folded(set))
	}
	out := make([]ledger.Pseudonym, len(ids))
	for i, id := range ids {
		o, err := voprf.evaluateDirect(k, id.Input())
		if err != nil {
			t.Fatal(err)
		}
		out[i] = derive(keys.Federation, o)
	}
	return out
}

// Every centre derives the same pseudonyms over the protocol, holder or
// not, and they are the pseudonyms of the single key the shares
// reconstruct; t-1 shares reconstruct a different key, useless.
func TestThresholdPseudonyms(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	centres, keys := testFederation(t, 4, 3, 2, 1_000_000)
	ids := testIdentifiers(t, 150)
	want := reference(t, keys, []*Share{centres[0].share, centres[2].share}, ids)
	if again := reference(t, keys, []*Share{centres[1].share, centres[2].share}, ids); !slices.Equal(again, want) {
		t.Fatal("two evaluating sets reconstruct different keys")
	}
	if few := reference(t, keys, []*Share{centres[1].share}, ids); slices.Equal(few[:1], want[:1]) {
		t.Fatal("t-1 shares compute the pseudonyms")
	}
	for _, c := range centres { // centre-d holds no share and asks two holders
		got, err := c.client(t, keys, centres).Pseudonyms(ctx, ids)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s derives other pseudonyms than the reconstructed key", c.name)
		}
	}
	// Each holder counted what it evaluated for each requester: a holder
	// asked one other holder per identifier, centre-d asked two.
	for _, r := range centres {
		n := 0
		for _, h := range centres[:3] {
			n += h.audit.total(r.host.ID())
		}
		want := keys.Threshold * len(ids)
		if r.share != nil {
			want -= len(ids)
		}
		if n != want {
			t.Errorf("the holders counted %d evaluations for %s, want %d", n, r.name, want)
		}
	}
}

// A holder that answers with the wrong share is caught by its proof, named,
// and another holder is asked; the pseudonyms are still right.
func TestWrongAnswerIsDetected(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	centres, keys := testFederation(t, 3, 3, 2, 1_000_000)
	ids := testIdentifiers(t, 10)
	want := reference(t, keys, []*Share{centres[0].share, centres[1].share}, ids)

	// centre-b evaluates with a share that is not its own.
	bad := centres[1]
	bad.eval.share = &Share{Federation: keys.Federation, Index: bad.share.Index, k: randomScalar()}
	bad.eval.folded = map[string]foldedKey{}

	// Each call starts at a random holder: call until centre-b was asked
	// (half the calls ask it; twenty calls all missing it is one in a
	// million).
	var logs bytes.Buffer
	for range 20 {
		cl := centres[0].client(t, keys, centres)
		cl.log = newTestLogger(&logs)
		got, err := cl.Pseudonyms(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatal("wrong pseudonyms despite the proof check")
		}
		if logs.Len() > 0 {
			break
		}
	}
	if !strings.Contains(logs.String(), "centre-b") || !strings.Contains(logs.String(), "proof does not verify") {
		t.Fatalf("the log does not name centre-b's wrong answer:\n%s", logs.String())
	}

	// With centre-c gone too, nobody is left: the error names centre-b.
	centres[2].eval.Close()
	_, err := centres[0].client(t, keys, centres).Pseudonyms(ctx, ids)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "centre-b") || !strings.Contains(err.Error(), "proof does not verify") {
		t.Fatalf("error %v: want ErrUnavailable naming centre-b's wrong answer", err)
	}
}

// Past the rate limit a holder refuses with a clear reason and counts
// nothing more; the refused batch is not on its ledger.
func TestRateLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	centres, keys := testFederation(t, 2, 2, 2, 100)
	cl := centres[0].client(t, keys, centres)
	if _, err := cl.Pseudonyms(ctx, testIdentifiers(t, 64)); err != nil {
		t.Fatal(err)
	}
	_, err := cl.Pseudonyms(ctx, testIdentifiers(t, 64))
	var r *Refusal
	if !errors.As(err, &r) || !r.RateLimited() {
		t.Fatalf("error %v: want a rate-limit refusal", err)
	}
	for _, want := range []string{"rate limit", "centre-a", "100", "1h0m0s", "36 available now"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	if n := centres[1].audit.total(centres[0].host.ID()); n != 64 {
		t.Errorf("centre-b counted %d evaluations, want the 64 it performed", n)
	}
}

// recordingStream keeps every byte an evaluator reads.
type recordingStream struct {
	network.Stream
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (s recordingStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	s.mu.Lock()
	s.buf.Write(p[:n])
	s.mu.Unlock()
	return n, err
}

// The bytes that reach the evaluators contain no identifier in any
// encoding we can think of: the value, the OPRF input, their hex, base64
// and hashes, and the unblinded point H(input) the OPRF starts from.
func TestEvaluatorsNeverSeeIdentifiers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	centres, keys := testFederation(t, 3, 3, 2, 1_000_000)
	var mu sync.Mutex
	var seen bytes.Buffer
	for _, c := range centres[1:] {
		e := c.eval
		c.host.SetStreamHandler(ProtocolID, func(s network.Stream) {
			e.handle(recordingStream{Stream: s, mu: &mu, buf: &seen})
		})
	}
	ids := testIdentifiers(t, 200)
	if _, err := centres[0].client(t, keys, centres).Pseudonyms(ctx, ids); err != nil {
		t.Fatal(err)
	}
	wire := seen.Bytes()
	if len(wire) < 200*elementLen {
		t.Fatalf("recorded only %d bytes", len(wire))
	}
	for _, id := range ids {
		in := id.Input()
		h := sha256.Sum256(in)
		forms := [][]byte{
			[]byte(id.Value), in, []byte(hex.EncodeToString(in)), []byte(base64.StdEncoding.EncodeToString(in)),
			[]byte(hex.EncodeToString([]byte(id.Value))), h[:], voprf.hashToGroup(in).Bytes(),
		}
		for _, f := range forms {
			if bytes.Contains(wire, f) {
				t.Fatalf("an evaluator received an encoding of identifier %s", id.Value)
			}
		}
	}
}

func newTestLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// Evaluations spread over the committee: calls of one identifier each,
// from a centre with no share and from a holder, reach every holder, in
// about equal numbers, not the first holders listed.
func TestEvaluationsSpreadOverHolders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	centres, keys := testFederation(t, 6, 5, 2, 1_000_000)
	const calls = 100
	for _, tc := range []struct {
		name  string
		asker *testCentre
		least int // each other holder's evaluations, far below the mean
	}{
		{name: "a centre without a share", asker: centres[5], least: 20}, // two of five per call: a mean of 40
		{name: "a holder", asker: centres[0], least: 10},                 // one of four per call: a mean of 25
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := tc.asker.client(t, keys, centres)
			for i := range calls {
				if _, err := cl.Pseudonyms(ctx, testIdentifiers(t, i+1)[i:]); err != nil {
					t.Fatal(err)
				}
			}
			for _, h := range centres[:5] {
				if h == tc.asker {
					continue
				}
				if n := h.audit.total(tc.asker.host.ID()); n < tc.least {
					t.Errorf("%s evaluated %d of %s's %d calls, want at least %d", h.name, n, tc.asker.name, calls, tc.least)
				}
			}
		})
	}
}
