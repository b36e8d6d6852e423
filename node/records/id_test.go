package records_test

import (
	"strings"
	"testing"

	"github.com/medfed/medfed/node/records"
)

func TestIDStringParseRoundTrip(t *testing.T) {
	var id records.ID
	copy(id[:], randomBytes(t, len(id)))
	s := id.String()
	if len(s) != 32 || strings.ToLower(s) != s {
		t.Fatalf("String() = %q, want 32 lowercase hex digits", s)
	}
	got, err := records.ParseID(s)
	if err != nil {
		t.Fatalf("ParseID(%q): %v", s, err)
	}
	if got != id {
		t.Fatalf("ParseID(String()) = %v, want %v", got, id)
	}
}

func TestParseIDRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"too short", "0123456789abcdef0123456789abcde"},
		{"too long", "0123456789abcdef0123456789abcdef0"},
		{"uppercase", "0123456789ABCDEF0123456789abcdef"},
		{"not hex", "0123456789abcdef0123456789abcdeg"},
		{"spaces", " 0123456789abcdef0123456789abcde"},
		{"multibyte", "0123456789abcdef0123456789abcdé"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := records.ParseID(tt.in)
			if err == nil {
				t.Fatalf("ParseID(%q) succeeded, want an error", tt.in)
			}
			if !strings.Contains(err.Error(), "invalid payload ID") {
				t.Errorf("error %q does not say the ID is invalid", err)
			}
			if tt.in != "" && strings.Contains(err.Error(), tt.in) {
				t.Errorf("error %q echoes the input", err)
			}
		})
	}
}

func FuzzParseID(f *testing.F) {
	f.Add("0123456789abcdef0123456789abcdef")
	f.Add("0123456789ABCDEF0123456789ABCDEF")
	f.Add("")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := records.ParseID(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("ParseID(%q) = %v, which prints as %q", s, id, id.String())
		}
	})
}
