package centre

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/medfed/medfed/federation"
)

// Founding and joining a federation, with files that operators exchange out
// of band: a centre describes itself in a signed join request; the first
// founder drafts version 1 of the charter from the founders' requests and
// signs it; every other founder signs it too; each installs it. A centre
// that joins later sends its request to the members, who approve it on
// their running nodes, then fetches the chain from any member (Join).

// member describes this centre as the charter lists it, reachable at the
// configured listen addresses.
func (c *Centre) member(listen []string) (federation.Member, error) {
	m := federation.Member{Name: c.Name, ID: c.id}
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return m, fmt.Errorf("p2p.listen: %w", err)
		}
		for _, code := range []int{ma.P_TCP, ma.P_UDP} {
			if port, err := a.ValueForProtocol(code); err == nil && port == "0" {
				return m, fmt.Errorf("p2p.listen %s has port 0: other centres need a fixed address", s)
			}
		}
		m.Addrs = append(m.Addrs, a)
	}
	return m, nil
}

// JoinRequest returns this centre's signed join request.
func (c *Centre) JoinRequest(listen []string) ([]byte, error) {
	m, err := c.member(listen)
	if err != nil {
		return nil, err
	}
	return federation.SignRequest(federation.JoinRequest{Federation: c.federation, Member: m}, c.key)
}

// Found drafts version 1 of a charter listing this centre and the centres
// of the given join requests, under policy, and signs it. It deals the
// federation's pseudonym key (policy.OPRFThreshold of the founders, at
// least 2) and returns the shares sealed to each founder, to travel with
// the draft. A federation founded by one centre has no pseudonym key.
func (c *Centre) Found(listen []string, requests [][]byte, policy federation.Policy) (draft, shares []byte, err error) {
	self, err := c.member(listen)
	if err != nil {
		return nil, nil, err
	}
	members := []federation.Member{self}
	for i, b := range requests {
		r, err := federation.OpenRequest(b)
		if err != nil {
			return nil, nil, fmt.Errorf("request %d: %w", i+1, err)
		}
		if r.Federation != c.federation {
			return nil, nil, fmt.Errorf("request %d is for federation %q, not %q", i+1, r.Federation, c.federation)
		}
		members = append(members, r.Member)
	}
	slices.SortFunc(members, func(a, b federation.Member) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	ch := federation.Charter{Federation: c.federation, Version: 1, Policy: policy, Members: members}
	if err := ch.Validate(); err != nil {
		return nil, nil, err
	}
	if len(members) > 1 { // alone, a founder would hold the whole key: no pseudonyms
		if shares, err = deal(&ch); err != nil {
			return nil, nil, err
		}
	}
	if err := ch.Validate(); err != nil {
		return nil, nil, err
	}
	draft, err = federation.Sign(ch, nil, c.key)
	return draft, shares, err
}

// SignCharter adds this centre's signature to a draft of version 1 that
// lists it. When the draft deals this centre a share of the pseudonym key,
// shares must be the sealed shares file: the share is opened and checked
// before signing (and kept only by InstallFounding), so a founder never
// signs a key it cannot use.
func (c *Centre) SignCharter(note, shares []byte) ([]byte, error) {
	ch, err := federation.PeekCharter(note)
	if err != nil {
		return nil, err
	}
	if ch.Version != 1 {
		return nil, fmt.Errorf("%w: only version 1 is signed by hand; later versions are approved on a running node", federation.ErrChain)
	}
	if m, ok := ch.Member(c.id); !ok || m.Name != c.Name {
		return nil, fmt.Errorf("%w: the draft does not list this centre as %s (%s)", federation.ErrNotMember, c.Name, c.id)
	}
	keys, err := pseudonymKeys(ch) // a founder signs only a key any t founders can use
	if err != nil {
		return nil, err
	}
	if keys != nil {
		if _, holder := keys.Holder(c.id); holder {
			if _, err := c.openShare(keys, shares); err != nil {
				return nil, err
			}
		}
	}
	return federation.Sign(ch, note, c.key)
}

// InstallFounding adopts version 1 of a charter every founder signed. When
// the charter lists this centre as a holder of the pseudonym key, shares
// must be the sealed shares file the first founder's Found wrote: this
// centre's share is opened, checked against the charter and kept in
// ShareFile before the charter is adopted.
func (c *Centre) InstallFounding(ctx context.Context, note, shares []byte) (federation.Signed, error) {
	s, err := federation.VerifyFounding(note)
	if err != nil {
		return s, err
	}
	keys, err := pseudonymKeys(s.Charter)
	if err != nil {
		return s, err
	}
	if keys != nil {
		if _, holder := keys.Holder(c.id); holder {
			if err := c.installShare(keys, shares); err != nil {
				return s, err
			}
		}
	}
	return c.InstallCharter(ctx, [][]byte{note})
}

// Join fetches the charter chain from a member at addr (a multiaddr ending
// in /p2p/<peer ID>) once the members have admitted this centre, and
// installs it.
func Join(ctx context.Context, cfg Config, addr string) (federation.Signed, error) {
	info, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return federation.Signed{}, fmt.Errorf("--peer: %w", err)
	}
	c, err := Open(ctx, cfg, nil)
	if err != nil {
		return federation.Signed{}, err
	}
	defer c.Close()
	p2p := cfg.P2P
	p2p.Listen = []string{"/ip4/127.0.0.1/tcp/0"} // dial only
	h, err := newHost(p2p, c.key, federation.NewGater(info.ID))
	if err != nil {
		return federation.Signed{}, err
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := h.Connect(ctx, *info); err != nil {
		return federation.Signed{}, fmt.Errorf("reaching %s (has the federation admitted this centre yet?): %w", info.ID, err)
	}
	chain, err := federation.FetchChain(ctx, h, info.ID)
	if err != nil {
		return federation.Signed{}, err
	}
	return c.InstallCharter(ctx, chain)
}
