package device_test

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/medfed/medfed/federation/device"
	"github.com/medfed/medfed/node/ledger"
)

// A patient registers their glucose meter at centre-a for a year; the
// meter then signs its readings with its own key.
func Example() {
	_, patientKey, _ := ed25519.GenerateKey(nil)
	meterPub, meterKey, _ := ed25519.GenerateKey(nil)
	p := ledger.Pseudonym{1}
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	statement, err := device.Registration{
		Federation: "nhs-north", Centre: "centre-a's peer ID", Subject: p,
		Device: meterPub, Type: device.GlucoseMeter, Classes: []string{"observation"},
		NotBefore: start, Expires: start.AddDate(1, 0, 0), Nonce: [16]byte{1}, Time: start,
	}.Sign(patientKey)
	if err != nil {
		fmt.Println(err)
		return
	}
	g, _ := device.ParseRegistration(statement)
	fmt.Println(g.Type, g.Classes, g.ID() == device.ID(meterPub))

	batch, err := device.Batch{
		Federation: "nhs-north", Centre: "centre-a's peer ID", Subject: p, Nonce: [16]byte{2}, Time: start.Add(time.Hour),
		Readings: [][]byte{[]byte(`{"resourceType": "Observation", "status": "final"}`)},
	}.Sign(meterKey)
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := device.ParseBatch(batch)
	fmt.Println(len(b.Readings), b.ID() == g.ID(), err)
	// Output:
	// glucose-meter [observation] true
	// 1 true <nil>
}
