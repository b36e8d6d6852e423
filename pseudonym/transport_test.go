package pseudonym

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/wire"
)

// ceremonyHosts starts a libp2p host on 127.0.0.1 for each key (nil: a
// centre that is offline, with no host) and tells each where the others
// listen.
func ceremonyHosts(t testing.TB, keys []ed25519.PrivateKey) []host.Host {
	t.Helper()
	hosts := make([]host.Host, len(keys))
	for i, k := range keys {
		if k == nil {
			continue
		}
		h, err := libp2p.New(libp2p.Identity(mustLibp2pKey(k)), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		hosts[i] = h
	}
	for _, a := range hosts {
		for _, b := range hosts {
			if a != nil && b != nil && a != b {
				a.Peerstore().AddAddrs(b.ID(), b.Addrs(), time.Hour)
			}
		}
	}
	return hosts
}

func testCeremonyID(tag string) CeremonyID { return sha256.Sum256([]byte(tag)) }

// fast are timeouts for centres on one machine that all start at once.
var fast = CeremonyTimeouts{FirstRound: 3 * time.Second, Round: 3 * time.Second}

// runOver runs steppers[i] on hosts[i] (nil: a centre that does not take
// part) in ceremony id among participants, all at once, and returns each
// one's error; every run that ends well must name the same participants
// absent, which it returns.
func runOver(t testing.TB, hosts []host.Host, id CeremonyID, participants []peer.ID, steppers []Stepper, timeouts CeremonyTimeouts) ([]error, []peer.ID) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make([]error, len(steppers))
	absent := make([][]peer.ID, len(steppers))
	var wg sync.WaitGroup
	for i, s := range steppers {
		if s == nil {
			continue
		}
		wg.Go(func() { absent[i], errs[i] = RunCeremony(ctx, hosts[i], id, participants, s, timeouts) })
	}
	wg.Wait()
	var first []peer.ID
	seen := false
	for i := range steppers {
		if steppers[i] == nil || errs[i] != nil {
			continue
		}
		if seen && !slices.Equal(absent[i], first) {
			t.Fatalf("participants name different absentees: %v and %v", first, absent[i])
		}
		first, seen = absent[i], true
	}
	return errs, first
}

// Five centres run a DKG over libp2p; the fifth is offline. The four
// others wait out the first round for it, then finish without it, with
// one key that computes the same pseudonyms from any three shares.
func TestCeremonyDKGWithOneOffline(t *testing.T) {
	keys, ids := testMembers(t, "transport dkg", 5)
	hosts := ceremonyHosts(t, append(slices.Clone(keys[:4]), nil))
	steppers := make([]Stepper, 5)
	dkgs := make([]*DKG, 5)
	for i, k := range keys[:4] {
		d, err := NewDKG("test-fed", 3, ids, k)
		if err != nil {
			t.Fatal(err)
		}
		dkgs[i], steppers[i] = d, d
	}
	start := time.Now()
	errs, absent := runOver(t, hosts, testCeremonyID("dkg"), ids, steppers, fast)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(absent, []peer.ID{ids[4]}) {
		t.Fatalf("absent: %v, want the offline centre %v", absent, ids[4])
	}
	if took := time.Since(start); took < fast.FirstRound {
		t.Fatalf("finished in %v, before the first round's wait for the offline centre", took)
	}
	fed, shares := agreed(t, 3, dkgResults(dkgs), []int{0, 1, 2, 3})
	if d := dkgs[0].Dealers(); !slices.Equal(d.Qualified, []int{1, 2, 3, 4}) || !slices.Equal(d.Disqualified, []int{5}) {
		t.Fatalf("dealers %+v, want 1-4 qualified and the offline 5 not", d)
	}
	if len(fed.Holders) != 5 || len(shares) != 4 {
		t.Fatalf("%d holders listed and %d shares, want 5 and 4 (the offline centre's share is lost)", len(fed.Holders), len(shares))
	}
	ids20 := testIdentifiers(t, 20)
	want := reference(t, fed, pick(shares, 1, 2, 3), ids20)
	if got := reference(t, fed, pick(shares, 2, 3, 4), ids20); !slices.Equal(got, want) {
		t.Fatal("two sets of three shares compute different pseudonyms")
	}
}

// A 3-of-5 key is reshared over libp2p to a 3-of-4 committee of three
// old holders and a newcomer, with one old holder offline and another
// dealing while leaving: the key and the pseudonyms stay.
func TestCeremonyReshareKeepsTheKey(t *testing.T) {
	oldKeys, oldIDs, old, oldShares := dkgKey(t, "transport reshare", 5, 3)
	newKeys, newIDs := testMembers(t, "transport newcomer", 1)
	committee := []peer.ID{oldIDs[0], oldIDs[1], oldIDs[2], newIDs[0]}
	// Participants: the old holders (1-5, 5 offline) and the newcomer.
	participants := append(slices.Clone(oldIDs), newIDs[0])
	allKeys := append(slices.Clone(oldKeys[:4]), nil, newKeys[0])
	hosts := ceremonyHosts(t, allKeys)
	steppers := make([]Stepper, len(participants))
	reshares := make([]*Reshare, len(participants))
	for i, k := range allKeys {
		if k == nil {
			continue
		}
		var s *Share
		if i < 5 {
			s = oldShares[i+1]
		}
		r, err := NewReshare(old, s, committee, 3, k)
		if err != nil {
			t.Fatal(err)
		}
		reshares[i], steppers[i] = r, r
	}
	errs, absent := runOver(t, hosts, testCeremonyID("reshare"), participants, steppers, fast)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(absent, []peer.ID{oldIDs[4]}) {
		t.Fatalf("absent: %v, want the offline holder", absent)
	}
	fed, shares := agreed(t, 3, func(i int) (Public, *Share, error) { return reshares[[]int{0, 1, 2, 3, 5}[i]].Result() }, indices(5))
	if fed.Key != old.Key || len(fed.Holders) != 4 || len(shares) != 4 {
		t.Fatalf("key kept %v, %d holders, %d shares; want the same key, 4 and 4", fed.Key == old.Key, len(fed.Holders), len(shares))
	}
	if _, s, _ := reshares[3].Result(); s != nil {
		t.Fatal("the old holder that left got a share")
	}
	ids := testIdentifiers(t, 20)
	want := reference(t, old, pick(oldShares, 1, 3, 5), ids)
	for _, set := range [][]int{{1, 2, 3}, {2, 3, 4}, {1, 3, 4}} {
		if got := reference(t, fed, pick(shares, set...), ids); !slices.Equal(got, want) {
			t.Fatalf("new shares %v compute other pseudonyms than the old key", set)
		}
	}
}

// A centre that is not a participant is refused, whatever it sends; a
// participant cannot take back its message of a round; a message for a
// ceremony not running yet, or a round not reached, is to come again.
func TestCeremonyRefusesStrangers(t *testing.T) {
	keys, ids := testMembers(t, "transport strangers", 4)
	hosts := ceremonyHosts(t, keys) // the fourth is the stranger
	participants := ids[:3]
	id := testCeremonyID("strangers")
	send := func(from int, f ceremonyFrame) (byte, []byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return wire.Exchange(ctx, hosts[from], CeremonyProtocolID, ids[0], ceremonyOpMessage, f.encode(), 1024)
	}

	c := NewCeremonies(hosts[0], nil)
	defer c.Close()
	if status, answer, err := send(1, ceremonyFrame{id: id, round: 1, msg: []byte("early bird")}); err != nil || status != wire.StatusOK || !slices.Equal(answer, []byte{ceremonyUnknown}) {
		t.Fatalf("before the ceremony runs: status %d, answer %v, %v; want OK and 'not yet'", status, answer, err)
	}

	steppers := make([]Stepper, 3)
	for i, k := range keys[:3] {
		d, err := NewDKG("test-fed", 2, participants, k)
		if err != nil {
			t.Fatal(err)
		}
		steppers[i] = d
	}
	// centre 0 runs; centres 1 and 2 are slow to start, so its first
	// round waits while the test speaks to it.
	slow := CeremonyTimeouts{FirstRound: 20 * time.Second, Round: 3 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := c.Run(ctx, id, participants, steppers[0], slow); done <- err }()
	if err := waitFor(5*time.Second, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.running[id] != nil }); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		from   int
		frame  ceremonyFrame
		status byte
		answer []byte
	}{
		{name: "a stranger", from: 3, frame: ceremonyFrame{id: id, round: 1, msg: []byte("let me in")}, status: ceremonyRefused},
		{name: "a stranger, empty", from: 3, frame: ceremonyFrame{id: id, round: 1}, status: ceremonyRefused},
		{name: "a round not reached", from: 1, frame: ceremonyFrame{id: id, round: 5, msg: []byte("later")}, status: wire.StatusOK, answer: []byte{ceremonyEarly}},
		{name: "another ceremony", from: 1, frame: ceremonyFrame{id: testCeremonyID("other"), round: 1}, status: wire.StatusOK, answer: []byte{ceremonyUnknown}},
		{name: "a participant's first message", from: 2, frame: ceremonyFrame{id: id, round: 1, msg: []byte("first")}, status: wire.StatusOK},
		{name: "the same again", from: 2, frame: ceremonyFrame{id: id, round: 1, msg: []byte("first")}, status: wire.StatusOK},
		{name: "another message for the round", from: 2, frame: ceremonyFrame{id: id, round: 1, msg: []byte("second thoughts")}, status: ceremonyRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, answer, err := send(tc.from, tc.frame)
			if err != nil || status != tc.status || (status == wire.StatusOK && !slices.Equal(answer, tc.answer)) {
				t.Fatalf("status %d, answer %q, %v; want status %d, answer %q", status, answer, err, tc.status, tc.answer)
			}
		})
	}
	c.mu.Lock()
	box := c.running[id].inbox[1]
	_, stranger := box[ids[3]]
	kept := string(box[ids[2]])
	c.mu.Unlock()
	if stranger || kept != "first" {
		t.Fatalf("the round's messages: stranger's kept %v, centre 2's %q; want none and the first", stranger, kept)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the run ended with %v, want its context's end", err)
	}
	// The ended run is not run again under the same ID.
	if _, err := c.Run(context.Background(), id, participants, steppers[0], slow); !errors.Is(err, ErrCeremonyBusy) {
		t.Fatalf("running an ended ceremony again: %v, want ErrCeremonyBusy", err)
	}
}

// A centre that starts after the first round has ended finds its deal
// refused as late and gives up, rather than end with another key; the
// others finish without it.
func TestCeremonyLateStarterGivesUp(t *testing.T) {
	keys, ids := testMembers(t, "transport late", 4)
	hosts := ceremonyHosts(t, keys)
	dkgs := make([]*DKG, 4)
	for i, k := range keys {
		d, err := NewDKG("test-fed", 2, ids, k)
		if err != nil {
			t.Fatal(err)
		}
		dkgs[i] = d
	}
	id := testCeremonyID("late")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	timeouts := CeremonyTimeouts{FirstRound: time.Second, Round: 5 * time.Second}
	services := make([]*Ceremonies, 4)
	for i, h := range hosts {
		services[i] = NewCeremonies(h, nil)
		defer services[i].Close()
	}
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() { _, errs[i] = services[i].Run(ctx, id, ids, dkgs[i], timeouts) })
	}
	time.Sleep(2 * timeouts.FirstRound)
	_, errs[3] = services[3].Run(ctx, id, ids, dkgs[3], timeouts)
	wg.Wait()
	if err := errors.Join(errs[:3]...); err != nil {
		t.Fatalf("the punctual centres: %v", err)
	}
	if !errors.Is(errs[3], ErrCeremony) {
		t.Fatalf("the late centre: %v, want ErrCeremony", errs[3])
	}
	agreed(t, 2, dkgResults(dkgs), []int{0, 1, 2})
	if d := dkgs[0].Dealers(); !slices.Equal(d.Disqualified, []int{4}) {
		t.Fatalf("dealers %+v: want the late centre's deal left out", d)
	}
}

// echo is a ceremony of a few rounds whose messages mean nothing: it
// says one thing a round and keeps what it heard.
type echo struct {
	rounds, round int
	heard         []map[peer.ID][]byte
}

func (e *echo) Start() ([]byte, error) { e.round = 1; return []byte("round 1"), nil }

func (e *echo) Step(in map[peer.ID][]byte) ([]byte, error) {
	e.heard = append(e.heard, in)
	e.round++
	if e.round > e.rounds {
		return nil, nil
	}
	return fmt.Appendf(nil, "round %d", e.round), nil
}

func (e *echo) Done() bool { return e.round > e.rounds }

// A participant that tells two members two different things in a round
// (a faulty centre's two valid deals, which neither member could tell
// from an honest one) would split them over two keys: the transcript
// hashes of the last round catch it, and neither member ends with a
// result to draft.
func TestCeremonyCatchesEquivocation(t *testing.T) {
	keys, ids := testMembers(t, "transport equivocation", 3)
	hosts := ceremonyHosts(t, keys)
	id := testCeremonyID("equivocation")
	// The third participant speaks by hand: one thing to each member in
	// round 1, the same to both in round 2, then nothing.
	said := [][]string{{"for the first", "the same"}, {"for the second", "the same"}}
	go func() {
		for i := range 2 {
			for round, msg := range said[i] {
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					status, answer, err := wire.Exchange(ctx, hosts[2], CeremonyProtocolID, ids[i], ceremonyOpMessage,
						ceremonyFrame{id: id, round: round + 1, msg: []byte(msg)}.encode(), 1024)
					cancel()
					if err == nil && status == wire.StatusOK && len(answer) == 0 {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}
	}()
	echoes := []*echo{{rounds: 2}, {rounds: 2}}
	errs, _ := runOver(t, hosts, id, ids, []Stepper{echoes[0], echoes[1], nil}, CeremonyTimeouts{FirstRound: 10 * time.Second, Round: time.Second})
	for i, err := range errs[:2] {
		if !errors.Is(err, ErrCeremony) || !strings.Contains(err.Error(), "stepped on other messages") {
			t.Fatalf("member %d: %v, want ErrCeremony for a transcript that differs", i+1, err)
		}
	}
	// Each stepped on what it was told: without the check they would
	// have gone on, apart.
	if a, b := string(echoes[0].heard[0][ids[2]]), string(echoes[1].heard[0][ids[2]]); a == b {
		t.Fatalf("both members heard %q in round 1", a)
	}
}

func waitFor(within time.Duration, ok func() bool) error {
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			return errors.New("not in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// Frames decode only as they were encoded: whatever a peer sends, the
// decoder either refuses it or gives back what encodes to its bytes.
func FuzzDecodeCeremonyFrame(f *testing.F) {
	id := testCeremonyID("fuzz")
	f.Add(ceremonyFrame{id: id, round: 1, msg: []byte("deal")}.encode())
	f.Add(ceremonyFrame{id: id, round: 7}.encode())
	f.Add(ceremonyFrame{id: id, round: 64, msg: make([]byte, 32)}.encode())
	f.Add([]byte{1})
	f.Add([]byte{2, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeCeremonyFrame(b)
		if err != nil {
			return
		}
		if fr.round < 1 || fr.round > maxCeremonyRounds || len(fr.msg) > MaxCeremonyMessage {
			t.Fatalf("decoded round %d with %d bytes", fr.round, len(fr.msg))
		}
		if again := fr.encode(); string(again) != string(b) {
			t.Fatalf("decoded %x re-encodes as %x", b, again)
		}
	})
}
