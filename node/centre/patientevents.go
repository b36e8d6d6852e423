package centre

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/ledger"
)

// The entries about a patient beyond records, questions and consent:
// prescriptions' supplies and cancellations, and the devices the patient
// registered. The patient's view shows them and the audit trail sends
// them, decoded here once for both, centres by name.

// PatientDispense is a supply of a prescription dispensed: at the issuing
// centre, the entry it appended before confirming the claim; at the
// pharmacy, its own record of the confirmation.
type PatientDispense struct {
	Index        int64
	Time         time.Time
	Issuer       string // the issuing centre
	Prescription int64  // the prescription's record entry at the issuer
	Fill         int    // which supply: 1 the first, 2 the first repeat, …
	Pharmacy     string // the dispensing member
	Pharmacist   ledger.StaffID
	// Confirmed is the issuer's dispense entry: this one at the issuer,
	// the one the issuer confirmed with at the pharmacy.
	Confirmed int64
}

// PatientCancellation is a prescription its prescriber's centre cancelled.
type PatientCancellation struct {
	Index        int64
	Time         time.Time
	Prescription int64
	Prescriber   ledger.StaffID
	Reason       ledger.CancelReason
}

// PatientDevice is a device the patient registered: it may add readings
// of Classes from NotBefore until Expires, unless revoked.
type PatientDevice struct {
	Index     int64
	Time      time.Time
	Device    ledger.DeviceID
	Classes   []string
	NotBefore time.Time
	Expires   time.Time
	Statement [32]byte // SHA-256 of the registration the patient signed
}

// PatientDeviceRevocation is the patient's revocation of a device.
type PatientDeviceRevocation struct {
	Index        int64
	Time         time.Time
	Device       ledger.DeviceID
	Registration int64    // the device entry it ends
	Statement    [32]byte // SHA-256 of the revocation the patient signed
}

// patientDispense decodes dispense entry e of the ledger of centre
// holder: its own issue when the entry names no issuer.
func (n *Node) patientDispense(e ledger.Entry, holder string) (PatientDispense, error) {
	d, err := e.Dispense()
	if err != nil {
		return PatientDispense{}, err
	}
	pharmacy, err := peer.IDFromBytes(d.Pharmacy)
	if err != nil {
		return PatientDispense{}, fmt.Errorf("dispense entry %d: the pharmacy: %w", e.Index, err)
	}
	out := PatientDispense{Index: e.Index, Time: e.Time, Issuer: holder, Prescription: d.Prescription, Fill: int(d.Fill),
		Pharmacy: n.memberName(pharmacy), Pharmacist: d.Pharmacist, Confirmed: e.Index}
	if len(d.Issuer) > 0 {
		issuer, err := peer.IDFromBytes(d.Issuer)
		if err != nil {
			return PatientDispense{}, fmt.Errorf("dispense entry %d: the issuer: %w", e.Index, err)
		}
		out.Issuer, out.Confirmed = n.memberName(issuer), d.Confirmed
	}
	return out, nil
}

// patientCancellation decodes cancellation entry e.
func patientCancellation(e ledger.Entry) (PatientCancellation, error) {
	c, err := e.Cancellation()
	if err != nil {
		return PatientCancellation{}, err
	}
	return PatientCancellation{Index: e.Index, Time: e.Time, Prescription: c.Prescription, Prescriber: c.Prescriber, Reason: c.Reason}, nil
}

// patientDevice decodes device entry e.
func patientDevice(e ledger.Entry) (PatientDevice, error) {
	d, err := e.Device()
	if err != nil {
		return PatientDevice{}, err
	}
	return PatientDevice{Index: e.Index, Time: e.Time, Device: d.Device, Classes: d.Classes, NotBefore: d.NotBefore, Expires: d.Expires, Statement: d.Statement}, nil
}

// patientDeviceRevocation decodes device revocation entry e.
func patientDeviceRevocation(e ledger.Entry) (PatientDeviceRevocation, error) {
	r, err := e.DeviceRevocation()
	if err != nil {
		return PatientDeviceRevocation{}, err
	}
	return PatientDeviceRevocation{Index: e.Index, Time: e.Time, Device: r.Device, Registration: r.Registration, Statement: r.Statement}, nil
}
