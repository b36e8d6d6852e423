package api

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
)

// A document an EHR sends through FHIR (IHE MHD) keeps what its
// DocumentReference said of its bytes, its content type and its LOINC
// type, inside the record's payload: sealed and encrypted at rest like
// the bytes, never on the ledger, and released with them to whoever
// consent lets read them. A payload recorded through /v1 has no envelope:
// its bytes are the payload, of type application/octet-stream.
//
// The envelope: the 8 bytes of documentMagic, a uvarint length, that many
// bytes of a JSON documentHeader, then the document's bytes.
var documentMagic = []byte("\x00MFDOC1\x00")

// maxDocumentHeader bounds the header a payload may carry.
const maxDocumentHeader = 4 << 10

// documentHeader is what the envelope says of the bytes that follow.
type documentHeader struct {
	ContentType string `json:"contentType"`
	TypeSystem  string `json:"typeSystem,omitempty"`
	TypeCode    string `json:"typeCode,omitempty"`
	TypeDisplay string `json:"typeDisplay,omitempty"`
	Language    string `json:"language,omitempty"`
	MasterID    string `json:"masterIdentifier,omitempty"` // the document's unique ID as its sender gave it (a URI)
}

// octetStream is the content type of bytes that say nothing of themselves.
const octetStream = "application/octet-stream"

// check says what is wrong with a header, if anything.
func (h documentHeader) check() error {
	if _, _, err := mime.ParseMediaType(h.ContentType); err != nil || len(h.ContentType) > 255 {
		return fmt.Errorf("the content type %q is not a media type", h.ContentType)
	}
	for _, s := range []string{h.TypeSystem, h.TypeCode, h.TypeDisplay, h.Language, h.MasterID} {
		if len(s) > 1024 {
			return errors.New("a field of the document's type is over 1024 bytes")
		}
	}
	return nil
}

// sealDocument wraps a document's bytes and what is said of them into a
// record's payload.
func sealDocument(h documentHeader, data []byte) ([]byte, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	head, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(documentMagic)+binary.MaxVarintLen64+len(head)+len(data))
	out = append(out, documentMagic...)
	out = binary.AppendUvarint(out, uint64(len(head)))
	out = append(out, head...)
	return append(out, data...), nil
}

// OpenDocument returns a released payload's content type and bytes: a
// document an EHR sent through FHIR opened, any other payload as it is,
// of type application/octet-stream.
func OpenDocument(payload []byte) (contentType string, data []byte) {
	h, data, err := openDocument(payload)
	if err != nil {
		return octetStream, payload
	}
	return h.ContentType, data
}

// openDocument splits a record's payload into what is said of the
// document and its bytes. A payload without the envelope is bytes of
// type application/octet-stream; one that starts like an envelope but is
// not a whole one is refused, since its holder or its sender is at fault.
func openDocument(payload []byte) (documentHeader, []byte, error) {
	rest, ok := bytes.CutPrefix(payload, documentMagic)
	if !ok {
		return documentHeader{ContentType: octetStream}, payload, nil
	}
	n, used := binary.Uvarint(rest)
	if used <= 0 || n > maxDocumentHeader || n > uint64(len(rest)-used) {
		return documentHeader{}, nil, errors.New("the document's envelope is malformed")
	}
	var h documentHeader
	dec := json.NewDecoder(bytes.NewReader(rest[used : used+int(n)]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil || dec.More() {
		return documentHeader{}, nil, errors.New("the document's envelope holds no valid header")
	}
	if err := h.check(); err != nil {
		return documentHeader{}, nil, fmt.Errorf("the document's envelope: %w", err)
	}
	return h, rest[used+int(n):], nil
}
