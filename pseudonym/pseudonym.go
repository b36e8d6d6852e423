package pseudonym

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"

	"github.com/medfed/medfed/node/ledger"
)

// pseudonymDomain separates pseudonyms from every other use of the OPRF.
const pseudonymDomain = "medfed/pseudonym/v1"

// derive returns a patient's pseudonym, H(domain || federation || OPRF
// output) with the federation ID length-prefixed: the same for the same
// patient at every centre, and not computable without t holders. It is
// the ledger's type, the only way an entry names a patient.
func derive(federation string, out [sha512.Size]byte) ledger.Pseudonym {
	h := sha256.New()
	h.Write([]byte(pseudonymDomain))
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(federation))))
	h.Write([]byte(federation))
	h.Write(out[:])
	var p ledger.Pseudonym
	h.Sum(p[:0])
	return p
}
