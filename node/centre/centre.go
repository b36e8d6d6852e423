package centre

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/medfed/medfed/node"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/clock"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/records"
)

// Errors of record access.
var (
	ErrErased     = records.ErrErased
	ErrNotARecord = node.E(node.Invalid, "entry is not a record")
	ErrMismatch   = node.E(node.Internal, "payload does not match the ledger's commitment")
	// ErrOtherPatient: an amendment of a record about another patient.
	ErrOtherPatient = node.E(node.Invalid, "the record is about another patient")
)

// Centre is one open medfed centre: its key, ledger and record store, under
// the data directory's lock.
type Centre struct {
	Name    string
	Ledger  *ledger.Ledger
	Records *records.Store

	federation string
	key        ed25519.PrivateKey
	id         peer.ID
	dir        string
	formatWas  int // the data directory's format before Open upgraded it
	lock       *dirLock
	log        *slog.Logger
	eraseMu    sync.Mutex // an erasure's check and append, one at a time
}

// Open opens the centre described by cfg, creating its data directory,
// key, ledger and record store on first use. Only one process may have a
// data directory open: a second gets ErrInUse. A data directory of an
// older format (FormatFile) is upgraded in place first; one of a newer
// format is refused (ErrNewerFormat), unchanged.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Centre, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("centre", cfg.Centre.Name) // components scope it further
	dir := cfg.Data.Dir
	if err := checkDataDir(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	c := &Centre{Name: cfg.Centre.Name, federation: cfg.Federation.ID, dir: dir, lock: lock, log: log}
	if err := c.open(ctx, cfg); err != nil {
		c.Close()
		return nil, err
	}
	log.Info("centre open", "component", "node", "origin", c.Ledger.Origin(), "entries", c.Ledger.Size())
	return c, nil
}

// checkDataDir refuses a directory that holds files but no centre: a
// mistyped data.dir must not turn someone's home directory into a centre.
func checkDataDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	for _, name := range []string{KeyFile, LedgerFile, FormatFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%s: %w: it holds other files; give a new or empty directory", dir, ErrNotDataDir)
}

func (c *Centre) open(ctx context.Context, cfg Config) error {
	dir := cfg.Data.Dir
	var err error
	if c.formatWas, err = upgradeDataDir(ctx, cfg, c.log); err != nil {
		return err
	}
	key, err := loadOrCreateKey(dir)
	if err != nil {
		return err
	}
	if c.id, err = PeerID(key); err != nil {
		return err
	}
	c.key = key
	c.Ledger, err = ledger.Open(ctx, filepath.Join(dir, LedgerFile), ledger.Options{
		Origin:   ledger.Origin(cfg.Federation.ID, cfg.Centre.Name),
		Key:      key,
		MaxBatch: cfg.Ledger.MaxBatch,
		Logger:   c.log.With("component", "ledger"),
		Now:      clock.Now,
	})
	if err != nil {
		return err
	}
	c.Records, err = records.Open(dir, records.Options{Now: clock.Now})
	return err
}

// ID returns the centre's ID: the libp2p peer ID of its key.
func (c *Centre) ID() peer.ID { return c.id }

// Key returns the centre's private key.
func (c *Centre) Key() ed25519.PrivateKey { return c.key }

// Close closes everything the centre opened and releases the data
// directory.
func (c *Centre) Close() error {
	var errs []error
	if c.Records != nil {
		errs = append(errs, c.Records.Close())
	}
	if c.Ledger != nil {
		errs = append(errs, c.Ledger.Close())
	}
	if c.lock != nil {
		errs = append(errs, c.lock.unlock())
	}
	return errors.Join(errs...)
}

// AddRecord stores payload off the ledger and appends the record entry
// that commits to it, with the metadata in meta (its payload fields are
// filled here); with meta.Replaces set, an amendment of that record of the
// same patient. It returns the entry's index once it is durable.
func (c *Centre) AddRecord(ctx context.Context, p ledger.Pseudonym, meta ledger.Record, payload []byte) (int64, error) {
	newEntry := ledger.NewRecord
	if meta.Replaces != 0 {
		old, _, err := c.recordAt(ctx, meta.Replaces)
		if err != nil {
			return 0, fmt.Errorf("amend record %d: %w", meta.Replaces, err)
		}
		if old.Subject != p {
			return 0, fmt.Errorf("amend record %d: %w", meta.Replaces, ErrOtherPatient)
		}
		newEntry = ledger.NewAmendment
	}
	id, _, commitment, err := c.Records.Put(ctx, payload)
	if err != nil {
		return 0, fmt.Errorf("add record: %w", err)
	}
	meta.Payload, meta.Commitment = id, [32]byte(commitment)
	e, err := newEntry(p, meta)
	if err != nil {
		return 0, fmt.Errorf("add record: %w", err)
	}
	// A crash between Put and Append leaves an encrypted payload that no
	// entry points to: harmless, and never an entry without its payload.
	n, err := c.Ledger.Append(ctx, e)
	if err != nil {
		return 0, fmt.Errorf("add record: %w", err)
	}
	c.log.Debug("record added", "component", "node", "index", n, "pseudonym", p, "class", meta.DataClass)
	return n, nil
}

// CopyRecord stores payload, copied from another centre, off the ledger
// and appends its record entry (metadata in meta; with meta.Replaces set,
// an amendment of this centre's copy of the record it replaces) and,
// right after it in the same atomic append, provenance: the transfer entry
// saying where it came from. It returns the record entry's index once
// both are durable.
func (c *Centre) CopyRecord(ctx context.Context, p ledger.Pseudonym, meta ledger.Record, payload []byte, provenance ledger.Entry) (int64, error) {
	newEntry := ledger.NewRecord
	if meta.Replaces != 0 {
		old, _, err := c.recordAt(ctx, meta.Replaces)
		if err != nil {
			return 0, fmt.Errorf("copy an amendment of record %d: %w", meta.Replaces, err)
		}
		if old.Subject != p {
			return 0, fmt.Errorf("copy an amendment of record %d: %w", meta.Replaces, ErrOtherPatient)
		}
		newEntry = ledger.NewAmendment
	}
	id, _, commitment, err := c.Records.Put(ctx, payload)
	if err != nil {
		return 0, fmt.Errorf("copy record: %w", err)
	}
	meta.Payload, meta.Commitment = id, [32]byte(commitment)
	e, err := newEntry(p, meta)
	if err != nil {
		return 0, fmt.Errorf("copy record: %w", err)
	}
	n, err := c.Ledger.Append(ctx, e, provenance)
	if err != nil {
		return 0, fmt.Errorf("copy record: %w", err)
	}
	c.log.Debug("record copied", "component", "node", "index", n, "pseudonym", p, "class", meta.DataClass)
	return n, nil
}

// Payload returns the payload of the record entry at index, after checking
// it against the commitment on the ledger.
func (c *Centre) Payload(ctx context.Context, index int64) ([]byte, error) {
	_, r, err := c.recordAt(ctx, index)
	if err != nil {
		return nil, err
	}
	payload, opening, err := c.Records.Get(ctx, records.ID(r.Payload))
	if err != nil {
		return nil, fmt.Errorf("record %d: %w", index, err)
	}
	if !records.Commitment(r.Commitment).Verify(opening, payload) {
		return nil, fmt.Errorf("record %d: %w", index, ErrMismatch)
	}
	return payload, nil
}

func (c *Centre) recordAt(ctx context.Context, index int64) (ledger.Entry, ledger.Record, error) {
	e, err := c.Ledger.Entry(ctx, index)
	if err != nil {
		return e, ledger.Record{}, err
	}
	r, err := e.Record()
	if err != nil {
		return e, r, fmt.Errorf("entry %d: %w", index, ErrNotARecord)
	}
	return e, r, nil
}

// Erase crypto-shreds the payload of the record at index and appends an
// erasure entry, returning its index. The record entry stays, so every
// proof stays valid. Erasing again returns the first erasure's index, so a
// caller may retry after any failure.
func (c *Centre) Erase(ctx context.Context, index int64) (int64, error) {
	c.eraseMu.Lock()
	defer c.eraseMu.Unlock()
	e, r, err := c.recordAt(ctx, index)
	if err != nil {
		return 0, fmt.Errorf("erase: %w", err)
	}
	// The payload goes first: if the append then fails, the retry finds
	// it gone and appends; the ledger never claims an erasure that did not
	// happen.
	if err := c.Records.Erase(ctx, records.ID(r.Payload)); err != nil {
		return 0, fmt.Errorf("erase record %d: %w", index, err)
	}
	about, err := c.Ledger.EntriesFor(ctx, e.Subject)
	if err != nil {
		return 0, fmt.Errorf("erase record %d: %w", index, err)
	}
	for _, a := range about {
		if x, err := a.Erasure(); err == nil && x.Target == index {
			return a.Index, nil
		}
	}
	x, err := ledger.NewErasure(e.Subject, ledger.Erasure{Target: index, Payload: r.Payload})
	if err != nil {
		return 0, fmt.Errorf("erase record %d: %w", index, err)
	}
	n, err := c.Ledger.Append(ctx, x)
	if err != nil {
		return 0, fmt.Errorf("erase record %d: %w", index, err)
	}
	c.log.Info("record erased", "component", "node", "index", index, "erasure", n, "pseudonym", e.Subject)
	return n, nil
}

// EraseAll crypto-shreds the payload of every record and amendment of
// patient p and appends, in one atomic append, an erasure entry for each
// not erased before; it returns how many it appended. As with Erase, the
// payloads go first, so a retry after any failure completes the rest.
func (c *Centre) EraseAll(ctx context.Context, p ledger.Pseudonym) (int, error) {
	return c.eraseBefore(ctx, p, time.Time{})
}

// EraseBefore is EraseAll for the records and amendments appended before
// the end of the second before falls in: what a patient's erasure signed
// at before asks (its time is to the second), leaving the records of a
// later treatment.
func (c *Centre) EraseBefore(ctx context.Context, p ledger.Pseudonym, before time.Time) (int, error) {
	if before.IsZero() {
		return 0, fmt.Errorf("erase: %w: no time to erase before", node.ErrInvalid)
	}
	return c.eraseBefore(ctx, p, before.Truncate(time.Second).Add(time.Second))
}

// eraseBefore erases p's records appended before end; all when zero.
func (c *Centre) eraseBefore(ctx context.Context, p ledger.Pseudonym, end time.Time) (int, error) {
	c.eraseMu.Lock()
	defer c.eraseMu.Unlock()
	es, err := c.Ledger.EntriesForKinds(ctx, p, ledger.KindRecord, ledger.KindAmendment, ledger.KindErasure)
	if err != nil {
		return 0, fmt.Errorf("erase: %w", err)
	}
	erased := map[int64]bool{}
	for _, e := range es {
		if x, err := e.Erasure(); err == nil {
			erased[x.Target] = true
		}
	}
	var out []ledger.Entry
	for _, e := range es {
		if e.Kind == ledger.KindErasure || erased[e.Index] || (!end.IsZero() && !e.Time.Before(end)) {
			continue
		}
		r, err := e.Record()
		if err != nil {
			return 0, fmt.Errorf("erase: entry %d: %w", e.Index, err)
		}
		if err := c.Records.Erase(ctx, records.ID(r.Payload)); err != nil {
			return 0, fmt.Errorf("erase record %d: %w", e.Index, err)
		}
		x, err := ledger.NewErasure(p, ledger.Erasure{Target: e.Index, Payload: r.Payload})
		if err != nil {
			return 0, fmt.Errorf("erase record %d: %w", e.Index, err)
		}
		out = append(out, x)
	}
	if len(out) == 0 {
		return 0, nil
	}
	first, err := c.Ledger.Append(ctx, out...)
	if err != nil {
		return 0, fmt.Errorf("erase: %w", err)
	}
	c.log.Info("patient's records erased", "component", "node", "pseudonym", p, "erasures", len(out), "first", first)
	return len(out), nil
}

// Verify checks the ledger in data directory dir offline against the
// centre's own public key, opening nothing for writing; it works on the
// directory of a running centre too.
func Verify(ctx context.Context, dir string) (ledger.Report, error) {
	pub, err := PublicKey(dir)
	if err != nil {
		return ledger.Report{}, err
	}
	path := filepath.Join(dir, LedgerFile)
	if _, err := os.Stat(path); err != nil {
		return ledger.Report{}, fmt.Errorf("%s: %w (no %s)", dir, ErrNotDataDir, LedgerFile)
	}
	return ledger.Verify(ctx, path, pub)
}
