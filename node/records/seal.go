package records

import "fmt"

// seal encrypts o || payload under a fresh data key and wraps the data key
// under the centre key. The ID is the additional data of both, so sealed
// material moved to another row fails to open.
func (s *Store) seal(id ID, o Opening, payload []byte) (wrapped, ciphertext []byte, err error) {
	var dataKey [keySize]byte
	if err := fillRandom(dataKey[:]); err != nil {
		return nil, nil, err
	}
	defer clear(dataKey[:])
	aead, err := newAEAD(dataKey[:])
	if err != nil {
		return nil, nil, fmt.Errorf("records: %w", err)
	}
	plaintext := make([]byte, 0, len(o)+len(payload))
	plaintext = append(append(plaintext, o[:]...), payload...)
	ciphertext = aead.Seal(nil, nil, plaintext, id[:])
	clear(plaintext) // it holds the Opening
	wrapped = s.wrap.Seal(nil, nil, dataKey[:], id[:])
	return wrapped, ciphertext, nil
}

// open reverses seal. Any tampering, a wrong centre key or material from
// another row is an authentication failure, reported without the bytes.
func (s *Store) open(id ID, wrapped, ciphertext []byte) ([]byte, Opening, error) {
	dataKey, err := s.wrap.Open(nil, nil, wrapped, id[:])
	if err != nil {
		return nil, Opening{}, fmt.Errorf("records: payload %s failed authentication: its data key does not open under the centre key", id)
	}
	defer clear(dataKey)
	if len(dataKey) != keySize {
		return nil, Opening{}, fmt.Errorf("records: payload %s: data key is %d bytes, want %d", id, len(dataKey), keySize)
	}
	aead, err := newAEAD(dataKey)
	if err != nil {
		return nil, Opening{}, fmt.Errorf("records: %w", err)
	}
	plaintext, err := aead.Open(nil, nil, ciphertext, id[:])
	if err != nil {
		return nil, Opening{}, fmt.Errorf("records: payload %s failed authentication: its ciphertext does not open under its data key", id)
	}
	var o Opening
	if len(plaintext) <= len(o) {
		return nil, Opening{}, fmt.Errorf("records: payload %s: sealed data is too short", id)
	}
	copy(o[:], plaintext)
	clear(plaintext[:len(o)]) // the payload slice returned shares this array
	return plaintext[len(o):], o, nil
}
