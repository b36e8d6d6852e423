package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

const witnessTestOrigin = "medfed/test/centre-a"

// testLog is a real ledger that signs checkpoints.
type testLog struct {
	t *testing.T
	l *ledger.Ledger
}

func newTestLog(t *testing.T, key ed25519.PrivateKey) *testLog {
	t.Helper()
	return newTestLogAt(t, key, witnessTestOrigin)
}

func newTestLogAt(t *testing.T, key ed25519.PrivateKey, origin string) *testLog {
	t.Helper()
	l, err := ledger.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"), ledger.Options{Origin: origin, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &testLog{t: t, l: l}
}

// grow appends n charter-kind entries (no patient) and signs a checkpoint.
func (g *testLog) grow(n int, tag string) ledger.SignedCheckpoint {
	g.t.Helper()
	for i := range n {
		if _, err := g.l.Append(context.Background(), ledger.Entry{Kind: ledger.KindCharter, Body: fmt.Appendf(nil, "%s %d", tag, i)}); err != nil {
			g.t.Fatal(err)
		}
	}
	sc, err := g.l.Sign(context.Background())
	if err != nil {
		g.t.Fatal(err)
	}
	return sc
}

func (g *testLog) request(from int64, sc ledger.SignedCheckpoint) AddRequest {
	g.t.Helper()
	p, err := g.l.ProveConsistency(context.Background(), from, sc.Size)
	if err != nil {
		g.t.Fatal(err)
	}
	return AddRequest{OldSize: from, Proof: p, Note: sc.Note}
}

func held(sc ledger.SignedCheckpoint) ledger.Witnessed {
	return ledger.Witnessed{Size: sc.Size, Root: sc.Root, Note: sc.Note}
}

func TestWitnessCosignsOnlyConsistentGrowth(t *testing.T) {
	key := testMemberKey("log")
	honest := newTestLog(t, key)
	cp5 := honest.grow(5, "a")
	cp9 := honest.grow(4, "b")

	// The same key rewrites history: entry 2 differs, then it grows past 9.
	rewriter := newTestLog(t, key)
	rewriter.grow(2, "a")
	rw5 := rewriter.grow(3, "rewritten")
	rw12 := rewriter.grow(7, "c")

	tests := []struct {
		name  string
		prev  ledger.Witnessed
		found bool
		req   AddRequest
		cp    ledger.Checkpoint
		want  error // nil, a sentinel, or a typed error to match with errors.As
	}{
		{"first checkpoint of a log", ledger.Witnessed{}, false, AddRequest{Note: cp5.Note}, cp5.Checkpoint, nil},
		{"consistent growth", held(cp5), true, honest.request(5, cp9), cp9.Checkpoint, nil},
		{"same checkpoint again", held(cp9), true, AddRequest{OldSize: 9, Note: cp9.Note}, cp9.Checkpoint, nil},
		{"old size not the one held", held(cp5), true, honest.request(0, cp9), cp9.Checkpoint, &OldSizeError{}},
		{"first checkpoint claiming an old size", ledger.Witnessed{}, false, honest.request(5, cp9), cp9.Checkpoint, &OldSizeError{}},
		{"same size, another root", held(cp5), true, AddRequest{OldSize: 5, Note: rw5.Note}, rw5.Checkpoint, &EquivocationError{}},
		{"rewritten history, larger size", held(cp9), true, rewriter.request(5, rw12), rw12.Checkpoint, &OldSizeError{}},
		{"rewritten history with a proof from the held size", held(cp9), true, AddRequest{OldSize: 9, Proof: rewriter.request(9, rw12).Proof, Note: rw12.Note}, rw12.Checkpoint, &EquivocationError{}},
		{"smaller than held", held(cp9), true, AddRequest{OldSize: 9, Note: cp5.Note}, cp5.Checkpoint, ErrBadConsistency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkAdd(tt.prev, tt.found, tt.req, tt.cp)
			var oldSize *OldSizeError
			var equiv *EquivocationError
			switch want := tt.want.(type) {
			case nil:
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			case *OldSizeError:
				if !errors.As(err, &oldSize) || oldSize.Held != tt.prev.Size {
					t.Fatalf("got %v, want an old-size refusal holding %d", err, tt.prev.Size)
				}
			case *EquivocationError:
				if !errors.As(err, &equiv) || !bytes.Equal(equiv.Held, tt.prev.Note) || !bytes.Equal(equiv.Offered, tt.req.Note) {
					t.Fatalf("got %v, want equivocation with both notes as evidence", err)
				}
			default:
				if !errors.Is(err, want) {
					t.Fatalf("got %v, want %v", err, want)
				}
			}
		})
	}
}

func TestAddRequestRoundTrip(t *testing.T) {
	r := AddRequest{OldSize: 12, Proof: tlog.TreeProof{{1}, {2, 3}}, Note: []byte("medfed/x/y\n3\nroot\n\n— sig\n")}
	got, err := ParseAddRequest(r.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.OldSize != 12 || len(got.Proof) != 2 || got.Proof[1] != r.Proof[1] || !bytes.Equal(got.Note, r.Note) {
		t.Fatalf("round trip gave %+v", got)
	}
	for _, bad := range []string{"", "old 1\n", "old -1\n\nx", "old 01\n\nx", "new 1\n\nx", "old 1\nnot base64\n\nx"} {
		if _, err := ParseAddRequest([]byte(bad)); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("ParseAddRequest(%q): %v, want node.ErrInvalid", bad, err)
		}
	}
}

func FuzzParseAddRequest(f *testing.F) {
	f.Add(AddRequest{OldSize: 3, Proof: tlog.TreeProof{{9}}, Note: []byte("note\n")}.Encode())
	f.Add([]byte("old 0\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseAddRequest(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Encode(), b) {
			t.Fatalf("ParseAddRequest accepted a second spelling")
		}
	})
}
