package federation_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"golang.org/x/mod/sumdb/note"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const testFederation = "medfed-demo"

// testKey is the key of the centre called name, the same in every run.
func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("medfed federation test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func testID(tb testing.TB, name string) peer.ID {
	tb.Helper()
	id, err := federation.PeerIDFromKey(testKey(name))
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func mustAddr(tb testing.TB, s string) multiaddr.Multiaddr {
	tb.Helper()
	a, err := multiaddr.NewMultiaddr(s)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// testMember is the centre called name, listening on 127.0.0.1 at port.
func testMember(tb testing.TB, name string, port int) federation.Member {
	tb.Helper()
	return federation.Member{
		Name:  name,
		ID:    testID(tb, name),
		Addrs: []multiaddr.Multiaddr{mustAddr(tb, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))},
	}
}

// founding is version 1 of a federation of the named centres with the
// default policy.
func founding(tb testing.TB, names ...string) federation.Charter {
	tb.Helper()
	c := federation.Charter{Federation: testFederation, Version: 1, Policy: federation.DefaultPolicy(len(names))}
	for i, name := range slices.Sorted(slices.Values(names)) {
		c.Members = append(c.Members, testMember(tb, name, 4101+i))
	}
	if err := c.Validate(); err != nil {
		tb.Fatal(err)
	}
	return c
}

// signBy adds the signatures of the named centres to msg, a note of c.
func signBy(tb testing.TB, c federation.Charter, msg []byte, names ...string) []byte {
	tb.Helper()
	for _, name := range names {
		var err error
		if msg, err = federation.Sign(c, msg, testKey(name)); err != nil {
			tb.Fatalf("%s signs version %d: %v", name, c.Version, err)
		}
	}
	return msg
}

// rawSigner signs any text under any key name, so that tests can sign what
// Sign refuses to.
type rawSigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func newRawSigner(tb testing.TB, name string, key ed25519.PrivateKey) *rawSigner {
	tb.Helper()
	vkey, err := note.NewEd25519VerifierKey(name, key.Public().(ed25519.PublicKey))
	if err != nil {
		tb.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	return &rawSigner{name: name, hash: v.KeyHash(), key: key}
}

func (s *rawSigner) Name() string                    { return s.name }
func (s *rawSigner) KeyHash() uint32                 { return s.hash }
func (s *rawSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// rawSign signs text as the named centres, each under its peer ID.
func rawSign(tb testing.TB, text string, names ...string) []byte {
	tb.Helper()
	var signers []note.Signer
	for _, name := range names {
		signers = append(signers, newRawSigner(tb, testID(tb, name).String(), testKey(name)))
	}
	msg, err := note.Sign(&note.Note{Text: text}, signers...)
	if err != nil {
		tb.Fatal(err)
	}
	return msg
}

// testChain is a federation's history: founded by centre-a, -b and -c
// (quorum 2), then centre-d joins, then centre-e, then centre-b leaves.
type testChain struct {
	versions []federation.Charter // versions[i] is version i+1
	notes    [][]byte
}

func newTestChain(tb testing.TB) testChain {
	tb.Helper()
	v1 := founding(tb, "centre-a", "centre-b", "centre-c")
	v2, err := v1.WithMember(testMember(tb, "centre-d", 4104))
	if err != nil {
		tb.Fatal(err)
	}
	v3, err := v2.WithMember(testMember(tb, "centre-e", 4105))
	if err != nil {
		tb.Fatal(err)
	}
	v4, err := v3.WithoutMember("centre-b")
	if err != nil {
		tb.Fatal(err)
	}
	return testChain{
		versions: []federation.Charter{v1, v2, v3, v4},
		notes: [][]byte{
			signBy(tb, v1, nil, "centre-a", "centre-b", "centre-c"),
			signBy(tb, v2, nil, "centre-a", "centre-b"),
			signBy(tb, v3, nil, "centre-a", "centre-d"),
			signBy(tb, v4, nil, "centre-c", "centre-e"),
		},
	}
}

func ids(tb testing.TB, names ...string) []peer.ID {
	tb.Helper()
	var out []peer.ID
	for _, name := range names {
		out = append(out, testID(tb, name))
	}
	slices.Sort(out)
	return out
}

func TestCharterTextRoundTrip(t *testing.T) {
	v1 := founding(t, "centre-a", "centre-b", "centre-c")
	v2, err := v1.WithMember(federation.Member{
		Name: "centre-0",
		ID:   testID(t, "centre-0"),
		Addrs: []multiaddr.Multiaddr{
			mustAddr(t, "/ip6/2001:db8::7/udp/4433/quic-v1"),
			mustAddr(t, "/ip4/10.0.0.9/tcp/4109"),
			mustAddr(t, "/ip6/::1/tcp/4109"),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	strict := v2
	strict.Policy = federation.Policy{
		AdmissionQuorum:  4,
		WitnessQuorum:    1,
		OPRFThreshold:    3,
		ConsentDefault:   federation.ConsentOptOut,
		EmergencyAccess:  federation.EmergencyForbidden,
		TokenMaxLifetime: time.Minute,
	}
	long := v1
	long.Policy.TokenMaxLifetime = 720 * time.Hour
	tuned := v1 // the lines a charter names only when they differ from the defaults
	tuned.Policy.KeyNotice, tuned.Policy.EmergencyDuration, tuned.Policy.MemberRate = 2*time.Second, time.Hour, 50
	var big federation.Charter
	big.Federation, big.Version, big.Previous = "f", 1<<40, sha256.Sum256([]byte("v"))
	for i := range federation.MaxMembers {
		big.Members = append(big.Members, testMember(t, fmt.Sprintf("c%05d", i), 5000+i))
	}
	big.Policy = federation.DefaultPolicy(len(big.Members))
	big.Policy.AdmissionQuorum = 5
	big.Council = []string{"c00000", "c00001", "c00002", "c00003", "c00004", "c00005", "c00006"}
	legacy := v2 // before councils and sets: every member on the council, every other member a witness
	legacy.Policy.Witnesses, legacy.Policy.ConsentReplicas = 0, 0

	tests := []struct {
		name string
		c    federation.Charter
	}{
		{"founding", v1},
		{"several addresses", v2},
		{"strict policy", strict},
		{"longest tokens", long},
		{"tuned notice, emergency and member rate", tuned},
		{"most members, with a council", big},
		{"without sets", legacy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.c.Validate(); err != nil {
				t.Fatal(err)
			}
			text := tt.c.Text()
			got, err := federation.ParseNext(v1, text) // the full form alone, a delta against version 1
			if err != nil {
				t.Fatal(err)
			}
			if got.Text() != text {
				t.Errorf("text changed in a round trip:\n%s\nbecame\n%s", text, got.Text())
			}
			if !reflect.DeepEqual(got, tt.c) {
				t.Errorf("ParseCharter(Text()) = %+v, want %+v", got, tt.c)
			}
			if got.Hash() != sha256.Sum256([]byte(text)) {
				t.Error("Hash is not the SHA-256 of Text")
			}
		})
	}
}

// TestCharterGolden pins the text format: a change to it breaks every
// federation's chain.
func TestCharterGolden(t *testing.T) {
	v1 := founding(t, "centre-a", "centre-b")
	m := testMember(t, "centre-c", 4103)
	m.Addrs = append(m.Addrs, mustAddr(t, "/ip6/2001:db8::3/udp/4103/quic-v1"))
	v2, err := v1.WithMember(m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "charter-v2.golden")
	if *update {
		if err := os.WriteFile(path, []byte(v2.Text()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Text() != string(want) {
		t.Errorf("Text() =\n%s\nwant (%s)\n%s", v2.Text(), path, want)
	}
	if _, err := federation.ParseNext(v1, string(want)); err != nil {
		t.Error(err)
	}
}

// Members admitted together make one version, a delta of their lines,
// read back as the same member list; a batch with a name twice, or a name
// already a member's, is refused.
func TestWithMembers(t *testing.T) {
	v1 := founding(t, "centre-a", "centre-b")
	batch := []federation.Member{testMember(t, "centre-e", 4105), testMember(t, "centre-c", 4103), testMember(t, "centre-d", 4104)}
	v2, err := v1.WithMembers(batch)
	if err != nil {
		t.Fatal(err)
	}
	got, err := federation.ParseNext(v1, v2.Text())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range got.Members {
		names = append(names, m.Name)
	}
	if !federation.IsDelta(v2.Text()) || !slices.Equal(names, []string{"centre-a", "centre-b", "centre-c", "centre-d", "centre-e"}) {
		t.Fatalf("version 2 (delta: %v) lists %v", federation.IsDelta(v2.Text()), names)
	}
	for name, bad := range map[string][]federation.Member{
		"a name twice":       {testMember(t, "centre-c", 4103), testMember(t, "centre-c", 4106)},
		"a member's name":    {testMember(t, "centre-b", 4107)},
		"a member's peer ID": {{Name: "centre-f", ID: v1.Members[0].ID, Addrs: v1.Members[0].Addrs}},
		"nobody":             nil,
	} {
		if _, err := v1.WithMembers(bad); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("%s: %v, want it refused as invalid", name, err)
		}
	}
}

func TestDefaultPolicy(t *testing.T) {
	tests := []struct {
		name    string
		members int
		want    int
	}{
		{"one", 1, 1},
		{"two", 2, 2},
		{"three", 3, 2},
		{"four", 4, 3},
		{"seven", 7, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := federation.DefaultPolicy(tt.members)
			want := federation.Policy{
				AdmissionQuorum: tt.want, WitnessQuorum: tt.want, OPRFThreshold: tt.want,
				ConsentDefault: "opt-in", EmergencyAccess: "allowed", TokenMaxLifetime: 24 * time.Hour,
				Witnesses: federation.DefaultWitnesses, ConsentReplicas: federation.DefaultConsentReplicas,
			}
			if p != want {
				t.Errorf("DefaultPolicy(%d) = %+v, want %+v", tt.members, p, want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	v1 := founding(t, "centre-a", "centre-b", "centre-c")
	tests := []struct {
		name   string
		change func(c *federation.Charter)
		field  string // the error names it
	}{
		{"federation name with capitals", func(c *federation.Charter) { c.Federation = "Medfed" }, "federation"},
		{"federation name starting with a dash", func(c *federation.Charter) { c.Federation = "-medfed" }, "federation"},
		{"federation name too long", func(c *federation.Charter) { c.Federation = strings.Repeat("a", 64) }, "federation"},
		{"version 0", func(c *federation.Charter) { c.Version = 0 }, "version"},
		{"version 1 with a previous hash", func(c *federation.Charter) { c.Previous[0] = 1 }, "previous"},
		{"version 2 without a previous hash", func(c *federation.Charter) { c.Version = 2 }, "previous"},
		{"no members", func(c *federation.Charter) { c.Members = nil }, "member"},
		{"member name with a space", func(c *federation.Charter) { c.Members[0].Name = "centre a" }, "member 1: name"},
		{"member without ID", func(c *federation.Charter) { c.Members[1].ID = "" }, "member 2: centre-b: peer ID"},
		{"member without address", func(c *federation.Charter) { c.Members[2].Addrs = nil }, "member 3: centre-c: 0 addresses"},
		{"member with nine addresses", func(c *federation.Charter) {
			for i := range 8 {
				c.Members[2].Addrs = append(c.Members[2].Addrs, mustAddr(t, fmt.Sprintf("/ip4/10.0.0.%d/tcp/1", i+1)))
			}
		}, "member 3: centre-c: 9 addresses"},
		{"address listed twice", func(c *federation.Charter) {
			c.Members[0].Addrs = append(c.Members[0].Addrs, c.Members[0].Addrs[0])
		}, "address 2"},
		{"dns address", func(c *federation.Charter) { c.Members[0].Addrs[0] = mustAddr(t, "/dns4/example.org/tcp/4101") }, "address 1"},
		{"port 0", func(c *federation.Charter) { c.Members[0].Addrs[0] = mustAddr(t, "/ip4/127.0.0.1/tcp/0") }, "address 1: port 0"},
		{"unspecified address", func(c *federation.Charter) { c.Members[0].Addrs[0] = mustAddr(t, "/ip6/::/tcp/4101") }, "address 1: unspecified"},
		{"IPv4 in ip6", func(c *federation.Charter) { c.Members[0].Addrs[0] = mustAddr(t, "/ip6/::ffff:10.0.0.1/tcp/4101") }, "address 1: IPv4"},
		{"quic without quic-v1", func(c *federation.Charter) { c.Members[0].Addrs[0] = mustAddr(t, "/ip4/10.0.0.1/udp/4101") }, "address 1"},
		{"address with peer ID", func(c *federation.Charter) {
			c.Members[0].Addrs[0] = mustAddr(t, "/ip4/10.0.0.1/tcp/4101/p2p/"+c.Members[0].ID.String())
		}, "address 1"},
		{"members out of order", func(c *federation.Charter) { c.Members[0], c.Members[1] = c.Members[1], c.Members[0] }, "member 2: centre-a after centre-b"},
		{"duplicate name", func(c *federation.Charter) { c.Members[1].Name = "centre-a" }, "member 2: centre-a: name listed twice"},
		{"duplicate peer ID", func(c *federation.Charter) { c.Members[2].ID = c.Members[0].ID }, "member 3: centre-c has the peer ID of centre-a"},
		{"admission quorum 0", func(c *federation.Charter) { c.Policy.AdmissionQuorum = 0 }, "admission-quorum 0"},
		{"witness quorum above members", func(c *federation.Charter) { c.Policy.WitnessQuorum = 4 }, "witness-quorum 4"},
		{"negative threshold", func(c *federation.Charter) { c.Policy.OPRFThreshold = -1 }, "oprf-threshold -1"},
		{"consent default unknown", func(c *federation.Charter) { c.Policy.ConsentDefault = "opt-maybe" }, "consent-default"},
		{"emergency access unknown", func(c *federation.Charter) { c.Policy.EmergencyAccess = "" }, "emergency-access"},
		{"tokens shorter than a minute", func(c *federation.Charter) { c.Policy.TokenMaxLifetime = time.Second }, "token-max-lifetime"},
		{"tokens longer than 30 days", func(c *federation.Charter) { c.Policy.TokenMaxLifetime = 721 * time.Hour }, "token-max-lifetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := v1
			c.Members = slices.Clone(v1.Members)
			for i := range c.Members {
				c.Members[i].Addrs = slices.Clone(c.Members[i].Addrs)
			}
			tt.change(&c)
			err := c.Validate()
			if !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("Validate() = %v, want node.ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Validate() = %q, want it to name %q", err, tt.field)
			}
			if _, err := federation.ParseCharter(c.Text()); !errors.Is(err, node.ErrInvalid) {
				t.Errorf("ParseCharter(Text()) = %v, want node.ErrInvalid", err)
			}
		})
	}
}

func TestMemberLookup(t *testing.T) {
	v1 := founding(t, "centre-a", "centre-b", "centre-c")
	tests := []struct {
		name string
		ok   bool
	}{
		{"centre-a", true},
		{"centre-c", true},
		{"centre-d", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := testID(t, tt.name)
			m, ok := v1.Member(id)
			if ok != tt.ok || ok && m.Name != tt.name {
				t.Errorf("Member(%s) = %s, %v; want %v", tt.name, m.Name, ok, tt.ok)
			}
			m, ok = v1.MemberByName(tt.name)
			if ok != tt.ok || ok && m.ID != id {
				t.Errorf("MemberByName(%s) = %s, %v; want %v", tt.name, m.ID, ok, tt.ok)
			}
			if !ok {
				return
			}
			pub, err := m.PublicKey()
			if err != nil {
				t.Fatal(err)
			}
			if !pub.Equal(testKey(tt.name).Public()) {
				t.Error("PublicKey is not the key the peer ID was made from")
			}
		})
	}
}

func TestPublicKeyRefusesOtherKeyTypes(t *testing.T) {
	rsa, err := peer.Decode(rsaPeerID)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		id   peer.ID
	}{
		{"empty", ""},
		{"RSA", rsa},
		{"secp256k1", secp256k1PeerID(t)},
		{"not a multihash", peer.ID("centre-a")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub, err := federation.Member{Name: "centre-a", ID: tt.id}.PublicKey()
			if !errors.Is(err, node.ErrInvalid) || pub != nil {
				t.Errorf("PublicKey() = %x, %v; want node.ErrInvalid", pub, err)
			}
		})
	}
}

func TestPeerIDFromKey(t *testing.T) {
	key := testKey("centre-a")
	id, err := federation.PeerIDFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := crypto.UnmarshalEd25519PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if !id.MatchesPrivateKey(sk) {
		t.Error("peer ID does not match the key")
	}
	if !strings.HasPrefix(id.String(), "12D3KooW") {
		t.Errorf("peer ID %s is not an Ed25519 identity ID", id)
	}
	bad := slices.Clone(key)
	bad[40] ^= 1 // public half no longer matches the seed
	for _, k := range []ed25519.PrivateKey{nil, key[:32], bad} {
		if _, err := federation.PeerIDFromKey(k); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("PeerIDFromKey(%d bytes) = %v, want node.ErrInvalid", len(k), err)
		}
	}
}

// TestDraftsAgree has two members draft the same change independently, each
// from its own copy of the chain, and checks that their signatures make one
// valid note.
func TestDraftsAgree(t *testing.T) {
	v1 := founding(t, "centre-a", "centre-b", "centre-c")
	v1note := signBy(t, v1, nil, "centre-a", "centre-b", "centre-c")
	d := testMember(t, "centre-d", 4104)
	d.Addrs = append(d.Addrs, mustAddr(t, "/ip6/2001:db8::4/udp/4104/quic-v1"))
	req, err := federation.SignRequest(federation.JoinRequest{Federation: testFederation, Member: d}, testKey("centre-d"))
	if err != nil {
		t.Fatal(err)
	}
	stricter := v1.Policy
	stricter.AdmissionQuorum = 3
	stricter.ConsentDefault = federation.ConsentOptOut

	tests := []struct {
		name  string
		draft func(t *testing.T, c federation.Charter) (federation.Charter, error)
	}{
		{"add a member from its join request", func(t *testing.T, c federation.Charter) (federation.Charter, error) {
			r, err := federation.OpenRequest(req) // each member opens its own copy
			if err != nil {
				t.Fatal(err)
			}
			return c.WithMember(r.Member)
		}},
		{"remove a member", func(t *testing.T, c federation.Charter) (federation.Charter, error) {
			return c.WithoutMember("centre-b")
		}},
		{"change the policy", func(t *testing.T, c federation.Charter) (federation.Charter, error) {
			return c.WithPolicy(stricter)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var notes [][]byte
			var texts []string
			for _, name := range []string{"centre-a", "centre-c"} {
				s, err := federation.VerifyFounding(bytes.Clone(v1note))
				if err != nil {
					t.Fatal(err)
				}
				draft, err := tt.draft(t, s.Charter)
				if err != nil {
					t.Fatal(err)
				}
				texts = append(texts, draft.Text())
				notes = append(notes, signBy(t, draft, nil, name))
			}
			if texts[0] != texts[1] {
				t.Fatalf("drafts differ:\n%s\n%s", texts[0], texts[1])
			}
			merged, err := federation.Merge(notes[0], notes[1])
			if err != nil {
				t.Fatal(err)
			}
			s, err := federation.VerifyNext(v1, merged)
			if err != nil {
				t.Fatal(err)
			}
			if want := ids(t, "centre-a", "centre-c"); !slices.Equal(s.Signers, want) {
				t.Errorf("Signers = %v, want %v", s.Signers, want)
			}
			if s.Version != 2 || s.Previous != v1.Hash() {
				t.Errorf("version %d, previous %x; want 2 after %x", s.Version, s.Previous, v1.Hash())
			}
		})
	}
}

func TestWithMemberRefuses(t *testing.T) {
	v1 := founding(t, "centre-a", "centre-b", "centre-c")
	tests := []struct {
		name   string
		member federation.Member
		want   string
	}{
		{"name already present", testMember(t, "centre-b", 4999), "centre-b is already in version 1"},
		{"peer ID already present", federation.Member{Name: "centre-z", ID: testID(t, "centre-a"), Addrs: v1.Members[0].Addrs}, "already centre-a's"},
		{"invalid member", federation.Member{Name: "centre-z", ID: testID(t, "centre-z")}, "0 addresses"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v1.WithMember(tt.member)
			if !errors.Is(err, node.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("WithMember() = %v, want node.ErrInvalid naming %q", err, tt.want)
			}
			if !reflect.ValueOf(got).IsZero() {
				t.Errorf("WithMember() returned %+v with its error", got)
			}
		})
	}
	if len(v1.Members) != 3 {
		t.Errorf("WithMember changed the charter it drafted from: %d members", len(v1.Members))
	}
}

func TestWithoutMember(t *testing.T) {
	three := founding(t, "centre-a", "centre-b", "centre-c") // quorums 2
	two := founding(t, "centre-a", "centre-b")
	two.Policy = federation.Policy{
		AdmissionQuorum: 1, WitnessQuorum: 1, OPRFThreshold: 2,
		ConsentDefault: "opt-in", EmergencyAccess: "allowed", TokenMaxLifetime: time.Hour,
	}
	tests := []struct {
		name    string
		c       federation.Charter
		remove  string
		want    []string // members left
		wantErr string   // or the error names this
	}{
		{"leaves a quorum", three, "centre-b", []string{"centre-a", "centre-c"}, ""},
		{"first member", three, "centre-a", []string{"centre-b", "centre-c"}, ""},
		{"absent", three, "centre-z", nil, `no member "centre-z"`},
		{"below the OPRF threshold", two, "centre-a", nil, "oprf-threshold 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.c.WithoutMember(tt.remove)
			if tt.wantErr != "" {
				if !errors.Is(err, node.ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("WithoutMember(%s) = %v, want node.ErrInvalid naming %q", tt.remove, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, m := range got.Members {
				names = append(names, m.Name)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("members %v, want %v", names, tt.want)
			}
			if got.Policy != tt.c.Policy {
				t.Errorf("policy changed: %+v", got.Policy)
			}
			if len(tt.c.Members) != len(tt.want)+1 {
				t.Error("WithoutMember changed the charter it drafted from")
			}
		})
	}
}

func TestSignIdempotent(t *testing.T) {
	v1 := founding(t, "centre-a", "centre-b", "centre-c")
	once := signBy(t, v1, nil, "centre-a")
	twice := signBy(t, v1, once, "centre-a")
	if !bytes.Equal(once, twice) {
		t.Errorf("signing twice changed the note:\n%s\n%s", once, twice)
	}
	ab := signBy(t, v1, nil, "centre-a", "centre-b")
	ba := signBy(t, v1, nil, "centre-b", "centre-a")
	if !bytes.Equal(ab, ba) {
		t.Errorf("the order of signing changed the note:\n%s\n%s", ab, ba)
	}
	if _, err := federation.Sign(v1, nil, testKey("centre-a")[:10]); !errors.Is(err, node.ErrInvalid) {
		t.Errorf("Sign with a short key = %v, want node.ErrInvalid", err)
	}
	v2, err := v1.WithoutMember("centre-c")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := federation.Sign(v2, once, testKey("centre-b")); !errors.Is(err, federation.ErrChain) {
		t.Errorf("Sign onto a note of another version = %v, want ErrChain", err)
	}
}

func TestMerge(t *testing.T) {
	v1 := founding(t, "centre-a", "centre-b", "centre-c")
	a := signBy(t, v1, nil, "centre-a")
	b := signBy(t, v1, nil, "centre-b")
	bc := signBy(t, v1, nil, "centre-b", "centre-c")
	all := signBy(t, v1, nil, "centre-a", "centre-b", "centre-c")
	v2, err := v1.WithoutMember("centre-c")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		x, y    []byte
		want    []byte
		wantErr error
	}{
		{"disjoint", a, bc, all, nil},
		{"other way round", bc, a, all, nil},
		{"overlapping", signBy(t, v1, nil, "centre-a", "centre-b"), bc, all, nil},
		{"same note", b, b, b, nil},
		{"subset", all, b, all, nil},
		{"different texts", a, signBy(t, v2, nil, "centre-b"), nil, federation.ErrChain},
		{"bad signature", a, corruptSig(b), nil, federation.ErrSignatures},
		{"not a note", a, []byte("centre-b approves\n"), nil, node.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := federation.Merge(tt.x, tt.y)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || got != nil {
					t.Fatalf("Merge() = %q, %v; want %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("Merge() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestApprovals(t *testing.T) {
	ch := newTestChain(t)
	v1, v2 := ch.versions[0], ch.versions[1]
	a := signBy(t, v2, nil, "centre-a")
	s, err := federation.Approvals(v1, a)
	if err != nil {
		t.Fatal(err)
	}
	if want := ids(t, "centre-a"); !slices.Equal(s.Signers, want) {
		t.Errorf("Approvals signers = %v, want %v", s.Signers, want)
	}
	if _, err := federation.VerifyNext(v1, a); !errors.Is(err, federation.ErrSignatures) {
		t.Errorf("VerifyNext with 1 of 2 signatures = %v, want ErrSignatures", err)
	}
	ac, err := federation.Merge(a, signBy(t, v2, nil, "centre-c"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := federation.VerifyNext(v1, ac); err != nil {
		t.Errorf("VerifyNext with 2 of 2 signatures: %v", err)
	}
	withNewcomer := signBy(t, v2, a, "centre-d")
	if _, err := federation.Approvals(v1, withNewcomer); !errors.Is(err, federation.ErrSignatures) {
		t.Errorf("Approvals with the newcomer's signature = %v, want ErrSignatures", err)
	}
}

func TestVerifyChain(t *testing.T) {
	ch := newTestChain(t)
	s, err := federation.VerifyChain(ch.notes)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != 4 || s.Text() != ch.versions[3].Text() {
		t.Errorf("VerifyChain returned version %d:\n%s", s.Version, s.Text())
	}
	if want := ids(t, "centre-c", "centre-e"); !slices.Equal(s.Signers, want) {
		t.Errorf("Signers = %v, want %v", s.Signers, want)
	}
	if !bytes.Equal(s.Note, ch.notes[3]) {
		t.Error("Note is not the last note")
	}

	// Another valid version 3, which the real version 4 does not follow.
	other, err := ch.versions[1].WithMember(testMember(t, "centre-f", 4106))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		alter       func(notes [][]byte) [][]byte
		wantVersion int
		wantErr     error
	}{
		{"empty", func([][]byte) [][]byte { return nil }, 1, federation.ErrChain},
		{"version 1 without a founder", func(n [][]byte) [][]byte {
			n[0] = signBy(t, ch.versions[0], nil, "centre-a", "centre-b")
			return n
		}, 1, federation.ErrSignatures},
		{"version 3 text altered", func(n [][]byte) [][]byte {
			n[2] = bytes.Replace(n[2], []byte("tcp/4105"), []byte("tcp/4106"), 1)
			return n
		}, 3, federation.ErrSignatures},
		{"version 3 below quorum", func(n [][]byte) [][]byte {
			n[2] = signBy(t, ch.versions[2], nil, "centre-d")
			return n
		}, 3, federation.ErrSignatures},
		{"version 3 replaced by another draft", func(n [][]byte) [][]byte {
			n[2] = signBy(t, other, nil, "centre-a", "centre-b")
			return n
		}, 4, federation.ErrChain},
		{"version 2 left out", func(n [][]byte) [][]byte { return slices.Delete(n, 1, 2) }, 2, federation.ErrChain},
		{"versions 3 and 4 swapped", func(n [][]byte) [][]byte {
			n[2], n[3] = n[3], n[2]
			return n
		}, 3, federation.ErrChain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			notes := tt.alter(slices.Clone(ch.notes))
			got, err := federation.VerifyChain(notes)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("VerifyChain() = %v, want %v", err, tt.wantErr)
			}
			if want := fmt.Sprintf("version %d:", tt.wantVersion); !strings.Contains(err.Error(), want) {
				t.Errorf("VerifyChain() = %q, want it to name %q", err, want)
			}
			if !reflect.ValueOf(got).IsZero() {
				t.Errorf("VerifyChain() returned version %d with its error", got.Version)
			}
		})
	}
}

// rsaPeerID is a hashed (RSA) peer ID, one of the IPFS bootstrap nodes.
const rsaPeerID = "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"

func secp256k1PeerID(tb testing.TB) peer.ID {
	tb.Helper()
	seed := sha256.Sum256([]byte("secp256k1 test key"))
	sk, err := crypto.UnmarshalSecp256k1PrivateKey(seed[:])
	if err != nil {
		tb.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// malformedTexts returns ways to spoil a charter text of three or more
// members (lines 13 and up, after the witnesses and consent-replicas
// lines of the default policy).
func malformedTexts(tb testing.TB) []struct {
	name  string
	spoil func(string) string
} {
	tb.Helper()
	line := func(i int, f func(fields []string) []string) func(string) string {
		return func(text string) string {
			lines := strings.Split(text, "\n")
			lines[i-1] = strings.Join(f(strings.Split(lines[i-1], " ")), " ")
			return strings.Join(lines, "\n")
		}
	}
	field := func(i, j int, v string) func(string) string {
		return line(i, func(f []string) []string { f[j] = v; return f })
	}
	secp := secp256k1PeerID(tb).String()
	return []struct {
		name  string
		spoil func(string) string
	}{
		{"garbage", func(string) string { return "\x89PNG\r\n\x1a\n" }},
		{"empty", func(string) string { return "" }},
		{"truncated mid-line", func(s string) string { return s[:len(s)/2] }},
		{"without members", func(s string) string { return strings.Join(strings.SplitAfter(s, "\n")[:12], "") }},
		{"extra line", func(s string) string { return s + "comment nothing\n" }},
		// The lines a charter names only when they differ from the default.
		{"key notice at its default", func(s string) string {
			return strings.Replace(s, "token-max-lifetime 24h0m0s\n", "token-max-lifetime 24h0m0s\nkey-notice 72h0m0s\n", 1)
		}},
		{"emergency duration out of range", func(s string) string {
			return strings.Replace(s, "token-max-lifetime 24h0m0s\n", "token-max-lifetime 24h0m0s\nemergency-duration 48h0m0s\n", 1)
		}},
		{"member rate at its default", func(s string) string {
			return strings.Replace(s, "token-max-lifetime 24h0m0s\n", "token-max-lifetime 24h0m0s\nmember-rate 1000\n", 1)
		}},
		{"member rate spelt another way", func(s string) string {
			return strings.Replace(s, "token-max-lifetime 24h0m0s\n", "token-max-lifetime 24h0m0s\nmember-rate 050\n", 1)
		}},
		{"blank line", func(s string) string { return s + "\n" }},
		{"no final newline", func(s string) string { return strings.TrimSuffix(s, "\n") }},
		{"CRLF", func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }},
		{"other header", field(1, 2, "v9")},
		{"members out of order", func(s string) string {
			lines := strings.Split(s, "\n")
			lines[12], lines[13] = lines[13], lines[12]
			return strings.Join(lines, "\n")
		}},
		{"duplicate member name", func(s string) string {
			return field(14, 1, strings.Fields(strings.Split(s, "\n")[12])[1])(s)
		}},
		{"duplicate peer ID", func(s string) string {
			return field(14, 2, strings.Fields(strings.Split(s, "\n")[12])[2])(s)
		}},
		{"RSA peer ID", field(13, 2, rsaPeerID)},
		{"secp256k1 peer ID", field(13, 2, secp)},
		{"peer ID in base32", func(s string) string {
			id, err := peer.Decode(strings.Fields(strings.Split(s, "\n")[12])[2])
			if err != nil {
				tb.Fatal(err)
			}
			return field(13, 2, peer.ToCid(id).String())(s)
		}},
		{"admission quorum 0", field(5, 1, "0")},
		{"witness quorum above members", field(6, 1, "300")},
		{"threshold with a plus sign", field(7, 1, "+2")},
		{"bad multiaddr", field(13, 3, "/ip4/127.0.0.300/tcp/4101")},
		{"dns multiaddr", field(13, 3, "/dns4/example.org/tcp/4101")},
		{"multiaddr with trailing slash", field(13, 3, "/ip4/127.0.0.1/tcp/4101/")},
		{"member without address", line(13, func(f []string) []string { return f[:3] })},
		{"two spaces", line(13, func(f []string) []string { return append(f[:3], "", f[3]) })},
		{"unknown consent default", field(8, 1, "opt-maybe")},
		{"unknown emergency access", field(9, 1, "sometimes")},
		{"lifetime not canonical", field(10, 1, "24h")},
		{"lifetime too long", field(10, 1, "721h0m0s")},
		{"version with a leading zero", func(s string) string {
			return strings.Replace(s, "\nversion ", "\nversion 0", 1)
		}},
		{"previous not a hash", field(4, 1, "AAAA")},
		{"witnesses 0", field(11, 1, "0")},
		{"witnesses above the bound", field(11, 1, "65")},
		{"consent replicas spelt another way", field(12, 1, "05")},
		{"witness quorum above a log and its set", func(s string) string {
			return strings.Replace(field(11, 1, "1")(s), "witness-quorum 2\n", "witness-quorum 3\n", 1)
		}},
		{"council naming a non-member", func(s string) string {
			return strings.Replace(s, "consent-replicas 5\n", "consent-replicas 5\ncouncil centre-a centre-z\n", 1)
		}},
		{"council out of order", func(s string) string {
			return strings.Replace(s, "consent-replicas 5\n", "consent-replicas 5\ncouncil centre-b centre-a\n", 1)
		}},
		{"council too small for the admission quorum", func(s string) string {
			return strings.Replace(s, "consent-replicas 5\n", "consent-replicas 5\ncouncil centre-a\n", 1)
		}},
		{"oversized", func(s string) string {
			return s + strings.Repeat("member x "+rsaPeerID+"\n", federation.MaxCharterText/50)
		}},
	}
}

func TestParseCharterMalformed(t *testing.T) {
	v1 := founding(t, "centre-a", "centre-b", "centre-c")
	for _, tt := range malformedTexts(t) {
		t.Run(tt.name, func(t *testing.T) {
			text := tt.spoil(v1.Text())
			if text == v1.Text() {
				t.Fatal("the text is unchanged")
			}
			got, err := federation.ParseCharter(text)
			if !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("ParseCharter() = %v, want node.ErrInvalid", err)
			}
			if !reflect.ValueOf(got).IsZero() {
				t.Errorf("ParseCharter() returned %+v with its error", got)
			}
		})
	}
}

// refusal is a verification that must fail: it returns what the function
// under test returned.
type refusal struct {
	name string
	run  func() (any, error)
	want error
}

func asSigned(s federation.Signed, err error) (any, error)       { return s, err }
func asRequest(r federation.JoinRequest, err error) (any, error) { return r, err }
func asCharter(c federation.Charter, err error) (any, error)     { return c, err }
func asNote(b []byte, err error) (any, error)                    { return b, err }
func verifyNext(prev federation.Charter, msg []byte) func() (any, error) {
	return func() (any, error) { return asSigned(federation.VerifyNext(prev, msg)) }
}

// corruptSig changes the last signature of msg but not its key name or
// key hash.
func corruptSig(msg []byte) []byte {
	out := bytes.Clone(msg)
	i := len(out) - 10
	if out[i] == 'A' {
		out[i] = 'B'
	} else {
		out[i] = 'A'
	}
	return out
}

func TestRefused(t *testing.T) {
	ch := newTestChain(t)
	v1, v2 := ch.versions[0], ch.versions[1]
	v1note, v2note, v3note := ch.notes[0], ch.notes[1], ch.notes[2]
	founders := []string{"centre-a", "centre-b", "centre-c"}

	wrongPrevious := v2
	wrongPrevious.Previous = sha256.Sum256([]byte("another version 1"))
	otherFederation := v2
	otherFederation.Federation = "other-federation"
	optOut := v1.Policy
	optOut.ConsentDefault = federation.ConsentOptOut
	policyChange, err := v1.WithPolicy(optOut)
	if err != nil {
		t.Fatal(err)
	}
	d := ch.versions[1].Members[3]
	if d.Name != "centre-d" {
		t.Fatalf("member 4 of version 2 is %s", d.Name)
	}
	joinText := federation.JoinRequest{Federation: testFederation, Member: d}.Text()
	joinNote, err := note.Sign(&note.Note{Text: joinText}, newRawSigner(t, d.ID.String(), testKey("intruder")))
	if err != nil {
		t.Fatal(err)
	}
	oversized := rawSign(t, v1.Text()+strings.Repeat("#\n", federation.MaxCharterNote/2), founders...)

	tests := []refusal{
		{"founding without one founder's signature", func() (any, error) {
			return asSigned(federation.VerifyFounding(signBy(t, v1, nil, "centre-a", "centre-c")))
		}, federation.ErrSignatures},
		{"founding also signed by a non-member", func() (any, error) {
			return asSigned(federation.VerifyFounding(signBy(t, v1, v1note, "centre-d")))
		}, federation.ErrSignatures},
		{"founding also signed under a name that is not a peer ID", func() (any, error) {
			msg, err := note.Sign(&note.Note{Text: v1.Text()}, newRawSigner(t, "centre-d", testKey("centre-d")))
			if err != nil {
				t.Fatal(err)
			}
			return asSigned(federation.VerifyFounding(append(bytes.Clone(v1note), msg[len(v1.Text())+1:]...)))
		}, federation.ErrSignatures},
		{"founding of version 2", func() (any, error) { return asSigned(federation.VerifyFounding(v2note)) }, federation.ErrChain},
		{"version 2 below quorum", verifyNext(v1, signBy(t, v2, nil, "centre-b")), federation.ErrSignatures},
		{"version 2 also signed by a non-member", verifyNext(v1, signBy(t, v2, v2note, "centre-d")), federation.ErrSignatures},
		{"version 2 signed by a non-member only", verifyNext(v1, signBy(t, v2, nil, "centre-d")), federation.ErrSignatures},
		{"version 3 after version 1", verifyNext(v1, v3note), federation.ErrChain},
		{"version 1 after version 1", verifyNext(v1, v1note), federation.ErrChain},
		{"version 2 after version 2", verifyNext(v2, v2note), federation.ErrChain},
		{"wrong previous hash", verifyNext(v1, signBy(t, wrongPrevious, nil, founders...)), federation.ErrChain},
		{"another federation", verifyNext(v1, signBy(t, otherFederation, nil, founders...)), federation.ErrChain},
		{"policy change below quorum", verifyNext(v1, signBy(t, policyChange, nil, "centre-c")), federation.ErrSignatures},
		{"policy change approvals with an outsider", func() (any, error) {
			return asSigned(federation.Approvals(v1, signBy(t, policyChange, nil, "centre-a", "outsider")))
		}, federation.ErrSignatures},
		{"founding text altered after signing", func() (any, error) {
			return asSigned(federation.VerifyFounding(bytes.Replace(v1note, []byte("opt-in"), []byte("opt-out"), 1)))
		}, federation.ErrSignatures},
		{"version 2 text altered after signing", verifyNext(v1, bytes.Replace(v2note, []byte("4104"), []byte("4105"), 1)), federation.ErrSignatures},
		{"signature by a founder's name with another key", func() (any, error) {
			msg, err := note.Sign(&note.Note{Text: v1.Text()},
				newRawSigner(t, testID(t, "centre-a").String(), testKey("intruder")),
				newRawSigner(t, testID(t, "centre-b").String(), testKey("centre-b")),
				newRawSigner(t, testID(t, "centre-c").String(), testKey("centre-c")))
			if err != nil {
				t.Fatal(err)
			}
			return asSigned(federation.VerifyFounding(msg))
		}, federation.ErrSignatures},
		{"oversized note", func() (any, error) { return asSigned(federation.VerifyFounding(oversized)) }, node.ErrInvalid},
		{"truncated note", func() (any, error) { return asSigned(federation.VerifyFounding(v1note[:len(v1note)-40])) }, node.ErrInvalid},
		{"note with a corrupted signature", func() (any, error) { return asSigned(federation.VerifyFounding(corruptSig(v1note))) }, federation.ErrSignatures},
		{"note without signatures", func() (any, error) { return asSigned(federation.VerifyFounding([]byte(v1.Text()))) }, node.ErrInvalid},
		{"sign onto an oversized note", func() (any, error) {
			return asNote(federation.Sign(v1, oversized, testKey("centre-a")))
		}, node.ErrInvalid},
		{"join request signed by another key", func() (any, error) { return asRequest(federation.OpenRequest(joinNote)) }, federation.ErrSignatures},
		{"join request signed by another centre", func() (any, error) {
			return asRequest(federation.OpenRequest(rawSign(t, joinText, "centre-e")))
		}, federation.ErrSignatures},
		{"join request also signed by a member", func() (any, error) {
			return asRequest(federation.OpenRequest(rawSign(t, joinText, "centre-d", "centre-a")))
		}, federation.ErrSignatures},
		{"join request signed with the wrong key", func() (any, error) {
			return asNote(federation.SignRequest(federation.JoinRequest{Federation: testFederation, Member: d}, testKey("intruder")))
		}, federation.ErrSignatures},
		{"draft that removes below a quorum", func() (any, error) {
			two, err := v1.WithoutMember("centre-a")
			if err != nil {
				t.Fatal(err)
			}
			return asCharter(two.WithoutMember("centre-b"))
		}, node.ErrInvalid},
	}
	// Every malformed text, signed by whoever would have to sign it.
	// A note's text ends with a newline, so texts that do not are tested
	// by ParseCharter only.
	for _, m := range malformedTexts(t) {
		founding := m.spoil(v1.Text())
		next := m.spoil(v2.FullText())
		if !strings.HasSuffix(founding, "\n") || !strings.HasSuffix(next, "\n") {
			continue
		}
		tests = append(tests,
			refusal{"malformed founding: " + m.name, func() (any, error) {
				return asSigned(federation.VerifyFounding(rawSign(t, founding, founders...)))
			}, node.ErrInvalid},
			refusal{"malformed version 2: " + m.name, verifyNext(v1, rawSign(t, next, founders...)), node.ErrInvalid},
		)
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.run()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			for _, other := range []error{node.ErrInvalid, federation.ErrSignatures, federation.ErrChain} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("err = %v, which is also %v", err, other)
				}
			}
			if v := reflect.ValueOf(got); v.IsValid() && !v.IsZero() {
				t.Errorf("returned %v with its error", got)
			}
		})
	}
}
