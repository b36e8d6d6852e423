// Package enum names the values of medfed's small enums (the kind of a
// ledger entry, a role, a purpose of use) from one table each, so that a
// value's String, the Parse of its name and the check of a decoded value
// cannot disagree. The numbers are the encodings' and never change; the
// names are what people type and read.
package enum

import (
	"fmt"
	"strings"

	"github.com/medfed/medfed/node"
)

// Names names the values of an enum: one value at a time.
type Names[T ~uint8] struct {
	noun  string
	names []string
}

// New returns the names of an enum whose value v is called names[v]; a
// value beyond the table or named "" is not one of the enum's. noun names
// the enum in the String of such a value: "role(9)".
func New[T ~uint8](noun string, names []string) Names[T] {
	return Names[T]{noun: noun, names: names}
}

// Valid reports whether v is one of the enum's values.
func (n Names[T]) Valid(v T) bool { return int(v) < len(n.names) && n.names[v] != "" }

// String returns v's name, or the noun and v's number when v has none.
func (n Names[T]) String(v T) string {
	if n.Valid(v) {
		return n.names[v]
	}
	return fmt.Sprintf("%s(%d)", n.noun, uint8(v))
}

// Parse returns the value named s; what names the field in the error,
// which is of kind node.Invalid and lists the names.
func (n Names[T]) Parse(what, s string) (T, error) {
	for v, name := range n.names {
		if name != "" && name == s {
			return T(v), nil
		}
	}
	var names []string
	for _, name := range n.names {
		if name != "" {
			names = append(names, name)
		}
	}
	return 0, invalid(what, s, names)
}

// Flags names the bits of a set: a value may hold several, and zero holds
// none.
type Flags[T ~uint8] struct{ names []string }

// NewFlags returns the names of a set whose bit 1<<i is called names[i].
func NewFlags[T ~uint8](names ...string) Flags[T] { return Flags[T]{names: names} }

// Valid reports whether v holds no bit beyond the named ones.
func (f Flags[T]) Valid(v T) bool { return v>>len(f.names) == 0 }

// Names returns the names of v's bits, in order; nil for none.
func (f Flags[T]) Names(v T) []string {
	var names []string
	for i, name := range f.names {
		if v&(1<<i) != 0 {
			names = append(names, name)
		}
	}
	return names
}

// String returns the names of v's bits, joined with commas; "any" for
// none, which is what an empty set means where sets scope a rule.
func (f Flags[T]) String(v T) string {
	if names := f.Names(v); len(names) > 0 {
		return strings.Join(names, ",")
	}
	return "any"
}

// Parse returns the one bit named s; what names the field in the error,
// which is of kind node.Invalid and lists the names.
func (f Flags[T]) Parse(what, s string) (T, error) {
	for i, name := range f.names {
		if name == s {
			return T(1 << i), nil
		}
	}
	return 0, invalid(what, s, f.names)
}

func invalid(what, s string, names []string) error {
	want := "one of " + strings.Join(names, ", ")
	if len(names) == 2 {
		want = names[0] + " or " + names[1]
	}
	return fmt.Errorf("%w: %s %q: want %s", node.ErrInvalid, what, s, want)
}
