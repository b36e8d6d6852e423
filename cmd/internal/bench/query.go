package bench

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/query"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest/harness"
)

// measureQuery measures the cross-centre query on ten `medfed node`s in one
// process over 127.0.0.1 TCP, each patient's records at three of them and
// a signed contract of 10 nested provisions for each: from a random
// centre, the whole query (directory lookup, three requests in parallel,
// each holder's checks, consent decision, durable access entry, proofs
// and sealing; the requester's verification and decryption of every
// answer).
//   - query_p50_ms, query_p99_ms: one query at a time;
//   - query_per_s: queries per second with 32 in flight, and
//     query_cpu_ms the CPU time of each (the process's, every core's);
//   - central_query_*: the same queries on one central SQLite index (see
//     centralIndex), the floor a federation is compared with;
//   - query_floor_per_s, query_floor_cpu_ms: the CPU floor of a query on
//     this machine's cores, what query_per_s is a fraction of (see
//     measureQueryFloor), measured once the federation is quiet again.
func measureQuery(ctx context.Context, env env) (_ map[string]float64, err error) {
	nodes, err := startFederation(ctx, filepath.Join(env.dir, "query"), 10, 10, centre.DefaultConfig().Ledger.CheckpointGap)
	defer func() { err = errors.Join(err, nodes.Stop()) }()
	if err != nil {
		return nil, err
	}
	patients := randomPseudonyms(env.pick(300, 60))
	rng := rand.New(rand.NewPCG(3, 3))
	holders := make([][]int, len(patients))
	for i, p := range patients {
		holders[i] = rng.Perm(len(nodes))[:3]
		for _, h := range holders[i] {
			if err := harness.Visit(ctx, nodes[h].Centre, p, i); err != nil {
				return nil, err
			}
		}
	}
	for _, n := range nodes {
		if _, err := n.AnnounceHeld(ctx); err != nil {
			return nil, err
		}
	}
	ids := make([]peer.ID, len(nodes))
	for i, n := range nodes {
		ids[i] = n.Centre.ID()
	}
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	fed := nodes[0].Membership.Current().Federation
	standing := make([]consent.Standing, len(patients))
	for i, p := range patients {
		registrar := nodes[holders[i][0]].Consent
		if _, err := registrar.Attest(ctx, p, key.Public().(ed25519.PublicKey), false, ledger.StaffID{}); err != nil {
			return nil, err
		}
		c := contract(ids, p)
		c.Federation, c.Issued = fed, now()
		standing[i] = consent.Standing{Contract: &c}
		signed, err := consent.SignContract(key, c)
		if err != nil {
			return nil, err
		}
		if _, err := registrar.Submit(ctx, signed); err != nil {
			return nil, err
		}
	}
	env.logf("query: %d patients at 3 of %d centres, each with a signed contract", len(patients), len(nodes))
	if err := harness.WaitFor(ctx, 2*time.Minute, "every record is in a final checkpoint and every holder in the directory", func() bool {
		if !allFinal(nodes, int64(len(patients))) {
			return false
		}
		for i, p := range patients {
			res, err := nodes[0].Directory.Lookup(ctx, p)
			if err != nil || len(res.Holders) != len(holders[i]) {
				return false
			}
		}
		return true
	}); err != nil {
		return nil, err
	}
	one := func(rng *rand.Rand) (time.Duration, error) {
		i := rng.IntN(len(patients))
		from := nodes[rng.IntN(len(nodes))]
		start := time.Now()
		res, err := from.Query.Query(ctx, query.Spec{Subject: patients[i], Role: consent.Clinician, Purpose: consent.Treatment})
		el := time.Since(start)
		if err != nil {
			return 0, err
		}
		if len(res.Holders) != 3 {
			return 0, fmt.Errorf("a query found %d holders, want 3", len(res.Holders))
		}
		for _, a := range res.Holders {
			if a.Err != nil {
				return 0, fmt.Errorf("a holder failed: %w", a.Err)
			}
			if a.Permit && (len(a.Records) != 1 || a.Records[0].Payload == nil) {
				return 0, fmt.Errorf("a holder released %d records", len(a.Records))
			}
		}
		return el, nil
	}
	m := map[string]float64{}
	stop, err := profile("query")
	if err != nil {
		return nil, err
	}
	err = latencyAndThroughput(env, "queries", "query", one, m)
	if err := errors.Join(err, stop()); err != nil {
		return nil, err
	}

	// The floor and the central index are measured once the federation
	// is quiet: the checkpoints and witnessing that the queries' access
	// entries cause are the queries' CPU, not theirs.
	if err := harness.WaitFor(ctx, 2*time.Minute, "every access entry is in a final checkpoint", func() bool { return allFinal(nodes, 0) }); err != nil {
		return nil, err
	}
	if m["query_floor_per_s"], m["query_floor_cpu_ms"], err = measureQueryFloor(ctx, env, ids, patients, holders); err != nil {
		return nil, err
	}

	// The central floor: the same patients, records and contracts in one
	// SQLite index on one node, asked the same queries.
	central, err := openCentral(filepath.Join(env.dir, "query-central.db"))
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, central.Close()) }()
	records := make([][]centralRecord, len(patients))
	for i := range patients {
		for _, h := range holders[i] {
			meta, payload := harness.ClinicLetter(nodes[h].Centre.Name, i)
			records[i] = append(records[i], centralRecord{Centre: ids[h], Class: meta.DataClass, Recorded: meta.Occurred, Payload: payload})
		}
	}
	if err := central.addRecords(ctx, patients, records, standing); err != nil {
		return nil, err
	}
	oneCentral := func(rng *rand.Rand) (time.Duration, error) {
		i := rng.IntN(len(patients))
		q := consent.Request{Centre: ids[rng.IntN(len(ids))], Role: consent.Clinician, Action: consent.Access, Purpose: consent.Treatment}
		start := time.Now()
		q.Time = start
		read, _, err := central.query(ctx, patients[i], q, consentPolicy)
		el := time.Since(start)
		if err == nil && read != 3 {
			err = fmt.Errorf("a central query read %d records, want 3", read)
		}
		return el, err
	}
	if err := latencyAndThroughput(env, "central queries", "central_query", oneCentral, m); err != nil {
		return nil, err
	}
	return m, nil
}

// allFinal reports whether every centre's latest final checkpoint covers
// all but at most behind of its ledger's entries.
func allFinal(nodes harness.Nodes, behind int64) bool {
	for _, n := range nodes {
		f, ok := n.Centre.Ledger.LatestFinal()
		if !ok || f.Size < n.Centre.Ledger.Size()-behind {
			return false
		}
	}
	return true
}

// measureQueryFloor times what a query cannot do without, as many times as
// one query of the suite does it, with as many queries in flight as
// query_per_s, and returns queries per second and the CPU time of one:
//   - the requester signs the request (Ed25519) and draws its sealing key
//     (X25519);
//   - each of the patient's three holders (holders: the suite's, by
//     patient), in parallel as the requester asks them,
//     verifies the request's signature (Ed25519), seals the one record's
//     payload to that key (HPKE base mode, DHKEM(X25519)/HKDF-SHA256/
//     AES-256-GCM: an encapsulation, two X25519 operations, and one
//     AES-GCM seal), appends the access entry to its own ledger durably
//     (a real SQLite ledger, group commit, synchronous=FULL: one ledger a
//     centre, as in the suite, so that the entries share a commit as they
//     do there, with the others of their centre only) and signs the
//     response (Ed25519);
//   - the requester verifies each of the three responses' signatures
//     (Ed25519) and opens each payload (one X25519 operation, one AES-GCM
//     open).
//
// Everything else a query does is left out, and is what query_per_s
// spends beyond it: the network and libp2p streams, the directory lookup,
// encoding, the holder's checks of membership, time and replay, reading
// the patient's records, the consent decision, inclusion proofs, the
// final checkpoint's cosignatures, and the checkpoints and witnessing
// that the access entries cause.
func measureQueryFloor(ctx context.Context, env env, ids []peer.ID, patients []ledger.Pseudonym, holders [][]int) (perS, cpuMs float64, err error) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	ledgers := make([]*ledger.Ledger, len(ids))
	for i := range ledgers {
		l, err := ledger.Open(ctx, filepath.Join(env.dir, fmt.Sprintf("query-floor-%d.db", i)), ledger.Options{Origin: ledger.Origin(federationID, fmt.Sprintf("floor-%d", i)), Key: key})
		if err != nil {
			return 0, 0, err
		}
		defer l.Close()
		ledgers[i] = l
	}
	// A request and a payload of the suite's sizes.
	sk, err := query.NewSealingKey()
	if err != nil {
		return 0, 0, err
	}
	q := query.Request{Federation: federationID, Requester: ids[0], Role: consent.Clinician, Action: consent.Access, Purpose: consent.Treatment,
		Subject: patients[0], Time: time.Now(), Key: sk.Public(), Nonce: [16]byte{1}}
	signed, err := q.Sign(key)
	if err != nil {
		return 0, 0, err
	}
	msg := signed[:len(signed)-ed25519.SignatureSize]
	_, payload := harness.ClinicLetter("centre-00", 0)
	plaintext := append(make([]byte, 4+32), payload...) // the opening, then the payload
	kem, kdf, aead := hpke.DHKEM(ecdh.X25519()), hpke.HKDFSHA256(), hpke.AES256GCM()
	info, aad := []byte("medfed/query/v1 payload"), make([]byte, 8)

	pub := key.Public().(ed25519.PublicKey)
	// holder is one holder's part and the requester's check of its answer.
	holder := func(i, p, h int, sig []byte, priv hpke.PrivateKey) error {
		if !ed25519.Verify(pub, msg, sig) {
			return errors.New("a signature does not verify")
		}
		enc, sender, err := hpke.NewSender(priv.PublicKey(), kdf, aead, info)
		if err != nil {
			return err
		}
		sealed, err := sender.Seal(aad, plaintext)
		if err != nil {
			return err
		}
		var nonce [16]byte
		binary.BigEndian.PutUint64(nonce[:], uint64(i))
		e, err := consent.NewAccess(patients[p], consent.AccessEntry{Event: consent.EventAccess, Requester: ids[h], Role: consent.Clinician,
			Action: consent.Access, Purpose: consent.Treatment, Permitted: true, Basis: consent.BasisContract, Nonce: nonce, Released: 1, Records: []int64{int64(i)}})
		if err != nil {
			return err
		}
		if _, err := ledgers[h].Append(ctx, e); err != nil {
			return err
		}
		answer := ed25519.Sign(key, msg) // the response
		if !ed25519.Verify(pub, msg, answer) {
			return errors.New("a signature does not verify")
		}
		r, err := hpke.NewRecipient(enc, priv, kdf, aead, info)
		if err != nil {
			return err
		}
		_, err = r.Open(aad, sealed)
		return err
	}
	// one is a query: the holders in parallel, as the requester asks them.
	one := func(i int) error {
		p := i % len(patients)
		sig := ed25519.Sign(key, msg) // the request
		priv, err := kem.GenerateKey()
		if err != nil {
			return err
		}
		errs := make([]error, len(holders[p]))
		var wg sync.WaitGroup
		for j, h := range holders[p] {
			wg.Go(func() { errs[j] = holder(i, p, h, sig, priv) })
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	const inFlight = 32
	total := env.pick(10_000, 1_000)
	start, cpu0 := time.Now(), processCPU()
	if err := inParallel(inFlight, total, func(_, i int) error { return one(i) }); err != nil {
		return 0, 0, fmt.Errorf("query floor: %w", err)
	}
	perS, cpu := float64(total)/time.Since(start).Seconds(), cpuMillis(processCPU()-cpu0, total)
	env.logf("query: the floor of %d queries, %d in flight (signatures, sealing, access entries): %.0f/s, %.2f ms of CPU each", total, inFlight, perS, cpu)
	return perS, cpu, nil
}

// profile writes a CPU profile of one phase of a suite, what (the query
// suite's federated queries, "query", or the directory suite's million
// announcements, "announce"), to the file MEDFED_CPUPROFILE names, and an
// execution trace (go tool trace: where the goroutines wait, not only
// where the CPU goes) to the file MEDFED_TRACE names, when they name one,
// what added before the extension: MEDFED_CPUPROFILE=cpu.pprof writes
// cpu-query.pprof and cpu-announce.pprof.
func profile(what string) (stop func() error, err error) {
	var stops []func() error
	stop = func() error {
		var err error
		for _, s := range slices.Backward(stops) {
			err = errors.Join(err, s())
		}
		return err
	}
	for _, p := range []struct {
		env   string
		start func(io.Writer) error
		stop  func()
	}{{"MEDFED_CPUPROFILE", pprof.StartCPUProfile, pprof.StopCPUProfile}, {"MEDFED_TRACE", trace.Start, trace.Stop}} {
		path := os.Getenv(p.env)
		if path == "" {
			continue
		}
		ext := filepath.Ext(path)
		f, err := os.Create(strings.TrimSuffix(path, ext) + "-" + what + ext)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("%s: %w", p.env, err), stop())
		}
		if err := p.start(f); err != nil {
			return nil, errors.Join(fmt.Errorf("%s: %w", p.env, err), f.Close(), stop())
		}
		stops = append(stops, func() error {
			p.stop()
			return f.Close()
		})
	}
	return stop, nil
}

// latencyAndThroughput runs one: first one at a time (metric_p50_ms,
// metric_p99_ms), then with 32 in flight (metric_per_s).
func latencyAndThroughput(env env, what, metric string, one func(*rand.Rand) (time.Duration, error), m map[string]float64) error {
	rng := rand.New(rand.NewPCG(5, 5))
	var durations []time.Duration
	began, cpu0 := time.Now(), processCPU()
	for range env.pick(2000, 200) {
		d, err := one(rng)
		if err != nil {
			return err
		}
		durations = append(durations, d)
	}
	m[metric+"_p50_ms"] = percentileMillis(durations, 0.5)
	m[metric+"_p99_ms"] = percentileMillis(durations, 0.99)
	// The CPU time of one at a time, beside its latency: how many of the
	// machine's cores a lone query keeps busy, the checkpoints and
	// witnessing its access entries cause included.
	busy := processCPU() - cpu0
	env.logf("query: %d %s one at a time: p50 %.2f ms, p99 %.2f ms; %.2f ms of CPU each, %.2f cores busy", len(durations), what,
		m[metric+"_p50_ms"], m[metric+"_p99_ms"], cpuMillis(busy, len(durations)), busy.Seconds()/time.Since(began).Seconds())

	const inFlight = 32
	total := env.pick(10_000, 1_000)
	rngs := make([]*rand.Rand, inFlight)
	for w := range rngs {
		rngs[w] = rand.New(rand.NewPCG(uint64(w), 9))
	}
	start, cpu := time.Now(), processCPU()
	if err := inParallel(inFlight, total, func(w, _ int) error {
		_, err := one(rngs[w])
		return err
	}); err != nil {
		return err
	}
	m[metric+"_per_s"] = float64(total) / time.Since(start).Seconds()
	m[metric+"_cpu_ms"] = cpuMillis(processCPU()-cpu, total)
	env.logf("query: %d %s, %d in flight: %.0f/s, %.2f ms of CPU each", total, what, inFlight, m[metric+"_per_s"], m[metric+"_cpu_ms"])
	return nil
}

// cpuMillis is the CPU time each of n operations cost, in milliseconds,
// from the process's CPU time over all of them: every core's, user and
// system, the work the operations cause in the background included. It
// moves less than a rate when another tenant of a shared machine takes
// cores away (though not nothing: caches and a profile's own cost count),
// which makes it a better figure to compare two builds by.
func cpuMillis(cpu time.Duration, n int) float64 {
	return float64(cpu) / float64(time.Millisecond) / float64(n)
}
