package smart

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	_ "github.com/mattn/go-sqlite3" // the SQLite driver

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/schema"
	"github.com/medfed/medfed/node/sealed"
)

// ClientsFile is the file in a centre's data directory that holds its
// SMART clients' registrations and the assertion IDs (jti) already used.
const ClientsFile = "clients.db"

// Lifetimes and limits.
const (
	// DefaultTokenLifetime is an access token's lifetime unless
	// Options.TokenLifetime says otherwise; MaxTokenLifetime bounds it.
	DefaultTokenLifetime = 5 * time.Minute
	MaxTokenLifetime     = time.Hour
	// MaxAssertionLifetime is how far ahead of the centre's clock an
	// assertion's exp may be (plus Leeway).
	MaxAssertionLifetime = 5 * time.Minute
	// Leeway is the clock skew allowed between a client and the centre.
	Leeway = 30 * time.Second
	// MaxLiveTokens is how many unexpired access tokens one client may
	// hold at once: a client asks for a token when its last one expires,
	// not for every request.
	MaxLiveTokens = 1000
)

// Options configure a Server.
type Options struct {
	Dir string // the centre's data directory; the store is Dir/ClientsFile
	Key []byte // the row MAC key: centre.RowKey(Dir, ClientsFile), 32 bytes
	// Now is the centre's clock (node/clock.Now in production); time.Now
	// when nil.
	Now func() time.Time
	// Staff says the role of a live staff member of this centre, by staff
	// ID (32 hex); an error when unknown or revoked. An error of
	// kind node.Internal (a failing disk, a tampered store) fails the
	// request as the centre's; any other refuses the staff member. Nil: no
	// assertion may name a staff member.
	Staff func(ctx context.Context, id string) (role string, err error)
	// TokenLifetime is the access tokens' lifetime, at most
	// MaxTokenLifetime; DefaultTokenLifetime when zero.
	TokenLifetime time.Duration
	// Logger is where a registration that fails its MAC is reported
	// (never with a token or an assertion); discarded when nil.
	Logger *slog.Logger
}

// Compile-time checks: the types that hold secrets keep them out of logs.
var (
	_ slog.LogValuer = Options{}
	_ slog.LogValuer = TokenResponse{}
)

// LogValue keeps the row key out of logs.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(slog.String("dir", o.Dir), slog.Duration("token_lifetime", o.TokenLifetime), slog.Bool("staff", o.Staff != nil))
}

// validate names the first bad field.
func (o Options) validate() error {
	switch {
	case o.Dir == "":
		return errors.New("smart: Options.Dir is empty")
	case len(o.Key) != 32:
		return fmt.Errorf("smart: Options.Key is %d bytes, not 32", len(o.Key))
	case o.TokenLifetime < 0 || o.TokenLifetime > MaxTokenLifetime:
		return fmt.Errorf("smart: Options.TokenLifetime is %v: it is between 0 (the default, %v) and %v", o.TokenLifetime, DefaultTokenLifetime, MaxTokenLifetime)
	}
	return nil
}

// Roles are a centre's staff roles: those the API serves (node/api takes
// them from here) and a client may be registered to act for.
var Roles = []string{"admin", "registrar", "clinician", "researcher", "privacy-officer"}

// ErrUnknownClient is returned for a client ID that is not registered, or
// was revoked.
var ErrUnknownClient = node.E(node.NotFound, "unknown or revoked client")

// ErrTampered is what a registration that fails its MAC, a store whose
// seal does not match its rows, or a jti floor that fails its MAC, reads as: the file was changed by
// something other than medfed. It is the centre's fault, not the caller's.
var ErrTampered = errors.New("client store: a registration was changed outside medfed (run medfed check)")

// Client is a registered SMART Backend Services client.
type Client struct {
	ID      string   // 32 hex digits: the assertion's iss and sub
	Label   string   // for the centre's own administrators
	Scopes  []string // the system scopes it may be granted
	Roles   []string // the staff roles it may act for
	JWKS    []byte   // its public keys, a JWK Set as registered (members medfed does not use dropped)
	Created time.Time
	Revoked time.Time // zero while registered

	Tampered bool // the row fails its MAC (List): it authenticates no one
}

// clientTable is the clients table and its seal.
var clientTable = sealed.Table{Name: "clients", Domain: "medfed client seal v1"}

// Server is a centre's SMART Backend Services authorization server: its
// client registrations, the token endpoint and the access tokens it
// issued. It is safe for concurrent use.
type Server struct {
	store    *sealed.Store // clients.db: the jti check and its record are one immediate transaction
	key      []byte
	now      func() time.Time
	staff    func(ctx context.Context, id string) (string, error)
	lifetime time.Duration
	log      *slog.Logger

	mu     sync.Mutex
	tokens map[[sha256.Size]byte]*Grant // by the SHA-256 of the access token
	live   map[string]int               // by client: its tokens, and those being issued
	pruned time.Time

	keysMu sync.Mutex
	keys   map[string]clientKeys // by client ID
}

// clientKeys is a client's JWKS as last parsed, and the MAC of the row it
// was parsed from: a changed row is parsed again.
type clientKeys struct {
	mac  []byte
	keys []verifyKey
}

// migrations are the schema's steps (node/schema); the first seals the
// empty table under key.
func migrations(key []byte) []schema.Step {
	return []schema.Step{func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE clients (
	id      TEXT PRIMARY KEY,  -- 32 hex digits
	label   TEXT NOT NULL,
	scopes  TEXT NOT NULL,     -- space-separated
	roles   TEXT NOT NULL,     -- comma-separated
	jwks    BLOB NOT NULL,     -- the client's public keys, a JWK Set
	created INTEGER NOT NULL,  -- Unix seconds
	revoked INTEGER,           -- Unix seconds; NULL while registered
	mac     BLOB NOT NULL      -- HMAC-SHA256 of the row (clientRow.mac)
) STRICT;
CREATE TABLE seal (
	id  INTEGER PRIMARY KEY CHECK (id = 0),
	mac BLOB NOT NULL          -- HMAC-SHA256 of every client's ID and MAC (seal)
) STRICT;
CREATE TABLE jtis (
	client  TEXT NOT NULL,
	jti     BLOB NOT NULL,     -- SHA-256 of the assertion's jti
	expires INTEGER NOT NULL,  -- Unix seconds: when the row may go
	mac     BLOB NOT NULL,     -- HMAC-SHA256 of the row (jtiMAC)
	PRIMARY KEY (client, jti)
) STRICT, WITHOUT ROWID;
CREATE INDEX jtis_by_expiry ON jtis (expires)`); err != nil {
			return err
		}
		return clientTable.Reseal(ctx, tx, key)
	}}
}

// The jti floor (consume) is a row of the jtis table of its own, with
// client floorClient, which no client's ID is, jti floorJTI, and the
// floor in expires; its MAC is a jti row's. With no such row, no jti has
// been pruned.
const floorClient = ""

var floorJTI = []byte("floor")

// A data directory's upgrade brings the client store up to date too.
func init() {
	centre.RegisterFileUpgrade(ClientsFile, func(_ context.Context, dir string, key []byte) error {
		s, err := Open(Options{Dir: dir, Key: key})
		if err != nil {
			return err
		}
		return s.Close()
	})
}

// Open opens (creating it if needed) the client store of the centre whose
// data directory is o.Dir. A running node and the medfed command may both
// have it open: SQLite serialises their writes.
func Open(o Options) (*Server, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	st, err := sealed.Open(context.Background(), filepath.Join(o.Dir, ClientsFile), clientTable, o.Key, func(ctx context.Context, db *sql.DB) error {
		return schema.Migrate(ctx, db, migrations(o.Key))
	})
	if err != nil {
		return nil, fmt.Errorf("client store: %w", err)
	}
	s := &Server{
		store: st, key: o.Key,
		now: o.Now, staff: o.Staff, lifetime: o.TokenLifetime, log: o.Logger,
		tokens: map[[sha256.Size]byte]*Grant{}, live: map[string]int{}, keys: map[string]clientKeys{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.lifetime == 0 {
		s.lifetime = DefaultTokenLifetime
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "smart")
	return s, nil
}

// Close closes the store. The access tokens issued are forgotten.
func (s *Server) Close() error {
	return s.store.Close()
}

// invalid is an error of kind node.Invalid.
func invalid(format string, args ...any) error {
	return node.E(node.Invalid, fmt.Sprintf(format, args...))
}

// Add registers a client: jwks is its JSON Web Key Set (public keys only),
// scopes the system scopes it may be granted, roles the staff roles it may
// act for (at least one). Its ID is 32 random hex digits.
func (s *Server) Add(ctx context.Context, label string, jwks []byte, scopes, roles []string) (Client, error) {
	if len(label) > 200 || strings.ContainsFunc(label, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return Client{}, fmt.Errorf("client add: %w", invalid("a label is at most 200 printable characters"))
	}
	norm, _, err := parseJWKS(jwks)
	if err != nil {
		return Client{}, fmt.Errorf("client add: %w", err)
	}
	scopes, _, err = parseScopes(scopes)
	if err != nil {
		return Client{}, fmt.Errorf("client add: %w", err)
	}
	if len(scopes) == 0 {
		return Client{}, fmt.Errorf("client add: %w", invalid("give at least one scope, such as system/Patient.rs"))
	}
	if roles, err = checkRoles(roles); err != nil {
		return Client{}, fmt.Errorf("client add: %w", err)
	}
	var id [16]byte
	rand.Read(id[:])
	r := newRow(Client{
		ID: hex.EncodeToString(id[:]), Label: label, Scopes: scopes, Roles: roles, JWKS: norm,
		Created: s.now().UTC().Truncate(time.Second),
	})
	err = s.write(ctx, func(tx *sql.Tx, intact bool) error {
		if !intact {
			return ErrTampered
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO clients (id, label, scopes, roles, jwks, created, mac) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.Label, r.scopes, r.roles, r.JWKS, r.Created.Unix(), r.mac(s.key))
		return err
	})
	if err != nil {
		return Client{}, fmt.Errorf("client add: %w", err)
	}
	return r.Client, nil
}

// checkRoles returns roles without repeats, refusing none or one that is
// not a staff role.
func checkRoles(roles []string) ([]string, error) {
	var out []string
	for _, r := range roles {
		if !slices.Contains(Roles, r) {
			return nil, invalid("role %q is not one of %s", r, strings.Join(Roles, ", "))
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, invalid("give at least one role the client acts for: %s", strings.Join(Roles, ", "))
	}
	return out, nil
}

// List returns every client, revoked ones included, oldest first; one
// whose row fails its MAC is marked Tampered.
func (s *Server) List(ctx context.Context) ([]Client, error) {
	rs, err := clientRows(ctx, s.store.DB, "ORDER BY created, id")
	if err != nil {
		return nil, fmt.Errorf("client list: %w", err)
	}
	out := make([]Client, len(rs))
	for i, r := range rs {
		out[i] = r.Client
		out[i].Tampered = !r.valid(s.key)
	}
	return out, nil
}

// validID reports whether id has the shape of a client (or staff) ID.
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

// Revoke ends a client's registration at once: its assertions are
// refused and the access tokens it holds stop working, here and in every
// process that has the store open. Revoking is always safe, so a row that
// fails its MAC is revoked too (keeping its MAC, as evidence for medfed
// check).
func (s *Server) Revoke(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("client revoke: %w", invalid("a client ID is 32 hex digits"))
	}
	err := s.write(ctx, func(tx *sql.Tx, intact bool) error {
		rs, err := clientRows(ctx, tx, "WHERE id = ?", id)
		switch {
		case err != nil:
			return err
		case len(rs) == 0 || !rs[0].Revoked.IsZero():
			return ErrUnknownClient
		}
		r := rs[0]
		valid := r.valid(s.key)
		r.Revoked = s.now().UTC().Truncate(time.Second)
		mac := r.stored
		if valid {
			mac = r.mac(s.key)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE clients SET revoked = ?, mac = ? WHERE id = ?`, r.Revoked.Unix(), mac, id); err != nil {
			return err
		}
		if !intact {
			return sealed.ErrKeep
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("client revoke: %w", err)
	}
	s.mu.Lock()
	for h, g := range s.tokens {
		if g.Client == id {
			delete(s.tokens, h)
		}
	}
	delete(s.live, id)
	s.mu.Unlock()
	return nil
}

// client returns the registration of a live client, checking its row's
// MAC and the table's seal: ErrUnknownClient or ErrTampered (reported to
// the log) when it authenticates no one.
func (s *Server) client(ctx context.Context, id string) (clientRow, error) {
	if !validID(id) {
		return clientRow{}, ErrUnknownClient
	}
	if err := s.checkSeal(ctx); err != nil {
		if errors.Is(err, ErrTampered) {
			s.log.Error("the client store's seal does not match its rows: no client is authenticated until medfed check passes")
		}
		return clientRow{}, err
	}
	rs, err := clientRows(ctx, s.store.Reader, "WHERE id = ?", id)
	switch {
	case err != nil:
		return clientRow{}, fmt.Errorf("client store: %w", err)
	case len(rs) == 0:
		return clientRow{}, ErrUnknownClient
	case !rs[0].valid(s.key):
		s.log.Error("a client registration fails its MAC: it authenticates no one; run medfed check", "client", id)
		return clientRow{}, ErrTampered
	case !rs[0].Revoked.IsZero():
		return clientRow{}, ErrUnknownClient
	}
	return rs[0], nil
}

// keysOf returns a client's public keys, parsed once per row version.
func (s *Server) keysOf(r clientRow) ([]verifyKey, error) {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	if k, ok := s.keys[r.ID]; ok && hmac.Equal(k.mac, r.stored) {
		return k.keys, nil
	}
	_, keys, err := parseJWKS(r.JWKS)
	if err != nil { // the row passed its MAC: medfed wrote it, so it parsed then
		return nil, fmt.Errorf("client store: a registered JWK Set does not parse: %w", err)
	}
	s.keys[r.ID] = clientKeys{mac: r.stored, keys: keys}
	return keys, nil
}

// checkSeal returns ErrTampered when the seal does not match the rows; it
// reads them only when the file changed since the last call.
func (s *Server) checkSeal(ctx context.Context) error {
	ok, err := s.store.Holds(ctx)
	if err != nil {
		return fmt.Errorf("client store: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w: the seal does not match the rows", ErrTampered)
	}
	return nil
}

// write runs change in a transaction and seals the clients table again
// (sealed.Table.Write): change returns sealed.ErrKeep to commit without.
func (s *Server) write(ctx context.Context, change func(tx *sql.Tx, intact bool) error) error {
	return s.store.Write(ctx, change)
}

// CheckClients checks the MAC of every row of the client store of the data
// directory dir, and its seal, under key, the store's row key: the full
// check of clients.db. It opens the file read-only and returns how many
// clients are registered (revoked ones included), or a *centre.DataError
// naming the table and row. A directory without clients.db has none.
func CheckClients(ctx context.Context, dir string, key []byte) (int, error) {
	path := filepath.Join(dir, ClientsFile)
	var n int
	_, err := sealed.Check(ctx, path, func(tx *sql.Tx) error {
		var v int
		if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
			return fmt.Errorf("client check: %w", err)
		}
		if want := len(migrations(key)); v != want {
			return fmt.Errorf("client check: %s has schema version %d, not %d: starting the node with this medfed brings it up to date", path, v, want)
		}
		rs, err := clientRows(ctx, tx, "ORDER BY id")
		if err != nil { // a row that does not read (a NULL where medfed writes none) was changed too
			return &centre.DataError{File: ClientsFile, Table: "clients", Row: "the rows", Reason: err.Error()}
		}
		for _, r := range rs {
			if !r.valid(key) {
				return &centre.DataError{File: ClientsFile, Table: "clients", Row: "client ID " + r.ID, Reason: "the row fails its MAC: changed or added without the centre's key"}
			}
		}
		if err := clientTable.Verify(ctx, tx, key); err != nil {
			return &centre.DataError{File: ClientsFile, Table: "seal", Row: "the seal", Reason: err.Error()}
		}
		if err := checkJTIs(ctx, tx, key); err != nil {
			return err
		}
		n = len(rs)
		return nil
	})
	return n, err
}

// jtiFloor returns the floor below which consume takes no assertion (0
// while no jti has been pruned), or ErrTampered when its row fails its
// MAC.
func jtiFloor(ctx context.Context, tx *sql.Tx, key []byte) (int64, error) {
	var (
		floor  int64
		stored []byte
	)
	err := tx.QueryRowContext(ctx, `SELECT expires, mac FROM jtis WHERE client = ? AND jti = ?`, floorClient, floorJTI).Scan(&floor, &stored)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, err
	case !hmac.Equal(stored, jtiMAC(key, floorClient, floorJTI, floor)):
		return 0, fmt.Errorf("%w: the jti floor fails its MAC", ErrTampered)
	}
	return floor, nil
}

// checkJTIs checks the MAC of every recorded jti, and of the floor.
func checkJTIs(ctx context.Context, tx *sql.Tx, key []byte) error {
	rows, err := tx.QueryContext(ctx, `SELECT client, jti, expires, mac FROM jtis`)
	if err != nil {
		return &centre.DataError{File: ClientsFile, Table: "jtis", Row: "the rows", Reason: err.Error()}
	}
	defer rows.Close()
	for rows.Next() {
		var (
			client      string
			jti, stored []byte
			expires     int64
		)
		if err := rows.Scan(&client, &jti, &expires, &stored); err != nil {
			return &centre.DataError{File: ClientsFile, Table: "jtis", Row: "the rows", Reason: err.Error()}
		}
		if !hmac.Equal(stored, jtiMAC(key, client, jti, expires)) {
			row := "an assertion ID of client " + client
			if client == floorClient {
				row = "the floor below which no assertion is taken"
			}
			return &centre.DataError{File: ClientsFile, Table: "jtis", Row: row, Reason: "the row fails its MAC: changed or added without the centre's key"}
		}
	}
	if err := rows.Err(); err != nil {
		return &centre.DataError{File: ClientsFile, Table: "jtis", Row: "the rows", Reason: err.Error()}
	}
	return nil
}

// clientRow is a client row as stored.
type clientRow struct {
	Client
	scopes, roles string // the columns as stored, which the MAC covers
	stored        []byte // the MAC in the row
}

// newRow is the row of a client about to be stored.
func newRow(c Client) clientRow {
	return clientRow{Client: c, scopes: strings.Join(c.Scopes, " "), roles: strings.Join(c.Roles, ",")}
}

// mac is the HMAC-SHA256, under key, of every column of the row but the
// MAC, each length-prefixed.
func (r clientRow) mac(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	revoked := int64(0)
	if !r.Revoked.IsZero() {
		revoked = r.Revoked.Unix()
	}
	sealed.Field(m, []byte("medfed client row v1"))
	sealed.Field(m, []byte(r.ID))
	sealed.Field(m, []byte(r.Label))
	sealed.Field(m, []byte(r.scopes))
	sealed.Field(m, []byte(r.roles))
	sealed.Field(m, r.JWKS)
	for _, t := range []int64{r.Created.Unix(), revoked} {
		sealed.Field(m, binary.BigEndian.AppendUint64(nil, uint64(t)))
	}
	return m.Sum(nil)
}

func (r clientRow) valid(key []byte) bool { return hmac.Equal(r.stored, r.mac(key)) }

// jtiMAC is the HMAC-SHA256, under key, of a jti row's columns.
func jtiMAC(key []byte, client string, jti []byte, expires int64) []byte {
	m := hmac.New(sha256.New, key)
	sealed.Field(m, []byte("medfed client jti v1"))
	sealed.Field(m, []byte(client))
	sealed.Field(m, jti)
	sealed.Field(m, binary.BigEndian.AppendUint64(nil, uint64(expires)))
	return m.Sum(nil)
}

// querier is a database or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// clientRows reads the rows that tail (a WHERE and ORDER clause) selects.
func clientRows(ctx context.Context, q querier, tail string, args ...any) ([]clientRow, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, label, scopes, roles, jwks, created, revoked, mac FROM clients `+tail, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []clientRow
	for rows.Next() {
		var (
			r       clientRow
			created int64
			revoked sql.NullInt64
		)
		if err := rows.Scan(&r.ID, &r.Label, &r.scopes, &r.roles, &r.JWKS, &created, &revoked, &r.stored); err != nil {
			return nil, err
		}
		r.Scopes = strings.Fields(r.scopes)
		r.Roles = strings.FieldsFunc(r.roles, func(c rune) bool { return c == ',' })
		r.Created = time.Unix(created, 0).UTC()
		if revoked.Valid {
			r.Revoked = time.Unix(revoked.Int64, 0).UTC()
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
