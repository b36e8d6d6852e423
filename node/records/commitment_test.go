package records_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/medfed/medfed/node/records"
)

// TestCommitMatchesSpec recomputes the commitment as DESIGN.md defines it,
// so other implementations (a recipient centre) can interoperate.
func TestCommitMatchesSpec(t *testing.T) {
	var o records.Opening
	copy(o[:], randomBytes(t, len(o)))
	payload := []byte("HbA1c 48 mmol/mol")

	m := hmac.New(sha256.New, o[:])
	m.Write([]byte("medfed/records/commitment/v1\x00"))
	m.Write(payload)
	want := m.Sum(nil)

	got := records.Commit(o, payload)
	if !hmac.Equal(got[:], want) {
		t.Fatalf("Commit = %x, want %x", got, want)
	}
}

func TestCommitmentVerify(t *testing.T) {
	var o, other records.Opening
	copy(o[:], randomBytes(t, len(o)))
	copy(other[:], randomBytes(t, len(other)))
	payload := []byte("potassium 4.1 mmol/L")
	c := records.Commit(o, payload)

	flipped := append([]byte(nil), payload...)
	flipped[3] ^= 0x01

	tests := []struct {
		name    string
		opening records.Opening
		payload []byte
		want    bool
	}{
		{"right opening and payload", o, payload, true},
		{"wrong opening", other, payload, false},
		{"zero opening", records.Opening{}, payload, false},
		{"one bit of payload changed", o, flipped, false},
		{"payload truncated", o, payload[:len(payload)-1], false},
		{"payload extended", o, append(append([]byte(nil), payload...), 0), false},
		{"empty payload", o, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Verify(tt.opening, tt.payload); got != tt.want {
				t.Errorf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOpeningStaysOutOfLogs(t *testing.T) {
	var o records.Opening
	copy(o[:], randomBytes(t, len(o)))
	hexOpening := fmt.Sprintf("%x", o[:])

	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("sent", "opening", o)
	for _, out := range []string{logged.String(), fmt.Sprint(o), fmt.Sprintf("%v", o)} {
		if strings.Contains(out, hexOpening) || !strings.Contains(out, "REDACTED") {
			t.Errorf("output %q shows the opening", out)
		}
	}
}
