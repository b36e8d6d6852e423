package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest/harness"
)

// measureMemory measures what a centre costs in resident memory: a real
// `medfed node` process (this binary) whose ledger holds a record entry for
// each of 1M patients and which announces them all in the directory at
// start, read from /proc once every announcement is stored at the other
// centre and the node has settled. Beside it, in the same run, the same
// centre empty. Two centres, so that the other one stores every
// announcement.
//   - centre_rss_mib: resident memory at rest with 1M patients;
//   - centre_peak_rss_mib: the most it held from its start through
//     reading its ledger and announcing every patient;
//   - centre_empty_rss_mib: the baseline, the same centre with nothing;
//   - centre_rss_5m_mib, centre_peak_rss_5m_mib: the same at 5M patients
//     (4M more record entries, the 1M announced before), in a full run
//     only: a centre's memory should not grow with its patients.
//
// The record entries are appended through the ledger's group commit
// with the metadata of a clinic letter, all pointing to one stored
// payload: the payload store is a SQLite file whose size does not reach
// resident memory, and filling it one encrypted payload per transaction
// would take minutes of the bench for nothing measured here.
func measureMemory(ctx context.Context, env env) (_ map[string]float64, err error) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		return nil, fmt.Errorf("the memory suite reads /proc (Linux): %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	root := filepath.Join(env.dir, "memory")
	var cfgs []centre.Config
	for _, name := range []string{"centre-a", "centre-b"} {
		cfg, err := harness.Config(root, name, federationID)
		if err != nil {
			return nil, err
		}
		cfg.API.Listen = "127.0.0.1:0"
		cfg.Log.Level = "warn"
		cfgs = append(cfgs, cfg)
	}
	if _, err := harness.Found(ctx, federation.DefaultPolicy(len(cfgs)), cfgs...); err != nil {
		return nil, err
	}
	m := map[string]float64{}

	// Empty: both nodes up and connected, then settled.
	a, b, err := startPair(ctx, exe, cfgs)
	if err != nil {
		return nil, err
	}
	empty, err := a.settled()
	if err = errors.Join(err, a.stop(), b.stop()); err != nil {
		return nil, err
	}
	m["centre_empty_rss_mib"] = empty.rss
	env.logf("memory: an empty centre: %.0f MiB resident", empty.rss)

	type size struct {
		patients  int
		rss, peak string // its metrics
	}
	sizes := []size{{env.pick(1_000_000, 100_000), "centre_rss_mib", "centre_peak_rss_mib"}}
	if !env.quick {
		sizes = append(sizes, size{5_000_000, "centre_rss_5m_mib", "centre_peak_rss_5m_mib"})
	}
	held := 0
	for _, size := range sizes {
		start := time.Now()
		more := size.patients - held
		if err := harness.Offline(ctx, cfgs[0], func(c *centre.Centre) error { return fillLedger(ctx, c, more) }); err != nil {
			return nil, err
		}
		held = size.patients
		env.logf("memory: %d patients' record entries appended in %v", more, time.Since(start).Round(time.Millisecond))
		full, err := announceAll(ctx, env, exe, cfgs, held)
		if err != nil {
			return nil, err
		}
		m[size.rss], m[size.peak] = full.rss, full.peak
		env.logf("memory: centre-a with %d patients: %.0f MiB resident at rest, %.0f MiB at its peak (empty: %.0f MiB)", held, full.rss, full.peak, empty.rss)
	}
	return m, nil
}

// announceAll starts both centres, centre-a's ledger holding records of
// patients patients, and returns centre-a's memory once it has announced
// them all, stored at centre-b, and has settled.
func announceAll(ctx context.Context, env env, exe string, cfgs []centre.Config, patients int) (_ nodeMemory, err error) {
	start := time.Now()
	a, b, err := startPair(ctx, exe, cfgs)
	if err != nil {
		return nodeMemory{}, err
	}
	defer func() { err = errors.Join(err, a.stop(), b.stop()) }()
	// Asked once a second for each million patients: the asking, which
	// counts the records both stores hold, costs the node being measured.
	every := time.Duration(max(1, patients/1_000_000)) * time.Second
	limit := time.Duration(max(1, patients/1_000_000)) * 20 * time.Minute
	for announced := false; !announced; {
		if time.Since(start) > limit {
			return nodeMemory{}, errors.Join(fmt.Errorf("centre-a did not announce its %d patients within %v", patients, limit), a.exited(), b.exited())
		}
		time.Sleep(every)
		sa, errA := admin.Dial(cfgs[0].Data.Dir).DirectoryStatus(ctx)
		sb, errB := admin.Dial(cfgs[1].Data.Dir).DirectoryStatus(ctx)
		announced = errA == nil && errB == nil && sa.Announced >= patients && sa.Pending == 0 && sb.Stored >= patients
	}
	env.logf("memory: centre-a started and announced %d patients, stored at centre-b, in %v", patients, time.Since(start).Round(time.Millisecond))
	return a.settled()
}

// fillLedger appends a clinic letter's record entry for each of n random
// patients, 64 appenders at a time, all pointing to one stored payload.
func fillLedger(ctx context.Context, c *centre.Centre, n int) error {
	meta, payload := harness.ClinicLetter(c.Name, 0)
	id, _, commitment, err := c.Records.Put(ctx, payload)
	if err != nil {
		return err
	}
	meta.Payload, meta.Commitment = id, [32]byte(commitment)
	patients := randomPseudonyms(n)
	return inParallel(64, n, func(_, i int) error {
		e, err := ledger.NewRecord(patients[i], meta)
		if err != nil {
			return err
		}
		_, err = c.Ledger.Append(ctx, e)
		return err
	})
}

// nodeProcess is a `medfed node` running in a process of its own.
type nodeProcess struct {
	name string
	cmd  *exec.Cmd
	logs *bytes.Buffer // its stderr, for when it fails
	done chan error
	stop func() error
}

// startPair starts the nodes of cfgs in processes of their own and waits
// until each is connected to the other.
func startPair(ctx context.Context, exe string, cfgs []centre.Config) (a, b *nodeProcess, err error) {
	if a, err = startProcess(ctx, exe, cfgs[0]); err != nil {
		return nil, nil, err
	}
	if b, err = startProcess(ctx, exe, cfgs[1]); err != nil {
		return nil, nil, errors.Join(err, a.stop())
	}
	connected := func() bool {
		for _, cfg := range cfgs {
			st, err := admin.Dial(cfg.Data.Dir).Status(ctx)
			if err != nil || !slices.ContainsFunc(st.Members, func(m api.MemberStatus) bool { return m.Connected && m.ID != st.Self }) {
				return false
			}
		}
		return true
	}
	if err := harness.WaitFor(ctx, time.Minute, "both nodes are up and connected", connected); err != nil {
		return nil, nil, errors.Join(err, a.exited(), b.exited(), a.stop(), b.stop())
	}
	return a, b, nil
}

// startProcess runs `medfed node` on cfg, given in the environment as an
// operator may give it (MEDFED_*, see medfed config).
func startProcess(ctx context.Context, exe string, cfg centre.Config) (*nodeProcess, error) {
	p := &nodeProcess{name: cfg.Centre.Name, logs: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.CommandContext(ctx, exe, "node")
	p.cmd.Env = append(os.Environ(), // the last of a key wins
		"MEDFED_CENTRE_NAME="+cfg.Centre.Name,
		"MEDFED_FEDERATION_ID="+cfg.Federation.ID,
		"MEDFED_DATA_DIR="+cfg.Data.Dir,
		"MEDFED_P2P_LISTEN="+strings.Join(cfg.P2P.Listen, ","),
		"MEDFED_API_LISTEN="+cfg.API.Listen,
		"MEDFED_LOG_LEVEL="+cfg.Log.Level,
	)
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.done <- p.cmd.Wait() }()
	p.stop = sync.OnceValue(func() error {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return err
		}
		select {
		case err := <-p.done:
			if err != nil {
				return fmt.Errorf("%s's node: %w: %s", p.name, err, lastLines(p.logs.String(), 5))
			}
			return nil
		case <-time.After(time.Minute):
			return errors.Join(fmt.Errorf("%s's node did not stop within a minute of SIGTERM", p.name), p.cmd.Process.Kill())
		}
	})
	return p, nil
}

// exited says whether the process has ended, and how, for an error
// report.
func (p *nodeProcess) exited() error {
	select {
	case err := <-p.done:
		p.done <- err
		return fmt.Errorf("%s's node exited (%v): %s", p.name, err, lastLines(p.logs.String(), 5))
	default:
		return nil
	}
}

// nodeMemory is a process's resident memory, now and at its peak, in MiB.
type nodeMemory struct{ rss, peak float64 }

// settled reads the process's memory once it holds still: two readings a
// second apart within 1 MiB of each other (the Go runtime returns freed
// memory to the system gradually), or after a minute, whichever is first.
// Both figures of the report are taken by this one rule.
func (p *nodeProcess) settled() (nodeMemory, error) {
	last, err := p.memory()
	for deadline := time.Now().Add(time.Minute); err == nil && time.Now().Before(deadline); {
		time.Sleep(time.Second)
		var now nodeMemory
		if now, err = p.memory(); err == nil && math.Abs(now.rss-last.rss) < 1 {
			return now, nil
		}
		last = now
	}
	return last, err
}

// memory reads VmRSS and VmHWM from /proc.
func (p *nodeProcess) memory() (nodeMemory, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return nodeMemory{}, err
	}
	var m nodeMemory
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
		if err != nil {
			return nodeMemory{}, fmt.Errorf("/proc/%d/status: %s: %w", p.cmd.Process.Pid, key, err)
		}
		if key == "VmRSS" {
			m.rss = kb / 1024
		} else {
			m.peak = kb / 1024
		}
		found++
	}
	if found != 2 {
		return nodeMemory{}, fmt.Errorf("/proc/%d/status has no VmRSS and VmHWM", p.cmd.Process.Pid)
	}
	return m, nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
