package api_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/device"
	"github.com/medfed/medfed/federation/patient"
	"github.com/medfed/medfed/node/ledger"
)

// layoutField and layout are components.x-medfed-layouts as a third
// party reads it.
type layoutField struct {
	Name     string
	Encoding string
	Size     int
	Of       string
	By       string
	Cases    map[string]string
	Values   map[string]string
	Flags    bool
	Value    *int
	Max      int
}

type layout struct{ Fields []layoutField }

// decoded is what walking an encoding by the documented layouts found:
// each field's bytes and offset, by its path (body.provisions[0].type),
// its offset counted from the start of the layout that holds it.
type decoded struct {
	raw    map[string][]byte
	ints   map[string]uint64
	fields []found
}

// found is one field where walking found it.
type found struct {
	path, layout, name string
	offset             int // from the start of its layout
}

// walk decodes b by the layout name from offset at and returns the
// offset after it, failing the test where the bytes do not fit the
// documentation.
func walk(t *testing.T, layouts map[string]layout, name string, b []byte, at int, path string, d *decoded) int {
	t.Helper()
	l, ok := layouts[name]
	if !ok {
		t.Fatalf("%s: no layout %q documented", path, name)
	}
	start := at
	take := func(p string, n int) []byte {
		if at+n > len(b) {
			t.Fatalf("%s: %d bytes at offset %d, past the end (%d bytes)", p, n, at, len(b))
		}
		v := b[at : at+n]
		at += n
		return v
	}
	for _, f := range l.Fields {
		p := path + f.Name
		d.fields = append(d.fields, found{path: p, layout: name, name: f.Name, offset: at - start})
		switch f.Encoding {
		case "u8", "u16", "u32", "u64", "time", "millis":
			n := map[string]int{"u8": 1, "u16": 2, "u32": 4}[f.Encoding]
			if n == 0 {
				n = 8
			}
			v := take(p, n)
			d.raw[p] = v
			var x uint64
			for _, c := range v {
				x = x<<8 | uint64(c)
			}
			d.ints[p] = x
			if f.Value != nil && x != uint64(*f.Value) {
				t.Errorf("%s = %d, documented as %d", p, x, *f.Value)
			}
			if f.Values != nil {
				valid := f.Flags && x == 0
				for k := range f.Values {
					bit, _ := strconv.ParseUint(k, 10, 64)
					valid = valid || (!f.Flags && bit == x)
					if f.Flags {
						x &^= bit
					}
				}
				if f.Flags && x != 0 || !valid && !f.Flags {
					t.Errorf("%s = %d: not among the documented values %v", p, d.ints[p], f.Values)
				}
			}
		case "bytes":
			d.raw[p] = take(p, f.Size)
		case "str":
			n := int(take(p, 1)[0])
			if f.Max > 0 && n > f.Max {
				t.Errorf("%s: %d bytes, documented as at most %d", p, n, f.Max)
			}
			d.raw[p] = take(p, n)
		case "blob":
			n := int(binary.BigEndian.Uint32(take(p, 4)))
			content := take(p, n)
			d.raw[p] = content
			if f.By == "" {
				break // opaque: a reading's JSON
			}
			inner, ok := f.Cases[strconv.FormatUint(d.ints[path+f.By], 10)]
			if !ok {
				t.Fatalf("%s: no layout documented for %s %d", p, f.By, d.ints[path+f.By])
			}
			if end := walk(t, layouts, inner, content, 0, p+".", d); end != len(content) {
				t.Errorf("%s: the %s layout covers %d of its %d bytes", p, inner, end, len(content))
			}
		case "list":
			n := int(take(p, 1)[0])
			if f.Max > 0 && n > f.Max {
				t.Errorf("%s: %d elements, documented as at most %d", p, n, f.Max)
			}
			d.ints[p] = uint64(n)
			for i := range n {
				at = walk(t, layouts, f.Of, b, at, fmt.Sprintf("%s[%d].", p, i), d)
			}
		case "struct":
			at = walk(t, layouts, f.Of, b, at, p+".", d)
		default:
			t.Fatalf("%s: encoding %q is not documented", p, f.Encoding)
		}
	}
	return at
}

// documentedOffsets reads the offsets the Markdown tables of a schema's
// description give, by layout and field ("…" where they vary).
func documentedOffsets(t *testing.T, markdown string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	current := ""
	heading := regexp.MustCompile(`^\*\*([a-z-]+)\*\*: `)
	row := regexp.MustCompile(`^\| ([0-9]+|…) \| ([A-Za-z]+) \|`)
	for _, line := range strings.Split(markdown, "\n") {
		if m := heading.FindStringSubmatch(line); m != nil {
			current = m[1]
			out[current] = map[string]string{}
		}
		if m := row.FindStringSubmatch(line); m != nil && current != "" {
			out[current][m[2]] = m[1]
		}
	}
	return out
}

// A patient's app is built from the layouts /openapi.json documents: a
// document and a request the Go code signs decode by them field by field,
// to their last byte, with the offsets the tables give, the values
// signed, and a signature over what the documentation says is signed.
func TestDocumentedLayoutsDecodeSignedDocuments(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Description string
				Layout      string `json:"x-medfed-layout"`
			}
			Layouts map[string]layout `json:"x-medfed-layouts"`
		}
	}
	if err := json.Unmarshal(servedDoc(t), &doc); err != nil {
		t.Fatal(err)
	}
	layouts := doc.Components.Layouts
	key := mustKey(t)
	pub := key.Public().(ed25519.PublicKey)
	var subject ledger.Pseudonym
	copy(subject[:], bytes.Repeat([]byte{0xab}, 32))
	issued := time.Date(2026, 11, 1, 9, 30, 0, 0, time.UTC)
	centreKey, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	centre, err := peer.IDFromPublicKey(centreKey.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	other := peer.ID(strings.Repeat("z", 38)) // any bytes: a holder's ID is only compared
	staff := ledger.StaffID{1, 2, 3}
	id, target := consent.NewID(), consent.NewID()
	attestation := [32]byte{9, 9, 9}
	end := issued.Add(365 * 24 * time.Hour)

	sign := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	contract := sign(consent.SignContract(key, consent.Contract{ID: id, Version: 3, Federation: "medfed-demo", Subject: subject, Issued: issued, Base: consent.OptOut,
		Provisions: []consent.Provision{{Type: consent.Permit, Actions: consent.Access | consent.Copy, Purposes: consent.Treatment,
			Actors: []consent.Actor{{Centre: centre, Role: consent.Clinician, Staff: staff}, {Role: consent.Researcher}}, Classes: []string{"lab-result", "imaging"},
			Period: consent.Period{Start: issued, End: end}, DataPeriod: consent.Period{End: issued},
			Provisions: []consent.Provision{{Type: consent.Deny, Purposes: consent.Emergency}}}}}))
	revocation := sign(consent.SignRevocation(key, consent.Revocation{Federation: "medfed-demo", Subject: subject, Target: target, Issued: issued}))
	token := sign(consent.SignToken(key, consent.Token{ID: id, Federation: "medfed-demo", Subject: subject, Grantee: consent.Actor{Centre: centre, Staff: staff},
		Actions: consent.Copy, Purposes: consent.Treatment, Classes: []string{"lab-result"}, DataPeriod: consent.Period{Start: issued}, Issued: issued, Expires: end, Uses: 7}))
	veto := sign(consent.SignVeto(key, consent.Veto{Federation: "medfed-demo", Subject: subject, Attestation: attestation, Issued: issued}))
	erasure := sign(consent.SignErasure(key, consent.Erasure{Federation: "medfed-demo", Subject: subject, Issued: issued}))
	now := time.Now().UTC().Truncate(time.Millisecond)
	nonce := [16]byte{7, 7}
	cursors := []patient.Cursor{{Holder: centre, From: 12}, {Holder: other, From: 65536}}
	slices.SortFunc(cursors, func(a, b patient.Cursor) int { return strings.Compare(string(a.Holder), string(b.Holder)) })
	view := sign(patient.Request{Op: patient.View, Federation: "medfed-demo", Relay: centre, Subject: subject, Nonce: nonce, Time: now, Cursors: cursors}.Sign(key))
	erase := sign(patient.Request{Op: patient.Erase, Federation: "medfed-demo", Relay: centre, Subject: subject, Nonce: nonce, Time: now}.Sign(key))

	meterKey := mustKey(t)
	meter := meterKey.Public().(ed25519.PublicKey)
	registration := sign(device.Registration{Federation: "medfed-demo", Centre: centre, Subject: subject, Device: meter, Type: device.BloodPressureMonitor,
		Classes: []string{"lab-result", "observation"}, NotBefore: issued, Expires: end, Nonce: nonce, Time: now}.Sign(key))
	deviceRevocation := sign(device.Revocation{Federation: "medfed-demo", Centre: centre, Subject: subject, Device: meter, Nonce: nonce, Time: now}.Sign(key))
	batch := sign(device.Batch{Federation: "medfed-demo", Centre: centre, Subject: subject, Nonce: nonce, Time: now,
		Readings: [][]byte{[]byte(`{"resourceType":"Observation"}`), []byte(`{}`)}}.Sign(meterKey))

	secs := func(t time.Time) []byte { return binary.BigEndian.AppendUint64(nil, uint64(t.Unix())) }
	u := func(n int, v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v)[8-n:] }
	head := map[string][]byte{"body.federation": []byte("medfed-demo"), "body.subject": subject[:], "body.issued": secs(issued)}
	with := func(m map[string][]byte) map[string][]byte {
		out := map[string][]byte{}
		for k, v := range head {
			out[k] = v
		}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name, schema string
		signed       []byte
		kind         consent.Kind // consent documents
		want         map[string][]byte
	}{
		{"a contract", "SignedConsentDocument", contract, consent.KindContract, with(map[string][]byte{
			"body.id": id[:], "body.version": u(4, 3), "body.base": {2},
			"body.provisions[0].type": {1}, "body.provisions[0].actions": {3}, "body.provisions[0].purposes": {1},
			"body.provisions[0].actors[0].centre": []byte(centre), "body.provisions[0].actors[0].role": {1}, "body.provisions[0].actors[0].staff": staff[:],
			"body.provisions[0].actors[1].centre": {}, "body.provisions[0].actors[1].role": {4}, "body.provisions[0].actors[1].staff": make([]byte, 16),
			"body.provisions[0].classes[0].class": []byte("lab-result"), "body.provisions[0].classes[1].class": []byte("imaging"),
			"body.provisions[0].period.start": secs(issued), "body.provisions[0].period.end": secs(end),
			"body.provisions[0].dataPeriod.start": make([]byte, 8), "body.provisions[0].dataPeriod.end": secs(issued),
			"body.provisions[0].provisions[0].type": {2}, "body.provisions[0].provisions[0].purposes": {4},
		})},
		{"a revocation", "SignedConsentDocument", revocation, consent.KindRevocation, with(map[string][]byte{"body.target": target[:]})},
		{"a token", "SignedConsentDocument", token, consent.KindToken, with(map[string][]byte{
			"body.id": id[:], "body.grantee.centre": []byte(centre), "body.grantee.role": {0}, "body.grantee.staff": staff[:],
			"body.actions": {2}, "body.purposes": {1}, "body.classes[0].class": []byte("lab-result"),
			"body.dataPeriod.start": secs(issued), "body.dataPeriod.end": make([]byte, 8), "body.expires": secs(end), "body.uses": u(2, 7),
		})},
		{"a veto", "SignedConsentDocument", veto, consent.KindVeto, with(map[string][]byte{"body.attestation": attestation[:]})},
		{"an erasure", "SignedConsentDocument", erasure, consent.KindErasure, head},
		{"a view request with cursors", "SignedPatientRequest", view, 0, map[string][]byte{
			"op": {1}, "federation": []byte("medfed-demo"), "relay": []byte(centre), "subject": subject[:], "key": pub, "nonce": nonce[:],
			"time": u(8, uint64(now.UnixMilli())), "cursors[0].holder": []byte(cursors[0].Holder), "cursors[0].from": u(8, uint64(cursors[0].From)),
			"cursors[1].holder": []byte(cursors[1].Holder), "cursors[1].from": u(8, uint64(cursors[1].From)),
		}},
		{"an erase request", "SignedPatientRequest", erase, 0, map[string][]byte{"op": {2}, "relay": []byte(centre), "key": pub, "time": u(8, uint64(now.UnixMilli()))}},
		{"a device's registration", "SignedDeviceRegistration", registration, 0, map[string][]byte{
			"federation": []byte("medfed-demo"), "centre": []byte(centre), "subject": subject[:], "key": pub, "device": meter, "type": {3},
			"classes[0].class": []byte("lab-result"), "classes[1].class": []byte("observation"), "notBefore": secs(issued), "expires": secs(end),
			"nonce": nonce[:], "time": u(8, uint64(now.UnixMilli())),
		}},
		{"a device's revocation", "SignedDeviceRevocation", deviceRevocation, 0, map[string][]byte{
			"centre": []byte(centre), "subject": subject[:], "key": pub, "device": meter, "nonce": nonce[:], "time": u(8, uint64(now.UnixMilli())),
		}},
		{"a device's batch", "SignedDeviceBatch", batch, 0, map[string][]byte{
			"centre": []byte(centre), "subject": subject[:], "device": meter, "nonce": nonce[:], "time": u(8, uint64(now.UnixMilli())),
			"readings[0].observation": []byte(`{"resourceType":"Observation"}`), "readings[1].observation": []byte(`{}`),
		}},
	}
	// What a device's message's signature covers, the field naming the
	// key that signs it, and that key.
	deviceSigned := map[string]struct {
		context, field string
		key            ed25519.PublicKey
	}{
		"SignedDeviceRegistration": {device.RegistrationContext, "key", pub},
		"SignedDeviceRevocation":   {device.RevocationContext, "key", pub},
		"SignedDeviceBatch":        {device.BatchContext, "device", meter},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			schema := doc.Components.Schemas[tc.schema]
			d := &decoded{raw: map[string][]byte{}, ints: map[string]uint64{}}
			if n := walk(t, layouts, schema.Layout, tc.signed, 0, "", d); n != len(tc.signed) {
				t.Fatalf("the documented layout covers %d of the %d bytes signed", n, len(tc.signed))
			}
			for path, want := range tc.want {
				if got, ok := d.raw[path]; !ok || !bytes.Equal(got, want) {
					t.Errorf("%s = %x, want %x", path, got, want)
				}
			}
			// The offsets the tables give are where the fields are.
			tables := documentedOffsets(t, schema.Description)
			for _, f := range d.fields {
				documented, ok := tables[f.layout][f.name]
				if !ok {
					t.Errorf("%s: the %s table does not list %s", f.path, f.layout, f.name)
					continue
				}
				if documented != "…" && documented != strconv.Itoa(f.offset) {
					t.Errorf("%s: documented at offset %s of %s, found at %d", f.path, documented, f.layout, f.offset)
				}
			}
			// What is signed, and by whom, as documented.
			var context string
			var signer ed25519.PublicKey
			signedLen := len(tc.signed) - ed25519.SignatureSize
			want := pub
			switch {
			case tc.kind != 0:
				if got := consent.Kind(d.ints["kind"]); got != tc.kind {
					t.Fatalf("kind %d, want %d", got, tc.kind)
				}
				context, signer = "medfed/consent/v1", d.raw["signer"]
				signedLen -= ed25519.PublicKeySize
			case deviceSigned[tc.schema].context != "":
				ds := deviceSigned[tc.schema]
				context, signer, want = ds.context, d.raw[ds.field], ds.key
			default:
				context, signer = "medfed/patient/v1 request", d.raw["key"]
			}
			if !bytes.Equal(signer, want) {
				t.Fatalf("the documented signer is %x, not the key that signed", signer)
			}
			msg := append(append([]byte(context), 0), tc.signed[:signedLen]...)
			if !ed25519.Verify(signer, msg, d.raw["signature"]) {
				t.Fatal("the signature does not verify over what the documentation says is signed")
			}
		})
	}
	// A centre's peer ID in binary is what the documentation says: 38
	// bytes, 00 24 08 01 12 20 and its Ed25519 key.
	raw, err := centreKey.GetPublic().Raw()
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}, raw...); !bytes.Equal([]byte(centre), want) {
		t.Fatalf("a centre's peer ID is %x, documented as %x", []byte(centre), want)
	}
}
