package centre

import (
	"context"
	"fmt"
	"time"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

// The audit trail: the entries of this centre's ledger an audit record
// repository is sent (node/atna), typed, in ledger order, with where the
// ledger ends and a signal for when it grows. It is read on the Node,
// not the Centre, because an access names its requester by peer ID and
// an auditor wants the centre's name, which only the charter in force
// gives (memberName).

// Audited reports whether entries of kind k belong to the audit trail:
// every question asked about a patient (access, emergency access,
// directory lookups, the patient's own views and erasures), the consent
// documents and revocations accepted, the payloads erased, the records
// transferred, the prescriptions' supplies dispensed and cancellations,
// and the devices registered and revoked. Records, amendments, charters
// and evaluations do not: they say what is held, not who touched it.
func Audited(k ledger.Kind) bool {
	switch k {
	case ledger.KindAccess, ledger.KindConsent, ledger.KindRevocation, ledger.KindErasure, ledger.KindTransfer,
		ledger.KindDispense, ledger.KindCancellation, ledger.KindDevice, ledger.KindDeviceRevoke:
		return true
	}
	return false
}

// AuditEntry is one entry of the audit trail. It names the patient by
// pseudonym only, as the ledger does. Exactly one of its pointers is set,
// by Kind.
type AuditEntry struct {
	Index     int64
	Time      time.Time // when the ledger appended the entry (UTC)
	Kind      ledger.Kind
	Pseudonym ledger.Pseudonym

	Access   *PatientAccess   // KindAccess: who asked, for what, and the answer
	Document *ConsentDocument // KindConsent, KindRevocation: the document accepted
	Erasure  *PatientErasure  // KindErasure: the record whose payload was erased
	Transfer *PatientTransfer // KindTransfer: the record copied, and with whom

	Dispense         *PatientDispense         // KindDispense: a prescription's supply, and who dispensed it
	Cancellation     *PatientCancellation     // KindCancellation: the prescription cancelled, and why
	Device           *PatientDevice           // KindDevice: the device the patient registered
	DeviceRevocation *PatientDeviceRevocation // KindDeviceRevoke: the registration the patient ended
}

// Refused reports whether the entry records a question that was refused.
func (e AuditEntry) Refused() bool { return e.Access != nil && !e.Access.Permitted }

// Emergency reports whether the entry records emergency access: its start
// or stop, or a question asked for the emergency purpose.
func (e AuditEntry) Emergency() bool {
	if e.Access == nil {
		return false
	}
	a := e.Access
	return a.Event == consent.EventEmergencyStart || a.Event == consent.EventEmergencyStop || a.Purpose&consent.Emergency != 0
}

// AuditPage is what one AuditTrail call read.
type AuditPage struct {
	// Entries are the audited entries among those read, in ledger order.
	Entries []AuditEntry
	// Next is the index the next page starts at: past every entry read,
	// audited or not, so a reader never reads an entry twice.
	Next int64
	// Size is the ledger's size when the page was read; Next == Size
	// means the reader has caught up.
	Size int64
}

// AuditTrail reads at most limit ledger entries from index from on and
// returns the audited ones among them (see Audited), decoded. A reader
// keeps Next as its cursor and calls again while Next < Size, then waits
// on AuditHead's channel. A from past the end returns an empty page
// whose Next is from: the ledger may be catching up on entries it had
// (restored from a backup, it recovers them from its witnesses) and the
// reader's cursor stays where it was.
func (n *Node) AuditTrail(ctx context.Context, from int64, limit int) (AuditPage, error) {
	if from < 0 || limit <= 0 {
		return AuditPage{}, fmt.Errorf("audit trail: from %d, limit %d: %w", from, limit, node.ErrInvalid)
	}
	size := n.Centre.Ledger.Size()
	page := AuditPage{Next: from, Size: size}
	if from >= size {
		return page, nil
	}
	to := min(size, from+int64(limit))
	es, err := n.Centre.Ledger.Entries(ctx, from, to)
	if err != nil {
		return AuditPage{}, fmt.Errorf("audit trail: %w", err)
	}
	for _, e := range es {
		if !Audited(e.Kind) {
			continue
		}
		a, err := n.auditEntry(e)
		if err != nil {
			return AuditPage{}, fmt.Errorf("audit trail: entry %d: %w", e.Index, err)
		}
		page.Entries = append(page.Entries, a)
	}
	page.Next = to
	return page, nil
}

// AuditHead returns the ledger's size and a channel closed when it next
// grows. The channel is taken before the size, so growth between the two
// closes the channel held: a reader that caught up with size and waits on
// grown misses nothing.
func (n *Node) AuditHead() (size int64, grown <-chan struct{}) {
	grown = n.Centre.Ledger.Grown()
	return n.Centre.Ledger.Size(), grown
}

// auditEntry decodes audited entry e with the decoders the patient's view
// uses (patientEntries), naming centres as it does.
func (n *Node) auditEntry(e ledger.Entry) (AuditEntry, error) {
	out := AuditEntry{Index: e.Index, Time: e.Time, Kind: e.Kind, Pseudonym: e.Subject}
	switch e.Kind {
	case ledger.KindAccess:
		x, err := consent.DecodeAccess(e)
		if err != nil {
			return AuditEntry{}, err
		}
		a := n.patientAccess(e, x)
		out.Access = &a
	case ledger.KindConsent, ledger.KindRevocation:
		d, err := consent.Parse(e.Body)
		if err != nil {
			return AuditEntry{}, err
		}
		cd := n.consentDocument(d)
		out.Document = &cd
	case ledger.KindErasure:
		x, err := e.Erasure()
		if err != nil {
			return AuditEntry{}, err
		}
		out.Erasure = &PatientErasure{Index: e.Index, Time: e.Time, Record: x.Target}
	case ledger.KindTransfer:
		t, err := n.patientTransfer(e)
		if err != nil {
			return AuditEntry{}, err
		}
		out.Transfer = &t
	case ledger.KindDispense:
		d, err := n.patientDispense(e, n.Centre.Name)
		if err != nil {
			return AuditEntry{}, err
		}
		out.Dispense = &d
	case ledger.KindCancellation:
		c, err := patientCancellation(e)
		if err != nil {
			return AuditEntry{}, err
		}
		out.Cancellation = &c
	case ledger.KindDevice:
		d, err := patientDevice(e)
		if err != nil {
			return AuditEntry{}, err
		}
		out.Device = &d
	case ledger.KindDeviceRevoke:
		r, err := patientDeviceRevocation(e)
		if err != nil {
			return AuditEntry{}, err
		}
		out.DeviceRevocation = &r
	default:
		return AuditEntry{}, fmt.Errorf("a %s entry is not audited", e.Kind)
	}
	return out, nil
}
