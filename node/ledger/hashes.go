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
// million entries), so an inclusion proof reads the rest from its block.
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

// blockLeaves is how many leaves a hash block covers: below the upper
// cache, every stored hash an inclusion proof of a leaf needs is one of
// its block's (the levels under cacheLevel pair leaves of one block), so
// each complete block's hashes are kept together, derived data written
// with the pseudonym index (index.go): in memory until their bucket is
// written, then in the blocks file (BlocksPath), which a proof reads with
// one pread.
const blockLeaves = 1 << cacheLevel

// hashBlock holds the stored hashes below cacheLevel of one block's
// leaves, level by level (32 leaf hashes, then 16, 8, 4 and 2).
type hashBlock [2*blockLeaves - 2]tlog.Hash

// blockOf returns the block of the stored hash (level, n), level below
// cacheLevel, and its position in the block.
func blockOf(level int, n int64) (block int64, pos int) {
	for k := range level {
		pos += blockLeaves >> k
	}
	return n << uint(level) / blockLeaves, pos + int(n&int64(blockLeaves>>uint(level)-1))
}

// put records the stored hashes hs of leaf n, and reports whether n
// completed the block.
func (b *hashBlock) put(n int64, hs []tlog.Hash) bool {
	for level := range min(len(hs), cacheLevel) {
		_, pos := blockOf(level, n>>uint(level))
		b[pos] = hs[level]
	}
	return n%blockLeaves == blockLeaves-1
}

func (b *hashBlock) blob() []byte { return hashesBlob(b[:]) }

// leafOf returns the leaf whose append stored the hash at (level, n), and
// the hash's position in that leaf's list.
func leafOf(level int, n int64) int64 {
	return (n+1)<<uint(level) - 1
}
