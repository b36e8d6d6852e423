package directory

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/multiformats/go-base32"
)

// Provider records' keys in the table.
//
// kad-dht keeps a provider record under "/providers/" + base32(key) + "/" +
// base32(provider), which the store holds under recordsNS: 136 bytes of
// text for a 34-byte key and a 38-byte peer ID, most of each row. The
// table holds such a key as a BLOB instead, 0x01, the key's length, the
// key, the provider's ID and its length: 75 bytes. The lengths make a
// key's records one range of the table (its prefix) and a provider's
// records those that end in its ID and length (count).
//
// Provider records arrive in random key order, so each one written
// dirties a leaf of the table of its own unless the leaves are few; with
// rows 40 % shorter, inserting 120,000 of them into a table of 600,000
// (BenchmarkStoreFlush, with 4 KiB pages, before pageSize) cost 35 to 37
// µs a row against 43 to 45 in flushes of 6,000, 13 to 14 against 17 to
// 20 in flushes of 60,000.
//
// Only the table sees the binary form: the overlay, the MACs and every
// caller see the text key. SQLite orders every TEXT before every BLOB,
// so a range of text keys is one range of the table's text keys and at
// most one of its binary ones (providerRange), scanned in that order.

// providersPrefix is where the store keeps kad-dht's provider records.
var providersPrefix = recordsNS.String() + records.ProvidersKeyPrefix

// providerTag starts a provider record's key in binary.
const providerTag = 0x01

// tableKey is a key as the table holds it: text (s), or a provider
// record's in binary (b, never empty).
type tableKey struct {
	s string
	b []byte
}

// bin reports whether the table holds the key in binary.
func (k tableKey) bin() bool { return k.b != nil }

// arg is the key as a statement's argument: a BLOB for a binary key.
func (k tableKey) arg() any {
	if k.bin() {
		return k.b
	}
	return k.s
}

// compare orders keys as the table does: every text key before every
// binary one, each kind by its bytes.
func (k tableKey) compare(o tableKey) int {
	switch {
	case k.bin() && o.bin():
		return bytes.Compare(k.b, o.b)
	case k.bin():
		return 1
	case o.bin():
		return -1
	default:
		return strings.Compare(k.s, o.s)
	}
}

// sortPrefix returns a number that orders keys as compare does, where
// two numbers differ: every text key's is 0, a binary key's is its first
// 8 bytes (zero-padded) shifted right by one with the top bit set. A
// provider record's first 8 bytes hold 4 bytes of its key's digest (a
// sha2-256 multihash), 31 bits of them in the number, so that among a
// flush's tens of thousands of keys few numbers tie but those of one
// key's records.
func (k tableKey) sortPrefix() uint64 {
	if !k.bin() {
		return 0
	}
	var p [8]byte
	copy(p[:], k.b)
	return 1<<63 | binary.BigEndian.Uint64(p[:])>>1
}

// sortKey is a row's place in a flush's order: its key's sortPrefix and
// its index among the flush's rows.
type sortKey struct {
	pre uint64
	i   int
}

// toTable returns how the table holds the key k: in binary when k is a
// provider record's key in kad-dht's canonical form, as text otherwise.
// The key and the provider's ID are decoded straight into the binary key,
// each canonical base32, neither empty nor over 255 bytes: a replica
// makes one of these for every provider record it stores.
func toTable(k string) tableKey {
	rest, ok := strings.CutPrefix(k, providersPrefix)
	if !ok {
		return tableKey{s: k}
	}
	key, peer, ok := strings.Cut(rest, "/")
	if !ok {
		return tableKey{s: k}
	}
	if len(key) > maxPart || len(peer) > maxPart { // over 255 bytes
		return tableKey{s: k}
	}
	b := make([]byte, 2, 3+len(rest)*5/8)
	b[0] = providerTag
	b, ok = appendBase32(b, key)
	if !ok {
		return tableKey{s: k}
	}
	n := len(b) - 2
	b[1] = byte(n)
	if b, ok = appendBase32(b, peer); !ok {
		return tableKey{s: k}
	}
	return tableKey{b: append(b, byte(len(b)-2-n))}
}

// maxPart is the length of the base32 of 255 bytes, the longest key or
// provider ID a binary key holds.
const maxPart = (255*8 + 4) / 5

// peerSuffix is how a binary key ends when peer is its provider's ID.
func peerSuffix(peer []byte) []byte {
	return append(bytes.Clone(peer), byte(len(peer)))
}

// canonicalBase32 decodes s, non-empty, when encoding the result gives s
// back (appendBase32).
func canonicalBase32(s string) ([]byte, bool) {
	return appendBase32(nil, s)
}

// appendBase32 appends to dst the bytes s encodes in unpadded base32
// (RFC 4648's alphabet), when s is non-empty and encoding them gives s
// back: s is in the alphabet, and the bits of its last character beyond
// the bytes are fewer than a character's and zero. (Decoded so, without
// the go-base32 package's copy of s and its result.)
func appendBase32(dst []byte, s string) ([]byte, bool) {
	if s == "" {
		return dst, false
	}
	var acc uint64
	bits := 0
	for i := range len(s) {
		c := s[i]
		var v byte
		switch {
		case c >= 'A' && c <= 'Z':
			v = c - 'A'
		case c >= '2' && c <= '7':
			v = c - '2' + 26
		default:
			return dst, false
		}
		acc = acc<<5 | uint64(v)
		if bits += 5; bits >= 8 {
			bits -= 8
			dst = append(dst, byte(acc>>bits))
		}
	}
	return dst, bits < 5 && acc&(1<<bits-1) == 0
}

var errBinaryKey = errors.New("malformed binary provider key")

// fromTable returns the text key of a key the table holds in binary.
func fromTable(b []byte) (string, error) {
	if len(b) < 5 || b[0] != providerTag || b[1] == 0 || b[len(b)-1] == 0 || 3+int(b[1])+int(b[len(b)-1]) != len(b) {
		return "", fmt.Errorf("%w (%d bytes)", errBinaryKey, len(b))
	}
	key, peer := b[2:2+int(b[1])], b[2+int(b[1]):len(b)-1]
	return providersPrefix + base32.RawStdEncoding.EncodeToString(key) + "/" + base32.RawStdEncoding.EncodeToString(peer), nil
}

// scanKey returns the text key of a key column read as any (a TEXT key
// as it is, a BLOB one decoded), and the key as the table holds it.
func scanKey(v any) (string, tableKey, error) {
	switch v := v.(type) {
	case string:
		return v, tableKey{s: v}, nil
	case []byte:
		k, err := fromTable(v)
		return k, tableKey{b: v}, err
	default:
		return "", tableKey{}, fmt.Errorf("a key of type %T", v)
	}
}

// providerRange returns the range [lo, hi) of the binary keys whose text
// keys are the strict children of prefix (those of prefixRange), and
// whether there are any: every provider record's under an ancestor of
// providersPrefix, one key's records under providersPrefix + its base32,
// none elsewhere.
func providerRange(prefix string) (lo, hi []byte, ok bool) {
	p := ds.NewKey(prefix).String()
	if p == "/" || strings.HasPrefix(providersPrefix, p+"/") {
		return []byte{providerTag}, []byte{providerTag + 1}, true
	}
	rest, found := strings.CutPrefix(p, providersPrefix)
	if !found || strings.Contains(rest, "/") {
		return nil, nil, false
	}
	key, canonical := canonicalBase32(rest)
	if !canonical || len(key) > 255 {
		return nil, nil, false
	}
	lo = append([]byte{providerTag, byte(len(key))}, key...)
	return lo, successor(lo), true
}

// successor returns the least byte string greater than every string that
// starts with p, or nil when there is none (p all 0xff).
func successor(p []byte) []byte {
	s := bytes.Clone(p)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] < 0xff {
			s[i]++
			return s[:i+1]
		}
	}
	return nil
}
