package federation

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/limit"
	"github.com/medfed/medfed/node/stats"
)

// ErrRateLimited refuses a member's request beyond the charter's
// member-rate.
var ErrRateLimited = node.E(node.Unavailable, "rate limited")

// maxTracked bounds the members whose rates are tracked at once.
const maxTracked = 4096

// MemberRate bounds each member's requests to this centre at the
// charter's member-rate: per second, a second's worth at once.
type MemberRate struct {
	charter func() Charter
	buckets *limit.Keyed
	refused stats.Counter
}

// Refused returns how many requests the rate refused since it started.
func (m *MemberRate) Refused() uint64 { return m.refused.Load() }

// NewMemberRate bounds members by the current charter's member-rate.
func NewMemberRate(charter func() Charter) *MemberRate {
	rps := charter().Policy.MemberRateLimit()
	return &MemberRate{charter: charter, buckets: limit.New(float64(rps), int(rps), maxTracked)}
}

// Allow takes one of member from's requests, or refuses it with
// ErrRateLimited.
func (m *MemberRate) Allow(from peer.ID) error {
	rps := m.charter().Policy.MemberRateLimit()
	m.buckets.SetRate(float64(rps), int(rps))
	if !m.buckets.Allow(string(from)) {
		m.refused.Inc()
		return fmt.Errorf("%w: more than the charter's member-rate of %d requests a second", ErrRateLimited, rps)
	}
	return nil
}
