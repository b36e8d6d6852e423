package consent

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// ProtocolID is the consent protocol: one request frame per stream,
// answered by one frame whose status is 0 (ok) or 1 (refused, with the
// reason as text).
//
//	opPush: documents about one patient (a list, below): a contract or
//	        revocation with the attestations of the patient's keys, or an
//	        attestation. The holder verifies them, appends the new ones to
//	        its ledger, and answers with nothing.
//	opSync: a 32-byte pseudonym; the answer is the list of the documents
//	        the member holds about that patient.
//	opStop: a 32-byte pseudonym and a 16-byte staff ID: the asking member
//	        stops its emergency sessions for that patient, that staff
//	        member's (a zero ID: all of them). The holder records each stop
//	        on its ledger and answers with a u16 count of those stopped.
//
// A list is, per document, a u32 length and the signed document.
const ProtocolID = "/medfed/consent/1"

const (
	opPush byte = 1
	opSync byte = 2
	opStop byte = 3

	// maxDocs bounds a list; a patient's documents beyond it are not
	// synced (each version of a contract is a document).
	maxDocs     = 256
	maxListLen  = maxDocs * (4 + MaxDocument)
	maxReason   = 512
	handleLimit = 10 * time.Second
)

func encodeDocs(docs []Document) []byte {
	var w wire.Writer
	for _, d := range docs {
		w.Blob(d.Raw)
	}
	return w.B
}

// decodeDocs parses and verifies a list of documents, all about one
// patient.
func decodeDocs(b []byte) ([]Document, error) {
	var docs []Document
	r := wire.NewReader(b, "consent document")
	for r.Len() > 0 {
		if len(docs) == maxDocs {
			return nil, malformed("more than %d documents", maxDocs)
		}
		raw := r.Blob("document", MaxDocument)
		if r.Err() != nil {
			return nil, r.Err()
		}
		d, err := Parse(raw)
		if err != nil {
			return nil, err
		}
		if len(docs) > 0 && d.Subject() != docs[0].Subject() {
			return nil, malformed("documents about two patients")
		}
		docs = append(docs, d)
	}
	return docs, nil
}

func (s *Service) exchange(ctx context.Context, to peer.ID, op byte, payload []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return wire.Ask(ctx, s.host, ProtocolID, to, op, payload, maxListLen, maxReason)
}

func (s *Service) serve(ctx context.Context, from peer.ID, op byte, payload []byte) ([]byte, error) {
	switch op {
	case opStop:
		r := wire.NewReader(payload, "emergency stop")
		var (
			p     ledger.Pseudonym
			staff ledger.StaffID
		)
		r.Fixed(p[:], "pseudonym")
		r.Fixed(staff[:], "staff")
		r.End("emergency stop")
		if r.Err() != nil {
			return nil, r.Err()
		}
		n, err := s.stopSessions(ctx, from, p, staff)
		var w wire.Writer
		w.U16(uint16(n))
		return w.B, err
	case opPush:
		docs, err := decodeDocs(payload)
		if err != nil {
			return nil, err
		}
		if len(docs) == 0 {
			return nil, malformed("nothing pushed")
		}
		e := s.acquire(docs[0].Subject())
		defer s.release(e)
		h := docs[0].Hash()
		if _, err = s.accept(ctx, e, docs, &h); err != nil {
			// The pusher counts this centre as not reached: it must not
			// decide for the patient before it syncs.
			e.mu.Lock()
			e.synced = 0
			e.mu.Unlock()
		}
		return nil, err
	case opSync:
		if len(payload) != len(ledger.Pseudonym{}) {
			return nil, malformed("sync of %d bytes", len(payload))
		}
		p := ledger.Pseudonym(payload)
		s.mu.Lock()
		e := s.patients[p]
		s.mu.Unlock()
		if e == nil {
			return nil, nil
		}
		e.mu.Lock()
		docs := e.p.syncable(maxDocs)
		e.mu.Unlock()
		return encodeDocs(docs), nil
	}
	return nil, malformed("unknown operation %d", op)
}
