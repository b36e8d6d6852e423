package directory

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	mh "github.com/multiformats/go-multihash"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

// ErrIncomplete is returned with a lookup's partial result when the lookup
// could not finish: it timed out, or fewer members answered than it needs.
// The holders found are real; others may be missing.
var ErrIncomplete = node.E(node.Unavailable, "directory lookup incomplete")

// Result is what a lookup found.
type Result struct {
	// Holders are the current members announcing the pseudonym, sorted.
	Holders []peer.ID
	// Answered counts the members whose provider records were read.
	Answered int
	// Failed names the members asked that did not answer.
	Failed []peer.ID
	// Ignored counts announcers that are not current members.
	Ignored int
}

// Lookup returns every current member that announced p.
//
// Every centre knows the whole membership from the charter, so the lookup
// is one hop: it takes the members closest to p's key by XOR distance,
// which is where the announcements were stored (the placement sends each
// to the Replication closest members other than its announcer), and asks
// the Width closest at once with the DHT's GET_PROVIDERS request, this
// centre's own provider store answering for itself. A member that fails
// is replaced by the next closest. The union of their provider sets is
// the answer. Kademlia's walk (LookupWalk) reaches the same members
// through rounds of closer-peer answers and asks up to 20 of them; here
// that costs three times the latency for nothing the charter does not
// already say.
//
// When fewer than Width members (or all members, if fewer) answered
// within the lookup timeout, the error wraps ErrIncomplete and the result
// holds what was found.
func (d *Directory) Lookup(ctx context.Context, p ledger.Pseudonym) (Result, error) {
	return d.lookup(ctx, p, d.width)
}

// LookupEvery is Lookup asking every member that may store p's
// announcements (the Replication+1 closest), not Width of them: for
// what is asked rarely and must miss no holder whose announcement
// reached one replica (a patient's own requests).
func (d *Directory) LookupEvery(ctx context.Context, p ledger.Pseudonym) (Result, error) {
	return d.lookup(ctx, p, d.replication+1)
}

func (d *Directory) lookup(ctx context.Context, p ledger.Pseudonym, width int) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	key := multihash(digest(d.fed, p))
	members := d.ring()
	// The closest Replication+1 members: the width asked and, should some
	// fail, the next closest. Each stores every holder's announcement: a
	// holder's replicas are the Replication closest but itself, and a
	// holder among them keeps its own.
	order := replicasOf(members, key, d.replication+1, "")
	want := min(width, len(order))

	type answer struct {
		from  peer.ID
		provs []peer.ID
		err   error
	}
	answers := make(chan answer, len(order))
	ask := func(p peer.ID) {
		provs, err := d.providersAt(ctx, p, key)
		answers <- answer{p, provs, err}
	}
	next, inflight := 0, 0
	for ; next < want; next++ {
		go ask(order[next])
		inflight++
	}
	var (
		res     Result
		holders = map[peer.ID]bool{}
	)
	for inflight > 0 {
		a := <-answers
		inflight--
		if a.err != nil {
			res.Failed = append(res.Failed, a.from)
			if next < len(order) {
				go ask(order[next])
				next++
				inflight++
			}
			continue
		}
		res.Answered++
		for _, h := range a.provs {
			holders[h] = true
		}
	}
	for h := range holders {
		if members.Contains(h) {
			res.Holders = append(res.Holders, h)
		} else {
			res.Ignored++
		}
	}
	slices.Sort(res.Holders)
	slices.Sort(res.Failed)
	d.counts.lookups.Inc()
	if len(res.Holders) == 0 {
		d.counts.misses.Inc()
	}
	if res.Answered < want {
		d.counts.incomplete.Inc()
		reason := fmt.Sprintf("%d of the %d closest members answered", res.Answered, want)
		if ctx.Err() != nil {
			reason += fmt.Sprintf(" within %v", d.timeout)
		}
		return res, fmt.Errorf("%w: %s", ErrIncomplete, reason)
	}
	return res, nil
}

// providersAt returns the providers of key that member p stores.
func (d *Directory) providersAt(ctx context.Context, p peer.ID, key mh.Multihash) ([]peer.ID, error) {
	var infos []*peer.AddrInfo
	if p == d.host.ID() {
		local, err := d.dht.ProviderStore().GetProviders(ctx, key)
		if err != nil {
			return nil, err
		}
		for i := range local {
			infos = append(infos, &local[i])
		}
	} else {
		var err error
		if infos, _, err = d.messenger.GetProviders(ctx, p, key); err != nil {
			return nil, err
		}
	}
	out := make([]peer.ID, len(infos))
	for i, ai := range infos {
		out[i] = ai.ID
	}
	return out, nil
}

// LookupWalk is Lookup by Kademlia's iterative walk: FindProvidersAsync
// with count 0, which asks the closest members round by round until the
// closest 20 it heard of have answered. It is slower than Lookup and kept
// to compare with it and to cross-check it.
func (d *Directory) LookupWalk(ctx context.Context, p ledger.Pseudonym) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	evctx, events := routing.RegisterForQueryEvents(ctx)
	var (
		answered = map[peer.ID]bool{}
		failure  string
		wg       sync.WaitGroup
	)
	wg.Go(func() {
		for e := range events { // closed when ctx ends
			switch e.Type {
			case routing.PeerResponse:
				answered[e.ID] = true
			case routing.QueryError:
				if e.ID == "" {
					failure = e.Extra
				}
			}
		}
	})
	members := map[peer.ID]bool{}
	for _, m := range d.members() {
		members[m.ID] = true
	}
	var res Result
	for ai := range d.dht.FindProvidersAsync(evctx, Key(d.fed, p), 0) {
		if !members[ai.ID] {
			res.Ignored++
		} else if !slices.Contains(res.Holders, ai.ID) {
			res.Holders = append(res.Holders, ai.ID)
		}
	}
	timedOut := ctx.Err() != nil
	cancel()
	wg.Wait()
	slices.Sort(res.Holders)
	res.Answered = len(answered)
	switch {
	case timedOut:
		return res, fmt.Errorf("%w: no answer within %v", ErrIncomplete, d.timeout)
	case failure != "":
		return res, fmt.Errorf("%w: %s", ErrIncomplete, failure)
	case res.Answered == 0 && len(members) > 1:
		return res, fmt.Errorf("%w: no other member answered", ErrIncomplete)
	}
	return res, nil
}
