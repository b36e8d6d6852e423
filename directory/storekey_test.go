package directory

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	"github.com/multiformats/go-base32"
)

// providerKey returns a provider record's key as kad-dht writes it, for a
// random 34-byte key and 38-byte provider ID, and its key's prefix.
func providerKey(t testing.TB) (key, prefix string) {
	t.Helper()
	k, p := make([]byte, 34), make([]byte, 38)
	rand.Read(k)
	rand.Read(p)
	prefix = providersPrefix + base32.RawStdEncoding.EncodeToString(k)
	return prefix + "/" + base32.RawStdEncoding.EncodeToString(p), prefix
}

func TestProviderKeysInBinary(t *testing.T) {
	k, _ := providerKey(t)
	tk := toTable(k)
	if !tk.bin() || len(tk.b) != 3+34+38 {
		t.Fatalf("toTable(%s) = %d bytes, binary %v; want 75, binary", k, len(tk.b), tk.bin())
	}
	back, err := fromTable(tk.b)
	if err != nil || back != k {
		t.Fatalf("fromTable = %q, %v; want %q", back, err, k)
	}
	// Keys not in kad-dht's canonical form stay text.
	for _, k := range []string{
		"/records/providers/ABC",                                 // no provider
		"/records/providers/AE/AE/AE",                            // a third part
		"/records/providers/ae/AE",                               // lower case
		"/records/providers/AB/AE",                               // non-canonical trailing bits
		"/records/providers//AE",                                 // empty key
		"/keys/0/AE",                                             // another namespace
		"/records/providersX/AE/AE",                              // another name
		"/records/providers/" + strings.Repeat("A", 420) + "/AE", // a key over 255 bytes
		"/records/providers/AE/" + strings.Repeat("A", 410),      // a provider ID over 255 bytes
	} {
		if tk := toTable(k); tk.bin() || tk.s != k {
			t.Errorf("toTable(%q) in binary, want it as text", k)
		}
	}
	// The longest key and provider ID a binary key holds: 255 bytes each.
	longest := providersPrefix + strings.Repeat("A", maxPart) + "/" + strings.Repeat("A", maxPart)
	if tk := toTable(longest); !tk.bin() || len(tk.b) != 3+255+255 || tk.b[1] != 255 || tk.b[len(tk.b)-1] != 255 {
		t.Errorf("toTable of a 255-byte key and provider ID = %x, binary %v; want 513 bytes, binary", tk.b, tk.bin())
	}
	for _, b := range [][]byte{nil, {1}, {1, 1, 7, 1}, {2, 1, 7, 7, 1}, {1, 0, 7, 7, 2}, {1, 1, 7, 7, 0}, {1, 3, 7, 7, 1}, {1, 1, 7, 7, 2}} {
		if _, err := fromTable(b); !errors.Is(err, errBinaryKey) {
			t.Errorf("fromTable(%x) = %v, want errBinaryKey", b, err)
		}
	}
}

// The store holds provider records' keys in binary and every other key as
// text; its reads, prefix queries and counts see one set of text keys,
// the overlay's and the table's merged, whatever the form each is held in,
// and whether a query reads the overlay's list of a key's records or
// passes over all its writes.
func TestStoreMixedKeys(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	model := map[string]string{} // text key -> value
	put := func(k, v string) {
		t.Helper()
		if err := s.Put(ctx, ds.NewKey(k), []byte(v)); err != nil {
			t.Fatal(err)
		}
		model[k] = v
	}
	var prefixes []string
	for range 20 {
		k, prefix := providerKey(t)
		put(k, "v1 "+k)
		prefixes = append(prefixes, prefix)
	}
	// A second provider of the first key, and text keys around them.
	p := make([]byte, 38)
	rand.Read(p)
	second := prefixes[0] + "/" + base32.RawStdEncoding.EncodeToString(p)
	put(second, "v1")
	for _, k := range []string{"/records/providers/AB/AE", "/records/providers/ab/AE", "/keys/0/AE", "/place/last-reprovide", "/records/zz"} {
		put(k, "v1 "+k)
	}
	reads := func(when string) {
		t.Helper()
		for _, prefix := range append([]string{"/", "/records", "/records/providers", "/keys", "/records/providers/AB", "/records/providers/ab", "/records/provid"}, prefixes[:3]...) {
			res, err := s.Query(ctx, dsq.Query{Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			entries, err := res.Rest()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, e := range entries {
				if _, dup := got[e.Key]; dup {
					t.Fatalf("%s: Query(%s) returns %s twice", when, prefix, e.Key)
				}
				got[e.Key] = string(e.Value)
			}
			want := map[string]string{}
			for k, v := range model {
				if prefix == "/" || strings.HasPrefix(k, prefix+"/") {
					want[k] = v
				}
			}
			if !maps.Equal(got, want) {
				t.Fatalf("%s: Query(%s) = %v, want %v", when, prefix, got, want)
			}
		}
		for k, v := range model {
			got, err := s.Get(ctx, ds.NewKey(k))
			if err != nil || string(got) != v {
				t.Fatalf("%s: Get(%s) = %q, %v; want %q", when, k, got, err, v)
			}
		}
	}
	// count flushes first.
	counts := func(when string) {
		t.Helper()
		wantAll, wantSecond := 0, 0
		for k := range model {
			if strings.HasPrefix(k, providersPrefix) {
				wantAll++
				if strings.HasSuffix(k, "/"+base32.RawStdEncoding.EncodeToString(p)) {
					wantSecond++
				}
			}
		}
		n, err := s.count(providersPrefix, "/"+base32.RawStdEncoding.EncodeToString(p))
		if err != nil || n != wantSecond {
			t.Fatalf("%s: %d records of the second provider counted, %v; want %d", when, n, err, wantSecond)
		}
		n, err = s.count(providersPrefix, "")
		if err != nil || n != wantAll {
			t.Fatalf("%s: %d provider records counted, %v; want %d", when, n, err, wantAll)
		}
	}
	reads("overlaid")
	counts("overlaid")
	reads("flushed")
	// Half the keys deleted and the others given new values, overlaid
	// over the table, with new keys.
	i := 0
	for k := range maps.Clone(model) {
		if i%2 == 0 {
			if err := s.Delete(ctx, ds.NewKey(k)); err != nil {
				t.Fatal(err)
			}
			delete(model, k)
		} else {
			put(k, "v2 "+k)
		}
		i++
	}
	k, prefix := providerKey(t)
	put(k, "v2 "+k)
	prefixes[1] = prefix
	put(second, "v2")
	put("/records/providers/AB/AE", "v2")
	reads("overlaid over the table") // the overlay lists its provider records
	// A provider record written once the overlay has its list, read
	// through it; then a key deeper than a record under a record's
	// parent, which a query of that parent passes over every overlaid
	// write to find.
	k, prefix = providerKey(t)
	put(k, "v2 "+k)
	prefixes[2] = prefix
	reads("listed after a query")
	put("/records/providers/AB/AE/deeper", "v2")
	reads("overlaid after a query")
	counts("overlaid over the table")
	reads("flushed again")
	var text, bin int
	if err := s.db.QueryRow("SELECT count(*) FILTER (WHERE typeof(k) = 'text'), count(*) FILTER (WHERE typeof(k) = 'blob') FROM kv").Scan(&text, &bin); err != nil {
		t.Fatal(err)
	}
	wantBin := 0
	for k := range model {
		if toTable(k).bin() {
			wantBin++
		}
	}
	if bin != wantBin || text != len(model)-wantBin {
		t.Fatalf("the table holds %d text and %d binary keys, want %d and %d", text, bin, len(model)-wantBin, wantBin)
	}
}

// A store from before provider records' keys were held in binary has
// them rewritten once as it opens, each with its value and MAC; the full
// check passes it, and names a binary row changed.
func TestStoreUpgradesProviderKeys(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "directory.db")
	s, err := openStore(path, testRowKey)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for range 250 {
		k, _ := providerKey(t)
		keys = append(keys, k)
	}
	keys = append(keys, "/keys/0/AE", "/records/providers/ab/AE")
	// Written as the store wrote them before: every key as text.
	m := newMacer(testRowKey)
	for _, k := range keys {
		if _, err := s.db.Exec(insertRows, k, []byte(k), m.mac(k, []byte(k))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.db.Exec("PRAGMA user_version = 0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// In chunks of 64 rows: the last one short.
	defer func(n int) { upgradeChunk = n }(upgradeChunk)
	upgradeChunk = 64
	if err := UpgradeStore(path, testRowKey); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var text, bin int
	if err := db.QueryRow("SELECT count(*) FILTER (WHERE typeof(k) = 'text'), count(*) FILTER (WHERE typeof(k) = 'blob') FROM kv").Scan(&text, &bin); err != nil {
		t.Fatal(err)
	}
	if bin != 250 || text != 2 {
		t.Fatalf("upgraded: %d text and %d binary keys, want 2 and 250", text, bin)
	}
	if n, err := CheckStore(ctx, path, testRowKey); err != nil || n != 252 {
		t.Fatalf("check: %d rows, %v; want 252, nil", n, err)
	}
	s, err = openStore(path, testRowKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if v, err := s.Get(ctx, ds.NewKey(k)); err != nil || string(v) != k {
			t.Fatalf("Get(%s) after the upgrade = %q, %v", k, v, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE kv SET v = x'00' WHERE k = (SELECT max(k) FROM kv)"); err != nil {
		t.Fatal(err)
	}
	var te *TamperError
	if _, err := CheckStore(ctx, path, testRowKey); !errors.As(err, &te) || !strings.HasPrefix(te.Key, providersPrefix) {
		t.Fatalf("a binary row changed: %v, want a TamperError naming its text key", err)
	}
	// A provider record's row under its text key, with its MAC (made over
	// the text key): the store never writes one, and the check names it.
	if _, err := db.Exec("DELETE FROM kv WHERE k = (SELECT max(k) FROM kv)"); err != nil {
		t.Fatal(err)
	}
	m = newMacer(testRowKey)
	if _, err := db.Exec(insertRows, keys[0], []byte(keys[0]), m.mac(keys[0], []byte(keys[0]))); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckStore(ctx, path, testRowKey); !errors.As(err, &te) || te.Key != keys[0] || !strings.Contains(te.Reason, "held as text") {
		t.Fatalf("a provider record's row under its text key: %v, want a TamperError naming it", err)
	}
}

// FuzzProviderKey: a table key in binary decodes to a text key that
// encodes back to it, or is refused; a text key encoded in binary decodes
// back to itself.
func FuzzProviderKey(f *testing.F) {
	k, _ := providerKey(f)
	f.Add(toTable(k).b, k)
	f.Add([]byte{1, 1, 0, 0, 1}, "/records/providers/AE/AE")
	f.Fuzz(func(t *testing.T, b []byte, text string) {
		if k, err := fromTable(b); err == nil {
			if tk := toTable(k); !tk.bin() || !bytes.Equal(tk.b, b) {
				t.Fatalf("fromTable(%x) = %q, which toTable holds as %x", b, k, tk.b)
			}
		}
		if tk := toTable(text); tk.bin() {
			if back, err := fromTable(tk.b); err != nil || back != text {
				t.Fatalf("toTable(%q) = %x, which decodes to %q, %v", text, tk.b, back, err)
			}
		}
	})
}

// FuzzCanonicalBase32: canonicalBase32 accepts exactly the strings that
// decode to bytes whose encoding gives them back.
func FuzzCanonicalBase32(f *testing.F) {
	for _, s := range []string{"AE", "AF", "AA", "A", "AAA", "ae", "MFRGG", "MFRGGZ", "MFRGGZA", "ME======", "AE\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, ok := canonicalBase32(s)
		d, err := base32.RawStdEncoding.DecodeString(s)
		want := s != "" && err == nil && len(d) > 0 && base32.RawStdEncoding.EncodeToString(d) == s
		if ok != want || (ok && !bytes.Equal(b, d)) {
			t.Fatalf("canonicalBase32(%q) = %x, %v; decoding gives %x, %v, canonical %v", s, b, ok, d, err, want)
		}
	})
}

// FuzzSortPrefix: where two keys' sort prefixes differ, they order the
// keys as compare does, text and binary alike.
func FuzzSortPrefix(f *testing.F) {
	f.Add([]byte{1, 2}, []byte{1, 2, 0}, "/a", "/b")
	f.Add([]byte{1, 34, 0x12, 0x20, 0xff}, []byte{1, 34, 0x12, 0x21}, "", "/records")
	f.Fuzz(func(t *testing.T, a, b []byte, s, u string) {
		keys := []tableKey{{s: s}, {s: u}}
		for _, k := range [][]byte{a, b} {
			if len(k) > 0 {
				keys = append(keys, tableKey{b: k})
			}
		}
		for _, x := range keys {
			for _, y := range keys {
				px, py := x.sortPrefix(), y.sortPrefix()
				if px != py && cmp.Compare(px, py) != x.compare(y) {
					t.Fatalf("sortPrefix orders %+v and %+v as %d, compare as %d", x, y, cmp.Compare(px, py), x.compare(y))
				}
			}
		}
	})
}
