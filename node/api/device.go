package api

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/medfed/medfed/federation/device"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
)

// Devices that contribute readings: the patient registers and revokes
// them with statements they sign (routes of the patient's, authenticated
// by the signature), and each device posts batches of FHIR Observations
// signed with its own key (a route of the device's, authenticated by its
// signature). See federation/device.

// DeviceRegistrationBody is a device's registration the patient signed
// (medfed device register --out writes one).
type DeviceRegistrationBody struct {
	Registration []byte `json:"registration" layout:"SignedDeviceRegistration" doc:"the signed registration, base64"`
}

// DeviceRevocationBody is a device's revocation the patient signed.
type DeviceRevocationBody struct {
	Revocation []byte `json:"revocation" layout:"SignedDeviceRevocation" doc:"the signed revocation, base64"`
}

// ReadingsBody is a batch of readings a device signed (medfed device
// post sends one).
type ReadingsBody struct {
	Batch []byte `json:"batch" layout:"SignedDeviceBatch" doc:"the signed batch, base64: up to 100 FHIR Observations, each as the device wrote its JSON"`
}

// DeviceRegistration is a device registered for a patient at this
// centre, as its registration and revocation say.
type DeviceRegistration struct {
	Pseudonym    string
	Device       string // its ID on ledgers, 32 hex digits: derived from its key
	Key          string // its Ed25519 public key, 64 hex digits
	Type         string
	Classes      []string
	NotBefore    time.Time
	Expires      time.Time
	Registered   time.Time // when the patient signed it
	Entry        int64     // the device entry on this centre's ledger
	Revoked      time.Time `json:",omitzero"` // when the patient signed the revocation
	RevokedEntry int64     `json:",omitempty"`
	State        string    // in force, not yet, expired, revoked or tampered
}

// DeviceRegistrationOf is v's JSON shape.
func DeviceRegistrationOf(v centre.DeviceView) DeviceRegistration {
	return DeviceRegistration{Pseudonym: v.Pseudonym.String(), Device: v.Device.String(), Key: hex.EncodeToString(v.Key), Type: v.Type.String(),
		Classes: v.Classes, NotBefore: v.NotBefore, Expires: v.Expires, Registered: v.Registered, Entry: v.Entry, Revoked: v.Revoked,
		RevokedEntry: v.RevokedEntry, State: v.State}
}

// DeviceList is the devices registered for a patient at this centre.
type DeviceList struct {
	Pseudonym string
	Devices   []DeviceRegistration
}

// DeviceAddress is what a device's batch to this centre names.
type DeviceAddress struct {
	Federation string
	Centre     string // this centre's libp2p peer ID (base58): in binary, a batch's centre field
	Name       string
	// MaxReadings and MaxReading bound a batch: readings, and bytes of
	// each; MaxSkewSeconds, how far its time may be from this centre's
	// clock.
	MaxReadings    int
	MaxReading     int
	MaxSkewSeconds int
}

// ReadingsStored says where a batch's readings went: records at
// consecutive indexes of this centre's ledger.
type ReadingsStored struct {
	Pseudonym     string
	Device        string
	First         int64 // the first reading's record
	Count         int
	AnnounceError string `json:",omitempty"`
}

// ReadingsStoredOf is r's JSON shape.
func ReadingsStoredOf(r centre.ReadingsResult) ReadingsStored {
	return ReadingsStored{Pseudonym: r.Pseudonym.String(), Device: r.Device.String(), First: r.First, Count: r.Count, AnnounceError: ErrorText(r.Announce)}
}

// A device's batches are bounded per device key on top of the patient
// routes' bounds for all callers and per address: a device posts every
// few minutes, and its readings are bounded again by the centre
// (federation/device's rate, counted in readings).
const (
	deviceRate     = 1 // batches a second, per device key
	deviceBurst    = 5
	maxDeviceKeys  = 65536
	maxReadingBody = 2 << 20 // a batch of device.MaxBatch bytes in base64, and the field around it
)

var errDeviceThrottled = errors.New("too many requests: a device's batches are rate limited (per device key); try again in a second")

func (s *Server) deviceRoutes() []route {
	return []route{
		{method: "GET", pattern: "/v1/devices/address", auth: authPublic, summary: "What a device's batch to this centre names",
			answer: DeviceAddress{}, handle: s.deviceAddress,
			op: "deviceAddress", tag: "devices", about: "The federation's ID and this centre's peer ID, which a device's batch (and a patient's registration) names, and the bounds of a batch: nothing about any patient."},
		{method: "POST", pattern: "/v1/devices", auth: authPatient, summary: "Register a device of the patient's that contributes readings",
			body: DeviceRegistrationBody{}, status: http.StatusCreated, answer: DeviceRegistration{}, handle: s.registerDevice,
			op: "registerDevice", tag: "devices", about: "Takes a registration the patient signed (SignedDeviceRegistration): the device's key, its type as a code, the data classes it may contribute and its term. " +
				"The signature is checked against the patient's attested key; the device entry (its ID, the classes, the term, the statement's hash; never its key or type) goes on this centre's ledger, " +
				"and the device may post readings here (POST /v1/devices/readings) until its expiry or a revocation. A later registration of the same device replaces it; registering again what is registered changes nothing. " +
				"409 when the patient signed a later registration or a revocation of the device."},
		{method: "POST", pattern: "/v1/devices/revocations", auth: authPatient, summary: "Revoke a device's registration",
			body: DeviceRevocationBody{}, answer: DeviceRegistration{}, handle: s.revokeDevice,
			op: "revokeDevice", tag: "devices", about: "Takes a revocation the patient signed (SignedDeviceRevocation): from the answer on, the device's batches are refused; " +
				"the revocation entry goes on this centre's ledger. The readings it added stay records of the patient's, released by consent like any record. 404 for a device not registered here."},
		{method: "POST", pattern: "/v1/devices/readings", auth: authPatient, summary: "A device posts a batch of readings",
			body: ReadingsBody{}, limit: maxReadingBody, status: http.StatusCreated, answer: ReadingsStored{}, handle: s.postReadings,
			op: "postReadings", tag: "devices", about: "Takes a batch the device signed with its own key (SignedDeviceBatch): up to 100 FHIR R4 Observations of vital signs and point-of-care tests " +
				"(a LOINC code this centre maps to a data class, e.g. heart rate 8867-4 or capillary glucose 41653-7 to observation, HbA1c 4548-4 to lab-result; a UCUM quantity; effectiveDateTime with its zone; " +
				"a subject, when given, the batch's patient; no other element). Each is stored as it came, as a record of the patient whose author is the device, in one append; the answer names their ledger entries. " +
				"Refused, with nothing stored: a signature that does not verify (403), a device not registered for the patient here, revoked or outside its term (403), a class it is not registered for (403), " +
				"a batch seen before (409), more than 5 minutes from the centre's clock, or a malformed Observation (400), past the device's rate (429 per request; 503 past its readings an hour, with Retry-After)."},
		{method: "GET", pattern: "/v1/patients/{pseudonym}/devices", auth: authStaff, roles: []string{"registrar", "clinician", "privacy-officer", "admin"},
			summary: "List the devices registered for a patient here", answer: DeviceList{},
			params: []param{{"pseudonym", "path", "the patient's pseudonym, 64 hex digits"}}, handle: s.listDevices,
			op: "listDevices", tag: "devices", about: "Each device registered for the patient at this centre, revoked ones included: its ID and key, type, classes, term, its ledger entries, and where it stands now."},
	}
}

func (s *Server) deviceAddress(context.Context, *call) (any, error) {
	a := s.node.DeviceAddress()
	return DeviceAddress{Federation: a.Federation, Centre: a.Centre.String(), Name: a.Name,
		MaxReadings: device.MaxReadings, MaxReading: device.MaxReading, MaxSkewSeconds: int(device.MaxSkew.Seconds())}, nil
}

func (s *Server) registerDevice(ctx context.Context, c *call) (any, error) {
	var b DeviceRegistrationBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	g, err := device.ParseRegistration(b.Registration)
	if err != nil {
		return nil, err
	}
	if err := s.limits.admitKey(g.Key); err != nil {
		return nil, err
	}
	v, err := s.node.RegisterDevice(ctx, b.Registration)
	if err != nil {
		return nil, err
	}
	return DeviceRegistrationOf(v), nil
}

func (s *Server) revokeDevice(ctx context.Context, c *call) (any, error) {
	var b DeviceRevocationBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	v, err := device.ParseRevocation(b.Revocation)
	if err != nil {
		return nil, err
	}
	if err := s.limits.admitKey(v.Key); err != nil {
		return nil, err
	}
	out, err := s.node.RevokeDevice(ctx, b.Revocation)
	if err != nil {
		return nil, err
	}
	return DeviceRegistrationOf(out), nil
}

func (s *Server) listDevices(ctx context.Context, c *call) (any, error) {
	p, err := c.pseudonym()
	if err != nil {
		return nil, err
	}
	vs, err := s.node.Devices(ctx, p)
	if err != nil {
		return nil, err
	}
	out := DeviceList{Pseudonym: p.String(), Devices: []DeviceRegistration{}}
	for _, v := range vs {
		out.Devices = append(out.Devices, DeviceRegistrationOf(v))
	}
	return out, nil
}

func (s *Server) postReadings(ctx context.Context, c *call) (any, error) {
	var b ReadingsBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	batch, err := device.ParseBatch(b.Batch)
	if err != nil {
		return nil, err
	}
	if err := s.limits.admitDevice(batch.Device); err != nil {
		return nil, err
	}
	readings, err := ReadObservations(batch.Subject, batch.Readings)
	if err != nil {
		return nil, err
	}
	res, err := s.node.AddReadings(ctx, centre.ReadingsRequest{Batch: b.Batch, Readings: readings})
	if errors.Is(err, device.ErrRate) {
		c.w.Header().Set("Retry-After", "60")
	}
	if err != nil {
		return nil, err
	}
	if res.Announce != nil {
		c.w.Header().Set("Warning", `199 medfed "stored, but not yet announced in the directory; the node announces it again at its next start"`)
	}
	return ReadingsStoredOf(res), nil
}

// ReadObservations reads each reading of a batch about patient p as a
// FHIR Observation a device may post (readObservation), and returns what
// the centre records of each: its class and when it was taken. The first
// that is not one is refused, by its place in the batch.
func ReadObservations(p ledger.Pseudonym, readings [][]byte) ([]device.Reading, error) {
	out := make([]device.Reading, len(readings))
	for i, r := range readings {
		o, err := readObservation(r)
		if err == nil {
			err = o.about(p)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: reading %d of %d: %v", errBadRequest, i+1, len(readings), err)
		}
		out[i] = device.Reading{Class: o.class, Occurred: o.effective}
	}
	return out, nil
}
