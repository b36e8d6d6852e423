package federation

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
)

// gossipFederation starts n members on a mocknet, linked but not
// connected, founded on a charter whose council is council (and whose
// admission quorum is quorum), with no sync on a timer.
func gossipFederation(t *testing.T, n int, council []string, quorum int) (mocknet.Mocknet, []Member, []*Membership, Charter) {
	t.Helper()
	net := mocknet.New()
	t.Cleanup(func() { net.Close() })
	keys := make([]ed25519.PrivateKey, n)
	var members []Member
	for i := range n {
		keys[i] = testMemberKey(fmt.Sprintf("gossip-%d", i))
		sk, err := crypto.UnmarshalEd25519PrivateKey(keys[i])
		if err != nil {
			t.Fatal(err)
		}
		addr := ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 5000+i))
		h, err := net.AddPeer(sk, addr)
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, Member{Name: fmt.Sprintf("c%02d", i), ID: h.ID(), Addrs: []ma.Multiaddr{addr}})
	}
	if err := net.LinkAll(); err != nil {
		t.Fatal(err)
	}
	v1 := Charter{Federation: "test", Version: 1, Policy: DefaultPolicy(n), Members: members, Council: council}
	v1.Policy.AdmissionQuorum = quorum
	var note []byte
	for _, k := range keys {
		var err error
		if note, err = Sign(v1, note, k); err != nil {
			t.Fatal(err)
		}
	}
	ms := make([]*Membership, n)
	for i, m := range members {
		var err error
		ms[i], err = NewMembership(net.Host(m.ID), State{Chain: [][]byte{note}}, Options{Key: keys[i], Store: &memStore{}, Gater: NewGater(), SyncInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ms[i].Close() })
	}
	return net, members, ms, v1
}

// A member that missed a version does not pass on the gossiped version
// after it, which it cannot check: it ignores it and fetches both from
// the member that sent it.
func TestGossipFromAheadIsFetchedNotPassedOn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, members, ms, _ := gossipFederation(t, 6, []string{"c00"}, 1)
	for _, name := range []string{"c05", "c04"} {
		if _, err := ms[0].Remove(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	chain := ms[0].Chain()
	if len(chain) != 3 || ms[1].Current().Version != 1 {
		t.Fatalf("the council member holds %d versions, the other %d", len(chain), ms[1].Current().Version)
	}
	msg := &pubsub.Message{Message: &pb.Message{Data: chain[2]}}
	if got := ms[1].validateGossip(ctx, members[0].ID, msg); got != pubsub.ValidationIgnore {
		t.Fatalf("version 3 gossiped to a member at version 1: %v, want it ignored", got)
	}
	for ms[1].Current().Version != 3 {
		if ctx.Err() != nil {
			t.Fatalf("the member behind is at version %d, not 3", ms[1].Current().Version)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Now current, it ignores what it has, and refuses a forgery of the
	// next version.
	if got := ms[1].validateGossip(ctx, members[0].ID, msg); got != pubsub.ValidationIgnore {
		t.Fatalf("a version already adopted, gossiped: %v", got)
	}
	forged := slices.Clone(chain[2])
	forged[len(forged)/3] ^= 1
	if got := ms[2].validateGossip(ctx, members[0].ID, &pubsub.Message{Message: &pb.Message{Data: forged}}); got == pubsub.ValidationAccept {
		t.Fatal("a forged note was accepted")
	}
}

// A version the council adopts reaches every member by gossip alone: the
// members are connected sparsely (each to two others, as a DHT's routing
// table would have them), none syncs on a timer, and the council tells
// only itself directly.
func TestAdoptedVersionSpreadsByGossip(t *testing.T) {
	const n = 30
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	net, members, ms, v1 := gossipFederation(t, n, []string{"c00", "c01", "c02"}, 2)
	for i := range n {
		for _, j := range []int{(i + 1) % n, (i + 7) % n} {
			if _, err := net.ConnectPeers(members[i].ID, members[j].ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(2 * time.Second) // the gossip meshes form on their heartbeat

	// A member off the council cannot approve.
	if _, err := ms[5].Remove(ctx, "c29"); err == nil {
		t.Fatal("a member off the council approved a version")
	}
	// A member off the council can offer a draft it made, unsigned, for
	// the council to approve.
	p := v1.Policy
	p.MemberRate = 50
	offered, err := v1.WithPolicy(p)
	if err != nil {
		t.Fatal(err)
	}
	if pr, err := ms[5].Propose(ctx, offered); err != nil || pr.Approvals != 0 {
		t.Fatalf("a member off the council offering a draft: %+v, %v", pr, err)
	}
	for ctx.Err() == nil && len(ms[2].Status().Pending) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if st := ms[2].Status(); len(st.Pending) != 1 || st.Pending[0].Change != "changes the policy" || st.Pending[0].Approvals != 0 {
		t.Fatalf("the council member's pending drafts: %+v", st.Pending)
	}
	adopted := ms[10].Adopted()
	start := time.Now()
	if _, err := ms[0].Remove(ctx, "c29"); err != nil {
		t.Fatal(err)
	}
	// The second council member approves the draft it was offered, by its
	// hash, as an operator reads it in the status.
	var pending Progress
	for pending.Draft == "" {
		if ctx.Err() != nil {
			t.Fatal("the draft was not offered to the council")
		}
		for _, p := range ms[1].Status().Pending {
			if p.Change == "removes c29" {
				pending = p
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if pending.Change != "removes c29" {
		t.Errorf("the draft is described as %q", pending.Change)
	}
	other := []byte(pending.Draft)
	other[0] ^= 1 // '0' and '1', 'a' and '`'...
	if _, err := ms[1].ApproveDraft(ctx, string(other)); err == nil {
		t.Fatal("approved a draft nobody offered")
	}
	if _, err := ms[1].ApproveDraft(ctx, pending.Draft); err != nil {
		t.Fatal(err)
	}
	for {
		behind := 0
		for _, m := range ms[:n-1] {
			if m.Current().Version != 2 {
				behind++
			}
		}
		if behind == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d members did not learn of version 2 by gossip", behind, n-1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("version 2 known to all %d members %v after the council's quorum approved it", n-1, time.Since(start))
	select {
	case <-adopted:
	default:
		t.Fatal("a member adopted version 2 and its Adopted channel is still open")
	}
	select {
	case <-ms[10].Adopted():
		t.Fatal("the channel for the version after is closed already")
	default:
	}
}

// PeekCharter reads a founding version signed by more founders than
// note.Open takes signatures (100): a federation founded by 120.
func TestPeekCharterOfManyFounders(t *testing.T) {
	var keys []ed25519.PrivateKey
	var members []Member
	for i := range 120 {
		keys = append(keys, testMemberKey(fmt.Sprintf("founder-%d", i)))
		id, err := peer.IDFromPublicKey(mustPub(t, keys[i]))
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, Member{Name: fmt.Sprintf("c%03d", i), ID: id, Addrs: []ma.Multiaddr{ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 5000+i))}})
	}
	v1 := Charter{Federation: "test", Version: 1, Policy: DefaultPolicy(len(members)), Members: members}
	var signed []byte
	for _, k := range keys {
		var err error
		if signed, err = Sign(v1, signed, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := VerifyFounding(signed); err != nil {
		t.Fatal(err)
	}
	c, err := PeekCharter(signed)
	if err != nil || c.Version != 1 || len(c.Members) != 120 {
		t.Fatalf("PeekCharter of 120 founders' version 1: version %d, %d members, %v", c.Version, len(c.Members), err)
	}
}

func mustPub(t *testing.T, k ed25519.PrivateKey) crypto.PubKey {
	t.Helper()
	pk, err := crypto.UnmarshalEd25519PublicKey(k.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return pk
}
