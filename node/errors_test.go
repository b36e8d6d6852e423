package node_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/medfed/medfed/node"
)

func TestKindOf(t *testing.T) {
	errReplay := node.E(node.Conflict, "query request replayed")
	tests := []struct {
		name string
		err  error
		want node.Kind
	}{
		{"nil", nil, node.Internal},
		{"no kind", errors.New("disk full"), node.Internal},
		{"a kind's sentinel wrapped", fmt.Errorf("consent: %w: a bad date", node.ErrInvalid), node.Invalid},
		{"a package's sentinel", fmt.Errorf("query: %w", errReplay), node.Conflict},
		{"the first kind in a chain", fmt.Errorf("%w: %w", node.ErrNotFound, node.ErrUnavailable), node.NotFound},
		{"joined", errors.Join(context.Canceled, node.ErrForbidden), node.Forbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := node.KindOf(tt.err); got != tt.want {
				t.Errorf("KindOf(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestErrorIsItsKind(t *testing.T) {
	errStale := node.E(node.Unavailable, "consent state not confirmed")
	err := fmt.Errorf("decide: %w", errStale)
	if !errors.Is(err, node.ErrUnavailable) || !errors.Is(err, errStale) {
		t.Errorf("%v: not its kind or not its sentinel", err)
	}
	if errors.Is(err, node.ErrInvalid) {
		t.Errorf("%v matches another kind", err)
	}
	// A package's sentinel is not every error of its kind.
	if errors.Is(node.ErrUnavailable, errStale) {
		t.Error("the kind's sentinel matches a package's sentinel")
	}
}
