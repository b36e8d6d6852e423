package ledger_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

func issuedDispense() ledger.Dispense {
	return ledger.Dispense{Prescription: 7, Fill: 2, Pharmacy: []byte("a pharmacy's peer ID"), Pharmacist: ledger.StaffID{9}, Nonce: [16]byte{1, 2, 3}}
}

func receivedDispense() ledger.Dispense {
	d := issuedDispense()
	d.Issuer, d.Confirmed = []byte("the issuer's peer ID"), 12
	return d
}

func TestDispenseAndCancellationEntries(t *testing.T) {
	p := fuzzPseudonym(1)
	for _, d := range []ledger.Dispense{issuedDispense(), receivedDispense()} {
		e, err := ledger.NewDispense(p, d)
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
		got, err := back.Dispense()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Issuer, d.Issuer) || got.Prescription != d.Prescription || got.Fill != d.Fill || !bytes.Equal(got.Pharmacy, d.Pharmacy) ||
			got.Pharmacist != d.Pharmacist || got.Nonce != d.Nonce || got.Confirmed != d.Confirmed || back.Subject != p {
			t.Fatalf("dispense %+v came back as %+v", d, got)
		}
	}
	c := ledger.Cancellation{Prescription: 7, Prescriber: ledger.StaffID{4}, Reason: ledger.CancelAdverseReaction}
	e, err := ledger.NewCancellation(p, c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Cancellation()
	if err != nil || got != c {
		t.Fatalf("cancellation %+v came back as %+v, %v", c, got, err)
	}
	if _, err := e.Dispense(); err == nil {
		t.Fatal("a cancellation entry decoded as a dispense")
	}
	if r, err := ledger.ParseCancelReason("adverse-reaction"); err != nil || r != ledger.CancelAdverseReaction {
		t.Fatalf("ParseCancelReason: %v, %v", r, err)
	}
}

func TestBadDispensesAndCancellationsAreRefused(t *testing.T) {
	p := fuzzPseudonym(1)
	dispenses := []struct {
		name   string
		change func(*ledger.Dispense)
	}{
		{"no pharmacy", func(d *ledger.Dispense) { d.Pharmacy = nil }},
		{"the charter's entry", func(d *ledger.Dispense) { d.Prescription = 0 }},
		{"a negative index", func(d *ledger.Dispense) { d.Prescription = -1 }},
		{"supply 0", func(d *ledger.Dispense) { d.Fill = 0 }},
		{"no nonce", func(d *ledger.Dispense) { d.Nonce = [16]byte{} }},
		{"an issuer without its entry", func(d *ledger.Dispense) { d.Issuer = []byte("issuer") }},
		{"an entry without its issuer", func(d *ledger.Dispense) { d.Confirmed = 3 }},
		{"a long pharmacy", func(d *ledger.Dispense) { d.Pharmacy = bytes.Repeat([]byte{1}, 65) }},
	}
	for _, tc := range dispenses {
		t.Run(tc.name, func(t *testing.T) {
			d := issuedDispense()
			tc.change(&d)
			if _, err := ledger.NewDispense(p, d); !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("NewDispense: %v, want an error of kind invalid", err)
			}
		})
	}
	if _, err := ledger.NewDispense(ledger.Pseudonym{}, issuedDispense()); err == nil {
		t.Error("a dispense about no patient")
	}
	for _, c := range []ledger.Cancellation{
		{Prescription: 0, Prescriber: ledger.StaffID{1}, Reason: ledger.CancelError},
		{Prescription: 3, Reason: ledger.CancelError},
		{Prescription: 3, Prescriber: ledger.StaffID{1}},
		{Prescription: 3, Prescriber: ledger.StaffID{1}, Reason: 99},
	} {
		if _, err := ledger.NewCancellation(p, c); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("NewCancellation(%+v): %v, want an error of kind invalid", c, err)
		}
	}
	if _, err := ledger.ParseCancelReason("bored"); !errors.Is(err, node.ErrInvalid) {
		t.Errorf("an unknown reason: %v", err)
	}
}
