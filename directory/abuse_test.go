package directory

import (
	"context"
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/wire"
)

// A member can announce only itself. Centre 2 sends the members Kademlia
// ADD_PROVIDER messages naming centre 1, which holds nothing, as a holder
// of a patient centre 0 holds: every member ignores a provider record
// that does not come from the provider itself, and a lookup still finds
// centre 0 alone. Nor can it take centre 0's announcement back: a
// withdrawal drops only records naming its sender, so the members answer
// that they dropped none. (A member announcing itself for patients it
// does not hold is node.TestAbuseAnnouncesPseudonymsItDoesNotHold.)
func TestAbuseAnnouncesForAnotherCentre(t *testing.T) {
	f := newTestFed(t, 3)
	ctx := context.Background()
	p := pseudonyms(1)[0]
	if err := f.dirs[0].Announce(ctx, p); err != nil {
		t.Fatal(err)
	}
	holders := func(from int) []peer.ID {
		res, err := f.dirs[from].Lookup(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return res.Holders
	}
	stored := func() []int {
		var out []int
		for _, d := range f.dirs {
			for _, id := range f.ids[:2] {
				n, err := d.Stored(id)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, n)
			}
		}
		return out
	}
	// Every other member stores centre 0's announcement (replication
	// exceeds the membership) before the attack starts; centre 0 answers
	// for itself from its keystore.
	deadline := time.Now().Add(10 * time.Second)
	for before := stored(); !slices.Equal(before, []int{0, 0, 1, 0, 1, 0}); before = stored() {
		if time.Now().After(deadline) {
			t.Fatalf("centre 0's announcement did not reach every member: %v", before)
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := stored()

	key := multihash(digest(f.dirs[2].fed, p))
	for _, victim := range f.ids[:2] {
		err := f.dirs[2].messenger.PutProviderAddrs(ctx, victim, key, peer.AddrInfo{ID: f.ids[1], Addrs: f.hosts[1].Addrs()})
		t.Logf("centre 2 announces centre 1 to %s: the sender sees %v (the message has no answer)", victim, err)
	}
	status, answer, err := wire.Exchange(ctx, f.hosts[2], WithdrawProtocolID, f.ids[1], opWithdraw, key[2:], maxReason)
	if err != nil || status != wire.StatusOK || len(answer) != 4 || binary.BigEndian.Uint32(answer) != 0 {
		t.Fatalf("centre 2 withdraws for centre 0: status %d, %q, %v; want none dropped", status, answer, err)
	}
	t.Logf("centre 2 withdraws centre 0's announcement: %d records dropped", binary.BigEndian.Uint32(answer))
	// Give the ignored messages time to have landed, had they counted.
	time.Sleep(200 * time.Millisecond)
	if after := stored(); !slices.Equal(after, before) {
		t.Fatalf("the members' stored announcements of centres 0 and 1: %v, then %v", before, after)
	}
	for from := range 3 {
		if got := holders(from); !slices.Equal(got, []peer.ID{f.ids[0]}) {
			t.Fatalf("a lookup from centre %d after the attack: %v, want centre 0 alone", from, got)
		}
	}
}
