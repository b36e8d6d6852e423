package ledger_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

func registeredDevice() ledger.Device {
	return ledger.Device{
		Device:    ledger.DeviceID{0xde, 0x71},
		Classes:   []string{"lab-result", "observation"},
		NotBefore: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC),
		Expires:   time.Date(2027, 5, 1, 0, 0, 0, 0, time.UTC),
		Statement: [32]byte{1, 2, 3},
	}
}

func TestDeviceEntries(t *testing.T) {
	p := fuzzPseudonym(1)
	d := registeredDevice()
	e, err := ledger.NewDevice(p, d)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ledger.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := back.Device()
	if err != nil {
		t.Fatal(err)
	}
	if got.Device != d.Device || !slices.Equal(got.Classes, d.Classes) || !got.NotBefore.Equal(d.NotBefore) || !got.Expires.Equal(d.Expires) ||
		got.Statement != d.Statement || back.Subject != p || back.Kind.String() != "device" {
		t.Fatalf("device %+v came back as %+v", d, got)
	}
	r := ledger.DeviceRevocation{Device: d.Device, Registration: 12, Statement: [32]byte{4}}
	re, err := ledger.NewDeviceRevocation(p, r)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := re.DeviceRevocation(); err != nil || got != r {
		t.Fatalf("revocation %+v came back as %+v, %v", r, got, err)
	}
	if _, err := re.Device(); err == nil {
		t.Fatal("a revocation decoded as a device")
	}

	bad := []struct {
		name   string
		change func(*ledger.Device)
	}{
		{"no device", func(d *ledger.Device) { d.Device = ledger.DeviceID{} }},
		{"no class", func(d *ledger.Device) { d.Classes = nil }},
		{"classes unsorted", func(d *ledger.Device) { d.Classes = []string{"observation", "lab-result"} }},
		{"a class twice", func(d *ledger.Device) { d.Classes = []string{"observation", "observation"} }},
		{"a class that is not one", func(d *ledger.Device) { d.Classes = []string{"Blood Sugar"} }},
		{"expiry before not-before", func(d *ledger.Device) { d.Expires = d.NotBefore.Add(-time.Hour) }},
		{"a fraction of a second", func(d *ledger.Device) { d.Expires = d.Expires.Add(time.Millisecond) }},
		{"no statement", func(d *ledger.Device) { d.Statement = [32]byte{} }},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			d := registeredDevice()
			tc.change(&d)
			if _, err := ledger.NewDevice(p, d); !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("NewDevice: %v", err)
			}
		})
	}
	if _, err := ledger.NewDeviceRevocation(p, ledger.DeviceRevocation{Device: d.Device, Registration: -1, Statement: [32]byte{4}}); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("a revocation of a negative index: %v", err)
	}
}

// A record a device contributed says so; a staff member's record is
// encoded as every record was before author kinds, so the ledgers
// written then read as they did.
func TestRecordAuthorKind(t *testing.T) {
	p := fuzzPseudonym(1)
	staff := fuzzRecord(1)
	old, err := ledger.NewRecord(p, staff)
	if err != nil {
		t.Fatal(err)
	}
	byDevice := staff
	byDevice.AuthorKind = ledger.AuthorDevice
	reading, err := ledger.NewRecord(p, byDevice)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(reading.Body[:len(old.Body)], old.Body) || len(reading.Body) != len(old.Body)+1 {
		t.Fatal("a device's record is not a staff member's with the author kind after it")
	}
	got, err := reading.Record()
	if err != nil || got.AuthorKind != ledger.AuthorDevice || got.Author != staff.Author {
		t.Fatalf("a device's record came back as %+v, %v", got, err)
	}
	if got, err := old.Record(); err != nil || got.AuthorKind != ledger.AuthorStaff {
		t.Fatalf("a staff member's record came back as %+v, %v", got, err)
	}
	am := byDevice
	am.Replaces = 3
	amend, err := ledger.NewAmendment(p, am)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := amend.Record(); err != nil || got.AuthorKind != ledger.AuthorDevice || got.Replaces != 3 {
		t.Fatalf("a device's amendment came back as %+v, %v", got, err)
	}
	for name, body := range map[string][]byte{
		"a staff author's kind written out": append(bytes.Clone(old.Body), 0),
		"an unknown author kind":            append(bytes.Clone(old.Body), 9),
		"two bytes after the record":        append(bytes.Clone(reading.Body), 1),
	} {
		if _, err := (ledger.Entry{Kind: ledger.KindRecord, Subject: p, Body: body}).Encode(); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	byPatient := staff
	byPatient.AuthorKind = ledger.AuthorPatient
	note, err := ledger.NewRecord(p, byPatient)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := note.Record(); err != nil || got.AuthorKind != ledger.AuthorPatient || got.Author != staff.Author {
		t.Fatalf("a patient's note came back as %+v, %v", got, err)
	}
	for _, r := range []ledger.Record{byDevice, byPatient} {
		anonymous := r
		anonymous.Author = ledger.StaffID{}
		if _, err := ledger.NewRecord(p, anonymous); !errors.Is(err, node.ErrInvalid) {
			t.Fatalf("a %s's record naming no author: %v", r.AuthorKind, err)
		}
	}
}
