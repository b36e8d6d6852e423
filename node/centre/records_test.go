package centre_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// A record registered through the admin socket is on the ledger and its
// payload in the store; an amendment must name a record of the same
// patient; bad requests change nothing.
func TestAddRecordThroughTheAdminSocket(t *testing.T) {
	root := t.TempDir()
	cfg := centreConfig(t, root, "centre-a")
	found(t, cfg)
	n := start(t, cfg)
	sock := admin.Dial(cfg.Data.Dir)
	ctx := context.Background()
	p := ledger.Pseudonym(sha256.Sum256([]byte("record test patient")))
	other := ledger.Pseudonym(sha256.Sum256([]byte("another patient")))
	at := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)

	res, err := sock.AddRecord(ctx, admin.RecordRequest{Pseudonym: p.String(), Class: "lab-result", Occurred: at, Payload: []byte("first")})
	if err != nil || res.Pseudonym != p.String() {
		t.Fatalf("add: %+v, %v", res, err)
	}
	if got, err := n.Centre.Payload(ctx, res.Index); err != nil || string(got) != "first" {
		t.Fatalf("payload %q, %v", got, err)
	}
	amended, err := sock.AddRecord(ctx, admin.RecordRequest{Pseudonym: p.String(), Class: "lab-result", Occurred: at, Replaces: res.Index, Payload: []byte("corrected")})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := n.Centre.Ledger.Entry(ctx, amended.Index); err != nil || e.Kind != ledger.KindAmendment {
		t.Fatalf("amendment entry %+v, %v", e, err)
	}

	size := n.Centre.Ledger.Size()
	for _, bad := range []struct {
		name string
		req  admin.RecordRequest
	}{
		{"no patient", admin.RecordRequest{Class: "lab-result", Occurred: at, Payload: []byte("x")}},
		{"both pseudonym and identifier", admin.RecordRequest{Pseudonym: p.String(), Identifier: "nhs|9434765919", Class: "lab-result", Occurred: at, Payload: []byte("x")}},
		{"bad class", admin.RecordRequest{Pseudonym: p.String(), Class: "Lab Result", Occurred: at, Payload: []byte("x")}},
		{"no payload", admin.RecordRequest{Pseudonym: p.String(), Class: "lab-result", Occurred: at}},
		{"amends another patient's record", admin.RecordRequest{Pseudonym: other.String(), Class: "lab-result", Occurred: at, Replaces: res.Index, Payload: []byte("x")}},
		{"amends no record", admin.RecordRequest{Pseudonym: p.String(), Class: "lab-result", Occurred: at, Replaces: 10_000, Payload: []byte("x")}},
		{"bad author", admin.RecordRequest{Pseudonym: p.String(), Class: "lab-result", Occurred: at, Payload: []byte("x"), Author: "zz"}},
	} {
		// The refusal crosses the socket with its kind.
		if _, err := sock.AddRecord(ctx, bad.req); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("%s: %v, want an invalid record", bad.name, err)
		}
	}
	// The same refusals from the centre's typed operation, where a typed
	// request can say them (a bad author or pseudonym is the adapter's to
	// refuse: the types cannot hold one).
	for _, bad := range []struct {
		name string
		req  centre.RecordRequest
	}{
		{"no patient", centre.RecordRequest{Class: "lab-result", Occurred: at, Payload: []byte("x")}},
		{"both pseudonym and identifier", centre.RecordRequest{Pseudonym: p, Identifier: "nhs|9434765919", Class: "lab-result", Occurred: at, Payload: []byte("x")}},
		{"bad class", centre.RecordRequest{Pseudonym: p, Class: "Lab Result", Occurred: at, Payload: []byte("x")}},
		{"no payload", centre.RecordRequest{Pseudonym: p, Class: "lab-result", Occurred: at}},
		{"amends another patient's record", centre.RecordRequest{Pseudonym: other, Class: "lab-result", Occurred: at, Replaces: res.Index, Payload: []byte("x")}},
		{"amends no record", centre.RecordRequest{Pseudonym: p, Class: "lab-result", Occurred: at, Replaces: 10_000, Payload: []byte("x")}},
	} {
		if _, err := n.AddRecord(ctx, bad.req); !errors.Is(err, centre.ErrBadRecord) {
			t.Errorf("%s: %v, want ErrBadRecord", bad.name, err)
		}
	}
	if n.Centre.Ledger.Size() != size {
		t.Fatal("a refused record reached the ledger")
	}
}
