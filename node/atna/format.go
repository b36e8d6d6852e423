package atna

import (
	"errors"

	"github.com/medfed/medfed/node/centre"
)

// Format is how an entry of the audit trail becomes a message: the body
// and the MSGID that tells a collector what the body is.
type Format struct {
	// Name names the format in logs: "dicom" or "fhir".
	Name string
	// MsgID is the syslog MSGID of every message: at most 32 printable
	// ASCII characters.
	MsgID string
	// Encode returns the body of the message of e, in UTF-8. It must
	// name the patient by pseudonym only.
	Encode func(e centre.AuditEntry) ([]byte, error)
}

// FHIR is the FHIR R4 AuditEvent format, in JSON, with encode building
// the event of an entry. The command passes node/api's AuditEvent, which
// shapes accesses as BALP does and serves the same events at
// /fhir/AuditEvent; this package does not import the HTTP adapter.
func FHIR(encode func(e centre.AuditEntry) ([]byte, error)) Format {
	return Format{Name: "fhir", MsgID: "FHIR+AuditEvent", Encode: encode}
}

func (f Format) validate() error {
	switch {
	case f.Encode == nil:
		return errors.New("Format.Encode is required")
	case !headerField(f.MsgID, maxMsgID):
		return errors.New("Format.MsgID must be 1 to 32 printable ASCII characters")
	}
	return nil
}
