package directory

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"slices"
	"testing"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	kadkeystore "github.com/libp2p/go-libp2p-kad-dht/provider/keystore"
	mh "github.com/multiformats/go-multihash"
)

func randomKeys(n int) []mh.Multihash {
	keys := make([]mh.Multihash, n)
	for i := range keys {
		var d [32]byte
		rand.Read(d[:])
		keys[i] = multihash(d)
	}
	return keys
}

// allKeys reads every page of k.
func allKeys(t *testing.T, k *keystore) []mh.Multihash {
	t.Helper()
	var out []mh.Multihash
	for i := range 1 << keyPageBits {
		page, err := k.page(context.Background(), i)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
	}
	return out
}

func sameKeys(a, b []mh.Multihash) bool {
	as := slices.SortedFunc(slices.Values(a), func(x, y mh.Multihash) int { return slices.Compare(x, y) })
	bs := slices.SortedFunc(slices.Values(b), func(x, y mh.Multihash) int { return slices.Compare(x, y) })
	return slices.EqualFunc(as, bs, func(x, y mh.Multihash) bool { return slices.Equal(x, y) })
}

// A put returns the keys that were not there, once each; the keys, and
// the count of them, survive a reopen, deletions included.
func TestKeystorePutReturnsWhatIsNew(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "directory.db")
	s, err := openStore(path, testRowKey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := openKeystore(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	old, fresh := randomKeys(1500), randomKeys(1500) // more than a statement's rows
	if got, err := k.put(ctx, old); err != nil || !sameKeys(got, old) {
		t.Fatalf("first put: %d new of %d, %v", len(got), len(old), err)
	}
	twice := append(append(slices.Clone(old[:10]), fresh...), fresh[:10]...)
	got, err := k.put(ctx, twice)
	if err != nil || !sameKeys(got, fresh) {
		t.Fatalf("second put: %d new, want the %d not put before, once each; %v", len(got), len(fresh), err)
	}
	if err := k.delete(ctx, old[:100]); err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(old[100:]), fresh...)
	if k.len() != len(want) || !sameKeys(allKeys(t, k), want) {
		t.Fatalf("the keystore holds %d keys (%d read), want %d", k.len(), len(allKeys(t, k)), len(want))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = openStore(path, testRowKey); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if k, err = openKeystore(ctx, s); err != nil {
		t.Fatal(err)
	}
	if k.len() != len(want) || !sameKeys(allKeys(t, k), want) {
		t.Fatalf("reopened, the keystore holds %d keys, want %d", k.len(), len(want))
	}
	if got, err := k.put(ctx, old[:200]); err != nil || !sameKeys(got, old[:100]) {
		t.Fatalf("after the reopen, a put finds %d new of 200, want the 100 deleted; %v", len(got), err)
	}
	if n, err := CheckStore(ctx, path, testRowKey); err != nil {
		t.Fatalf("the keystore's rows fail their check after %d: %v", n, err)
	}
}

// A directory file whose keys go-libp2p-kad-dht's keystore wrote (before
// the directory had a keystore of its own) reads the same: every key, in
// its page, and none new when announced again.
func TestKeystoreReadsTheKadDHTKeystoresFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "directory.db")
	s, err := openStore(path, testRowKey)
	if err != nil {
		t.Fatal(err)
	}
	keys := randomKeys(2000)
	old, err := kadkeystore.NewKeystore(namespace.Wrap(s, ds.NewKey("/keys")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Put(ctx, keys...); err != nil {
		t.Fatal(err)
	}
	page, err := old.Get(ctx, "01100101")
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil { // leaves its size behind, under /keys/size
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if s, err = openStore(path, testRowKey); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k, err := openKeystore(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if k.len() != len(keys) || !sameKeys(allKeys(t, k), keys) {
		t.Fatalf("the keystore reads %d keys of the %d kad-dht's wrote", k.len(), len(keys))
	}
	if got, err := k.page(ctx, 0b01100101); err != nil || len(page) == 0 || !sameKeys(got, page) {
		t.Fatalf("page 01100101 holds %d keys, kad-dht's keystore read %d there; %v", len(got), len(page), err)
	}
	if fresh, err := k.put(ctx, keys); err != nil || len(fresh) != 0 {
		t.Fatalf("announced again, %d of the keys are new; %v", len(fresh), err)
	}
	if ok, err := s.Has(ctx, ds.NewKey("/keys/size")); err != nil || ok {
		t.Fatalf("kad-dht's size row is left: %v, %v", ok, err)
	}
}
