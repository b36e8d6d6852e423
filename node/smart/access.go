package smart

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/medfed/medfed/node"
)

// TokenPrefix marks a medfed access token, so that one pasted into the
// wrong place is recognisable (and secret scanners can find it).
const TokenPrefix = "mfa_"

// tokenLen is the length of an access token: the prefix and 32 random
// bytes in unpadded base64url.
var tokenLen = len(TokenPrefix) + base64.RawURLEncoding.EncodedLen(32)

// ErrUnknownToken is returned for an access token this centre did not
// issue (or issued before it restarted), or whose client, or staff
// member, is no longer live.
var ErrUnknownToken = node.E(node.Unauthenticated, "unknown or revoked access token")

// ErrExpiredToken is returned for an access token past its lifetime: the
// client asks for another with a new assertion.
var ErrExpiredToken = node.E(node.Unauthenticated, "the access token has expired: ask the token endpoint for another")

// Grant is what an access token allows.
type Grant struct {
	Client string   // the client's ID
	Scopes []string // the system scopes granted, as asked for
	// The staff member the client acts for, their role at this centre and
	// the purpose of use, in medfed's words: "treatment" (TREAT),
	// "research" (HRESCH) or "operations" (HOPERAT); never emergency,
	// which is POST /v1/emergency's. Empty when the assertion carried no
	// IUA claims.
	Staff, Role, Purpose string
	Issued, Expires      time.Time
}

// extensions are the IUA claims a grant was made with.
func (g Grant) extensions() *Extensions {
	if g.Staff == "" {
		return nil
	}
	iua := &IUA{SubjectID: g.Staff, SubjectRole: &Coding{System: RoleSystem, Code: g.Role}}
	if i := slices.IndexFunc(purposes, func(p purpose) bool { return p.name == g.Purpose }); i >= 0 {
		iua.PurposeOfUse = &Coding{System: PurposeSystem, Code: purposes[i].code}
	}
	return &Extensions{IUA: iua}
}

// liveLimit is MaxLiveTokens, which a test lowers.
var liveLimit = MaxLiveTokens

// reserve counts a token about to be issued to client, refusing one past
// MaxLiveTokens.
func (s *Server) reserve(client string, now time.Time) *Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(now, false)
	if s.live[client] >= liveLimit {
		s.prune(now, true)
	}
	if s.live[client] >= liveLimit {
		return &Error{
			Code:        CodeInvalidRequest,
			Description: fmt.Sprintf("the client holds %d live access tokens, the most it may: use one until it expires", liveLimit),
			Status:      http.StatusTooManyRequests,
		}
	}
	s.live[client]++
	return nil
}

// forget counts one token of client less.
func (s *Server) forget(client string) {
	if s.live[client] <= 1 {
		delete(s.live, client)
	} else {
		s.live[client]--
	}
}

// prune drops the expired tokens, at most once a second unless forced.
// It is called with s.mu held.
func (s *Server) prune(now time.Time, force bool) {
	if since := now.Sub(s.pruned); !force && since >= 0 && since < time.Second {
		return
	}
	s.pruned = now
	for h, g := range s.tokens {
		if !now.Before(g.Expires) {
			delete(s.tokens, h)
			s.forget(g.Client)
		}
	}
}

// issue makes an access token for a reserved grant; only its SHA-256 is
// kept.
func (s *Server) issue(g *Grant) string {
	var secret [32]byte
	rand.Read(secret[:])
	token := TokenPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
	h := sha256.Sum256([]byte(token))
	s.mu.Lock()
	s.tokens[h] = g
	s.mu.Unlock()
	return token
}

// Check returns what an access token allows: ErrUnknownToken for one
// this centre did not issue, or issued to a client since revoked, or for
// a staff member no longer live with that role; ErrExpiredToken for one
// past its lifetime. Other errors are the centre's (a failing disk, a
// staff store that does not check out).
func (s *Server) Check(ctx context.Context, token string) (Grant, error) {
	if len(token) != tokenLen || !strings.HasPrefix(token, TokenPrefix) {
		return Grant{}, ErrUnknownToken
	}
	h := sha256.Sum256([]byte(token))
	now := s.now()
	s.mu.Lock()
	g, ok := s.tokens[h]
	expired := ok && !now.Before(g.Expires)
	if expired {
		delete(s.tokens, h)
		s.forget(g.Client)
	}
	s.mu.Unlock()
	switch {
	case !ok:
		return Grant{}, ErrUnknownToken
	case expired:
		return Grant{}, ErrExpiredToken
	}
	// Revoking a client, or a staff member, counts at once: the token is
	// as good as the registration and the credential behind it now.
	switch _, err := s.client(ctx, g.Client); {
	case errors.Is(err, ErrUnknownClient), errors.Is(err, ErrTampered):
		return Grant{}, ErrUnknownToken
	case err != nil:
		return Grant{}, fmt.Errorf("smart check: %w", err)
	}
	if g.Staff != "" {
		if s.staff == nil {
			return Grant{}, ErrUnknownToken
		}
		role, err := s.staff(ctx, g.Staff)
		switch {
		case err != nil && node.KindOf(err) == node.Internal:
			return Grant{}, fmt.Errorf("smart check: the staff store: %w", err)
		case err != nil, role != g.Role:
			return Grant{}, ErrUnknownToken
		}
	}
	out := *g
	out.Scopes = slices.Clone(g.Scopes)
	return out, nil
}

// Introspection is an introspection answer (RFC 7662): {"active": false}
// for a token that is not, else what it allows.
type Introspection struct {
	Active     bool        `json:"active"`
	Scope      string      `json:"scope,omitempty"`
	ClientID   string      `json:"client_id,omitempty"`
	TokenType  string      `json:"token_type,omitempty"`
	Exp        int64       `json:"exp,omitempty"`
	Iat        int64       `json:"iat,omitempty"`
	Sub        string      `json:"sub,omitempty"` // the staff ID the client acts for
	Extensions *Extensions `json:"extensions,omitempty"`
}

// Introspect says whether an access token is active, and what it allows.
// A token Check refuses, for whatever reason, is inactive (RFC 7662 tells
// the caller no more).
func (s *Server) Introspect(ctx context.Context, token string) Introspection {
	g, err := s.Check(ctx, token)
	if err != nil {
		return Introspection{}
	}
	return Introspection{
		Active:     true,
		Scope:      strings.Join(g.Scopes, " "),
		ClientID:   g.Client,
		TokenType:  "bearer",
		Exp:        g.Expires.Unix(),
		Iat:        g.Issued.Unix(),
		Sub:        g.Staff,
		Extensions: g.extensions(),
	}
}
