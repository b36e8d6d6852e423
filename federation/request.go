package federation

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node"
)

// MaxRequestNote bounds a signed join request; larger ones are refused
// before they are parsed. A member line is under 600 bytes.
const MaxRequestNote = 8 << 10

const (
	maxRequestText = 4 << 10
	requestHeader  = "medfed join request v1"
)

// JoinRequest is a centre's request to join a federation, made offline and
// signed with the key of its peer ID. Founders use one to describe
// themselves to the first founder, who drafts version 1 from them.
type JoinRequest struct {
	Federation string
	Member     Member
}

// Text returns the request's canonical text, the text the requester signs.
func (r JoinRequest) Text() string {
	var b strings.Builder
	b.WriteString(requestHeader + "\n")
	b.WriteString("federation " + r.Federation + "\n")
	b.WriteString("member ")
	r.Member.writeLine(&b)
	b.WriteByte('\n')
	return b.String()
}

func (r JoinRequest) check() error {
	if !ValidName(r.Federation) {
		return errors.New("federation: want 1 to 63 of a-z, 0-9 and '-', not starting with '-'")
	}
	if err := r.Member.check(); err != nil {
		return fmt.Errorf("member: %v", err)
	}
	return nil
}

// ParseJoinRequest parses a request's text. Like ParseCharter it accepts
// only the canonical text of a valid request.
func ParseJoinRequest(text string) (JoinRequest, error) {
	r, err := parseJoinRequest(text)
	if err != nil {
		return JoinRequest{}, fmt.Errorf("parse join request: %w: malformed: %v", node.ErrInvalid, err)
	}
	return r, nil
}

func parseJoinRequest(text string) (JoinRequest, error) {
	if len(text) > maxRequestText {
		return JoinRequest{}, fmt.Errorf("text is %d bytes, more than %d", len(text), maxRequestText)
	}
	lines, err := splitLines(text)
	if err != nil {
		return JoinRequest{}, err
	}
	if lines[0] != requestHeader {
		return JoinRequest{}, fmt.Errorf("line 1: want %q", requestHeader)
	}
	if len(lines) != 3 {
		return JoinRequest{}, fmt.Errorf("%d lines, want 3", len(lines))
	}
	lr := lineReader{lines: lines, n: 1}
	var r JoinRequest
	if r.Federation, err = lr.field("federation"); err != nil {
		return JoinRequest{}, err
	}
	s, err := lr.field("member")
	if err != nil {
		return JoinRequest{}, err
	}
	if r.Member, err = parseMember(strings.Split(s, " ")); err != nil {
		return JoinRequest{}, fmt.Errorf("line 3: member: %v", err)
	}
	if err := r.check(); err != nil {
		return JoinRequest{}, err
	}
	if err := sameText(r.Text(), text); err != nil {
		return JoinRequest{}, err
	}
	return r, nil
}

// SignRequest signs r with key, which must be the key of r.Member.ID.
func SignRequest(r JoinRequest, key ed25519.PrivateKey) ([]byte, error) {
	const op = "sign join request"
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("%s: %w: malformed: %v", op, node.ErrInvalid, err)
	}
	id, err := PeerIDFromKey(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if id != r.Member.ID {
		return nil, fmt.Errorf("%s: %w: the key is not the key of %s's peer ID", op, ErrSignatures, r.Member.Name)
	}
	text := r.Text()
	sig, err := signText(text, key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	out, err := encodeNote(text, []sigLine{sig}, MaxRequestNote)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}

// OpenRequest verifies a signed join request: it must carry exactly one
// signature, by the key in the requester's peer ID, which proves that the
// requester holds the key it asks to be admitted with. It does not say
// whether the members should admit it.
func OpenRequest(note []byte) (JoinRequest, error) {
	const op = "open join request"
	text, sigs, err := splitNote(note, MaxRequestNote)
	if err != nil {
		return JoinRequest{}, fmt.Errorf("%s: %w: malformed: note: %v", op, node.ErrInvalid, err)
	}
	r, err := parseJoinRequest(text)
	if err != nil {
		return JoinRequest{}, fmt.Errorf("%s: %w: malformed: %v", op, node.ErrInvalid, err)
	}
	if len(sigs) != 1 {
		return JoinRequest{}, fmt.Errorf("%s: %w: %d signatures, want only the requester's", op, ErrSignatures, len(sigs))
	}
	_, err = verifySigs(text, sigs, func(id peer.ID) error {
		if id != r.Member.ID {
			return fmt.Errorf("not the requester %s", r.Member.Name)
		}
		return nil
	})
	if err != nil {
		return JoinRequest{}, fmt.Errorf("%s: %w", op, err)
	}
	return r, nil
}
