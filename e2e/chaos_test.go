package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	httpapi "github.com/medfed/medfed/node/api"
	"golang.org/x/sys/unix"

	"github.com/medfed/medfed/federation/consent"
	node "github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/clock"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest"
)

// The chaos test's defaults. MEDFED_CHAOS_DURATION (a Go duration, 150s
// at least: time for every kind of fault) lengthens the intake for a
// soak; MEDFED_CHAOS_SEED (an unsigned integer) runs another schedule, or
// replays that of a failed run, whose seed the test logs. CI runs the
// defaults.
const (
	chaosDuration        = 150 * time.Second
	chaosSeed     uint64 = 20261110
	chaosPatients        = 5
	chaosPayload         = "chaos result " // every payload starts so; no log may hold it
)

// chaosSettings returns the intake's duration and the seed, from the
// environment when set.
func chaosSettings(t *testing.T) (time.Duration, uint64) {
	t.Helper()
	duration, seed := chaosDuration, chaosSeed
	if s := os.Getenv("MEDFED_CHAOS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 150*time.Second { // time for every kind of fault
			t.Fatalf("MEDFED_CHAOS_DURATION=%q: want a duration of at least 150s", s)
		}
		duration = d
	}
	if s := os.Getenv("MEDFED_CHAOS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MEDFED_CHAOS_SEED=%q: want an unsigned integer", s)
		}
		seed = n
	}
	return duration, seed
}

// faultKind is what a fault of the chaos schedule does to its victim.
type faultKind string

const (
	// faultKill: SIGKILL, down 1-5 s, restarted on its data directory.
	faultKill faultKind = "SIGKILL"
	// faultPartition: the victim and two other centres refuse each other
	// (medfed federation block, on both sides) for 4-10 s; the victim
	// still reaches the other two, and they it.
	faultPartition faultKind = "partition"
	// faultDisk: the victim's disk fills up for 3-6 s: no file of its
	// process may grow past the smallest write-ahead log's size
	// (RLIMIT_FSIZE, set from this process).
	faultDisk faultKind = "disk full"
	// faultClock: the victim's wall clock jumps 10 s to 4 min ahead or
	// back for 4-10 s, then back (an NTP step). The e2e binary is built
	// with the medfedfaults tag, whose clock reads an offset from the
	// file that MEDFED_FAULT_CLOCK names (node/clock).
	faultClock faultKind = "clock jump"
	// faultRestore: the victim's disk is lost (SIGKILL, its data
	// directory gone) and the backup taken as the intake began, at least
	// a minute before, is restored (medfed restore) and started.
	faultRestore faultKind = "restore"
)

// chaosBackupAge is how old the backup is, at least, when it is restored.
const chaosBackupAge = time.Minute

// chaosFault is one fault of the schedule and, once done, how it went.
type chaosFault struct {
	kind   faultKind
	victim string
	cut    []string      // faultPartition: the two centres it is cut off from
	jump   time.Duration // faultClock: how far its clock jumps
	gap    time.Duration // from the previous fault's end (or the intake's start) to this one
	delay  time.Duration // kill and restore: from the victim's next record request being written to the kill
	down   time.Duration // how long the fault lasts (kill and restore: until the restart)
	at     time.Duration // when it began, from the intake's start
	ready  time.Duration // kill and restore: from the restart to ready, reaching every other member
	midway bool          // kill: the kill came while a record request was in flight
	note   string        // what it showed
}

func (f chaosFault) String() string {
	s := fmt.Sprintf("%s of %s at %v for %v", f.kind, f.victim, f.at.Round(time.Millisecond), f.down)
	switch f.kind {
	case faultKill:
		s += fmt.Sprintf(", %v after a record request was written (%t), ready %v after its restart", f.delay, f.midway, f.ready.Round(time.Millisecond))
	case faultRestore:
		s += fmt.Sprintf(", ready %v after its restart", f.ready.Round(time.Millisecond))
	case faultPartition:
		s += " from " + strings.Join(f.cut, " and ")
	case faultClock:
		s += fmt.Sprintf(", by %v", f.jump)
	}
	if f.note != "" {
		s += ": " + f.note
	}
	return s
}

// planFaults draws the fault schedule from r: faults 6-15 s apart,
// enough of them to fill within. The first four are a kill, a partition,
// a full disk and a clock jump, in a random order; the first fault after
// them to begin at least chaosBackupAge+5 s into the intake is the
// restore of restored, whose backup is taken as the intake begins, and a
// partition follows it (the revocation comes during it); the rest are
// kills (twice as likely), partitions, full disks and clock jumps. A kill
// comes 0-3 ms after a record request to the victim is written, so that
// some land before the record is on the ledger and, now and then, one
// lands after it is but before the answer is sent. The victim is drawn
// from the centres faulted least so far.
func planFaults(r *rand.Rand, names []string, within time.Duration) (plan []chaosFault, restored string) {
	restored = names[r.IntN(len(names))]
	first := []faultKind{faultKill, faultPartition, faultDisk, faultClock}
	r.Shuffle(len(first), func(i, j int) { first[i], first[j] = first[j], first[i] })
	later := []faultKind{faultKill, faultKill, faultPartition, faultDisk, faultClock}
	faulted := map[string]int{}
	span := func(from, to time.Duration) time.Duration {
		return from + time.Duration(r.Int64N(int64(to-from))).Round(time.Millisecond)
	}
	placed := false
	for total := time.Duration(0); total < within; {
		f := chaosFault{gap: span(6*time.Second, 15*time.Second)}
		switch {
		case !placed && len(first) == 0 && total+f.gap >= chaosBackupAge+5*time.Second:
			f.kind, f.victim, placed = faultRestore, restored, true
			first = []faultKind{faultPartition} // the revocation's
		default:
			if len(first) > 0 {
				f.kind, first = first[0], first[1:]
			} else {
				f.kind = later[r.IntN(len(later))]
			}
			fewest := faulted[names[0]]
			for _, n := range names {
				fewest = min(fewest, faulted[n])
			}
			var least []string
			for _, n := range names {
				if faulted[n] == fewest {
					least = append(least, n)
				}
			}
			f.victim = least[r.IntN(len(least))]
		}
		switch f.kind {
		case faultKill, faultRestore:
			f.delay = time.Duration(r.Int64N(int64(3 * time.Millisecond))).Round(10 * time.Microsecond)
			f.down = span(time.Second, 5*time.Second)
		case faultPartition:
			var others []string
			for _, n := range names {
				if n != f.victim {
					others = append(others, n)
				}
			}
			for _, i := range r.Perm(len(others))[:2] {
				f.cut = append(f.cut, others[i])
			}
			slices.Sort(f.cut)
			f.down = span(4*time.Second, 10*time.Second)
		case faultDisk:
			f.down = span(3*time.Second, 6*time.Second)
		case faultClock:
			f.jump = span(10*time.Second, 4*time.Minute).Round(time.Second)
			if r.IntN(2) == 0 {
				f.jump = -f.jump
			}
			f.down = span(4*time.Second, 10*time.Second)
		}
		faulted[f.victim]++
		plan = append(plan, f)
		total += f.gap + f.down
	}
	return plan, restored
}

// setClock moves the clock of the node reading path (see faultClock) to
// offset, writing the file whole: a node never reads half of it.
func setClock(t *testing.T, path string, offset time.Duration) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(offset.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// nhsNumbers returns n NHS numbers with valid modulus-11 check digits,
// none of them another test's.
func nhsNumbers(n int) []string {
	var out []string
	for base := 600_000_001; len(out) < n; base += 7919 {
		digits := strconv.Itoa(base)
		sum := 0
		for i, d := range digits {
			sum += int(d-'0') * (10 - i)
		}
		check := (11 - sum%11) % 11
		if check == 10 {
			continue // no number has this base
		}
		out = append(out, digits+strconv.Itoa(check))
	}
	return out
}

// chaosAck is a record the API acknowledged, with its patient.
type chaosAck struct {
	acked
	patient string
}

// holderEntry is an entry of a holder's ledger.
type holderEntry struct {
	holder string
	index  int64
}

// chaosQuery is a query answered with 200 during the run: the access
// entry each holder said it wrote.
type chaosQuery struct {
	from, patient string
	access        []holderEntry
}

// chaosRun is what the workload saw, and which centre is down.
type chaosRun struct {
	mu       sync.Mutex
	down     string         // the centre killed (or with its disk full) and not yet ready again; "" when all are up
	changes  int            // kills and restarts so far
	armed    string         // the centre to kill as soon as it is sent a record
	fire     chan struct{}  // armed's record request is written
	quiet    string         // while set, no record is sent to this centre and no query is sent (see quiesce)
	inflight map[string]int // requests in flight: records by centre, and "query"

	revoked    string    // the patient whose contract is revoked during the run
	revokeFrom time.Time // when the revocation was first submitted
	revokedAt  time.Time // when it was confirmed; zero until then
	afterward  int       // holders' answers to queries for the revoked patient sent after the confirmation

	acks     []chaosAck
	sent     map[string]bool            // "holder payload" of every record sent, acknowledged or not
	sentTo   map[string]map[string]bool // by patient, the centres sent one of their records
	refused  map[string]int             // records not acknowledged, by centre
	why      map[string]int             // records not acknowledged and queries failed, by outcome: "record 503", "query error", ...
	answered []chaosQuery
	failed   int            // queries without a 200: transport errors and other statuses
	holders  map[string]int // holder outcomes in answered queries: released, none final, denied, failed, none (no holder named)
	partial  int            // answered queries whose directory lookup was incomplete
}

// begin reports whether a request may be sent now, and counts it in
// flight until end: key is the centre a record goes to, or "query".
func (r *chaosRun) begin(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.quiet != "" && (key == r.quiet || key == "query") {
		return false
	}
	r.inflight[key]++
	return true
}

func (r *chaosRun) end(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inflight[key]--
}

// quiesce stops sending records to centre, and queries anywhere, and
// returns once none is in flight: a moment when nothing new is
// acknowledged by centre, so that its witnesses can come to hold all it
// acknowledged before its disk is lost. resume sends them again.
func (r *chaosRun) quiesce(centre string) {
	r.mu.Lock()
	r.quiet = centre
	r.mu.Unlock()
	for {
		r.mu.Lock()
		n := r.inflight[centre] + r.inflight["query"]
		r.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *chaosRun) resume() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.quiet = ""
}

// isDown reports whether centre is the one down.
func (r *chaosRun) isDown(centre string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.down == centre
}

// allUp returns whether every centre is up and a count of the changes so
// far; upSince tells whether nothing changed since.
func (r *chaosRun) allUp() (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changes, r.down == ""
}

func (r *chaosRun) upSince(changes int, up bool) bool {
	now, stillUp := r.allUp()
	return up && stillUp && now == changes
}

func (r *chaosRun) setDown(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = name
	r.changes++
}

// arm asks for a signal on r.fire when a record request to centre has
// been written; disarm takes it back, and drops a signal that came late.
func (r *chaosRun) arm(centre string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.armed = centre
}

func (r *chaosRun) disarm() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.armed = ""
	select {
	case <-r.fire:
	default:
	}
}

// wrote is called when a record request to centre has been written.
func (r *chaosRun) wrote(centre string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.armed == centre {
		r.armed = ""
		r.fire <- struct{}{}
	}
}

// outcome names what became of a request that failed, for the figures.
func outcome(what string, ans httpAnswer, err error) string {
	if err != nil {
		return what + " error"
	}
	return fmt.Sprintf("%s %d", what, ans.status)
}

// unexpected reports whether an HTTP status is a failure rather than the
// chaos: a 4xx (the request is right; a centre back from a kill must still
// know its staff and patients), or a 5xx other than 503 and 504 while
// every centre was up.
func unexpected(status int, allUp bool) bool {
	switch {
	case status >= 400 && status < 500:
		return true
	case status >= 500:
		return allUp && status != http.StatusServiceUnavailable && status != http.StatusGatewayTimeout
	}
	return false
}

var (
	releasedIssue = regexp.MustCompile(`^(\S+): \d+ record\(s\) released; access entry (\d+); proven in final checkpoint \d+`)
	deniedIssue   = regexp.MustCompile(`^(\S+): denied: .*; access entry (\d+)$`)
	failedIssue   = regexp.MustCompile(`^(\S+): failed: `)
)

// nothingFinal is a holder's reason for a permitted query that released
// nothing (see query.Holder.Answer).
const nothingFinal = "nothing this request may see at this centre"

// proveAll fetches the proof of every entry, holder by holder in
// parallel, waiting up to within for entries not final yet. It returns the
// proofs, and why there is none for the others.
func (x *api) proveAll(token map[string]string, entries []holderEntry, within time.Duration) (map[holderEntry]httpapi.EntryProof, []string) {
	byHolder := map[string][]holderEntry{}
	for _, e := range entries {
		byHolder[e.holder] = append(byHolder[e.holder], e)
	}
	var (
		mu       sync.Mutex
		proofs   = map[holderEntry]httpapi.EntryProof{}
		problems []string
		wg       sync.WaitGroup
	)
	deadline := time.Now().Add(within)
	for holder, es := range byHolder {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, e := range es {
				path := fmt.Sprintf("/v1/ledger/entries/%d/proof", e.index)
				for {
					ans, err := x.do("GET", holder, path, token[holder], nil)
					var p httpapi.EntryProof
					if err == nil && ans.status == 200 && json.Unmarshal(ans.raw, &p) == nil {
						mu.Lock()
						proofs[e] = p
						mu.Unlock()
						break
					}
					if (err == nil && ans.status != http.StatusServiceUnavailable) || time.Now().After(deadline) {
						mu.Lock()
						problems = append(problems, fmt.Sprintf("%s entry %d: %v %d %s", holder, e.index, err, ans.status, ans.raw))
						mu.Unlock()
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	return proofs, problems
}

// lookup runs "medfed directory lookup" at centre c and returns the
// holders it names, or false if the lookup was incomplete.
func (c *centre) lookup(pseudonym string) (map[string]bool, bool) {
	c.t.Helper()
	code, out, _ := c.try("directory", "lookup", "--pseudonym", pseudonym)
	if code != 0 {
		return nil, false
	}
	holders := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && !strings.HasPrefix(line, "#") {
			holders[f[0]] = true
		}
	}
	return holders, true
}

// sortedNames returns the names in set, sorted.
func sortedNames(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for n, ok := range set {
		if ok {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Five centres, each a real "medfed node" from configs/, found the
// federation together. Patients are registered at random centres, attest
// keys and opt in. Then, for two and a half minutes, every centre takes
// records of the patients it treats and clinicians at random centres
// query random patients, while a seeded schedule faults a centre every
// 6-15 s (see faultKind): it kills one with SIGKILL and restarts it,
// cuts one off from two others, fills one's disk, jumps one's clock, and,
// once, loses one's disk and restores the backup taken under load as the
// intake began. Meanwhile the last patient revokes their contract, during
// a partition when one comes in time. At most one centre is faulted at a
// time, so four always hold the charter's majorities (3 of 5): witness
// quorum, OPRF threshold, consent delivery. Afterwards every acknowledged
// record is proven final at its holder and released by a query (the
// restored centre's later ones without the payloads its disk took), no
// query sent after the revocation was confirmed was released a record of
// that patient, every answered query's access entries are on their
// holders' ledgers, every
// final checkpoint is cosigned by the quorum and is what each witness
// last cosigned (or extends it), no centre holds evidence of two
// histories, the directory names exactly the centres holding each
// patient's records, every ledger verifies, the records a jumped clock
// dated carry its time, and no log holds an NHS number or a payload.
func TestChaosFiveCentresFaultedAtRandom(t *testing.T) {
	// Parallel, and the package's only parallel test: it runs once the
	// others are done (so no two tests use the configs' ports at once),
	// and then in its turn with the other heavy suites on this machine
	// (see nodetest.TakeTurn): its five busy nodes starve the directory's
	// timing-sensitive tests if the two run side by side.
	t.Parallel()
	release, err := nodetest.TakeTurn()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := release(); err != nil {
			t.Error(err)
		}
	})
	duration, seed := chaosSettings(t)
	t.Logf("seed %d (MEDFED_CHAOS_SEED replays it), intake for %v", seed, duration)
	began := time.Now()
	root := t.TempDir()
	centreNames := []string{"centre-a", "centre-b", "centre-c", "centre-d", "centre-e"}
	var all []*centre
	byName := map[string]*centre{}
	clockFile := map[string]string{} // each centre's clock offset (see faultClock)
	for _, n := range centreNames {
		c := newCentre(t, root, n)
		clockFile[n] = filepath.Join(root, n+".clock")
		c.extra = append(c.extra, clock.FaultEnv+"="+clockFile[n])
		all = append(all, c)
		byName[n] = c
	}
	killedLogs := map[string][][]byte{} // each centre's logs before each of its kills
	// Registered before any node starts, so it runs after the helpers'
	// cleanups have ended the nodes and their logs are complete.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, c := range all {
			for i, l := range killedLogs[c.name] {
				t.Logf("%s before SIGKILL %d:\n%s", c.name, i+1, l)
			}
			if c.logs != nil {
				t.Logf("%s:\n%s", c.name, c.logs)
			}
		}
	})
	rng := rand.New(rand.NewPCG(seed, 0))
	plan, restored := planFaults(rng, centreNames, duration)
	var planned []string
	for _, f := range plan {
		s := fmt.Sprintf("%s of %s after %v for %v", f.kind, f.victim, f.gap, f.down)
		switch f.kind {
		case faultPartition:
			s += " from " + strings.Join(f.cut, " and ")
		case faultClock:
			s += fmt.Sprintf(" by %v", f.jump)
		}
		planned = append(planned, s)
	}
	t.Logf("fault schedule (as far as the intake lasts): %s", strings.Join(planned, ", "))

	// All five found the federation in one go.
	x := foundAndStart(t, root, all)
	registrar, clinician, admin := map[string]string{}, map[string]string{}, map[string]string{}
	for _, c := range all {
		registrar[c.name], clinician[c.name], admin[c.name] = c.token("registrar"), c.token("clinician"), c.token("admin")
	}
	t.Logf("founded and ready, staff enrolled, after %v", time.Since(began).Round(time.Millisecond))

	// The patients: each registered, a key attested and a contract posted
	// at random centres, and treated at 2-4 of the five, so that the
	// directory has centres to leave out.
	pick := func() string { return centreNames[rng.IntN(len(centreNames))] }
	nhs := nhsNumbers(chaosPatients)
	var patients []string
	opted := map[string]optedIn{}   // by patient
	treats := map[string][]string{} // by centre, the patients it takes records of
	for _, number := range nhs {
		reg, attest, post := pick(), pick(), pick()
		o := x.optIn(t, registrar, number, reg, attest, post)
		p := o.id
		opted[p] = o
		patients = append(patients, p)
		perm := rng.Perm(len(centreNames))
		for _, i := range perm[:2+rng.IntN(3)] {
			treats[centreNames[i]] = append(treats[centreNames[i]], p)
		}
	}
	for _, n := range centreNames {
		if len(treats[n]) == 0 { // every centre takes records
			treats[n] = append(treats[n], patients[rng.IntN(len(patients))])
		}
	}
	for i, p := range patients {
		var at []string
		for _, n := range centreNames {
			if slices.Contains(treats[n], p) {
				at = append(at, n)
			}
		}
		t.Logf("patient %d (%.8s…) treated at %s", i+1, p, strings.Join(at, ", "))
	}
	// A centre that has not heard of a contract yet would deny the
	// queries: wait until each knows every one.
	for _, p := range patients {
		for _, c := range all {
			waitFor(t, 15*time.Second, c.name+" holds the contract of patient "+p[:8], func() bool {
				ans, err := x.do("GET", c.name, "/v1/consent/"+p, clinician[c.name], nil)
				return err == nil && ans.status == 200
			})
		}
	}
	t.Logf("%d patients registered and opted in after %v", len(patients), time.Since(began).Round(time.Millisecond))

	// The run: every centre takes a record every 200 ms, two clinicians
	// query, and the schedule kills. Only a 201 with a Location
	// acknowledges a record; transport errors, 503s and 504s while a
	// centre is down are counted, not failures.
	run := &chaosRun{fire: make(chan struct{}, 1), inflight: map[string]int{}, revoked: patients[len(patients)-1], sent: map[string]bool{}, sentTo: map[string]map[string]bool{}, refused: map[string]int{}, why: map[string]int{}, holders: map[string]int{}}
	for _, p := range patients {
		run.sentTo[p] = map[string]bool{}
	}
	ctx, stopIntake := context.WithTimeout(context.Background(), duration)
	var wg sync.WaitGroup
	// On an early failure, the callers stop before the nodes do.
	defer func() {
		stopIntake()
		wg.Wait()
	}()
	start := time.Now()
	location := regexp.MustCompile(`^/v1/records/(\d+)$`)
	for i, c := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(1+i)))
			mine := treats[c.name]
			// Not ctx: a request in flight when the intake ends runs on.
			traced := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
				WroteRequest: func(httptrace.WroteRequestInfo) { run.wrote(c.name) },
			})
			for n := 0; ctx.Err() == nil; n++ {
				if !run.begin(c.name) {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				p := mine[r.IntN(len(mine))]
				payload := fmt.Sprintf("%s%s-%d", chaosPayload, strings.TrimPrefix(c.name, "centre-"), n)
				run.mu.Lock()
				run.sent[c.name+" "+payload] = true
				run.sentTo[p][c.name] = true
				run.mu.Unlock()
				changes, up := run.allUp()
				ans, err := x.doContext(traced, "POST", c.name, "/v1/records", clinician[c.name], map[string]any{"patient": p, "class": "lab-result",
					"data": []byte(payload), "occurred": "2026-11-01"})
				upThroughout := run.upSince(changes, up)
				run.end(c.name)
				m := location.FindStringSubmatch(ans.header.Get("Location"))
				run.mu.Lock()
				switch {
				case err == nil && ans.status == 201 && m != nil:
					index, _ := strconv.ParseInt(m[1], 10, 64)
					run.acks = append(run.acks, chaosAck{acked{c.name, index, payload, time.Now()}, p})
				case err == nil && ans.status == 201:
					t.Errorf("%s acknowledged a record without a Location: %q", c.name, ans.header.Get("Location"))
				case err == nil && unexpected(ans.status, upThroughout):
					t.Errorf("%s answered a record with %d (every centre up throughout: %t): %s", c.name, ans.status, upThroughout, ans.raw)
				default:
					run.refused[c.name]++
					run.why[outcome("record", ans, err)]++
				}
				run.mu.Unlock()
				time.Sleep(200 * time.Millisecond)
			}
		}()
	}
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(100+i)))
			for ctx.Err() == nil {
				if !run.begin("query") {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				from, p := centreNames[r.IntN(len(centreNames))], patients[r.IntN(len(patients))]
				changes, up := run.allUp()
				sent := time.Now()
				ans, err := x.do("POST", from, "/v1/query", clinician[from], map[string]any{"patient": p, "purpose": "treatment"})
				upThroughout := run.upSince(changes, up)
				run.end("query")
				var s searchset
				run.mu.Lock()
				switch {
				case err == nil && ans.status == 200:
					if err := json.Unmarshal(ans.raw, &s); err != nil {
						t.Errorf("a query at %s answered 200 with %v: %s", from, err, ans.raw)
						break
					}
					run.answer(t, from, p, sent, s)
				case err == nil && unexpected(ans.status, upThroughout):
					t.Errorf("a query at %s answered %d (every centre up throughout: %t): %s", from, ans.status, upThroughout, ans.raw)
				default:
					run.failed++
					run.why[outcome("query", ans, err)]++
				}
				run.mu.Unlock()
				time.Sleep(400 * time.Millisecond)
			}
		}()
	}

	// The revocation: the last patient revokes their contract during
	// the first partition at least 35% into the intake, at a centre cut
	// off from the partitioned one (which may hold their records, and
	// leases), or else 70% into the intake at a random centre. A centre
	// that cannot take it (down, or a transport error) is passed over
	// for another.
	revokeNow := make(chan string, 1) // where to submit it
	wg.Add(1)
	go func() {
		defer wg.Done()
		var first string
		select {
		case first = <-revokeNow:
		case <-time.After(duration * 70 / 100):
		case <-ctx.Done():
			return
		}
		p, o := run.revoked, opted[run.revoked]
		doc, err := consent.SignRevocation(o.key, consent.Revocation{Federation: "medfed-demo", Subject: o.subject, Target: o.contract, Issued: time.Now().UTC().Truncate(time.Second)})
		if err != nil {
			t.Error(err)
			return
		}
		body, err := json.Marshal(map[string]any{"document": doc})
		if err != nil {
			t.Error(err)
			return
		}
		r := rand.New(rand.NewPCG(seed, 200))
		run.mu.Lock()
		run.revokeFrom = time.Now()
		run.mu.Unlock()
		var tried []string
		for attempt := 1; attempt <= 20; attempt++ {
			at := centreNames[r.IntN(len(centreNames))]
			if attempt == 1 && first != "" {
				at = first
			}
			if run.isDown(at) {
				continue
			}
			// Up to a lease term and more: the confirmation waits out the
			// leases of a holder it cannot tell.
			long, err := pinnedClient(byName[at].dir, 90*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			res, err := long.Post(apiURL(t, byName[at])+"/v1/consent", "application/json", bytes.NewReader(body))
			var raw []byte
			if err == nil {
				raw, err = io.ReadAll(res.Body)
				res.Body.Close()
			}
			var delivery httpapi.ConsentDelivery
			switch {
			case err != nil:
				tried = append(tried, fmt.Sprintf("%s: %v", at, err))
			case res.StatusCode == 200 && json.Unmarshal(raw, &delivery) == nil && delivery.Confirmed:
				run.mu.Lock()
				run.revokedAt = time.Now()
				took := run.revokedAt.Sub(run.revokeFrom)
				run.mu.Unlock()
				t.Logf("the revocation of patient %.8s… confirmed at %s after %v (waited %d ms for a lease; not reached: %v)", p, at, took.Round(time.Millisecond), delivery.WaitedMs, delivery.Failed)
				return
			case res.StatusCode == 200 || res.StatusCode >= 500:
				tried = append(tried, fmt.Sprintf("%s: %d %s", at, res.StatusCode, raw))
			default:
				t.Errorf("the revocation at %s: %d %s", at, res.StatusCode, raw)
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Errorf("the revocation was not confirmed in 20 tries: %s", strings.Join(tried, "; "))
	}()

	// The backup that the restore brings back, taken under the intake's
	// load.
	backupDir := filepath.Join(t.TempDir(), "backup-"+restored)
	backupFrom := time.Now()
	if out := byName[restored].run("backup", "--to", backupDir); !strings.Contains(out, "backup of "+restored) {
		t.Fatalf("backup printed %q", out)
	}
	t.Logf("%s backed up under the intake's load in %v", restored, time.Since(backupFrom).Round(time.Millisecond))
	var restoredAt time.Time // when the restored centre's disk was lost
	kill := func(v *centre) {
		t.Helper()
		if err := v.node.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		var exit *exec.ExitError
		if err := v.node.Wait(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("%s's node ended with %v, not by SIGKILL", v.name, err)
		}
		killedLogs[v.name] = append(killedLogs[v.name], bytes.Clone(v.logs.Bytes()))
	}
	restart := func(v *centre, f *chaosFault) {
		t.Helper()
		v.start()
		restarted := time.Now()
		waitFor(t, 60*time.Second, v.name+" is ready again after "+string(f.kind)+" and reaches the four others", x.ready(v.name, len(all)-1))
		f.ready = time.Since(restarted)
		run.setDown("")
	}
	type clockWindow struct {
		centre   string
		from, to time.Time
		jump     time.Duration
	}
	var jumps []clockWindow

	end := start.Add(duration)
	var faults []chaosFault
	seen := map[faultKind]bool{}
	for _, f := range plan {
		// Leave the last victim time to take records again before the
		// end; but a kind of fault not come yet comes late (the
		// restore's quiet moment and the restarts take longer than
		// planned).
		if time.Until(end) < f.gap+f.down+5*time.Second && seen[f.kind] {
			continue
		}
		seen[f.kind] = true
		time.Sleep(f.gap)
		v := byName[f.victim]
		switch f.kind {
		case faultKill:
			run.arm(v.name)
			select {
			case <-run.fire:
				time.Sleep(f.delay)
				f.midway = true
			case <-time.After(2 * time.Second): // kill it all the same
				run.disarm()
			}
			run.setDown(v.name)
			f.at = time.Since(start)
			kill(v)
			time.Sleep(f.down)
			// A fresh start on the same data directory: the killed
			// process's lock and admin socket must not stand in its way.
			restart(v, &f)
		case faultRestore:
			if age := time.Since(backupFrom); age < chaosBackupAge {
				time.Sleep(chaosBackupAge - age)
			}
			// A moment's quiet at the victim, until its witnesses hold
			// every entry it acknowledged: what it acknowledged in the
			// last round before a disk is lost is lost with it.
			run.quiesce(v.name)
			waitFor(t, 30*time.Second, v.name+"'s whole ledger is final", func() bool {
				var st httpapi.LedgerStatus
				ans, err := x.do("GET", v.name, "/v1/ledger", admin[v.name], nil)
				return err == nil && ans.status == 200 && json.Unmarshal(ans.raw, &st) == nil && st.Final != nil && st.Final.Size == st.Size
			})
			time.Sleep(3 * time.Second) // the publisher mirrors what each witness cosigned in its next rounds
			run.setDown(v.name)
			f.at = time.Since(start)
			restoredAt = time.Now()
			kill(v)
			if err := os.Rename(v.dir, v.dir+".lost"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(f.down)
			if out := v.run("restore", "--from", backupDir); !strings.Contains(out, "restored "+v.name) {
				t.Fatalf("restore printed %q", out)
			}
			run.resume()
			restart(v, &f)
			f.note = fmt.Sprintf("the backup was %v old", restoredAt.Sub(backupFrom).Round(time.Second))
		case faultPartition:
			f.at = time.Since(start)
			for _, o := range f.cut {
				v.run("federation", "block", o, "--for", "5m")
				byName[o].run("federation", "block", v.name, "--for", "5m")
			}
			waitFor(t, 15*time.Second, v.name+" is cut off from "+strings.Join(f.cut, " and "), func() bool {
				_, connected, _ := v.status()
				return connected != nil && !connected[f.cut[0]] && !connected[f.cut[1]]
			})
			run.mu.Lock()
			revoking := !run.revokeFrom.IsZero()
			run.mu.Unlock()
			if f.at >= duration*35/100 && !revoking {
				select {
				case revokeNow <- f.cut[0]:
					f.note = "the revocation is submitted at " + f.cut[0] + " meanwhile"
				default: // asked for at an earlier partition
				}
			}
			time.Sleep(f.down)
			for _, o := range f.cut {
				v.run("federation", "unblock", o)
				byName[o].run("federation", "unblock", v.name)
			}
		case faultDisk:
			run.mu.Lock()
			refused := run.refused[v.name]
			run.mu.Unlock()
			run.setDown(v.name)
			f.at = time.Since(start)
			limit := smallestWAL(t, v.dir)
			fileLimit(t, v.node.Process.Pid, limit)
			time.Sleep(f.down)
			fileLimit(t, v.node.Process.Pid, unix.RLIM_INFINITY)
			waitFor(t, 30*time.Second, v.name+" is ready once its disk has room", x.ready(v.name, len(all)-1))
			run.setDown("")
			run.mu.Lock()
			f.note = fmt.Sprintf("no file past %d bytes; %d record(s) refused", limit, run.refused[v.name]-refused)
			run.mu.Unlock()
		case faultClock:
			f.at = time.Since(start)
			setClock(t, clockFile[v.name], f.jump)
			from := time.Now()
			time.Sleep(f.down)
			setClock(t, clockFile[v.name], 0)
			jumps = append(jumps, clockWindow{v.name, from, time.Now(), f.jump})
		}
		faults = append(faults, f)
		t.Logf("fault: %s", f)
	}
	<-ctx.Done()
	wg.Wait()
	t.Logf("intake stopped after %v (%v into the test)", time.Since(start).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))

	// The figures.
	acksOf := map[string][]chaosAck{}          // by patient
	ackHolders := map[string]map[string]bool{} // by patient, the centres that acknowledged one of their records
	ackedBy := map[string]int{}
	lastAck := map[string]time.Time{}
	for _, k := range run.acks {
		acksOf[k.patient] = append(acksOf[k.patient], k)
		if ackHolders[k.patient] == nil {
			ackHolders[k.patient] = map[string]bool{}
		}
		ackHolders[k.patient][k.holder] = true
		ackedBy[k.holder]++
		lastAck[k.holder] = k.at
	}
	faultedTimes := map[string]int{}
	kinds := map[faultKind]int{}
	for _, f := range faults {
		faultedTimes[f.victim]++
		kinds[f.kind]++
		t.Logf("fault: %s", f)
	}
	for _, n := range centreNames {
		t.Logf("%s: %d record(s) acknowledged, %d refused or failed; faulted %d time(s)", n, ackedBy[n], run.refused[n], faultedTimes[n])
		if ackedBy[n] == 0 {
			t.Errorf("%s acknowledged no record", n)
		}
	}
	for _, k := range faults {
		if k.kind != faultKill && k.kind != faultRestore {
			continue
		}
		// A centre back in time to take records must have taken one; one
		// that a slow restart brought back at the very end may not have.
		back := start.Add(k.at + k.down + k.ready)
		switch {
		case lastAck[k.victim].After(back):
		case end.Sub(back) < 3*time.Second:
			t.Logf("%s was ready again %v before the intake ended and acknowledged nothing since", k.victim, end.Sub(back).Round(time.Millisecond))
		default:
			t.Errorf("%s acknowledged no record after its restart at %v", k.victim, back.Sub(start).Round(time.Millisecond))
		}
	}
	t.Logf("%d records acknowledged; %d queries answered (holders: %d released, %d with nothing final yet, %d denied, %d denied as revoked, %d failed; %d with an incomplete lookup, %d naming no holder), %d queries failed",
		len(run.acks), len(run.answered), run.holders["released"], run.holders["none final"], run.holders["denied"], run.holders["revoked"], run.holders["failed"], run.partial, run.holders["none"], run.failed)
	var why []string
	for _, w := range slices.Sorted(maps.Keys(run.why)) {
		why = append(why, fmt.Sprintf("%s: %d", w, run.why[w]))
	}
	t.Logf("records refused and queries failed, by outcome (error: a transport error): %s", strings.Join(why, ", "))
	t.Logf("%d fault(s) (%v), %d of %d centres faulted", len(faults), kinds, len(faultedTimes), len(all))
	if len(run.answered) == 0 {
		t.Error("no query was answered during the run")
	}
	for _, k := range []faultKind{faultKill, faultPartition, faultDisk, faultClock, faultRestore} {
		if kinds[k] == 0 {
			t.Errorf("no fault of kind %s came in the intake", k)
		}
	}
	switch {
	case run.revokedAt.IsZero():
		t.Error("the revocation was not confirmed during the run")
	case len(ackHolders[run.revoked]) == 0:
		t.Errorf("no centre acknowledged a record of the revoked patient: the revocation shows nothing")
	case run.afterward == 0:
		t.Errorf("no holder answered a query for the revoked patient sent after the confirmation: the revocation shows nothing")
	default:
		t.Logf("%d holder answers to queries for the revoked patient sent after the confirmation, none releasing a record", run.afterward)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Every acknowledged record is proven in a final checkpoint at its
	// holder: an entry of kind record, about its patient.
	checked := time.Now()
	var recordEntries []holderEntry
	for _, k := range run.acks {
		recordEntries = append(recordEntries, holderEntry{k.holder, k.index})
	}
	proofs, problems := x.proveAll(admin, recordEntries, 60*time.Second)
	for _, p := range problems {
		t.Errorf("an acknowledged record is not proven: %s", p)
	}
	for _, k := range run.acks {
		proof, ok := proofs[holderEntry{k.holder, k.index}]
		if ok && (proof.Index != k.index || proof.Kind != "record" || proof.Subject != k.patient || proof.Size <= k.index || len(proof.Entry) == 0 ||
			!strings.Contains(proof.Checkpoint, "medfed/medfed-demo/"+k.holder)) {
			t.Errorf("acknowledged record %s: proof index %d, kind %q, subject %q, size %d", k.line(), proof.Index, proof.Kind, proof.Subject, proof.Size)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d acknowledged records proven final in %v", len(run.acks), time.Since(checked).Round(time.Millisecond))

	// Every holder that answered a query during the run, with records or
	// a denial, wrote the access entry it named, about that patient.
	checked = time.Now()
	accessOf := map[holderEntry]string{} // the patient
	for _, q := range run.answered {
		for _, e := range q.access {
			if p, seen := accessOf[e]; seen && p != q.patient {
				t.Errorf("%s named access entry %d for two patients", e.holder, e.index)
			}
			accessOf[e] = q.patient
		}
	}
	proofs, problems = x.proveAll(admin, slices.Collect(maps.Keys(accessOf)), 60*time.Second)
	for _, p := range problems {
		t.Errorf("an access entry named in a query's answer is not proven: %s", p)
	}
	for e, p := range accessOf {
		if proof, ok := proofs[e]; ok && (proof.Kind != "access" || proof.Subject != p) {
			t.Errorf("%s entry %d, named as a query's access entry, is of kind %q about %q", e.holder, e.index, proof.Kind, proof.Subject)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d access entries of %d answered queries proven final in %v", len(accessOf), len(run.answered), time.Since(checked).Round(time.Millisecond))

	// A query for each patient, from a random centre, releases every
	// record acknowledged for them. A record sent but not acknowledged
	// (its answer lost to a kill) may be there too; nothing else may. The
	// records the restored centre took after its backup began come back
	// without their payloads: their entries from its witnesses' mirrors,
	// the payloads lost with the disk. The revoked patient's holders
	// deny, every one.
	checked = time.Now()
	unacked, lost, lostUnacked := 0, 0, 0
	mayBeLost := func(k chaosAck) bool {
		return k.holder == restored && !k.at.Before(backupFrom) && k.at.Before(restoredAt)
	}
	for _, p := range patients {
		from := pick()
		if p == run.revoked {
			var final searchset
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
				final = searchset{}
				denied := map[string]bool{}
				ans, err := x.do("POST", from, "/v1/query", clinician[from], map[string]any{"patient": p, "purpose": "treatment"})
				if err == nil && ans.status == 200 && json.Unmarshal(ans.raw, &final) == nil {
					for _, d := range final.issues() {
						if m := deniedIssue.FindStringSubmatch(d); m != nil {
							denied[m[1]] = true
						}
					}
					if !slices.ContainsFunc(sortedNames(ackHolders[p]), func(n string) bool { return !denied[n] }) {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("a query from %s for the revoked patient %.8s: %v %d %s; want a denial from at least %v", from, p, err, ans.status, final.diagnostics(), sortedNames(ackHolders[p]))
				}
			}
			if got := final.released(t); len(got) > 0 {
				t.Errorf("a query for the revoked patient was released %v", slices.Sorted(maps.Keys(got)))
			}
			continue
		}
		var final searchset
		said := map[string]bool{} // the holders that released records, with nothing pending
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			final, said = searchset{}, map[string]bool{}
			ans, err := x.do("POST", from, "/v1/query", clinician[from], map[string]any{"patient": p, "purpose": "treatment"})
			if err == nil && ans.status == 200 && json.Unmarshal(ans.raw, &final) == nil {
				for _, d := range final.issues() {
					if m := releasedIssue.FindStringSubmatch(d); m != nil && !strings.Contains(d, "pending") {
						said[m[1]] = true
					}
				}
				if len(said) == len(final.issues()) && !slices.ContainsFunc(sortedNames(ackHolders[p]), func(n string) bool { return !said[n] }) {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("a query from %s for patient %.8s: %v %d %s; want every holder to release records, with nothing pending, at least at %v",
					from, p, err, ans.status, final.diagnostics(), sortedNames(ackHolders[p]))
			}
		}
		for h := range said {
			if !run.sentTo[p][h] {
				t.Errorf("%s released records of patient %.8s, which it was never sent", h, p)
			}
		}
		got := final.released(t)
		for _, k := range acksOf[p] {
			bare := fmt.Sprintf("%s %d ", k.holder, k.index) // released without its payload
			switch {
			case got[k.line()]:
			case got[bare] && mayBeLost(k):
				lost++
				delete(got, bare)
			default:
				t.Errorf("acknowledged record %s was not released", k.line())
			}
			delete(got, k.line())
		}
		for line := range got {
			f := strings.SplitN(line, " ", 3)
			if f[0] == restored && f[2] == "" && !restoredAt.IsZero() {
				t.Logf("released without its payload, lost with %s's disk, a record sent but not acknowledged: %s", restored, line)
				lostUnacked++
			} else if !run.sent[f[0]+" "+f[2]] {
				t.Errorf("released a record never sent: %s", line)
			} else {
				t.Logf("released a record sent but not acknowledged: %s", line)
				unacked++
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("a final query for each patient released every acknowledged record (%d of them without the payload lost with %s's disk) and %d sent but not acknowledged (and %d more without the payload), and the revoked patient's holders denied, in %v",
		lost, restored, unacked, lostUnacked, time.Since(checked).Round(time.Millisecond))

	final := x.witnessesAgree(t, all, admin)

	// The directory, asked at every centre, names every centre that
	// acknowledged a record of the patient. Whether it names a centre
	// whose only records of the patient were sent but not acknowledged
	// depends on whether the kill came before the record reached the
	// ledger: the ledgers, read once the nodes are stopped, decide.
	checked = time.Now()
	lookups := map[string]map[string]map[string]bool{} // by centre, by patient
	for _, c := range all {
		lookups[c.name] = map[string]map[string]bool{}
		for _, p := range patients {
			var got map[string]bool
			complete := false
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
				got, complete = c.lookup(p)
				if complete && !slices.ContainsFunc(sortedNames(ackHolders[p]), func(n string) bool { return !got[n] }) {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("%s: directory lookup of patient %.8s: complete %t, holders %v; acknowledged at %v", c.name, p, complete, sortedNames(got), sortedNames(ackHolders[p]))
					break
				}
			}
			lookups[c.name][p] = got
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d directory lookups name every acknowledging holder, in %v", len(all)*len(patients), time.Since(checked).Round(time.Millisecond))

	for _, c := range all {
		c.stop()
		if code, out, errOut := medfedCmd(t, "ledger", "verify", "--data", c.dir); code != 0 || !strings.Contains(out, "every signature valid") {
			t.Errorf("%s: ledger verify exited %d: %s%s", c.name, code, out, errOut)
		}
	}

	// The stopped centres' data directories, read in this process.
	opened := map[string]*node.Centre{}
	for _, c := range all {
		o := openStopped(t, c)
		defer o.Close()
		opened[c.name] = o
	}
	// Each ledger holds every record its centre acknowledged and only
	// records it was sent.
	for _, c := range all {
		es, err := opened[c.name].Ledger.EntriesOfKind(context.Background(), ledger.KindRecord)
		if err != nil {
			t.Fatal(err)
		}
		sent := 0
		for k := range run.sent {
			if strings.HasPrefix(k, c.name+" ") {
				sent++
			}
		}
		t.Logf("%s: %d record entries on its ledger; %d acknowledged, %d sent", c.name, len(es), ackedBy[c.name], sent)
		if len(es) < ackedBy[c.name] || len(es) > sent {
			t.Errorf("%s's ledger holds %d records: fewer than it acknowledged or more than it was sent", c.name, len(es))
		}
	}
	// Each clock jump dated the records its centre took meanwhile by the
	// jumped clock: their entries' times are that far from when they
	// were acknowledged (give or take 5 s; every jump is 10 s at least).
	for _, j := range jumps {
		dated := 0
		for _, k := range run.acks {
			if k.holder != j.centre || k.at.Before(j.from.Add(2*time.Second)) || !k.at.Before(j.to) {
				continue
			}
			e, err := opened[j.centre].Ledger.Entry(context.Background(), k.index)
			if err != nil {
				t.Fatal(err)
			}
			if off := e.Time.Sub(k.at); off < j.jump-5*time.Second || off > j.jump+5*time.Second {
				t.Errorf("%s's record %d, acknowledged during a clock jump of %v, is dated %v from its acknowledgement", j.centre, k.index, j.jump, off.Round(time.Millisecond))
			}
			dated++
		}
		if dated == 0 {
			t.Errorf("%s acknowledged no record during its clock jump of %v", j.centre, j.jump)
		}
		t.Logf("%s: %d record(s) dated by its clock, jumped %v", j.centre, dated, j.jump)
	}
	// Each ledger's holders are exactly the directory's, at every centre.
	for i, p := range patients {
		subject, err := ledger.ParsePseudonym(p)
		if err != nil {
			t.Fatal(err)
		}
		holds := map[string]bool{}
		for _, c := range all {
			es, err := opened[c.name].Ledger.EntriesForKinds(context.Background(), subject, ledger.KindRecord)
			if err != nil {
				t.Fatal(err)
			}
			if len(es) > 0 {
				holds[c.name] = true
			}
			if (!holds[c.name] && ackHolders[p][c.name]) || (holds[c.name] && !run.sentTo[p][c.name]) {
				t.Errorf("%s's ledger holds %d record(s) of patient %d; acknowledged one: %t; was sent one: %t", c.name, len(es), i+1, ackHolders[p][c.name], run.sentTo[p][c.name])
			}
		}
		for _, c := range all {
			if got := sortedNames(lookups[c.name][p]); !slices.Equal(got, sortedNames(holds)) {
				t.Errorf("directory lookup of patient %d at %s: %v; the ledgers hold their records at %v", i+1, c.name, got, sortedNames(holds))
			}
		}
		t.Logf("patient %d: records held at %v; the directory says so at every centre", i+1, sortedNames(holds))
	}

	// What each centre, as a witness, last cosigned of every other's
	// ledger is a prefix of that ledger (the same root at the same size),
	// and no older than the final checkpoint it cosigned.
	for _, w := range all {
		held, err := opened[w.name].Ledger.WitnessedLogs(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var sizes []string
		for _, l := range all {
			if l == w {
				continue
			}
			lg := opened[l.name].Ledger
			h, ok := held[lg.Origin()]
			if !ok || h.Blocked {
				t.Errorf("%s, as a witness of %s's ledger: cosigned any: %t, blocked: %t", w.name, l.name, ok, h.Blocked)
				continue
			}
			head := lg.Head()
			proof, err := lg.ProveConsistency(context.Background(), h.Size, head.Size)
			if err == nil {
				err = ledger.VerifyConsistency(ledger.Checkpoint{Origin: head.Origin, Size: h.Size, Root: h.Root}, head, proof)
			}
			if err != nil {
				t.Errorf("%s last cosigned size %d of %s's ledger, which is not a prefix of its %d entries: %v", w.name, h.Size, l.name, head.Size, err)
			}
			if f := final[l.name]; slices.Contains(f.Cosigners, w.name) && h.Size < f.Size {
				t.Errorf("%s cosigned %s's final checkpoint of size %d but holds only size %d", w.name, l.name, f.Size, h.Size)
			}
			sizes = append(sizes, fmt.Sprintf("%s %d of %d", l.name, h.Size, head.Size))
		}
		t.Logf("%s last cosigned: %s", w.name, strings.Join(sizes, ", "))
	}

	// No log, before a kill or after, holds an NHS number or a payload.
	// The payloads travel as base64 in JSON: their common first 12 bytes
	// encode to the same 16 characters in every one.
	secrets := []string{chaosPayload, base64.StdEncoding.EncodeToString([]byte(chaosPayload[:12]))}
	for _, n := range nhs {
		secrets = append(secrets, n, n[:3]+" "+n[3:6]+" "+n[6:])
	}
	for _, c := range all {
		logs := append(bytes.Join(killedLogs[c.name], nil), c.logs.Bytes()...)
		for _, s := range secrets {
			if bytes.Contains(logs, []byte(s)) {
				t.Errorf("%s's node logged %q", c.name, s)
			}
		}
	}
	t.Logf("the test took %v", time.Since(began).Round(time.Millisecond))
}

// answer notes a query sent at sent and answered with 200 during the
// run; r.mu is held. No holder may release records of the revoked
// patient to a query sent after the revocation was confirmed; one sent
// after it was submitted may be denied.
func (r *chaosRun) answer(t *testing.T, from, p string, sent time.Time, s searchset) {
	q := chaosQuery{from: from, patient: p}
	revoking := p == r.revoked && !r.revokeFrom.IsZero() && sent.After(r.revokeFrom)
	revoked := p == r.revoked && !r.revokedAt.IsZero() && sent.After(r.revokedAt)
	for _, d := range s.issues() {
		if revoked && (releasedIssue.MatchString(d) || deniedIssue.MatchString(d)) {
			r.afterward++
		}
		var m []string
		switch {
		case releasedIssue.MatchString(d):
			m = releasedIssue.FindStringSubmatch(d)
			r.holders["released"]++
			if revoked {
				t.Errorf("a query from %s sent %v after the revocation was confirmed was released records: %s", from, sent.Sub(r.revokedAt).Round(time.Millisecond), d)
			}
		case deniedIssue.MatchString(d) && strings.Contains(d, ": denied: "+nothingFinal):
			// The patient's records there are all newer than its final
			// checkpoint: a holder says no more, lest it tell what it holds.
			m = deniedIssue.FindStringSubmatch(d)
			r.holders["none final"]++
		case deniedIssue.MatchString(d) && revoking:
			m = deniedIssue.FindStringSubmatch(d)
			r.holders["revoked"]++
		case deniedIssue.MatchString(d):
			m = deniedIssue.FindStringSubmatch(d)
			r.holders["denied"]++
			t.Errorf("a query from %s for an opted-in patient was denied: %s", from, d)
		case failedIssue.MatchString(d):
			r.holders["failed"]++
			if h := failedIssue.FindStringSubmatch(d)[1]; !r.sentTo[p][h] {
				t.Errorf("a query from %s asked %s, which was never sent a record of the patient: %s", from, h, d)
			}
			continue
		case strings.HasPrefix(d, "the directory lookup was incomplete"):
			r.partial++
			continue
		case d == "no centre holds records of this patient":
			r.holders["none"]++
			continue
		default:
			t.Errorf("a query from %s: unexpected diagnostics %q", from, d)
			continue
		}
		index, _ := strconv.ParseInt(m[2], 10, 64)
		if !r.sentTo[p][m[1]] {
			t.Errorf("a query from %s had an answer from %s, which was never sent a record of the patient: %s", from, m[1], d)
		}
		q.access = append(q.access, holderEntry{m[1], index})
	}
	r.answered = append(r.answered, q)
}
