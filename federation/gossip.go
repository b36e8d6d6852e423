package federation

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Adopted versions spread by gossip (GossipSub, go-libp2p-pubsub) on one
// topic per federation: a centre that adopts a version publishes its note,
// and every centre checks a note itself before it passes it on, so the
// cost of telling N members is a few messages per member whatever N is.
// The charter protocol's sync, with a few members each interval, catches
// up whatever gossip missed.

// gossipTopic is the topic a federation's adopted versions go out on.
func gossipTopic(federation string) string { return "/medfed/charter/1/" + federation }

// gossip is a centre's side of the charter topic.
type gossip struct {
	topic   *pubsub.Topic
	sub     *pubsub.Subscription
	catchUp atomic.Bool // a sync for a note from ahead is running
}

// noteID is a gossiped message's ID: the hash of the note, so that the
// same version published by two centres (or again after a restart) is
// one message, delivered and passed on once.
func noteID(msg *pb.Message) string {
	h := sha256.Sum256(msg.Data)
	return string(h[:])
}

// startGossip joins the federation's charter topic on the membership's
// host. Notes are validated before they are delivered or passed on: a
// version not after the adopted one is ignored (read no further than its
// header), the next version must verify against the adopted one, and one
// further ahead, which this centre cannot check (it missed versions), is
// ignored, not passed on, and fetched with the versions before it from
// the member that sent it.
func (m *Membership) startGossip(federation string) error {
	// Gossip (IHAVE) goes to Dlazy peers a heartbeat, not to a quarter
	// of every peer connected as by default: a centre connected to most
	// of a large federation would send each version's ID to hundreds of
	// members, every heartbeat for three.
	params := pubsub.DefaultGossipSubParams()
	params.GossipFactor = 0
	ps, err := pubsub.NewGossipSub(m.life, m.host,
		pubsub.WithGossipSubParams(params),
		pubsub.WithMaxMessageSize(MaxCharterNote+4096),
		pubsub.WithMessageIdFn(noteID),
		pubsub.WithPeerFilter(func(id peer.ID, _ string) bool { return m.gater.Allowed(id) }))
	if err != nil {
		return fmt.Errorf("membership: gossip: %w", err)
	}
	g := &gossip{}
	m.gossip = g // before the validator, which reads it, can run
	name := gossipTopic(federation)
	if err := ps.RegisterTopicValidator(name, m.validateGossip); err != nil {
		return fmt.Errorf("membership: gossip: %w", err)
	}
	t, err := ps.Join(name)
	if err != nil {
		return fmt.Errorf("membership: gossip: %w", err)
	}
	sub, err := t.Subscribe()
	if err != nil {
		return fmt.Errorf("membership: gossip: %w", err)
	}
	g.topic, g.sub = t, sub
	m.background(m.readGossip)
	return nil
}

// validateGossip decides whether a gossiped note is delivered and passed
// on.
func (m *Membership) validateGossip(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if from == m.self {
		return pubsub.ValidationAccept // this centre's own, adopted already
	}
	c, err := PeekCharter(msg.Data)
	if err != nil {
		return pubsub.ValidationReject
	}
	cur := m.Current()
	switch {
	case c.Federation != cur.Federation:
		return pubsub.ValidationReject
	case c.Version <= cur.Version:
		return pubsub.ValidationIgnore
	case c.Version == cur.Version+1:
		if _, err := VerifyNext(cur.Charter, msg.Data); err != nil {
			return pubsub.ValidationReject
		}
		return pubsub.ValidationAccept
	}
	if m.gossip.catchUp.CompareAndSwap(false, true) {
		m.background(func(ctx context.Context) {
			defer m.gossip.catchUp.Store(false)
			m.syncFrom(ctx, from)
		})
	}
	return pubsub.ValidationIgnore
}

// readGossip adopts what the topic delivers until the membership closes.
func (m *Membership) readGossip(ctx context.Context) {
	for {
		msg, err := m.gossip.sub.Next(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, pubsub.ErrSubscriptionCancelled) {
				m.log.Warn("charter gossip stopped", "err", err)
			}
			return
		}
		if msg.ReceivedFrom == m.self {
			continue
		}
		if err := m.receiveAdopted(ctx, msg.ReceivedFrom, msg.Data); err != nil {
			m.log.Debug("gossiped charter version not adopted", "from", msg.ReceivedFrom, "err", err)
		}
	}
}

// publish gossips an adopted note.
func (m *Membership) publish(ctx context.Context, note []byte) {
	if m.gossip == nil {
		return
	}
	if err := m.gossip.topic.Publish(ctx, note); err != nil && ctx.Err() == nil {
		m.log.Warn("charter version not gossiped", "err", err)
	}
}
