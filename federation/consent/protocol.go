package consent

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/wire"
)

// ProtocolID is the consent protocol: one request frame per stream,
// answered by one frame whose status is 0 (ok) or 1 (refused, with the
// reason as text).
//
//	opPush:   documents about one patient (a list, below): a contract,
//	          revocation or erasure with the documents it is weighed
//	          against (the attestations of the patient's keys, the
//	          delegations, approvals and vetoes), or one of those, from
//	          the member it was submitted at. The
//	          receiver verifies them and appends the new ones to its
//	          ledger, then sends them on to every member holding a live
//	          lease from it on the patient's consent (opNotify), and
//	          answers with a u32: the milliseconds until the last lease of
//	          a leaseholder it could not reach runs out (0: it reached them
//	          all), and a u8: 1 when it restarted less than a lease ago, the
//	          wait then covering the leases its earlier process may have
//	          granted. An empty answer, from an older member, counts as 0.
//	opSync:   a 32-byte pseudonym; the answer is the list of the
//	          documents the member holds about that patient. (Kept for
//	          older members: this version asks with opLease.)
//	opStop: a 32-byte pseudonym and a 16-byte staff ID: the asking member
//	        stops its emergency sessions for that patient, that staff
//	        member's (a zero ID: all of them). The holder records each stop
//	        on its ledger and answers with a u16 count of those stopped.
//
//	opLease:  a 32-byte pseudonym and a u32 lease asked for, in
//	          milliseconds: the answer is a u32 lease granted (at most the
//	          member's own lease term; 0: none) and the list of documents
//	          the member holds about the patient. Until the lease runs out
//	          the member sends each document it is pushed about the patient
//	          to the leaseholder before it answers the push, or waits out
//	          the lease.
//	opNotify: a list, as opPush, from a member the receiver holds a lease
//	          from; the receiver verifies and appends the documents, sends
//	          them nowhere, and answers with nothing.
//	opErasures: a u64 ledger index; the answer is the patients' erasures
//	          on the member's ledger after it, oldest first, at most 256:
//	          per erasure a u64 ledger index and the signed document (u32
//	          length). A full answer means more may follow.
//
// A list is, per document, a u32 length and the signed document.
const ProtocolID = "/medfed/consent/1"

const (
	opPush     byte = 1
	opSync     byte = 2
	opStop     byte = 3
	opLease    byte = 4
	opNotify   byte = 5
	opErasures byte = 6

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

// encodeLease asks for a lease of ask on p's state.
func encodeLease(p ledger.Pseudonym, ask time.Duration) []byte {
	var w wire.Writer
	w.Bytes(p[:])
	w.U32(uint32(ask.Milliseconds()))
	return w.B
}

func decodeLease(b []byte) (ledger.Pseudonym, time.Duration, error) {
	var p ledger.Pseudonym
	r := wire.NewReader(b, "lease request")
	r.Fixed(p[:], "pseudonym")
	ask := time.Duration(r.U32("lease")) * time.Millisecond
	r.End("lease request")
	return p, ask, r.Err()
}

// encodeGrant answers a lease request: the lease granted, then the
// documents.
func encodeGrant(lease time.Duration, docs []Document) []byte {
	var w wire.Writer
	w.U32(uint32(lease.Milliseconds()))
	return append(w.B, encodeDocs(docs)...)
}

// decodeGrant parses a lease answer about patient p.
func decodeGrant(b []byte, p ledger.Pseudonym) ([]Document, time.Duration, error) {
	if len(b) < 4 {
		return nil, 0, malformed("lease answer of %d bytes", len(b))
	}
	lease := time.Duration(binary.BigEndian.Uint32(b)) * time.Millisecond
	docs, err := decodeDocs(b[4:])
	if err != nil {
		return nil, 0, err
	}
	for _, d := range docs {
		if d.Subject() != p {
			return nil, 0, malformed("lease answer about another patient")
		}
	}
	return docs, lease, nil
}

// encodeWait is a push's answer: the wait in milliseconds, rounded up so
// that it is never short of the lease it waits out, and a flags byte:
// bit 0 when the member restarted less than a lease ago.
func encodeWait(wait time.Duration, restarted bool) []byte {
	var w wire.Writer
	w.U32(uint32((wait + time.Millisecond - 1).Milliseconds()))
	w.Bool(restarted)
	return w.B
}

// decodeWait parses a push's answer: how long to wait for the pushed
// member's leaseholders, and whether it restarted less than a lease ago;
// nothing (an older member) is no wait, and a wait alone (4 bytes) no
// restart.
func decodeWait(b []byte) (time.Duration, bool, error) {
	if len(b) == 0 {
		return 0, false, nil
	}
	r := wire.NewReader(b, "push answer")
	wait := time.Duration(r.U32("wait")) * time.Millisecond
	restarted := false
	if r.Len() > 0 {
		restarted = r.Bool("restarted")
	}
	r.End("push answer")
	return wait, restarted, r.Err()
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
	case opPush, opNotify:
		docs, err := decodeDocs(payload)
		if err != nil {
			return nil, err
		}
		if len(docs) == 0 {
			return nil, malformed("nothing pushed")
		}
		p := docs[0].Subject()
		e := s.acquire(p)
		defer s.release(e)
		h := docs[0].Hash()
		if _, err = s.accept(ctx, e, docs, &h); err != nil {
			// The sender counts this centre as not reached: it must not
			// decide for the patient before it reads the state again.
			e.mu.Lock()
			e.leased = time.Time{}
			e.mu.Unlock()
			return nil, err
		}
		if op == opNotify {
			return nil, nil
		}
		// Whatever this centre held before, a leaseholder may not have it:
		// the push is answered once each has it, or with the wait until
		// the lease of each that could not be reached runs out.
		wait, _ := s.notify(ctx, p, from, payload)
		unknown := s.horizon.wait()
		return encodeWait(max(wait, unknown), unknown > 0), nil
	case opSync, opLease:
		var (
			p   ledger.Pseudonym
			ask time.Duration
			err error
		)
		if op == opSync {
			if len(payload) != len(p) {
				return nil, malformed("sync of %d bytes", len(payload))
			}
			p = ledger.Pseudonym(payload)
		} else if p, ask, err = decodeLease(payload); err != nil {
			return nil, err
		}
		docs, granted := s.grant(p, from, ask)
		if op == opSync {
			return encodeDocs(docs), nil
		}
		return encodeGrant(granted, docs), nil
	}
	if op == opErasures {
		return s.readErasures(payload)
	}
	return nil, malformed("unknown operation %d", op)
}
