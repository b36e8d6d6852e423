package node

import (
	"errors"
	"fmt"
)

// Kind classifies an error by what the caller can do about it.
type Kind uint8

// The kinds of error, few on purpose: each adapter maps them once.
const (
	// Internal is a failure of the centre itself (a disk, a bug): the
	// caller did nothing wrong. It is the kind of an error that wraps none.
	Internal Kind = iota
	// Invalid is input that cannot be accepted as it is: malformed,
	// out of range, or not what the operation takes.
	Invalid
	// Unauthenticated is a caller whose identity could not be established.
	Unauthenticated
	// Forbidden is a caller known but not allowed, or a signature that
	// does not verify.
	Forbidden
	// NotFound is something asked for that is not there.
	NotFound
	// Conflict is a request at odds with the state it would change:
	// signed by the wrong set, a replay, a rule already in force.
	Conflict
	// Unavailable is a condition that may pass: a peer down, a quorum
	// not reached, a node not ready. Trying again later may succeed.
	Unavailable
)

var kindNames = [...]string{
	Internal:        "internal",
	Invalid:         "invalid",
	Unauthenticated: "unauthenticated",
	Forbidden:       "forbidden",
	NotFound:        "not found",
	Conflict:        "conflict",
	Unavailable:     "unavailable",
}

// String returns the kind's name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Error is an error of a kind. Compare with errors.Is against the kind's
// sentinel ([ErrInvalid], ...) or against a package's own sentinel made
// with [E].
type Error struct {
	Kind Kind
	Text string
}

func (e *Error) Error() string {
	if e.Text == "" {
		return e.Kind.String()
	}
	return e.Text
}

// Is reports whether target is the sentinel of e's kind, so that every
// error of a kind matches errors.Is(err, ErrKind).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Text == "" && t.Kind == e.Kind
}

// The kinds' sentinels: wrap one with %w to give an error its kind.
var (
	ErrInvalid         error = &Error{Kind: Invalid}
	ErrUnauthenticated error = &Error{Kind: Unauthenticated}
	ErrForbidden       error = &Error{Kind: Forbidden}
	ErrNotFound        error = &Error{Kind: NotFound}
	ErrConflict        error = &Error{Kind: Conflict}
	ErrUnavailable     error = &Error{Kind: Unavailable}
)

// E returns an error of kind k with text: a package's sentinel for a
// case its callers tell apart (a replay, a stale request), which still
// matches its kind's sentinel.
func E(k Kind, text string) error { return &Error{Kind: k, Text: text} }

// KindOf returns the kind of err: that of the first error of a kind in
// its chain, Internal when there is none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}
