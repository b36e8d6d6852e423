package records

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/medfed/medfed/node"
)

// ID names one stored payload: 16 random bytes, so IDs drawn by different
// centres never collide and reveal nothing about the payload or the patient.
type ID [16]byte

// String returns the ID as 32 lowercase hexadecimal digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID parses the form produced by [ID.String]. Only lowercase hex is
// accepted, so each ID has exactly one spelling.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		// The input is not echoed: it came from outside and may be anything.
		return ID{}, fmt.Errorf("%w: records: invalid payload ID: want %d hex digits, got %d characters", node.ErrInvalid, 2*len(id), len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ID{}, fmt.Errorf("%w: records: invalid payload ID: want lowercase hex digits only", node.ErrInvalid)
		}
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return ID{}, fmt.Errorf("%w: records: invalid payload ID: not hex", node.ErrInvalid)
	}
	return id, nil
}

func newID() (ID, error) {
	var id ID
	if err := fillRandom(id[:]); err != nil {
		return ID{}, err
	}
	return id, nil
}

// fillRandom fills b from crypto/rand. The default reader never fails (it
// crashes the program instead), but a replaced rand.Reader may.
func fillRandom(b []byte) error {
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("records: reading randomness: %w", err)
	}
	return nil
}
