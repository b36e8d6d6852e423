package api

import (
	"errors"
	"net"
	"net/http"

	"github.com/medfed/medfed/node/limit"
	"github.com/medfed/medfed/node/stats"
)

// The patient routes take no token: anyone may call them, so their work
// (a document's checks and the sync with the other members, a relay to
// every holder) is bounded three ways: for all callers together, per
// client address and per patient key. Past a bound the answer is 429,
// before anything is read or changed.
const (
	patientRate = 50 // requests a second, all clients together
	clientRate  = 5  // per client address
	keyRate     = 1  // per patient key
	keyBurst    = 10 // a patient's app signing a few requests at once
	clientBurst = 20
	maxClients  = 65536 // addresses and keys tracked at once
)

// patientLimits are the buckets of the patient routes.
type patientLimits struct {
	all, client, key *limit.Keyed
	device           *limit.Keyed   // a device's batches, per device key (device.go)
	refused          *stats.Counter // requests refused past a bound
}

func newPatientLimits() patientLimits {
	return patientLimits{
		all:     limit.New(patientRate, 2*patientRate, 1),
		client:  limit.New(clientRate, clientBurst, maxClients),
		key:     limit.New(keyRate, keyBurst, maxClients),
		device:  limit.New(deviceRate, deviceBurst, maxDeviceKeys),
		refused: new(stats.Counter),
	}
}

// errThrottled is a patient route's refusal past a bound.
var errThrottled = errors.New("too many requests: the patient routes are rate limited (for all callers, per address and per patient key); try again in a second")

// admit checks the bounds for all callers and for r's client address.
func (l patientLimits) admit(r *http.Request) error {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !l.client.Allow(host) || !l.all.Allow("") {
		l.refused.Inc()
		return errStatus{http.StatusTooManyRequests, errThrottled}
	}
	return nil
}

// admitKey checks the bound for one patient key.
func (l patientLimits) admitKey(key []byte) error {
	if !l.key.Allow(string(key)) {
		l.refused.Inc()
		return errStatus{http.StatusTooManyRequests, errThrottled}
	}
	return nil
}

// admitDevice checks the bound for one device key; a refusal is counted
// with the patient routes' (medfed_rate_limited_total{limit="api"}).
func (l patientLimits) admitDevice(key []byte) error {
	if !l.device.Allow(string(key)) {
		l.refused.Inc()
		return errStatus{http.StatusTooManyRequests, errDeviceThrottled}
	}
	return nil
}

// Throttled returns how many requests the API refused past the bounds of
// its unauthenticated routes (the patients' and the token endpoint)
// since it started.
func (s *Server) Throttled() uint64 {
	return s.limits.refused.Load() + s.tokenLimits.refused.Load()
}
