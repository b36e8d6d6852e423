package ledger_test

import (
	"errors"
	"testing"
	"time"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/ledger"
)

func TestRecordsRefuseTimesTheEncodingCannotHold(t *testing.T) {
	tests := []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"an ordinary time", time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC), true},
		{"before 1970", time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), false},
		{"the zero time", time.Time{}, false},
		{"after 2261 (would wrap around)", time.Date(2600, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"late 2261", time.Date(2261, 12, 31, 0, 0, 0, 0, time.UTC), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ledger.Record{Occurred: tt.at, DataClass: "note"}
			r.Payload[0] = 1
			e, err := ledger.NewRecord(pseudonym(1), r)
			if tt.ok != (err == nil) {
				t.Fatalf("NewRecord: %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, node.ErrInvalid) {
					t.Fatalf("error %v is not node.ErrInvalid", err)
				}
				return
			}
			got, err := e.Record()
			if err != nil || !got.Occurred.Equal(tt.at) {
				t.Fatalf("round trip gave %v, %v", got.Occurred, err)
			}
		})
	}
}

func TestEncodeRefusesWhatDecodeWouldRefuse(t *testing.T) {
	e := record(t, pseudonym(1), 1)
	e.Index = 1<<62 + 1
	if _, err := e.Encode(); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("Encode of an out-of-range index: %v", err)
	}
}

func TestAmendmentNamesTheVersionItReplaces(t *testing.T) {
	r := ledger.Record{Occurred: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), DataClass: "lab-result", Replaces: 41}
	r.Payload[0] = 7
	e, err := ledger.NewAmendment(pseudonym(2), r)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ledger.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Record()
	if err != nil || d.Kind != ledger.KindAmendment || got.Replaces != 41 {
		t.Fatalf("decoded %v %+v, %v", d.Kind, got, err)
	}
	if _, err := ledger.NewRecord(pseudonym(2), r); err == nil {
		t.Fatal("a plain record that replaces another was accepted")
	}
	r.Replaces = -1
	if _, err := ledger.NewAmendment(pseudonym(2), r); err == nil {
		t.Fatal("an amendment replacing a negative index was accepted")
	}
}
