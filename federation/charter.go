package federation

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"golang.org/x/mod/sumdb/note"

	"github.com/medfed/medfed/node"
)

// Every error of a charter wraps node.ErrInvalid ("malformed") or one of
// these, so that the API and the CLI map them to a status in one place
// each. Malformed is a charter, join request or note that does not parse,
// is not in its one canonical spelling, is too large, or has a field out
// of range; also a draft (WithMember, WithoutMember, WithPolicy) that
// would be such a charter.
var (
	// ErrSignatures: a signature does not verify, is by someone who may not
	// sign (a non-member, or a key other than the requester's), or too few
	// members signed.
	ErrSignatures = node.E(node.Conflict, "signatures not accepted")
	// ErrChain: the charter is not the expected next version: another
	// federation, a version other than the next one, a previous hash that is
	// not the hash of the previous version; for Sign and Merge, a note whose
	// text is another draft.
	ErrChain = node.E(node.Conflict, "not the expected charter version")
)

// Values of Policy.ConsentDefault and Policy.EmergencyAccess.
const (
	ConsentOptIn       = "opt-in"
	ConsentOptOut      = "opt-out"
	EmergencyAllowed   = "allowed"
	EmergencyForbidden = "forbidden"
)

// Size limits. A reader of a charter note from the network stops at
// MaxCharterNote bytes; larger notes are refused before they are parsed.
const (
	MaxCharterText = 2 << 20 // 10,000 members of one address each, with room
	MaxCharterNote = MaxCharterText + maxSigs*160
	MaxMembers     = 10_000
	MaxAddrs       = 8
	// MaxCouncil bounds the council, the members whose approvals change
	// the charter, and MaxSet the witness and consent sets a policy names:
	// what one change or one operation costs is bounded by them, not by
	// the number of members.
	MaxCouncil = 64
	MaxSet     = 64
	// maxOPRFShares bounds the pseudonym key's committee (package
	// pseudonym's MaxHolders).
	maxOPRFShares = 256

	minTokenLifetime = time.Minute
	maxTokenLifetime = 720 * time.Hour

	// maxTokenText bounds a peer ID or multiaddr token before it is
	// decoded: base58 decoding is quadratic, and real tokens are under 70
	// characters.
	maxTokenText = 128
	// maxSigs bounds the signature lines of a note: a valid charter note
	// carries at most one signature per founder, or per council member.
	maxSigs = 1024
	// maxChainFile bounds a charter chain read from a file.
	maxChainFile = 1 << 30

	charterHeader = "medfed charter v1"
)

// Policy is the part of a charter that members vote on besides membership.
type Policy struct {
	AdmissionQuorum  int           // signatures of the current version's members needed to adopt the next version
	WitnessQuorum    int           // cosignatures that make a checkpoint final
	OPRFThreshold    int           // t of the t-of-n pseudonym key
	ConsentDefault   string        // ConsentOptIn or ConsentOptOut
	EmergencyAccess  string        // EmergencyAllowed or EmergencyForbidden
	TokenMaxLifetime time.Duration // longest consent token a patient may issue, 1m..720h
	// KeyNotice is how long an approved replacement of a patient's key
	// waits for the key in force to veto it, and how long a key must have
	// been in force before it can erase the patient's records: 1s..90
	// days; zero is DefaultKeyNotice (read it with KeyNoticePeriod).
	KeyNotice time.Duration
	// EmergencyDuration is how long break-glass access lasts unless
	// stopped sooner: 1s..24h; zero is DefaultEmergencyDuration (read it
	// with EmergencyLimit).
	EmergencyDuration time.Duration
	// MemberRate bounds the queries and the patients' requests one member
	// may send a centre, per second (a second's worth at once):
	// 1..100000; zero is DefaultMemberRate (read it with MemberRateLimit).
	MemberRate int64
	// Witnesses is the size of each log's witness set (Charter.Witnesses):
	// 1..MaxSet; zero is every other member, as charters before witness
	// sets had it. WitnessQuorum counts the log's own signature and its
	// set's cosignatures.
	Witnesses int64
	// ConsentReplicas is the size of each patient's consent set
	// (Charter.ConsentSet), where the patient's consent documents are
	// written and read by majorities of it: 1..MaxSet; zero is every
	// member, as charters before consent sets had it.
	ConsentReplicas int64
}

// DefaultMemberRate is the member rate of a charter that sets none.
const DefaultMemberRate = 1000

// MemberRateLimit returns the policy's member rate.
func (p Policy) MemberRateLimit() int64 { return cmp.Or(p.MemberRate, DefaultMemberRate) }

// KeyNoticePeriod returns the policy's key notice.
func (p Policy) KeyNoticePeriod() time.Duration { return cmp.Or(p.KeyNotice, DefaultKeyNotice) }

// EmergencyLimit returns how long emergency access lasts.
func (p Policy) EmergencyLimit() time.Duration {
	return cmp.Or(p.EmergencyDuration, DefaultEmergencyDuration)
}

// Defaults of the policy lines a charter may leave out: a charter's text
// names them only when they differ (and a policy's zero is the default).
const (
	DefaultKeyNotice         = 72 * time.Hour
	DefaultEmergencyDuration = 4 * time.Hour
)

// DefaultPolicy is the policy of a federation founded by the given number
// of members: a majority of the founders for the admission quorum and the
// OPRF threshold, witness sets of DefaultWitnesses with a majority of the
// log and its set as witness quorum, consent sets of
// DefaultConsentReplicas, opt-in consent, emergency access allowed,
// consent tokens of at most a day. Adding or removing members later leaves
// the policy as it is; a change of quorum is a version of its own
// (Charter.WithPolicy).
func DefaultPolicy(members int) Policy {
	q := max(members/2+1, 1)
	return Policy{
		AdmissionQuorum:  q,
		WitnessQuorum:    max(min(members, DefaultWitnesses+1)/2+1, 1),
		OPRFThreshold:    q,
		ConsentDefault:   ConsentOptIn,
		EmergencyAccess:  EmergencyAllowed,
		TokenMaxLifetime: 24 * time.Hour,
		Witnesses:        DefaultWitnesses,
		ConsentReplicas:  DefaultConsentReplicas,
	}
}

// Set sizes of a new federation's policy: a log's witnesses, a patient's
// consent replicas.
const (
	DefaultWitnesses       = 7
	DefaultConsentReplicas = 5
)

// optionalLine is a policy line a charter's text names only when its
// value differs from the default (zero in a Policy is the default).
type optionalLine struct {
	key           string
	v             *int64
	def, min, max int64
	format        func(int64) string
	parse         func(string) (int64, error)
}

func durationLine(key string, d *time.Duration, def, min, max time.Duration) optionalLine {
	return optionalLine{key: key, v: (*int64)(d), def: int64(def), min: int64(min), max: int64(max),
		format: func(v int64) string { return time.Duration(v).String() },
		parse: func(s string) (int64, error) {
			d, err := time.ParseDuration(s)
			return int64(d), err
		}}
}

// optional returns the policy's optional lines, in the text's order.
func (p *Policy) optional() []optionalLine {
	return []optionalLine{
		durationLine("key-notice", &p.KeyNotice, DefaultKeyNotice, time.Second, 90*24*time.Hour),
		durationLine("emergency-duration", &p.EmergencyDuration, DefaultEmergencyDuration, time.Second, 24*time.Hour),
		countLine("member-rate", &p.MemberRate, DefaultMemberRate, 100_000),
		countLine("witnesses", &p.Witnesses, 0, MaxSet),
		countLine("consent-replicas", &p.ConsentReplicas, 0, MaxSet),
	}
}

func countLine(key string, v *int64, def, max int64) optionalLine {
	return optionalLine{key: key, v: v, def: def, min: 1, max: max,
		format: func(v int64) string { return strconv.FormatInt(v, 10) },
		parse:  func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }}
}

// quorums returns the policy's member counts with their keys in the text.
func (p Policy) quorums() []struct {
	key string
	n   int
} {
	return []struct {
		key string
		n   int
	}{
		{"admission-quorum", p.AdmissionQuorum},
		{"witness-quorum", p.WitnessQuorum},
		{"oprf-threshold", p.OPRFThreshold},
	}
}

// check checks the policy of a charter with the given number of members
// and council.
func (p Policy) check(members, council int) error {
	for _, q := range p.quorums() {
		if q.n < 1 || q.n > members {
			return fmt.Errorf("%s %d: want 1 to %d, the number of members", q.key, q.n, members)
		}
	}
	if p.AdmissionQuorum > council {
		return fmt.Errorf("admission-quorum %d: want 1 to %d, the council's size", p.AdmissionQuorum, council)
	}
	if g := p.witnessGroup(members); p.WitnessQuorum > g {
		return fmt.Errorf("witness-quorum %d: want 1 to %d, a log and its witness set", p.WitnessQuorum, g)
	}
	if p.ConsentDefault != ConsentOptIn && p.ConsentDefault != ConsentOptOut {
		return fmt.Errorf("consent-default: want %s or %s", ConsentOptIn, ConsentOptOut)
	}
	if p.EmergencyAccess != EmergencyAllowed && p.EmergencyAccess != EmergencyForbidden {
		return fmt.Errorf("emergency-access: want %s or %s", EmergencyAllowed, EmergencyForbidden)
	}
	if p.TokenMaxLifetime < minTokenLifetime || p.TokenMaxLifetime > maxTokenLifetime {
		return fmt.Errorf("token-max-lifetime %v: want %v to %v", p.TokenMaxLifetime, minTokenLifetime, maxTokenLifetime)
	}
	for _, o := range p.optional() {
		if *o.v != 0 && (*o.v < o.min || *o.v > o.max) {
			return fmt.Errorf("%s %s: want %s to %s", o.key, o.format(*o.v), o.format(o.min), o.format(o.max))
		}
	}
	return nil
}

// Member is a centre of the federation.
type Member struct {
	Name  string                // centre name: ^[a-z0-9][a-z0-9-]{0,62}$
	ID    peer.ID               // Ed25519 identity-multihash peer ID: the key is in the ID
	Addrs []multiaddr.Multiaddr // 1..8 addresses others dial: /ip4|ip6/<addr>/tcp/<port> or /ip4|ip6/<addr>/udp/<port>/quic-v1
}

// PublicKey returns the Ed25519 key embedded in the member's peer ID.
func (m Member) PublicKey() (ed25519.PublicKey, error) {
	pub, err := publicKey(m.ID)
	if err != nil {
		return nil, fmt.Errorf("member public key: %w: malformed: peer ID: %v", node.ErrInvalid, err)
	}
	return pub, nil
}

func (m Member) check() error {
	if !ValidName(m.Name) {
		return errors.New("name: want 1 to 63 of a-z, 0-9 and '-', not starting with '-'")
	}
	if _, err := publicKey(m.ID); err != nil {
		return fmt.Errorf("%s: peer ID: %v", m.Name, err)
	}
	if len(m.Addrs) == 0 || len(m.Addrs) > MaxAddrs {
		return fmt.Errorf("%s: %d addresses, want 1 to %d", m.Name, len(m.Addrs), MaxAddrs)
	}
	for i, a := range m.Addrs {
		if err := checkAddr(a); err != nil {
			return fmt.Errorf("%s: address %d: %v", m.Name, i+1, err)
		}
		for _, b := range m.Addrs[:i] {
			if a.Equal(b) {
				return fmt.Errorf("%s: address %d: listed twice", m.Name, i+1)
			}
		}
	}
	return nil
}

// writeLine writes "<name> <peer ID> <addr>..." without a newline.
func (m Member) writeLine(b *strings.Builder) {
	b.WriteString(m.Name)
	b.WriteByte(' ')
	b.WriteString(m.ID.String())
	for _, a := range m.Addrs {
		b.WriteByte(' ')
		b.WriteString(a.String())
	}
}

// parseMember parses the fields of a member line: name, peer ID, addresses.
// Member.check does the rest.
func parseMember(fields []string) (Member, error) {
	if len(fields) < 3 {
		return Member{}, errors.New("want a name, a peer ID and at least one address")
	}
	if len(fields) > 2+MaxAddrs {
		return Member{}, fmt.Errorf("%d addresses, want at most %d", len(fields)-2, MaxAddrs)
	}
	id, err := decodePeerID(fields[1])
	if err != nil {
		return Member{}, fmt.Errorf("peer ID: %v", err)
	}
	m := Member{Name: fields[0], ID: id}
	for i, s := range fields[2:] {
		if len(s) > maxTokenText {
			return Member{}, fmt.Errorf("address %d: too long", i+1)
		}
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return Member{}, fmt.Errorf("address %d: %v", i+1, err)
		}
		m.Addrs = append(m.Addrs, a)
	}
	return m, nil
}

// checkAddr accepts the addresses a centre can be dialled at, in the one
// spelling String gives them.
func checkAddr(a multiaddr.Multiaddr) error {
	const want = "want /ip4 or /ip6, then /tcp/<port> or /udp/<port>/quic-v1"
	switch {
	case len(a) == 2 && a[1].Code() == multiaddr.P_TCP:
	case len(a) == 3 && a[1].Code() == multiaddr.P_UDP && a[2].Code() == multiaddr.P_QUIC_V1:
	default:
		return errors.New(want)
	}
	ip := net.IP(a[0].RawValue())
	switch a[0].Code() {
	case multiaddr.P_IP4:
		if len(ip) != net.IPv4len {
			return errors.New("bad ip4 address")
		}
	case multiaddr.P_IP6:
		if len(ip) != net.IPv6len {
			return errors.New("bad ip6 address")
		}
		if ip.To4() != nil {
			return errors.New("IPv4 address in /ip6: use /ip4")
		}
	default:
		return errors.New(want)
	}
	if ip.IsUnspecified() {
		return errors.New("unspecified IP address: list an address others can dial")
	}
	port := a[1].RawValue()
	if len(port) != 2 || binary.BigEndian.Uint16(port) == 0 {
		return errors.New("port 0: list the port the centre listens on")
	}
	if b, err := multiaddr.NewMultiaddr(a.String()); err != nil || !b.Equal(a) {
		return errors.New("does not survive a round trip through its text form")
	}
	return nil
}

// Charter is one version of a federation's charter.
type Charter struct {
	Federation string   // ^[a-z0-9][a-z0-9-]{0,62}$
	Version    uint64   // 1, 2, ...
	Previous   [32]byte // SHA-256 of the previous version's Text(); zero for version 1
	Policy     Policy
	// Council names the members whose approvals change the charter, at
	// Policy.AdmissionQuorum of them: sorted, 1..MaxCouncil members;
	// empty, every member is on it (as in charters before councils).
	Council []string
	OPRF    OPRFKey  // generated by its holders or dealt at founding, reshared since; absent (zero) in a charter without pseudonyms
	Members []Member // sorted by Name; names and IDs unique; 1..MaxMembers members

	// delta, when set, is what this version changes of the members of the
	// version before it, and its text is in delta form (see delta.go).
	delta *delta
}

// OPRFKey is the public part of the federation's pseudonym key (package
// pseudonym): the key k·G and each holder's public share k_i·G. Version 1
// lists one share per founder; later versions keep the list as it was, so
// a holder that left is still listed (and no longer asked).
type OPRFKey struct {
	Key    [32]byte
	Shares []OPRFShare // by index
}

// OPRFShare is one holder's public share.
type OPRFShare struct {
	Index  int      // 1..256
	Holder peer.ID  // the centre that holds the share
	Public [32]byte // its public share
}

// Dealt reports whether the charter lists a pseudonym key.
func (k OPRFKey) Dealt() bool { return len(k.Shares) > 0 }

func (k OPRFKey) equal(o OPRFKey) bool {
	return k.Key == o.Key && slices.Equal(k.Shares, o.Shares)
}

// Holder returns the share held by id.
func (k OPRFKey) Holder(id peer.ID) (OPRFShare, bool) {
	for _, s := range k.Shares {
		if s.Holder == id {
			return s, true
		}
	}
	return OPRFShare{}, false
}

func (k OPRFKey) writeLines(b *strings.Builder) {
	if !k.Dealt() {
		return
	}
	b.WriteString("oprf-key " + base64.StdEncoding.EncodeToString(k.Key[:]) + "\n")
	for _, s := range k.Shares {
		fmt.Fprintf(b, "oprf-share %d %s %s\n", s.Index, s.Holder, base64.StdEncoding.EncodeToString(s.Public[:]))
	}
}

// check checks the key's shape against the charter it is in. Whether the
// points decode and lie on one polynomial is package pseudonym's check.
func (k OPRFKey) check(c Charter) error {
	if !k.Dealt() {
		if k.Key != ([32]byte{}) {
			return errors.New("oprf-key: a key without shares")
		}
		return nil
	}
	if c.Policy.OPRFThreshold < 2 {
		return errors.New("oprf-threshold: a dealt key needs a threshold of at least 2, or every holder could compute pseudonyms alone")
	}
	if len(k.Shares) > maxOPRFShares || len(k.Shares) < c.Policy.OPRFThreshold {
		return fmt.Errorf("oprf-share: %d shares for threshold %d, want threshold to %d", len(k.Shares), c.Policy.OPRFThreshold, maxOPRFShares)
	}
	holders := map[peer.ID]bool{}
	for i, s := range k.Shares {
		if s.Index < 1 || s.Index > maxOPRFShares || (i > 0 && s.Index <= k.Shares[i-1].Index) {
			return fmt.Errorf("oprf-share %d: index %d: want increasing indices from 1 to %d", i+1, s.Index, maxOPRFShares)
		}
		if holders[s.Holder] {
			return fmt.Errorf("oprf-share %d: %s holds two shares", i+1, s.Holder)
		}
		holders[s.Holder] = true
		if _, err := publicKey(s.Holder); err != nil {
			return fmt.Errorf("oprf-share %d: holder: %v", i+1, err)
		}
		if c.Version == 1 {
			if _, ok := c.Member(s.Holder); !ok {
				return fmt.Errorf("oprf-share %d: holder %s is not a founder", i+1, s.Holder)
			}
		}
	}
	return nil
}

// heldByMembers counts the shares that members hold.
func (k OPRFKey) heldByMembers(members []Member) int {
	n := 0
	for _, m := range members {
		if _, ok := k.Holder(m.ID); ok {
			n++
		}
	}
	return n
}

// parseOPRF reads the optional oprf-key and oprf-share lines.
func parseOPRF(r *lineReader) (OPRFKey, error) {
	var k OPRFKey
	if r.n >= len(r.lines) || !strings.HasPrefix(r.lines[r.n], "oprf-key ") {
		return k, nil
	}
	v, err := r.field("oprf-key")
	if err != nil {
		return k, err
	}
	if err := decode32(v, &k.Key); err != nil {
		return k, fmt.Errorf("line %d: oprf-key: %v", r.n, err)
	}
	for r.n < len(r.lines) && strings.HasPrefix(r.lines[r.n], "oprf-share ") {
		v, err := r.field("oprf-share")
		if err != nil {
			return k, err
		}
		f := strings.Split(v, " ")
		if len(f) != 3 || len(k.Shares) >= maxOPRFShares {
			return k, fmt.Errorf("line %d: oprf-share: want <index> <peer ID> <base64 public share>", r.n)
		}
		var s OPRFShare
		if s.Index, err = strconv.Atoi(f[0]); err != nil {
			return k, fmt.Errorf("line %d: oprf-share: index: not a number", r.n)
		}
		if s.Holder, err = decodePeerID(f[1]); err != nil {
			return k, fmt.Errorf("line %d: oprf-share: holder: %v", r.n, err)
		}
		if err := decode32(f[2], &s.Public); err != nil {
			return k, fmt.Errorf("line %d: oprf-share: %v", r.n, err)
		}
		k.Shares = append(k.Shares, s)
	}
	if len(k.Shares) == 0 {
		return k, fmt.Errorf("line %d: want oprf-share lines after oprf-key", r.n+1)
	}
	return k, nil
}

func decode32(s string, out *[32]byte) error {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != len(out) {
		return errors.New("want the base64 of 32 bytes")
	}
	copy(out[:], b)
	return nil
}

// Text returns the charter's canonical text, the text members sign. A
// charter that passes Validate has exactly one text, and ParseCharter
// accepts nothing else.
func (c Charter) Text() string {
	if c.delta != nil {
		return c.deltaText()
	}
	var b strings.Builder
	c.writeHead(&b, charterHeader)
	for _, m := range c.Members {
		b.WriteString("member ")
		m.writeLine(&b)
		b.WriteByte('\n')
	}
	return b.String()
}

// writeHead writes the lines of a charter's text up to its members.
func (c Charter) writeHead(b *strings.Builder, header string) {
	b.WriteString(header + "\n")
	b.WriteString("federation " + c.Federation + "\n")
	b.WriteString("version " + strconv.FormatUint(c.Version, 10) + "\n")
	if c.Previous == ([32]byte{}) {
		b.WriteString("previous -\n")
	} else {
		b.WriteString("previous " + base64.StdEncoding.EncodeToString(c.Previous[:]) + "\n")
	}
	for _, q := range c.Policy.quorums() {
		b.WriteString(q.key + " " + strconv.Itoa(q.n) + "\n")
	}
	b.WriteString("consent-default " + c.Policy.ConsentDefault + "\n")
	b.WriteString("emergency-access " + c.Policy.EmergencyAccess + "\n")
	b.WriteString("token-max-lifetime " + c.Policy.TokenMaxLifetime.String() + "\n")
	for _, o := range c.Policy.optional() {
		if *o.v != 0 && *o.v != o.def {
			b.WriteString(o.key + " " + o.format(*o.v) + "\n")
		}
	}
	if len(c.Council) > 0 {
		b.WriteString("council " + strings.Join(c.Council, " ") + "\n")
	}
	c.OPRF.writeLines(b)
}

// headerOf is the header a charter text begins with: the full form's or
// the delta form's.
func headerOf(text string) string {
	if IsDelta(text) {
		return deltaHeader
	}
	return charterHeader
}

// FullText returns the charter's text in the full form, every member
// listed, whatever the form of the text its council signed: what an
// operator reads, and what ParseCharter reads alone.
func (c Charter) FullText() string {
	c.delta = nil
	return c.Text()
}

// Hash returns the SHA-256 of the charter's text: the Previous of the next
// version.
func (c Charter) Hash() [32]byte {
	return sha256.Sum256([]byte(c.Text()))
}

// ParseCharter parses a charter's text. It accepts only the text that Text
// gives for the result, so that a charter has one spelling and one hash,
// and only charters that pass Validate.
func ParseCharter(text string) (Charter, error) {
	c, err := parseCharter(text)
	if err != nil {
		return Charter{}, fmt.Errorf("parse charter: %w: malformed: %v", node.ErrInvalid, err)
	}
	return c, nil
}

func parseCharter(text string) (Charter, error) {
	c, r, err := parseHead(text, charterHeader)
	if err != nil {
		return Charter{}, err
	}
	if r.n == len(r.lines) {
		return Charter{}, fmt.Errorf("line %d: want at least one member", r.n+1)
	}
	for r.n < len(r.lines) {
		s, err := r.field("member")
		if err != nil {
			return Charter{}, err
		}
		m, err := parseMember(strings.Split(s, " "))
		if err != nil {
			return Charter{}, fmt.Errorf("line %d: member: %v", r.n, err)
		}
		c.Members = append(c.Members, m)
	}
	if err := c.check(); err != nil {
		return Charter{}, err
	}
	if err := sameText(c.Text(), text); err != nil {
		return Charter{}, err
	}
	return c, nil
}

// parseHead reads a charter text's lines up to its members: the header,
// federation, version, previous, policy, council and pseudonym key.
func parseHead(text, header string) (Charter, *lineReader, error) {
	if len(text) > MaxCharterText {
		return Charter{}, nil, fmt.Errorf("text is %d bytes, more than %d", len(text), MaxCharterText)
	}
	lines, err := splitLines(text)
	if err != nil {
		return Charter{}, nil, err
	}
	if lines[0] != header {
		return Charter{}, nil, fmt.Errorf("line 1: want %q", header)
	}
	r := &lineReader{lines: lines, n: 1}
	var c Charter
	c.Federation, err = r.field("federation")
	if err != nil {
		return Charter{}, nil, err
	}
	v, err := r.field("version")
	if err != nil {
		return Charter{}, nil, err
	}
	if c.Version, err = strconv.ParseUint(v, 10, 64); err != nil {
		return Charter{}, nil, fmt.Errorf("line %d: version: not a number", r.n)
	}
	prev, err := r.field("previous")
	if err != nil {
		return Charter{}, nil, err
	}
	if prev != "-" {
		h, err := base64.StdEncoding.Strict().DecodeString(prev)
		if err != nil || len(h) != len(c.Previous) {
			return Charter{}, nil, fmt.Errorf("line %d: previous: want - or the base64 of a SHA-256 hash", r.n)
		}
		copy(c.Previous[:], h)
	}
	for _, q := range []struct {
		key string
		n   *int
	}{
		{"admission-quorum", &c.Policy.AdmissionQuorum},
		{"witness-quorum", &c.Policy.WitnessQuorum},
		{"oprf-threshold", &c.Policy.OPRFThreshold},
	} {
		s, err := r.field(q.key)
		if err != nil {
			return Charter{}, nil, err
		}
		if *q.n, err = strconv.Atoi(s); err != nil {
			return Charter{}, nil, fmt.Errorf("line %d: %s: not a number", r.n, q.key)
		}
	}
	if c.Policy.ConsentDefault, err = r.field("consent-default"); err != nil {
		return Charter{}, nil, err
	}
	if c.Policy.EmergencyAccess, err = r.field("emergency-access"); err != nil {
		return Charter{}, nil, err
	}
	d, err := r.field("token-max-lifetime")
	if err != nil {
		return Charter{}, nil, err
	}
	if c.Policy.TokenMaxLifetime, err = time.ParseDuration(d); err != nil {
		return Charter{}, nil, fmt.Errorf("line %d: token-max-lifetime: not a duration", r.n)
	}
	for _, o := range c.Policy.optional() {
		if r.n >= len(lines) || !strings.HasPrefix(lines[r.n], o.key+" ") {
			continue
		}
		s, err := r.field(o.key)
		if err != nil {
			return Charter{}, nil, err
		}
		// Another spelling of the same value fails sameText below.
		if *o.v, err = o.parse(s); err != nil || *o.v == o.def {
			return Charter{}, nil, fmt.Errorf("line %d: %s: a value other than the default %s (which is left out)", r.n, o.key, o.format(o.def))
		}
	}
	if r.n < len(lines) && strings.HasPrefix(lines[r.n], "council ") {
		v, _ := r.field("council")
		c.Council = strings.Split(v, " ")
		if len(c.Council) > MaxCouncil {
			return Charter{}, nil, fmt.Errorf("line %d: council: %d names, want 1 to %d", r.n, len(c.Council), MaxCouncil)
		}
	}
	if c.OPRF, err = parseOPRF(r); err != nil {
		return Charter{}, nil, err
	}
	return c, r, nil
}

// splitLines splits a text of newline-terminated lines.
func splitLines(text string) ([]string, error) {
	if !strings.HasSuffix(text, "\n") {
		return nil, errors.New("text does not end with a newline")
	}
	return strings.Split(text[:len(text)-1], "\n"), nil
}

// sameText compares a re-encoding with the text it was parsed from and
// names the first line that is not in canonical form.
func sameText(canonical, text string) error {
	if canonical == text {
		return nil
	}
	a, b := strings.SplitAfter(canonical, "\n"), strings.SplitAfter(text, "\n")
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Errorf("line %d: not in canonical form", i+1)
		}
	}
	return errors.New("not in canonical form")
}

type lineReader struct {
	lines []string
	n     int // lines read
}

// field reads the next line, which must be "<key> <value>", and returns the
// value.
func (r *lineReader) field(key string) (string, error) {
	if r.n == len(r.lines) {
		return "", fmt.Errorf("line %d: missing %s", r.n+1, key)
	}
	v, ok := strings.CutPrefix(r.lines[r.n], key+" ")
	r.n++
	if !ok {
		return "", fmt.Errorf("line %d: want %s", r.n, key)
	}
	return v, nil
}

// Validate checks every field and names the first bad one by its key in the
// charter text (version, admission-quorum, member ...).
func (c Charter) Validate() error {
	if err := c.check(); err != nil {
		return fmt.Errorf("validate charter: %w: malformed: %v", node.ErrInvalid, err)
	}
	return nil
}

func (c Charter) check() error {
	if !ValidName(c.Federation) {
		return errors.New("federation: want 1 to 63 of a-z, 0-9 and '-', not starting with '-'")
	}
	if c.Version == 0 {
		return errors.New("version: want 1 or more")
	}
	zero := c.Previous == [32]byte{}
	if c.Version == 1 && !zero {
		return errors.New("previous: version 1 has no previous version")
	}
	if c.Version > 1 && zero {
		return fmt.Errorf("previous: missing for version %d", c.Version)
	}
	if len(c.Members) == 0 || len(c.Members) > MaxMembers {
		return fmt.Errorf("member: %d members, want 1 to %d", len(c.Members), MaxMembers)
	}
	if c.delta != nil && c.Version == 1 {
		return errors.New("version: version 1 lists its members in full")
	}
	if err := c.checkMembers(); err != nil {
		return err
	}
	if c.Version == 1 && len(c.Members) > maxSigs {
		return fmt.Errorf("member: %d founders, want at most %d (every founder signs version 1; admit the others after)", len(c.Members), maxSigs)
	}
	if err := c.checkCouncil(); err != nil {
		return err
	}
	if err := c.Policy.check(len(c.Members), c.councilSize()); err != nil {
		return err
	}
	if err := c.OPRF.check(c); err != nil {
		return err
	}
	if n := len(c.Text()); n > MaxCharterText {
		return fmt.Errorf("member: text of %d bytes, more than %d", n, MaxCharterText)
	}
	return nil
}

// checkMembers checks the member list: in the full form every member, in
// name order, names and peer IDs unique; in delta form the members it
// adds, whose names and peer IDs no other member has (the others were
// checked when they were added, and apply keeps the order), so that a
// version's check costs its changes.
func (c Charter) checkMembers() error {
	if c.delta != nil {
		for i, a := range c.delta.added {
			if err := a.check(); err != nil {
				return fmt.Errorf("add %d: %v", i+1, err)
			}
		}
		for i, m := range c.Members {
			if i > 0 && c.Members[i-1].Name >= m.Name {
				return fmt.Errorf("member %d: %s after %s: members must be sorted by name, once each", i+1, m.Name, c.Members[i-1].Name)
			}
			for _, a := range c.delta.added {
				if m.ID == a.ID && m.Name != a.Name {
					return fmt.Errorf("add %s: it has the peer ID of %s", a.Name, m.Name)
				}
			}
		}
		return nil
	}
	ids := make(map[peer.ID]string, len(c.Members))
	for i, m := range c.Members {
		if err := m.check(); err != nil {
			return fmt.Errorf("member %d: %v", i+1, err)
		}
		if i > 0 {
			switch prev := c.Members[i-1].Name; {
			case prev == m.Name:
				return fmt.Errorf("member %d: %s: name listed twice", i+1, m.Name)
			case prev > m.Name:
				return fmt.Errorf("member %d: %s after %s: members must be sorted by name", i+1, m.Name, prev)
			}
		}
		if other, dup := ids[m.ID]; dup {
			return fmt.Errorf("member %d: %s has the peer ID of %s", i+1, m.Name, other)
		}
		ids[m.ID] = m.Name
	}
	return nil
}

// Member returns the member with peer ID id.
func (c Charter) Member(id peer.ID) (Member, bool) {
	if m := memoOf(c.Members); m != nil {
		i, ok := m.byID[id]
		if !ok {
			return Member{}, false
		}
		return c.Members[i], true
	}
	for _, m := range c.Members {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// MembersOnly admits the members of the charter current when asked, and
// refuses anyone else with ErrNotMember (a protocol server's Admit).
func MembersOnly(charter func() Charter, protocol string) func(peer.ID) error {
	return func(id peer.ID) error {
		if _, ok := charter().Member(id); !ok {
			return fmt.Errorf("%s: %w", protocol, ErrNotMember)
		}
		return nil
	}
}

// MemberByName returns the member called name.
func (c Charter) MemberByName(name string) (Member, bool) {
	i, ok := c.index(name)
	if !ok {
		return Member{}, false
	}
	return c.Members[i], true
}

// index finds name in the sorted member list, or where it would go.
func (c Charter) index(name string) (int, bool) {
	return slices.BinarySearchFunc(c.Members, name, func(m Member, name string) int {
		return strings.Compare(m.Name, name)
	})
}

// next drafts the version after c with a copy of its members. The draft
// depends on c alone, so members who make the same change to the same
// version produce the same text.
func (c Charter) next() Charter {
	n := c
	n.Version++
	n.Previous = c.Hash()
	n.Members = slices.Clone(c.Members)
	n.OPRF.Shares = slices.Clone(c.OPRF.Shares)
	n.delta = &delta{}
	return n
}

// draft returns the next version after c, changed by change; both c and
// the result must be valid charters. op names the change in errors.
func (c Charter) draft(op string, change func(n *Charter) error) (Charter, error) {
	if err := c.check(); err != nil {
		return Charter{}, fmt.Errorf("%s: %w: malformed: version %d: %v", op, node.ErrInvalid, c.Version, err)
	}
	n := c.next()
	if err := change(&n); err != nil {
		return Charter{}, fmt.Errorf("%s: %w: malformed: %v", op, node.ErrInvalid, err)
	}
	if err := n.check(); err != nil {
		return Charter{}, fmt.Errorf("%s: %w: malformed: version %d: %v", op, node.ErrInvalid, n.Version, err)
	}
	return n, nil
}

// WithMember drafts the next version with m added in name order. The policy
// is unchanged: quorums do not grow by themselves.
func (c Charter) WithMember(m Member) (Charter, error) {
	return c.draft("add member", func(n *Charter) error {
		if err := m.check(); err != nil {
			return fmt.Errorf("member: %v", err)
		}
		i, found := c.index(m.Name)
		if found {
			return fmt.Errorf("member: %s is already in version %d", m.Name, c.Version)
		}
		if other, ok := c.Member(m.ID); ok {
			return fmt.Errorf("member: the peer ID of %s is already %s's in version %d", m.Name, other.Name, c.Version)
		}
		m.Addrs = slices.Clone(m.Addrs)
		n.Members = slices.Insert(n.Members, i, m)
		n.delta.added = []Member{m}
		return nil
	})
}

// WithMembers drafts the next version with every member of ms added, in
// name order, as one change (a region's centres admitted together, at most
// maxDeltaLines); each is checked as WithMember checks one, against the
// members and against each other.
func (c Charter) WithMembers(ms []Member) (Charter, error) {
	return c.draft("add members", func(n *Charter) error {
		if len(ms) == 0 || len(ms) > maxDeltaLines {
			return fmt.Errorf("members: %d to add, want 1 to %d", len(ms), maxDeltaLines)
		}
		added := make([]Member, len(ms))
		for i, m := range ms {
			if err := m.check(); err != nil {
				return fmt.Errorf("member %s: %v", m.Name, err)
			}
			if _, found := c.index(m.Name); found {
				return fmt.Errorf("member: %s is already in version %d", m.Name, c.Version)
			}
			if other, ok := c.Member(m.ID); ok {
				return fmt.Errorf("member: the peer ID of %s is already %s's in version %d", m.Name, other.Name, c.Version)
			}
			m.Addrs = slices.Clone(m.Addrs)
			added[i] = m
		}
		slices.SortFunc(added, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
		n.Members = slices.Concat(n.Members, added)
		slices.SortFunc(n.Members, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
		n.delta.added = added
		return nil // n.check refuses a name or peer ID listed twice
	})
}

// WithoutMember drafts the next version without the member called name. It
// refuses to leave fewer members than a quorum or the OPRF threshold needs,
// rather than lower the policy silently: lower it first with WithPolicy,
// which the members then approve as a version of its own.
func (c Charter) WithoutMember(name string) (Charter, error) {
	return c.draft("remove member", func(n *Charter) error {
		i, ok := c.index(name)
		if !ok {
			return fmt.Errorf("member: no member %q in version %d", name, c.Version)
		}
		if _, on := slices.BinarySearch(c.Council, name); on {
			return fmt.Errorf("council: %s is on the council; change the council first", name)
		}
		left := len(c.Members) - 1
		for _, q := range c.Policy.quorums() {
			if q.n > left {
				return fmt.Errorf("%s %d: removing %s would leave %d members; lower %s first", q.key, q.n, name, left, q.key)
			}
		}
		n.Members = slices.Delete(n.Members, i, i+1)
		n.delta.removed = []string{name}
		if c.OPRF.Dealt() {
			if held := c.OPRF.heldByMembers(n.Members); held < c.Policy.OPRFThreshold {
				return fmt.Errorf("oprf-threshold %d: removing %s would leave %d members holding shares of the pseudonym key, and no pseudonym could be computed", c.Policy.OPRFThreshold, name, held)
			}
		}
		return nil
	})
}

// WithOPRF drafts the next version with the pseudonym key k, shared
// threshold-of-len(k.Shares) among its holders: a key generated by the
// holders (pseudonym.NewDKG) where the charter had none, or the same key
// reshared to a new committee (pseudonym.NewReshare). Every holder must be
// a member.
func (c Charter) WithOPRF(k OPRFKey, threshold int) (Charter, error) {
	return c.draft("change pseudonym key", func(n *Charter) error {
		n.OPRF = OPRFKey{Key: k.Key, Shares: slices.Clone(k.Shares)}
		n.Policy.OPRFThreshold = threshold
		for _, s := range k.Shares {
			if _, ok := c.Member(s.Holder); !ok {
				return fmt.Errorf("oprf-share %d: holder %s is not a member", s.Index, s.Holder)
			}
		}
		return checkOPRFChange(c, *n)
	})
}

// checkOPRFChange checks what a version does to the pseudonym key: it
// keeps it; or generates one where there was none; or reshares it, the
// same key among holders that are all members, with a threshold that may
// change with the holders. A key once listed is never replaced by
// another: every pseudonym would change.
func checkOPRFChange(prev, c Charter) error {
	switch {
	case c.OPRF.equal(prev.OPRF):
		if c.OPRF.Dealt() && c.Policy.OPRFThreshold != prev.Policy.OPRFThreshold {
			return errors.New("oprf-threshold changes without a resharing of the key")
		}
		return nil
	case !c.OPRF.Dealt():
		return errors.New("the pseudonym key is dropped")
	case prev.OPRF.Dealt() && c.OPRF.Key != prev.OPRF.Key:
		return errors.New("the pseudonym key is replaced by another: every pseudonym would change; reshare it instead")
	}
	for _, s := range c.OPRF.Shares {
		if _, ok := c.Member(s.Holder); !ok {
			return fmt.Errorf("oprf-share %d: holder %s is not a member", s.Index, s.Holder)
		}
	}
	return nil
}

// WithPolicy drafts the next version with policy p and the same members.
func (c Charter) WithPolicy(p Policy) (Charter, error) {
	return c.draft("change policy", func(n *Charter) error {
		if c.OPRF.Dealt() && p.OPRFThreshold != c.Policy.OPRFThreshold {
			return fmt.Errorf("oprf-threshold: the pseudonym key is shared %d-of-%d; a new threshold needs a resharing (WithOPRF)", c.Policy.OPRFThreshold, len(c.OPRF.Shares))
		}
		n.Policy = p
		return nil
	})
}

// Signed is a charter with its signed note.
type Signed struct {
	Charter
	Note    []byte    // the note, with every signature
	Signers []peer.ID // members whose signature verified, sorted
}

// Sign adds key's signature to note, a signed note of c, or signs c's text
// afresh when note is empty. Signatures already on the note are checked and
// kept. The result lists one signature per key, sorted by key name, so a
// set of signatures has one encoding and signing twice changes nothing.
func Sign(c Charter, note []byte, key ed25519.PrivateKey) ([]byte, error) {
	const op = "sign charter"
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%s: %w: malformed: version %d: %v", op, node.ErrInvalid, c.Version, err)
	}
	text := c.Text()
	var sigs []sigLine
	if len(note) > 0 {
		t, ss, err := splitNote(note, MaxCharterNote)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: malformed: note: %v", op, node.ErrInvalid, err)
		}
		if t != text {
			return nil, fmt.Errorf("%s: %w: the note is not of version %d as drafted", op, ErrChain, c.Version)
		}
		if _, err := verifySigs(t, ss, anyone); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		sigs = ss
	}
	mine, err := signText(text, key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	out, err := encodeNote(text, append(sigs, mine), MaxCharterNote)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}

// Merge returns a note of the same charter text with the signatures of both
// a and b, each once. Both notes' signatures must verify.
func Merge(a, b []byte) ([]byte, error) {
	const op = "merge charter notes"
	ta, sa, err := splitNote(a, MaxCharterNote)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: malformed: first note: %v", op, node.ErrInvalid, err)
	}
	tb, sb, err := splitNote(b, MaxCharterNote)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: malformed: second note: %v", op, node.ErrInvalid, err)
	}
	if ta != tb {
		return nil, fmt.Errorf("%s: %w: the notes are of different texts", op, ErrChain)
	}
	if _, _, err := parseHead(ta, headerOf(ta)); err != nil {
		return nil, fmt.Errorf("%s: %w: malformed: %v", op, node.ErrInvalid, err)
	}
	for _, ss := range [][]sigLine{sa, sb} {
		if _, err := verifySigs(ta, ss, anyone); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	out, err := encodeNote(ta, append(sa, sb...), MaxCharterNote)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}

// VerifyFounding checks the signed note of a federation's version 1: a
// valid charter of version 1, signed by every member it lists and by no one
// else.
func VerifyFounding(note []byte) (Signed, error) {
	s, err := verifyFounding(note)
	if err != nil {
		return Signed{}, fmt.Errorf("verify charter version 1: %w", err)
	}
	return s, nil
}

// openCharterNote splits a charter note and parses its charter, checking
// no signature yet.
// A note of a version in delta form is read against prev, the version
// before it; nil reads only the full form.
func openCharterNote(msg []byte, prev *Charter) (Charter, string, []sigLine, error) {
	text, sigs, err := splitNote(msg, MaxCharterNote)
	if err != nil {
		return Charter{}, "", nil, fmt.Errorf("%w: malformed: note: %v", node.ErrInvalid, err)
	}
	var c Charter
	if prev != nil && IsDelta(text) {
		c, err = parseDelta(*prev, text)
	} else {
		c, err = parseCharter(text)
	}
	if err != nil {
		return Charter{}, "", nil, fmt.Errorf("%w: malformed: %v", node.ErrInvalid, err)
	}
	return c, text, sigs, nil
}

func verifyFounding(msg []byte) (Signed, error) {
	if text, _, err := splitNote(msg, MaxCharterNote); err == nil && IsDelta(text) {
		return Signed{}, fmt.Errorf("%w: a later version (in delta form), not a founding", ErrChain)
	}
	c, text, sigs, err := openCharterNote(msg, nil)
	if err != nil {
		return Signed{}, err
	}
	if c.Version != 1 {
		return Signed{}, fmt.Errorf("%w: version %d, want 1", ErrChain, c.Version)
	}
	signers, err := verifySigs(text, sigs, func(id peer.ID) error {
		if _, ok := c.Member(id); !ok {
			return errors.New("not a founder")
		}
		return nil
	})
	if err != nil {
		return Signed{}, err
	}
	if len(signers) != len(c.Members) {
		var missing []string
		for _, m := range c.Members {
			if _, ok := slices.BinarySearch(signers, m.ID); !ok {
				missing = append(missing, m.Name)
			}
		}
		return Signed{}, fmt.Errorf("%w: founders that did not sign: %s", ErrSignatures, strings.Join(missing, ", "))
	}
	return Signed{Charter: c, Note: bytes.Clone(msg), Signers: signers}, nil
}

// VerifyNext checks that note is the signed successor of prev: same
// federation, the next version, prev's hash as Previous, a valid charter,
// signed by at least prev.Policy.AdmissionQuorum of prev's council and by
// no one else. A signature by anyone else is an error, not ignored: it
// means the note was put together wrongly or by someone who should not have
// it, and a centre should not store and pass on such a note.
func VerifyNext(prev Charter, note []byte) (Signed, error) {
	s, err := successor(prev, note)
	if err == nil && len(s.Signers) < prev.Policy.AdmissionQuorum {
		err = fmt.Errorf("%w: %d of version %d's council signed; admission-quorum is %d",
			ErrSignatures, len(s.Signers), prev.Version, prev.Policy.AdmissionQuorum)
	}
	if err != nil {
		return Signed{}, fmt.Errorf("verify charter version %d: %w", prev.Version+1, err)
	}
	return s, nil
}

// Approvals returns which of prev's council have validly signed note, a
// draft of the version after prev, whether or not they are a quorum yet. It
// makes every other check VerifyNext makes.
func Approvals(prev Charter, note []byte) (Signed, error) {
	s, err := successor(prev, note)
	if err != nil {
		return Signed{}, fmt.Errorf("approvals of charter version %d: %w", prev.Version+1, err)
	}
	return s, nil
}

// follows checks that c's head names prev as the version before it.
func follows(prev, c Charter) error {
	switch {
	case c.Federation != prev.Federation:
		return fmt.Errorf("%w: federation %s, want %s", ErrChain, c.Federation, prev.Federation)
	case c.Version != prev.Version+1:
		return fmt.Errorf("%w: version %d does not follow version %d", ErrChain, c.Version, prev.Version)
	case c.Previous != prev.Hash():
		return fmt.Errorf("%w: previous: not the hash of version %d", ErrChain, prev.Version)
	}
	return nil
}

func successor(prev Charter, msg []byte) (Signed, error) {
	if err := prev.check(); err != nil {
		return Signed{}, fmt.Errorf("%w: malformed: version %d: %v", node.ErrInvalid, prev.Version, err)
	}
	// The chain first: a version that does not follow prev is refused as
	// such before its members are read against prev's.
	if text, _, err := splitNote(msg, MaxCharterNote); err == nil {
		if head, _, err := parseHead(text, headerOf(text)); err == nil {
			if err := follows(prev, head); err != nil {
				return Signed{}, err
			}
		}
	}
	c, text, sigs, err := openCharterNote(msg, &prev)
	if err != nil {
		return Signed{}, err
	}
	if err := follows(prev, c); err != nil {
		return Signed{}, err
	}
	if err := checkOPRFChange(prev, c); err != nil {
		return Signed{}, fmt.Errorf("%w: version %d: %v", ErrChain, c.Version, err)
	}
	signers, err := verifySigs(text, sigs, func(id peer.ID) error {
		if !prev.OnCouncil(id) {
			return fmt.Errorf("not on the council of version %d", prev.Version)
		}
		return nil
	})
	if err != nil {
		return Signed{}, err
	}
	return Signed{Charter: c, Note: bytes.Clone(msg), Signers: signers}, nil
}

// VerifyChain checks a federation's charter notes from version 1 on and
// returns the last version. An error names the first version that fails.
func VerifyChain(notes [][]byte) (Signed, error) {
	all, err := VerifyVersions(notes)
	if err != nil {
		return Signed{}, err
	}
	return all[len(all)-1], nil
}

// VerifyVersions is VerifyChain returning every version, oldest first.
func VerifyVersions(notes [][]byte) ([]Signed, error) {
	if len(notes) == 0 {
		return nil, fmt.Errorf("verify charter chain: version 1: %w: no notes", ErrChain)
	}
	s, err := VerifyFounding(notes[0])
	if err != nil {
		return nil, fmt.Errorf("verify charter chain: %w", err)
	}
	all := []Signed{s}
	for _, n := range notes[1:] {
		if s, err = VerifyNext(s.Charter, n); err != nil {
			return nil, fmt.Errorf("verify charter chain: %w", err)
		}
		all = append(all, s)
	}
	return all, nil
}

// EncodeChain writes a charter chain as one text: the notes, version 1
// first, one after the other (each begins with the charter's header).
func EncodeChain(notes [][]byte) []byte { return bytes.Join(notes, nil) }

// ParseChain splits EncodeChain's text into its notes; VerifyChain checks
// them. One note alone (a charter file of version 1) is a chain too.
func ParseChain(b []byte) ([][]byte, error) {
	if len(b) > maxChainFile {
		return nil, fmt.Errorf("parse charter chain: %w: malformed: %d bytes", node.ErrInvalid, len(b))
	}
	head := []byte(charterHeader + "\n")
	if !bytes.HasPrefix(b, head) {
		return nil, fmt.Errorf("parse charter chain: %w: malformed: it does not begin with %q", node.ErrInvalid, charterHeader)
	}
	// A note ends with its signature lines; the next begins with a header
	// of either form.
	heads := [][]byte{[]byte("\n" + charterHeader + "\n"), []byte("\n" + deltaHeader + "\n")}
	var notes [][]byte
	for len(b) > 0 {
		next := -1
		for _, h := range heads {
			if i := bytes.Index(b[len(head):], h); i >= 0 && (next < 0 || i < next) {
				next = i
			}
		}
		if next < 0 {
			notes = append(notes, b)
			break
		}
		cut := len(head) + next + 1
		notes = append(notes, b[:cut])
		b = b[cut:]
	}
	return notes, nil
}

// PeerIDFromKey returns the peer ID of an Ed25519 key: the name under which
// the key signs charters and join requests.
func PeerIDFromKey(key ed25519.PrivateKey) (peer.ID, error) {
	if len(key) != ed25519.PrivateKeySize || !bytes.Equal(ed25519.NewKeyFromSeed(key.Seed()), key) {
		return "", fmt.Errorf("peer ID from key: %w: malformed: not an Ed25519 private key", node.ErrInvalid)
	}
	sk, err := crypto.UnmarshalEd25519PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("peer ID from key: %w: malformed: %v", node.ErrInvalid, err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return "", fmt.Errorf("peer ID from key: %w: malformed: %v", node.ErrInvalid, err)
	}
	return id, nil
}

// VerifyPeer checks sig, an Ed25519 signature over msg, against the key
// embedded in peer ID id (which must be its key's canonical ID).
func VerifyPeer(id peer.ID, msg, sig []byte) error {
	pub, err := publicKey(id)
	if err != nil {
		return fmt.Errorf("signer %q: %v", id, err)
	}
	if !ed25519.Verify(pub, msg, sig) {
		return errors.New("the signature does not verify")
	}
	return nil
}

// publicKey returns the Ed25519 key embedded in id. It accepts only the ID
// that libp2p derives from that key, so that one key has one ID and one
// note key name, and cannot sign twice under two spellings.
func publicKey(id peer.ID) (ed25519.PublicKey, error) {
	if id == "" {
		return nil, errors.New("empty")
	}
	pk, err := id.ExtractPublicKey()
	if errors.Is(err, peer.ErrNoPublicKey) {
		return nil, errors.New("hashed peer ID: want an Ed25519 ID, which embeds its key")
	}
	if err != nil {
		return nil, errors.New("not a peer ID")
	}
	if pk.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%v key: want Ed25519", pk.Type())
	}
	raw, err := pk.Raw()
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, errors.New("bad Ed25519 key")
	}
	if canon, err := peer.IDFromPublicKey(pk); err != nil || canon != id {
		return nil, errors.New("not the canonical ID of its key")
	}
	return ed25519.PublicKey(raw), nil
}

// decodePeerID parses a peer ID in the one spelling peer.ID.String gives.
func decodePeerID(s string) (peer.ID, error) {
	if len(s) > maxTokenText {
		return "", errors.New("too long")
	}
	id, err := peer.Decode(s)
	if err != nil || id.String() != s {
		return "", errors.New("not a base58 peer ID")
	}
	return id, nil
}

// ValidName reports whether s is a federation or centre name as a charter
// writes it: 1 to 63 lowercase letters, digits and hyphens, not starting
// with a hyphen.
func ValidName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case 'a' <= b && b <= 'z', '0' <= b && b <= '9':
		case b == '-' && i > 0:
		default:
			return false
		}
	}
	return true
}

// sigLine is one signature line of a note.
type sigLine struct {
	note.Signature
	sig []byte // the Ed25519 signature, without the key hash
}

// splitNote splits a signed note into its text and signature lines, by the
// rules of note.Open: UTF-8 without control characters but newline, the
// text, a blank line, then lines "— <key name> <base64 of key hash and
// signature>". It does not use note.Open because that stops at 100
// signatures and a founding charter carries one per founder, up to maxSigs.
// Identical lines count once, as in note.Open.
func splitNote(msg []byte, maxLen int) (string, []sigLine, error) {
	if len(msg) > maxLen {
		return "", nil, fmt.Errorf("%d bytes, more than %d", len(msg), maxLen)
	}
	for i := 0; i < len(msg); {
		r, size := utf8.DecodeRune(msg[i:])
		if r < 0x20 && r != '\n' || r == utf8.RuneError && size == 1 {
			return "", nil, errors.New("control character or invalid UTF-8")
		}
		i += size
	}
	split := bytes.LastIndex(msg, []byte("\n\n"))
	if split < 0 {
		return "", nil, errors.New("no signatures")
	}
	text, block := msg[:split+1], msg[split+2:]
	if len(block) == 0 || block[len(block)-1] != '\n' {
		return "", nil, errors.New("signature block does not end with a newline")
	}
	var sigs []sigLine
	seen := make(map[string]bool)
	for len(block) > 0 {
		i := bytes.IndexByte(block, '\n')
		line := block[:i]
		block = block[i+1:]
		rest, ok := bytes.CutPrefix(line, []byte("— "))
		if !ok {
			return "", nil, errors.New("signature line does not start with an em dash")
		}
		name, b64, _ := strings.Cut(string(rest), " ")
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || !validKeyName(name) || len(raw) < 5 {
			return "", nil, errors.New("malformed signature line")
		}
		if seen[string(line)] {
			continue
		}
		seen[string(line)] = true
		if len(sigs) == maxSigs {
			return "", nil, fmt.Errorf("more than %d signatures", maxSigs)
		}
		sigs = append(sigs, sigLine{
			Signature: note.Signature{Name: name, Hash: binary.BigEndian.Uint32(raw), Base64: b64},
			sig:       raw[4:],
		})
	}
	return string(text), sigs, nil
}

// validKeyName is note's rule for key names.
func validKeyName(name string) bool {
	return name != "" && utf8.ValidString(name) && strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}

// anyone lets every Ed25519 peer ID sign.
func anyone(peer.ID) error { return nil }

// verifySigs checks every signature of text: its key name must be an
// Ed25519 peer ID that may sign, its key hash that of the key in the ID,
// and the signature must verify. It returns the signers, sorted, once each.
// Unlike note.Open it fails on any signature it cannot verify, rather than
// set it aside.
func verifySigs(text string, sigs []sigLine, may func(peer.ID) error) ([]peer.ID, error) {
	var signers []peer.ID
	for _, s := range sigs {
		id, err := decodePeerID(s.Name)
		if err != nil {
			return nil, fmt.Errorf("%w: signature by %q: key name is not a peer ID", ErrSignatures, short(s.Name))
		}
		pub, err := publicKey(id)
		if err != nil {
			return nil, fmt.Errorf("%w: signature by %s: %v", ErrSignatures, id, err)
		}
		if err := may(id); err != nil {
			return nil, fmt.Errorf("%w: signature by %s: %v", ErrSignatures, id, err)
		}
		v, err := newVerifier(id, pub)
		if err != nil {
			return nil, fmt.Errorf("%w: signature by %s: %v", ErrSignatures, id, err)
		}
		if v.KeyHash() != s.Hash {
			return nil, fmt.Errorf("%w: signature by %s: made with another key", ErrSignatures, id)
		}
		if !v.Verify([]byte(text), s.sig) {
			return nil, fmt.Errorf("%w: signature by %s does not verify", ErrSignatures, id)
		}
		signers = append(signers, id)
	}
	slices.Sort(signers)
	return slices.Compact(signers), nil
}

func short(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "..."
}

// newVerifier returns the note verifier for the key of id, named by id.
func newVerifier(id peer.ID, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := note.NewEd25519VerifierKey(id.String(), pub)
	if err != nil {
		return nil, err
	}
	return note.NewVerifier(vkey)
}

// signText signs text with key under the key's peer ID.
func signText(text string, key ed25519.PrivateKey) (sigLine, error) {
	s, err := newSigner(key)
	if err != nil {
		return sigLine{}, err
	}
	msg, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		return sigLine{}, fmt.Errorf("%w: malformed: %v", node.ErrInvalid, err)
	}
	_, sigs, err := splitNote(msg, len(msg))
	if err != nil || len(sigs) != 1 {
		return sigLine{}, fmt.Errorf("%w: malformed: cannot read back the signature: %v", node.ErrInvalid, err)
	}
	return sigs[0], nil
}

// encodeNote encodes text with sigs, one per key, sorted by key name and
// hash.
func encodeNote(text string, sigs []sigLine, maxLen int) ([]byte, error) {
	list := make([]note.Signature, 0, len(sigs))
	for _, s := range sigs {
		list = append(list, s.Signature)
	}
	slices.SortFunc(list, func(a, b note.Signature) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), cmp.Compare(a.Hash, b.Hash))
	})
	list = slices.CompactFunc(list, func(a, b note.Signature) bool {
		return a.Name == b.Name && a.Hash == b.Hash
	})
	if len(list) > maxSigs {
		return nil, fmt.Errorf("%w: more than %d signatures", ErrSignatures, maxSigs)
	}
	out, err := note.Sign(&note.Note{Text: text, Sigs: list})
	if err != nil {
		return nil, fmt.Errorf("%w: malformed: %v", node.ErrInvalid, err)
	}
	if len(out) > maxLen {
		return nil, fmt.Errorf("%w: malformed: note of %d bytes, more than %d", node.ErrInvalid, len(out), maxLen)
	}
	return out, nil
}

// signer signs notes with an Ed25519 key under the key's peer ID.
type signer struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func newSigner(key ed25519.PrivateKey) (*signer, error) {
	id, err := PeerIDFromKey(key)
	if err != nil {
		return nil, err
	}
	v, err := newVerifier(id, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("%w: malformed: %v", node.ErrInvalid, err)
	}
	return &signer{name: id.String(), hash: v.KeyHash(), key: key}, nil
}

func (s *signer) Name() string    { return s.name }
func (s *signer) KeyHash() uint32 { return s.hash }
func (s *signer) Sign(msg []byte) ([]byte, error) {
	return ed25519.Sign(s.key, msg), nil
}

// LogValue keeps the key out of logs.
func (s *signer) LogValue() slog.Value { return slog.StringValue(s.name) }

var (
	_ note.Signer    = (*signer)(nil)
	_ slog.LogValuer = (*signer)(nil)
)
