package enum_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/enum"
)

type colour uint8

const (
	red colour = iota + 1
	green
	blue
)

var colours = enum.New[colour]("colour", []string{red: "red", green: "green", blue: "blue"})

func TestNames(t *testing.T) {
	tests := []struct {
		name  string
		v     colour
		valid bool
		text  string
	}{
		{"first", red, true, "red"},
		{"last", blue, true, "blue"},
		{"zero, unnamed", 0, false, "colour(0)"},
		{"beyond the table", 9, false, "colour(9)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := colours.Valid(tt.v); got != tt.valid {
				t.Errorf("Valid(%d) = %v, want %v", tt.v, got, tt.valid)
			}
			if got := colours.String(tt.v); got != tt.text {
				t.Errorf("String(%d) = %q, want %q", tt.v, got, tt.text)
			}
			if !tt.valid {
				return
			}
			if v, err := colours.Parse("colour", tt.text); err != nil || v != tt.v {
				t.Errorf("Parse(%q) = %d, %v; want %d", tt.text, v, err, tt.v)
			}
		})
	}
	for _, s := range []string{"", "Red", "purple"} {
		if _, err := colours.Parse("colour", s); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("Parse(%q): %v, want an invalid error", s, err)
		}
	}
}

type sense uint8

var senses = enum.NewFlags[sense]("sight", "smell")

func TestFlags(t *testing.T) {
	tests := []struct {
		name  string
		v     sense
		valid bool
		text  string
	}{
		{"none", 0, true, "any"},
		{"one", 1, true, "sight"},
		{"both", 3, true, "sight,smell"},
		{"an unnamed bit", 4, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := senses.Valid(tt.v); got != tt.valid {
				t.Errorf("Valid(%d) = %v, want %v", tt.v, got, tt.valid)
			}
			if tt.valid && senses.String(tt.v) != tt.text {
				t.Errorf("String(%d) = %q, want %q", tt.v, senses.String(tt.v), tt.text)
			}
		})
	}
	if got := senses.Names(3); !slices.Equal(got, []string{"sight", "smell"}) || senses.Names(0) != nil {
		t.Errorf("Names(3) = %q, Names(0) = %q", got, senses.Names(0))
	}
	if v, err := senses.Parse("sense", "smell"); err != nil || v != 2 {
		t.Errorf("Parse(smell) = %d, %v", v, err)
	}
	if _, err := senses.Parse("sense", "sight,smell"); !errors.Is(err, node.ErrInvalid) {
		t.Errorf("Parse of two names: %v, want an invalid error", err)
	}
}

func ExampleNames() {
	type Role uint8
	const (
		Clinician Role = iota + 1
		Researcher
	)
	roles := enum.New[Role]("role", []string{Clinician: "clinician", Researcher: "researcher"})
	fmt.Println(roles.String(Researcher), roles.String(7), roles.Valid(7))
	_, err := roles.Parse("role", "surgeon")
	fmt.Println(err)
	// Output:
	// researcher role(7) false
	// invalid: role "surgeon": want clinician or researcher
}
