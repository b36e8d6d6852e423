package centre_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/query"
	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// queryFed starts three centres, the patient's records at centre-b and
// centre-c, and waits until the records are in final checkpoints.
func queryFed(t *testing.T) ([]centre.Config, []*centre.Node, ledger.Pseudonym) {
	t.Helper()
	root := t.TempDir()
	cfgs := []centre.Config{centreConfig(t, root, "centre-a"), centreConfig(t, root, "centre-b"), centreConfig(t, root, "centre-c")}
	for i := range cfgs {
		cfgs[i].Ledger.CheckpointInterval = 50 * time.Millisecond
		// Short leases: a confirmation waits at most this for a centre
		// that is down, and the erasure feed is read twice as often.
		cfgs[i].Consent.Lease = 2 * time.Second
	}
	found(t, cfgs...)
	nodes := make([]*centre.Node, len(cfgs))
	for i, cfg := range cfgs {
		nodes[i] = start(t, cfg)
	}
	eventually(t, 15*time.Second, "the centres' directories see each other", func() bool {
		for _, n := range nodes {
			if n.Directory.RoutingTableSize() != 2 {
				return false
			}
		}
		return true
	})
	ctx := context.Background()
	p := ledger.Pseudonym(sha256.Sum256([]byte("query test patient")))
	for _, n := range nodes[1:] {
		req := centre.RecordRequest{Pseudonym: p, Class: "lab-result", Occurred: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), Payload: []byte("result from " + n.Centre.Name)}
		res, err := n.AddRecord(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, "the record is in a final checkpoint", func() bool {
			f, ok := n.Centre.Ledger.LatestFinal()
			return ok && f.Size > res.Index
		})
	}
	eventually(t, 15*time.Second, "the directory lists both holders", func() bool {
		res, err := nodes[0].Lookup(ctx, p)
		return err == nil && len(res.Holders) == 2
	})
	return cfgs, nodes, p
}

func accesses(t *testing.T, n *centre.Node) int {
	t.Helper()
	es, err := n.Centre.Ledger.EntriesOfKind(context.Background(), ledger.KindAccess)
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// A clinician at centre-a gets the records of both holders, proven and
// checked; research is denied with the reason; every answer, permitted or
// denied, has its access entry at the holder.
func TestQueryAcrossHolders(t *testing.T) {
	cfgs, nodes, p := queryFed(t)
	b, c := nodes[1], nodes[2]
	ctx := context.Background()
	sock := admin.Dial(cfgs[0].Data.Dir)
	before := []int{accesses(t, b), accesses(t, c)}

	res, err := sock.QueryRecords(ctx, admin.QueryRequest{Pseudonym: p.String(), Purpose: "treatment", Role: "clinician"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Holders) != 2 {
		t.Fatalf("answers from %d holders: %+v", len(res.Holders), res)
	}
	for _, h := range res.Holders {
		if h.Status != "answered" || len(h.Records) != 1 || string(h.Records[0].Payload) != "result from "+h.Name || h.Checkpoint <= h.Records[0].Index {
			t.Fatalf("%s answered %+v", h.Name, h)
		}
	}
	res, err = sock.QueryRecords(ctx, admin.QueryRequest{Pseudonym: p.String(), Purpose: "research", Role: "researcher"})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range res.Holders {
		if h.Status != "denied" || len(h.Records) != 0 || h.Denied != 0 || !strings.Contains(h.Reason, "research needs the patient's own consent") {
			t.Fatalf("%s answered research with %+v", h.Name, h)
		}
	}
	for i, n := range []*centre.Node{b, c} {
		if got := accesses(t, n); got != before[i]+2 {
			t.Fatalf("%s has %d access entries, want %d", n.Centre.Name, got, before[i]+2)
		}
	}
	if _, err := sock.QueryRecords(ctx, admin.QueryRequest{Pseudonym: p.String(), Purpose: "curiosity", Role: "clinician"}); err == nil {
		t.Fatal("a query with an unknown purpose was sent")
	}
}

// Requests that are forged, replayed or too old are refused without an
// access entry; an answer altered after the holder signed it is rejected
// by the requester.
func TestQueryRefusesBadRequestsAndRejectsBadAnswers(t *testing.T) {
	_, nodes, p := queryFed(t)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	request := func(at time.Time) (query.Request, *query.SealingKey) {
		key, err := query.NewSealingKey()
		if err != nil {
			t.Fatal(err)
		}
		q := query.Request{Federation: "test-federation", Requester: a.Centre.ID(), Role: consent.Clinician, Action: consent.Access,
			Purpose: consent.Treatment, Subject: p, Time: at, Key: key.Public()}
		rand.Read(q.Nonce[:])
		return q, key
	}
	send := func(from *centre.Node, raw []byte) (byte, []byte) {
		status, answer, err := wire.Exchange(ctx, from.Host, query.ProtocolID, b.Centre.ID(), 1, raw, wire.MaxFrame)
		if err != nil {
			t.Fatal(err)
		}
		return status, answer
	}
	before := accesses(t, b)
	q, key := request(time.Now())
	raw, err := q.Sign(a.Centre.Key())
	if err != nil {
		t.Fatal(err)
	}
	status, answer := send(a, raw)
	if status != 0 {
		t.Fatalf("a good request refused: %s", answer)
	}
	if ans, err := a.Query.Verify(b.Centre.ID(), q, key, answer); err != nil || len(ans.Records) != 1 {
		t.Fatalf("the answer does not verify: %+v, %v", ans, err)
	}
	if status, answer := send(a, raw); status != 1 || !strings.Contains(string(answer), "replayed") {
		t.Fatalf("a replayed request: status %d, %s", status, answer)
	}
	old, _ := request(time.Now().Add(-time.Minute))
	rawOld, err := old.Sign(a.Centre.Key())
	if err != nil {
		t.Fatal(err)
	}
	if status, answer := send(a, rawOld); status != 1 || !strings.Contains(string(answer), "out of time") {
		t.Fatalf("an old request: status %d, %s", status, answer)
	}
	// Signed by centre-a, sent by centre-c.
	forged, _ := request(time.Now())
	rawForged, err := forged.Sign(a.Centre.Key())
	if err != nil {
		t.Fatal(err)
	}
	if status, answer := send(nodes[2], rawForged); status != 1 || !strings.Contains(string(answer), "another centre") {
		t.Fatalf("a forged request: status %d, %s", status, answer)
	}
	// A signature that does not match the body.
	rawForged[10] ^= 1
	if status, answer := send(a, rawForged); status != 1 || !strings.Contains(string(answer), "signature") {
		t.Fatalf("a tampered request: status %d, %s", status, answer)
	}
	if got := accesses(t, b); got != before+1 {
		t.Fatalf("centre-b has %d new access entries, want 1 (refusals decide nothing)", got-before)
	}

	// An answer altered after the holder signed it is rejected; so is one
	// the holder signed again with an entry or a payload changed: the
	// proof, or the seal, no longer holds.
	q, key = request(time.Now())
	if raw, err = q.Sign(a.Centre.Key()); err != nil {
		t.Fatal(err)
	}
	status, answer = send(a, raw)
	if status != 0 {
		t.Fatalf("a good request refused: %s", answer)
	}
	altered := append([]byte{}, answer...)
	altered[len(altered)/2] ^= 1
	if _, err := a.Query.Verify(b.Centre.ID(), q, key, altered); !errors.Is(err, query.ErrRejected) {
		t.Fatalf("an answer altered in transit: %v", err)
	}
	for _, change := range []struct {
		name string
		edit func(*query.Response)
		want string
	}{
		{"entry", func(r *query.Response) { r.Items[0].Entry[len(r.Items[0].Entry)-1] ^= 1 }, "not in the holder's final checkpoint"},
		{"payload", func(r *query.Response) { r.Items[0].Sealed[len(r.Items[0].Sealed)-1] ^= 1 }, "does not open"},
		{"index", func(r *query.Response) { r.Items[0].Index++ }, "is listed as"},
		{"nonce", func(r *query.Response) { r.Nonce[0] ^= 1 }, "another request"},
	} {
		resp, err := query.ParseResponse(answer)
		if err != nil {
			t.Fatal(err)
		}
		change.edit(&resp)
		resigned, err := resp.Sign(b.Centre.Key())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Query.Verify(b.Centre.ID(), q, key, resigned); !errors.Is(err, query.ErrRejected) || !strings.Contains(err.Error(), change.want) {
			t.Fatalf("%s changed: %v, want rejected: %s", change.name, err, change.want)
		}
	}
}

// A request answered before the holder restarted is still refused as a
// replay after it: the nonce is read back from the access entry.
func TestQueryReplayAcrossRestart(t *testing.T) {
	cfgs, nodes, p := queryFed(t)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	key, err := query.NewSealingKey()
	if err != nil {
		t.Fatal(err)
	}
	q := query.Request{Federation: "test-federation", Requester: a.Centre.ID(), Role: consent.Clinician, Action: consent.Access,
		Purpose: consent.Treatment, Subject: p, Time: time.Now(), Key: key.Public()}
	rand.Read(q.Nonce[:])
	raw, err := q.Sign(a.Centre.Key())
	if err != nil {
		t.Fatal(err)
	}
	send := func() (byte, []byte) {
		status, answer, err := wire.Exchange(ctx, a.Host, query.ProtocolID, b.Centre.ID(), 1, raw, wire.MaxFrame)
		if err != nil {
			t.Fatal(err)
		}
		return status, answer
	}
	if status, answer := send(); status != 0 {
		t.Fatalf("refused: %s", answer)
	}
	restart(t, b, cfgs[1], a)
	if status, answer := send(); status != 1 || !strings.Contains(string(answer), "replayed") {
		t.Fatalf("replayed after a restart: status %d, %s", status, answer)
	}
}

// restart closes n and starts its centre (cfg) again, until the test
// ends, once from can connect to it.
func restart(t *testing.T, n *centre.Node, cfg centre.Config, from *centre.Node) *centre.Node {
	t.Helper()
	ctx := context.Background()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	restarted, err := centre.Start(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restarted.Close() })
	eventually(t, 15*time.Second, cfg.Centre.Name+" is back", func() bool {
		return from.Host.Connect(ctx, peer.AddrInfo{ID: restarted.Centre.ID(), Addrs: restarted.Host.Addrs()}) == nil
	})
	return restarted
}
