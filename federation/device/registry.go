package device

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/limit"
	"github.com/medfed/medfed/node/schema"
	"github.com/medfed/medfed/node/sealed"
	"github.com/medfed/medfed/node/wire"
)

// Ledger is what the registry needs of the centre's ledger.
type Ledger interface {
	Append(ctx context.Context, entries ...ledger.Entry) (int64, error)
	EntriesForKinds(ctx context.Context, p ledger.Pseudonym, kinds ...ledger.Kind) ([]ledger.Entry, error)
	Size() int64
}

// Authenticator says whether a statement is the patient's own: made with
// a key a member attested for them, neither superseded nor compromised
// (federation/consent's Service is one).
type Authenticator interface {
	Authenticate(ctx context.Context, p ledger.Pseudonym, key ed25519.PublicKey, signed wire.Opened, issued time.Time) error
}

// AddRecords stores a batch's readings as records of patient p: each
// payload off the ledger, then every record entry (records[i] commits to
// payloads[i]) in one atomic append. It returns the index of the first.
type AddRecords func(ctx context.Context, p ledger.Pseudonym, records []ledger.Record, payloads [][]byte) (int64, error)

// The default bound on what one device adds: readings an hour, and at
// once. A monitor that reads every minute and posts every few minutes
// stays far below; a device that floods is refused past it, and only it.
const (
	DefaultRate  = 600
	DefaultBurst = 600
)

// maxDevices bounds the devices whose rate the registry tracks at once.
const maxDevices = 1 << 16

// Options configure a Registry.
type Options struct {
	Federation string
	Centre     peer.ID // this centre: statements and batches name it
	Path       string  // the store's file (File, in the data directory)
	RowKey     []byte  // the store's row key, 32 bytes
	Ledger     Ledger
	Consent    Authenticator
	AddRecords AddRecords
	// Classes are the data classes this centre records (its
	// records.classes): a registration names some of them.
	Classes []string
	// Rate and Burst bound the readings one device adds: Rate an hour,
	// Burst at once; DefaultRate and DefaultBurst when zero.
	Rate  float64
	Burst int
	Now   func() time.Time // the centre's clock; time.Now when nil
	// Logger is where a row that fails its MAC is reported; discarded
	// when nil.
	Logger *slog.Logger
}

// LogValue keeps the row key out of logs.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(slog.String("path", o.Path), slog.Float64("rate", o.Rate), slog.Int("burst", o.Burst))
}

var _ slog.LogValuer = Options{}

func (o Options) validate() error {
	switch {
	case o.Federation == "" || o.Centre == "":
		return errors.New("device: Options.Federation and Centre name this centre")
	case o.Path == "":
		return errors.New("device: Options.Path is empty")
	case len(o.RowKey) != 32:
		return fmt.Errorf("device: Options.RowKey is %d bytes, not 32", len(o.RowKey))
	case o.Ledger == nil || o.Consent == nil || o.AddRecords == nil:
		return errors.New("device: Options.Ledger, Consent and AddRecords are required")
	case o.Rate < 0 || o.Burst < 0:
		return errors.New("device: Options.Rate and Burst are not negative")
	}
	return nil
}

// The refusals of a registry, besides malformed input (node.Invalid) and
// ErrSignature.
var (
	ErrNotRegistered = node.E(node.Forbidden, "not a device registered for the patient at this centre")
	ErrRevoked       = node.E(node.Forbidden, "the patient revoked the device")
	ErrNotInForce    = node.E(node.Forbidden, "the device's registration is not in force (before its not-before, or expired)")
	ErrClass         = node.E(node.Forbidden, "a data class the device is not registered for")
	ErrReplay        = node.E(node.Conflict, "the batch was taken before (its nonce): nothing stored again")
	ErrRate          = node.E(node.Unavailable, "the device is over its rate of readings: try again later")
	ErrSuperseded    = node.E(node.Conflict, "the patient signed a later registration or revocation of the device")
	ErrUnknown       = node.E(node.NotFound, "no registration of the device for the patient at this centre")
)

// Registry is a centre's registered devices: it takes the patients'
// registrations and revocations, and checks each batch a device posts
// before its readings are stored. It is safe for concurrent use.
type Registry struct {
	opts  Options
	store *sealed.Store
	rate  *limit.Keyed
	log   *slog.Logger

	mu      sync.Mutex      // registrations and revocations, one at a time
	devices [64]sync.Mutex  // batches, one at a time per device (by its ID's first byte)
	classes map[string]bool // the centre's vocabulary
}

// Open opens (creating it if needed) the store at o.Path and returns the
// registry.
func Open(ctx context.Context, o Options) (*Registry, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	st, err := sealed.Open(ctx, o.Path, registrations, o.RowKey, func(ctx context.Context, db *sql.DB) error {
		return schema.Migrate(ctx, db, migrations(o.RowKey))
	})
	if err != nil {
		return nil, fmt.Errorf("device store: %w", err)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rate == 0 {
		o.Rate = DefaultRate
	}
	if o.Burst == 0 {
		o.Burst = DefaultBurst
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registry{opts: o, store: st, rate: limit.New(o.Rate/3600, o.Burst, maxDevices), log: log.With("component", "device"), classes: map[string]bool{}}
	for _, c := range o.Classes {
		r.classes[c] = true
	}
	return r, nil
}

// Close closes the store.
func (r *Registry) Close() error { return r.store.Close() }

// Registered is a registration as the centre holds it.
type Registered struct {
	Registration
	Entry        int64       // the device entry on the ledger
	Revocation   *Revocation // nil while not revoked
	RevokedEntry int64       // the revocation's entry; 0 while not on the ledger yet
	// Tampered: the row fails its MAC; it authenticates no device.
	Tampered bool
}

// State says where a registration stands at t: "in force", "not yet"
// (before its not-before), "expired", "revoked" or "tampered".
func (g Registered) State(t time.Time) string {
	switch {
	case g.Tampered:
		return "tampered"
	case g.Revocation != nil:
		return "revoked"
	case t.Before(g.NotBefore):
		return "not yet"
	case !t.Before(g.Expires):
		return "expired"
	}
	return "in force"
}

// addressed checks that a statement or batch is for this centre.
func (r *Registry) addressed(federation string, centre peer.ID, what string) error {
	if federation != r.opts.Federation || centre != r.opts.Centre {
		return fmt.Errorf("%w: the %s is addressed to another centre or federation", node.ErrInvalid, what)
	}
	return nil
}

// Register takes a patient's signed registration (Registration.Sign):
// once the key is the patient's and no later statement of theirs about
// the device is held, the device entry goes on the ledger and the
// registration into the store, replacing an earlier one of the device.
// Registering again what is registered changes nothing.
func (r *Registry) Register(ctx context.Context, raw []byte) (Registered, error) {
	g, err := ParseRegistration(raw)
	if err != nil {
		return Registered{}, err
	}
	if err := r.addressed(g.Federation, g.Centre, "registration"); err != nil {
		return Registered{}, err
	}
	now := r.opts.Now()
	switch {
	case g.Time.After(now.Add(MaxSkew)):
		return Registered{}, fmt.Errorf("%w: a registration signed in the future", ErrStale)
	case !g.Expires.After(now):
		return Registered{}, fmt.Errorf("%w: the registration has expired already", node.ErrInvalid)
	}
	for _, c := range g.Classes {
		if !r.classes[c] {
			return Registered{}, fmt.Errorf("%w: data class %s is not one this centre records (records.classes)", node.ErrInvalid, c)
		}
	}
	if err := r.opts.Consent.Authenticate(ctx, g.Subject, g.Key, g.Signed(), g.Time); err != nil {
		return Registered{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	id := rowID(g.ID(), g.Subject)
	old, err := r.row(ctx, r.store.DB, id)
	if err != nil {
		return Registered{}, err
	}
	if old != nil && old.revocation != nil {
		v, verr := ParseRevocation(old.revocation)
		if verr != nil {
			return Registered{}, fmt.Errorf("device store: a revocation held does not parse: %w", verr)
		}
		if !g.Time.After(v.Time) {
			return Registered{}, fmt.Errorf("%w: the device was revoked after this registration was signed", ErrSuperseded)
		}
	}
	if old != nil && !bytes.Equal(old.statement, raw) {
		og, oerr := ParseRegistration(old.statement)
		if oerr != nil {
			return Registered{}, fmt.Errorf("device store: a registration held does not parse: %w", oerr)
		}
		if !g.Time.After(og.Time) {
			return Registered{}, fmt.Errorf("%w: a registration signed later is held", ErrSuperseded)
		}
	}
	hash := g.Hash()
	entry, err := r.findOrAppend(ctx, g.Subject, ledger.KindDevice, hash, func() (ledger.Entry, error) {
		return ledger.NewDevice(g.Subject, ledger.Device{Device: g.ID(), Classes: g.Classes, NotBefore: g.NotBefore, Expires: g.Expires, Statement: hash})
	})
	if err != nil {
		return Registered{}, err
	}
	if old != nil && bytes.Equal(old.statement, raw) && old.entry == entry {
		return r.view(*old), nil
	}
	nr := row{id: id, subject: g.Subject, statement: bytes.Clone(raw), entry: entry}
	if err := r.write(ctx, nr); err != nil {
		return Registered{}, err
	}
	r.log.Info("device registered", "pseudonym", g.Subject, "device", g.ID(), "type", g.Type, "entry", entry)
	return r.view(nr), nil
}

// Revoke takes a patient's signed revocation (Revocation.Sign): the
// store refuses the device's batches at once, then the revocation entry
// goes on the ledger. Revoking what is revoked changes nothing.
func (r *Registry) Revoke(ctx context.Context, raw []byte) (Registered, error) {
	v, err := ParseRevocation(raw)
	if err != nil {
		return Registered{}, err
	}
	if err := r.addressed(v.Federation, v.Centre, "revocation"); err != nil {
		return Registered{}, err
	}
	if v.Time.After(r.opts.Now().Add(MaxSkew)) {
		return Registered{}, fmt.Errorf("%w: a revocation signed in the future", ErrStale)
	}
	if err := r.opts.Consent.Authenticate(ctx, v.Subject, v.Key, v.Signed(), v.Time); err != nil {
		return Registered{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, err := r.row(ctx, r.store.DB, rowID(v.ID(), v.Subject))
	switch {
	case err != nil:
		return Registered{}, err
	case cur == nil:
		return Registered{}, ErrUnknown
	case cur.revocation != nil && !bytes.Equal(cur.revocation, raw):
		return r.view(*cur), nil // revoked already, by another statement
	case cur.revocation != nil && cur.revoked != 0:
		return r.view(*cur), nil
	}
	g, err := ParseRegistration(cur.statement)
	if err != nil {
		return Registered{}, fmt.Errorf("device store: a registration held does not parse: %w", err)
	}
	if v.Time.Before(g.Time) {
		return Registered{}, fmt.Errorf("%w: the revocation was signed before the registration in force", ErrSuperseded)
	}
	// The store first: from here on the device adds nothing, whether
	// the ledger's entry follows at once or after a crash, when the
	// patient sends the revocation again.
	next := *cur
	next.revocation = bytes.Clone(raw)
	if cur.revocation == nil {
		if err := r.write(ctx, next); err != nil {
			return Registered{}, err
		}
	}
	hash := v.Hash()
	entry, err := r.findOrAppend(ctx, v.Subject, ledger.KindDeviceRevoke, hash, func() (ledger.Entry, error) {
		return ledger.NewDeviceRevocation(v.Subject, ledger.DeviceRevocation{Device: v.ID(), Registration: cur.entry, Statement: hash})
	})
	if err != nil {
		return Registered{}, err
	}
	next.revoked = entry
	if err := r.write(ctx, next); err != nil {
		return Registered{}, err
	}
	r.log.Info("device revoked", "pseudonym", v.Subject, "device", v.ID(), "entry", entry)
	return r.view(next), nil
}

// List returns the devices registered for patient p at this centre,
// revoked ones included, by device ID; a row that fails its MAC is
// marked Tampered.
func (r *Registry) List(ctx context.Context, p ledger.Pseudonym) ([]Registered, error) {
	rs, err := readRows(ctx, r.store.Reader, "WHERE subject = ? ORDER BY id", p[:])
	if err != nil {
		return nil, fmt.Errorf("device store: %w", err)
	}
	out := make([]Registered, 0, len(rs))
	for _, x := range rs {
		v := r.view(x)
		if !x.valid(r.opts.RowKey) {
			r.reportTampered(x.id)
			v.Tampered = true
		}
		out = append(out, v)
	}
	return out, nil
}

// view is a row as the registry shows it.
func (r *Registry) view(x row) Registered {
	g, _ := ParseRegistration(x.statement) // a row with a valid MAC holds what Register parsed
	out := Registered{Registration: g, Entry: x.entry, RevokedEntry: x.revoked}
	if x.revocation != nil {
		if v, err := ParseRevocation(x.revocation); err == nil {
			out.Revocation = &v
		}
	}
	return out
}

// row returns the registration row id, read through q and checked
// against its MAC, or nil when there is none.
func (r *Registry) row(ctx context.Context, q querier, id string) (*row, error) {
	rs, err := readRows(ctx, q, "WHERE id = ?", id)
	switch {
	case err != nil:
		return nil, fmt.Errorf("device store: %w", err)
	case len(rs) == 0:
		return nil, nil
	case !rs[0].valid(r.opts.RowKey):
		r.reportTampered(id)
		return nil, ErrTampered
	}
	return &rs[0], nil
}

// reportTampered logs a registration row that fails its MAC.
func (r *Registry) reportTampered(id string) {
	r.log.Error("a device registration fails its MAC: it authenticates no device; run medfed check", "registration", id)
}

// write stores a registration row and seals the table again; a table
// whose seal does not hold is changed no further.
func (r *Registry) write(ctx context.Context, x row) error {
	err := r.store.Write(ctx, func(tx *sql.Tx, intact bool) error {
		if !intact {
			return ErrTampered
		}
		return x.put(ctx, tx, r.opts.RowKey)
	})
	if err != nil {
		return fmt.Errorf("device store: %w", err)
	}
	return nil
}

// findOrAppend returns the index of patient p's entry of kind whose
// statement hash is hash, appending the one build makes when there is
// none: a statement sent again after a crash goes on the ledger once.
func (r *Registry) findOrAppend(ctx context.Context, p ledger.Pseudonym, kind ledger.Kind, hash [32]byte, build func() (ledger.Entry, error)) (int64, error) {
	es, err := r.opts.Ledger.EntriesForKinds(ctx, p, kind)
	if err != nil {
		return 0, err
	}
	for _, e := range es {
		var h [32]byte
		if kind == ledger.KindDevice {
			d, err := e.Device()
			if err != nil {
				return 0, err
			}
			h = d.Statement
		} else {
			x, err := e.DeviceRevocation()
			if err != nil {
				return 0, err
			}
			h = x.Statement
		}
		if h == hash {
			return e.Index, nil
		}
	}
	e, err := build()
	if err != nil {
		return 0, err
	}
	return r.opts.Ledger.Append(ctx, e)
}

// Reading is what the centre's API read of a reading of a batch: the
// data class its code maps to, and when it was taken.
type Reading struct {
	Class    string
	Occurred time.Time
}

// Taken is a batch stored.
type Taken struct {
	Subject ledger.Pseudonym
	Device  ledger.DeviceID
	First   int64 // the index of the first reading's record; the others follow it
	Count   int
}

// Take checks a batch a device signed (Batch.Sign) and stores its
// readings, described by readings (one for each, in order), as records
// the device wrote. The checks go from the cheapest and the ones that
// need no state to those that spend something: the signature and the
// address; the device's registration in the store (its MAC) and on the
// ledger (its device entry the newest about the device, no revocation
// after it), in force now, for each reading's class; then, under the
// device's lock, the batch's nonce (a replay is refused before it can
// spend the device's rate) and the rate. Only then is anything stored:
// a refused batch changes nothing.
func (r *Registry) Take(ctx context.Context, raw []byte, readings []Reading) (Taken, error) {
	b, err := ParseBatch(raw)
	if err != nil {
		return Taken{}, err
	}
	if err := r.addressed(b.Federation, b.Centre, "batch"); err != nil {
		return Taken{}, err
	}
	now := r.opts.Now()
	if d := b.Time.Sub(now); d > MaxSkew || d < -MaxSkew {
		return Taken{}, fmt.Errorf("%w: the batch's time is more than %v from the centre's clock", ErrStale, MaxSkew)
	}
	if len(readings) != len(b.Readings) {
		return Taken{}, fmt.Errorf("%w: %d readings described for %d in the batch", node.ErrInvalid, len(readings), len(b.Readings))
	}
	id := b.ID()
	g, err := r.inForce(ctx, id, b.Subject, now)
	if err != nil {
		return Taken{}, err
	}
	recs := make([]ledger.Record, len(readings))
	for i, x := range readings {
		switch {
		case !slices.Contains(g.Classes, x.Class) || !r.classes[x.Class]:
			return Taken{}, fmt.Errorf("%w: reading %d is of class %s; the device may add %s", ErrClass, i+1, x.Class, strings.Join(g.Classes, ", "))
		case x.Occurred.Before(g.NotBefore) || x.Occurred.After(now.Add(MaxSkew)):
			return Taken{}, fmt.Errorf("%w: reading %d is dated before the registration's not-before, or in the future", node.ErrInvalid, i+1)
		}
		recs[i] = ledger.Record{Occurred: x.Occurred.UTC(), DataClass: x.Class, Author: ledger.StaffID(id), AuthorKind: ledger.AuthorDevice}
		if err := recs[i].CheckFields(); err != nil {
			return Taken{}, fmt.Errorf("reading %d: %w", i+1, err)
		}
	}
	first, err := r.keep(ctx, ledger.AuthorDevice, id, b.Nonce, b.Subject, b.Time, recs, b.Readings)
	if err != nil {
		return Taken{}, err
	}
	return Taken{Subject: b.Subject, Device: id, First: first, Count: len(readings)}, nil
}

// keep stores recs, each with its payload, as records of patient p that
// author id (of kind) wrote, once for nonce: under the author's lock, it
// settles what a crash left pending, refuses a nonce taken before and an
// author past its rate, and records the nonce before the records, so
// that a crash between them is settled, not stored twice. A batch's time
// t bounds how long its nonce is kept.
func (r *Registry) keep(ctx context.Context, kind ledger.AuthorKind, id ledger.DeviceID, nonce [16]byte, p ledger.Pseudonym, t time.Time, recs []ledger.Record, payloads [][]byte) (int64, error) {
	mu := &r.devices[id[0]%byte(len(r.devices))]
	mu.Lock()
	defer mu.Unlock()
	if err := r.settle(ctx, kind, id); err != nil {
		return 0, err
	}
	expires := t.Add(MaxSkew).UnixMilli()
	size := r.opts.Ledger.Size()
	pending := sql.NullInt64{}
	tx, err := r.store.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("device store: %w", err)
	}
	defer tx.Rollback()
	var seen int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM batches WHERE device = ? AND nonce = ?`, id[:], nonce[:]).Scan(&seen); err != nil {
		return 0, fmt.Errorf("device store: %w", err)
	}
	if seen > 0 {
		return 0, ErrReplay
	}
	if !r.rate.AllowN(string(id[:]), len(recs)) {
		return 0, ErrRate
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM batches WHERE expires < ? AND first IS NOT NULL`, r.opts.Now().UnixMilli()); err != nil {
		return 0, fmt.Errorf("device store: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO batches (device, nonce, subject, expires, size, first, mac) VALUES (?, ?, ?, ?, ?, NULL, ?)`,
		id[:], nonce[:], p[:], expires, size, batchMAC(r.opts.RowKey, id, nonce[:], p, expires, size, pending)); err != nil {
		return 0, fmt.Errorf("device store: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("device store: %w", err)
	}
	first, err := r.opts.AddRecords(ctx, p, recs, payloads)
	if err != nil {
		// Not stored: the nonce goes, so that the device may send the
		// batch again. Should this fail too, settle finds it pending.
		if _, derr := r.store.DB.ExecContext(context.WithoutCancel(ctx), `DELETE FROM batches WHERE device = ? AND nonce = ? AND first IS NULL`, id[:], nonce[:]); derr != nil {
			r.log.Warn("a batch not stored stays pending", "device", id, "err", derr)
		}
		return 0, err
	}
	if err := r.done(context.WithoutCancel(ctx), id, nonce[:], p, expires, size, first); err != nil {
		return 0, err
	}
	return first, nil
}

// done records that a batch's records start at first.
func (r *Registry) done(ctx context.Context, id ledger.DeviceID, nonce []byte, p ledger.Pseudonym, expires, size, first int64) error {
	f := sql.NullInt64{Int64: first, Valid: true}
	_, err := r.store.DB.ExecContext(ctx, `UPDATE batches SET first = ?, mac = ? WHERE device = ? AND nonce = ?`,
		first, batchMAC(r.opts.RowKey, id, nonce, p, expires, size, f), id[:], nonce)
	if err != nil {
		return fmt.Errorf("device store: %w", err)
	}
	return nil
}

// settle decides each of the device's batches left pending by a crash
// between its nonce and its records: stored when the ledger holds a
// record of the device appended since, and otherwise forgotten, so that
// the device may send it again. The device's lock is held, so no record
// of the device was appended since but the batch's.
func (r *Registry) settle(ctx context.Context, kind ledger.AuthorKind, id ledger.DeviceID) error {
	rows, err := r.store.DB.QueryContext(ctx, `SELECT nonce, subject, expires, size, mac FROM batches WHERE device = ? AND first IS NULL`, id[:])
	if err != nil {
		return fmt.Errorf("device store: %w", err)
	}
	type pending struct {
		nonce, mac    []byte
		subject       ledger.Pseudonym
		expires, size int64
	}
	var ps []pending
	for rows.Next() {
		var (
			x    pending
			subj []byte
		)
		if err := rows.Scan(&x.nonce, &subj, &x.expires, &x.size, &x.mac); err != nil {
			rows.Close()
			return fmt.Errorf("device store: %w", err)
		}
		copy(x.subject[:], subj)
		ps = append(ps, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("device store: %w", err)
	}
	for _, x := range ps {
		if !bytes.Equal(x.mac, batchMAC(r.opts.RowKey, id, x.nonce, x.subject, x.expires, x.size, sql.NullInt64{})) {
			return ErrTampered
		}
		es, err := r.opts.Ledger.EntriesForKinds(ctx, x.subject, ledger.KindRecord)
		if err != nil {
			return err
		}
		first := int64(-1)
		for _, e := range es {
			if e.Index < x.size {
				continue
			}
			if rec, err := e.Record(); err == nil && rec.AuthorKind == kind && rec.Author == ledger.StaffID(id) {
				first = e.Index
				break
			}
		}
		if first >= 0 {
			err = r.done(ctx, id, x.nonce, x.subject, x.expires, x.size, first)
		} else {
			_, err = r.store.DB.ExecContext(ctx, `DELETE FROM batches WHERE device = ? AND nonce = ? AND first IS NULL`, id[:], x.nonce)
		}
		if err != nil {
			return fmt.Errorf("device store: %w", err)
		}
	}
	return nil
}

// inForce returns device id's registration for patient p if it is in
// force at now: in the store with a valid MAC, not revoked, within its
// term, and on the ledger as the newest entry about the device for the
// patient (a registration row put back after its revocation is caught
// there: the ledger's revocation entry follows the row's entry).
func (r *Registry) inForce(ctx context.Context, id ledger.DeviceID, p ledger.Pseudonym, now time.Time) (Registered, error) {
	x, err := r.row(ctx, r.store.Reader, rowID(id, p))
	switch {
	case err != nil:
		return Registered{}, err
	case x == nil:
		return Registered{}, ErrNotRegistered
	}
	g := r.view(*x)
	switch g.State(now) {
	case "revoked":
		return Registered{}, ErrRevoked
	case "not yet", "expired":
		return Registered{}, ErrNotInForce
	}
	es, err := r.opts.Ledger.EntriesForKinds(ctx, p, ledger.KindDevice, ledger.KindDeviceRevoke)
	if err != nil {
		return Registered{}, err
	}
	var newest ledger.Entry
	for _, e := range es {
		var d ledger.DeviceID
		switch e.Kind {
		case ledger.KindDevice:
			x, err := e.Device()
			if err != nil {
				return Registered{}, err
			}
			d = x.Device
		case ledger.KindDeviceRevoke:
			x, err := e.DeviceRevocation()
			if err != nil {
				return Registered{}, err
			}
			d = x.Device
		}
		if d == id && e.Index >= newest.Index {
			newest = e
		}
	}
	switch {
	case newest.Kind == ledger.KindDeviceRevoke:
		return Registered{}, ErrRevoked
	case newest.Kind != ledger.KindDevice || newest.Index != g.Entry:
		return Registered{}, fmt.Errorf("%w: the ledger does not hold the registration in force", ErrNotRegistered)
	}
	d, err := newest.Device()
	if err != nil {
		return Registered{}, err
	}
	if d.Statement != g.Hash() {
		return Registered{}, fmt.Errorf("%w: the ledger does not hold the registration in force", ErrNotRegistered)
	}
	return g, nil
}
