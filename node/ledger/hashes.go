package ledger

import (
	"fmt"
	"maps"

	"golang.org/x/mod/sumdb/tlog"
)

// frontier holds the root hashes of the complete subtrees that make up a
// tree of some size, keyed by stored-hash index: at most one per level. They
// are all that appending the next leaf or hashing the whole tree reads, so
// the writer and the verifier never go to disk for a hash.
type frontier map[int64]tlog.Hash

func (f frontier) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := f[x]
		if !ok {
			level, n := tlog.SplitStoredHashIndex(x)
			return nil, fmt.Errorf("hash (%d, %d) is not on the frontier", level, n)
		}
		out[i] = h
	}
	return out, nil
}

// push records that leaf n was appended with stored hashes hs: the m
// subtrees it completed merge into one of level m = len(hs)-1.
func (f frontier) push(n int64, hs []tlog.Hash) {
	m := len(hs) - 1
	for i := range m {
		delete(f, tlog.StoredHashIndex(i, n>>uint(i)-1))
	}
	f[tlog.StoredHashIndex(m, n>>uint(m))] = hs[m]
}

func (f frontier) clone() frontier { return maps.Clone(f) }

// appendLeaf computes the stored hashes of leaf n from its data and pushes
// it onto the frontier.
func (f frontier) appendLeaf(n int64, data []byte) ([]tlog.Hash, error) {
	hs, err := tlog.StoredHashes(n, data, f)
	if err != nil {
		return nil, err
	}
	f.push(n, hs)
	return hs, nil
}

func hashesBlob(hs []tlog.Hash) []byte {
	b := make([]byte, 0, len(hs)*tlog.HashSize)
	for _, h := range hs {
		b = append(b, h[:]...)
	}
	return b
}

// cacheLevel is the lowest tree level kept in memory. Levels at or above it
// hold one hash per 2^cacheLevel leaves (about 3% of all hashes, 1 MiB per
// million entries), so an inclusion proof reads at most cacheLevel rows.
const cacheLevel = 5

// upperCache keeps every stored hash at level cacheLevel and above; the
// level's hashes are appended in order as their subtrees complete.
type upperCache [][]tlog.Hash

func (c *upperCache) add(n int64, hs []tlog.Hash) {
	for level := cacheLevel; level < len(hs); level++ {
		l := level - cacheLevel
		for len(*c) <= l {
			*c = append(*c, nil)
		}
		if int64(len((*c)[l])) != n>>uint(level) {
			panic("ledger: hash cache out of order")
		}
		(*c)[l] = append((*c)[l], hs[level])
	}
}

func (c upperCache) get(level int, n int64) (tlog.Hash, bool) {
	l := level - cacheLevel
	if l < 0 || l >= len(c) || n >= int64(len(c[l])) {
		return tlog.Hash{}, false
	}
	return c[l][n], true
}

// leafOf returns the leaf whose append stored the hash at (level, n), and
// the hash's position in that leaf's list.
func leafOf(level int, n int64) int64 {
	return (n+1)<<uint(level) - 1
}
