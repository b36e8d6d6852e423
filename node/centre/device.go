package centre

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation/device"
	"github.com/medfed/medfed/node/clock"
	"github.com/medfed/medfed/node/ledger"
)

// DeviceFile, in the data directory, holds the devices patients
// registered here (package federation/device).
const DeviceFile = device.File

// DeviceConfig bounds what patients' devices add here.
type DeviceConfig struct {
	// ReadingsPerHour is how many readings one device may add an hour,
	// on average: 1 to 1,000,000 (600: a reading every 6 seconds, more
	// than a continuous glucose monitor or a heart-rate strap sends). A
	// device past it is refused (503) until its bucket fills again, and
	// only it.
	ReadingsPerHour float64 `mapstructure:"readings-per-hour"`
	// ReadingsBurst is how many it may add at once, after a time
	// offline: from a full batch (federation/device.MaxReadings, 100) to
	// 1,000,000 (600).
	ReadingsBurst int `mapstructure:"readings-burst"`
}

// check reports the problems of c to add, by key.
func (c DeviceConfig) check(add func(field, format string, args ...any)) {
	if r := c.ReadingsPerHour; !(r >= 1 && r <= 1e6) {
		add("devices.readings-per-hour", "must be between 1 and 1000000, got %v", r)
	}
	if b := c.ReadingsBurst; b < device.MaxReadings || b > 1e6 {
		add("devices.readings-burst", "must be between %d (a full batch) and 1000000, got %d", device.MaxReadings, b)
	}
}

func (n *Node) startDevices(ctx context.Context, cfg RecordsConfig, limits DeviceConfig) error {
	r, err := device.Open(ctx, device.Options{
		Federation: n.Federation(),
		Centre:     n.Host.ID(),
		Path:       filepath.Join(n.Centre.dir, DeviceFile),
		RowKey:     n.Centre.RowKey(DeviceFile),
		Ledger:     n.Centre.Ledger,
		Consent:    n.Consent,
		AddRecords: n.Centre.addRecords,
		Classes:    cfg.Classes,
		Rate:       limits.ReadingsPerHour,
		Burst:      limits.ReadingsBurst,
		Now:        clock.Now,
		Logger:     n.base,
	})
	if err != nil {
		return err
	}
	n.devices = r
	return nil
}

// addRecords stores payloads off the ledger and appends their record
// entries, records[i] committing to payloads[i], in one atomic append; it
// returns the first entry's index once all are durable.
func (c *Centre) addRecords(ctx context.Context, p ledger.Pseudonym, records []ledger.Record, payloads [][]byte) (int64, error) {
	if len(records) != len(payloads) {
		return 0, fmt.Errorf("add records: %d records for %d payloads", len(records), len(payloads))
	}
	es := make([]ledger.Entry, len(records))
	for i, meta := range records {
		id, _, commitment, err := c.Records.Put(ctx, payloads[i])
		if err != nil {
			return 0, fmt.Errorf("add records: %w", err)
		}
		meta.Payload, meta.Commitment = id, [32]byte(commitment)
		if es[i], err = ledger.NewRecord(p, meta); err != nil {
			return 0, fmt.Errorf("add records: %w", err)
		}
	}
	// As in AddRecord, a crash before the append leaves payloads no
	// entry points to: harmless.
	first, err := c.Ledger.Append(ctx, es...)
	if err != nil {
		return 0, fmt.Errorf("add records: %w", err)
	}
	c.log.Debug("records added", "component", "node", "first", first, "count", len(es), "pseudonym", p)
	return first, nil
}

// DeviceView is a device registered here for a patient, as its
// registration and revocation say.
type DeviceView struct {
	Pseudonym  ledger.Pseudonym
	Device     ledger.DeviceID
	Key        ed25519.PublicKey // the device's public key
	Type       device.Type
	Classes    []string
	NotBefore  time.Time
	Expires    time.Time
	Registered time.Time // when the patient signed the registration
	Entry      int64     // the device entry on this centre's ledger
	Revoked    time.Time // when the patient signed the revocation; zero while not revoked
	// RevokedEntry is the revocation's entry; zero while there is none.
	RevokedEntry int64
	State        string // in force, not yet, expired, revoked or tampered
}

func deviceView(g device.Registered) DeviceView {
	v := DeviceView{Pseudonym: g.Subject, Device: g.ID(), Key: g.Device, Type: g.Type, Classes: g.Classes, NotBefore: g.NotBefore, Expires: g.Expires,
		Registered: g.Time, Entry: g.Entry, RevokedEntry: g.RevokedEntry, State: g.State(clock.Now())}
	if g.Revocation != nil {
		v.Revoked = g.Revocation.Time
	}
	return v
}

// RegisterDevice takes a patient's signed device registration
// (device.Registration): the key must speak for the patient (a member
// attested it); the device entry goes on this centre's ledger and the
// registration into its store.
func (n *Node) RegisterDevice(ctx context.Context, statement []byte) (DeviceView, error) {
	g, err := n.devices.Register(ctx, statement)
	if err != nil {
		return DeviceView{}, err
	}
	return deviceView(g), nil
}

// RevokeDevice takes a patient's signed device revocation: the device
// adds nothing more for them here, from this call on.
func (n *Node) RevokeDevice(ctx context.Context, statement []byte) (DeviceView, error) {
	g, err := n.devices.Revoke(ctx, statement)
	if err != nil {
		return DeviceView{}, err
	}
	return deviceView(g), nil
}

// Devices returns the devices registered here for patient p, revoked
// ones included.
func (n *Node) Devices(ctx context.Context, p ledger.Pseudonym) ([]DeviceView, error) {
	gs, err := n.devices.List(ctx, p)
	if err != nil {
		return nil, err
	}
	out := make([]DeviceView, len(gs))
	for i, g := range gs {
		out[i] = deviceView(g)
	}
	return out, nil
}

// DeviceAddress is what a device's batch names: the federation and this
// centre. Nothing about any patient.
type DeviceAddress struct {
	Federation string
	Centre     peer.ID
	Name       string
}

// DeviceAddress returns what a device's batch to this centre names.
func (n *Node) DeviceAddress() DeviceAddress {
	return DeviceAddress{Federation: n.Federation(), Centre: n.Host.ID(), Name: n.Centre.Name}
}

// ReadingsRequest is a batch a device signed (device.Batch), and what
// the API read of each of its readings, in order.
type ReadingsRequest struct {
	Batch    []byte
	Readings []device.Reading
}

// ReadingsResult says where a batch's readings went: records at
// consecutive indexes of this centre's ledger, from First.
type ReadingsResult struct {
	Pseudonym ledger.Pseudonym
	Device    ledger.DeviceID
	First     int64
	Count     int
	// Announce says why the directory announcement failed: the
	// readings are stored all the same, and announced at the next start.
	Announce error
}

// AddReadings checks a device's batch (device.Registry.Take) and stores
// its readings as records the device wrote, then announces this centre
// as a holder of the patient's records, as AddRecord does.
func (n *Node) AddReadings(ctx context.Context, r ReadingsRequest) (ReadingsResult, error) {
	t, err := n.devices.Take(ctx, r.Batch, r.Readings)
	if err != nil {
		return ReadingsResult{}, err
	}
	return ReadingsResult{Pseudonym: t.Subject, Device: t.Device, First: t.First, Count: t.Count, Announce: n.Directory.Announce(ctx, t.Subject)}, nil
}

// NoteRequest is a note the patient signed (device.Note), and what the
// API read of its Observation.
type NoteRequest struct {
	Note    []byte
	Reading device.Reading
}

// AddNote checks a patient's signed note (device.Registry.AddNote) and
// stores it as a record the patient wrote, then announces this centre
// as a holder of the patient's records, as AddReadings does.
func (n *Node) AddNote(ctx context.Context, r NoteRequest) (ReadingsResult, error) {
	t, err := n.devices.AddNote(ctx, r.Note, r.Reading)
	if err != nil {
		return ReadingsResult{}, err
	}
	return ReadingsResult{Pseudonym: t.Subject, Device: t.Device, First: t.First, Count: t.Count, Announce: n.Directory.Announce(ctx, t.Subject)}, nil
}
