package e2e

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	httpapi "github.com/medfed/medfed/node/api"
	node "github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/nodetest"
)

// upgradeFixture is the centre that the previous release of medfed made
// and stopped (testdata/upgrade/make.sh): its configuration, its data
// directory packed, and what it recorded and said of itself.
const upgradeFixture = "testdata/upgrade"

// oldCentre is a copy of the fixture's centre in a test directory, run
// by the medfed under test.
type oldCentre struct {
	t      *testing.T
	config string // its configuration file
	dir    string // its data directory
	api    string // host:port of its API
	env    []string
}

// copyOldCentre unpacks the fixture into a new test directory, the
// configuration beside the data directory as in testdata (data.dir is
// relative to it), each file with the mode it had.
func copyOldCentre(t *testing.T) *oldCentre {
	t.Helper()
	root := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(upgradeFixture, "centre.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "centre.yaml"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	untar(t, filepath.Join(upgradeFixture, "st-elsewhere.tar.gz"), root)
	c := &oldCentre{t: t, config: filepath.Join(root, "centre.yaml"), dir: filepath.Join(root, "st-elsewhere"),
		api: fmt.Sprintf("127.0.0.1:%d", nodetest.FreePort(t))}
	c.env = append(os.Environ(), "MEDFED_API_LISTEN="+c.api, "MEDFED_P2P_LISTEN=/ip4/127.0.0.1/tcp/0")
	if _, err := os.Stat(c.dir); err != nil {
		t.Fatalf("the fixture holds no data directory st-elsewhere: %v", err)
	}
	return c
}

// untar unpacks the gzipped tar archive at path into dir: directories and
// regular files only, each inside dir.
func untar(t *testing.T, path, dir string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !filepath.IsLocal(h.Name) {
			t.Fatalf("%s: %q is not a path inside the archive", path, h.Name)
		}
		to := filepath.Join(dir, h.Name)
		mode := h.FileInfo().Mode().Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(to, mode); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.Copy(out, tr)
			if err := errors.Join(err, out.Close()); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("%s: %s is neither a file nor a directory", path, h.Name)
		}
	}
}

// command is medfed with args for the centre, not yet started.
func (c *oldCentre) command(args ...string) *exec.Cmd {
	cmd := exec.Command(medfed, append(args, "--config", c.config)...)
	cmd.Env = c.env
	return cmd
}

// run runs one medfed command for the centre and fails the test unless it
// exits 0.
func (c *oldCentre) run(args ...string) string {
	c.t.Helper()
	code, out, errOut := runCmd(c.t, c.command(args...))
	if code != 0 {
		c.t.Fatalf("medfed %s exited %d: %s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// oldRecord is a record the previous release added (records.txt).
type oldRecord struct {
	index     int64
	replaces  int64 // the record it amends; 0 for none
	pseudonym string
	payload   string
}

func oldRecords(t *testing.T) []oldRecord {
	t.Helper()
	f, err := os.Open(filepath.Join(upgradeFixture, "records.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rs []oldRecord
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.SplitN(s.Text(), " ", 4)
		if len(fields) != 4 {
			t.Fatalf("records.txt: %q is not INDEX REPLACES PSEUDONYM PAYLOAD", s.Text())
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		replaces, rerr := strconv.ParseInt(fields[1], 10, 64)
		if err := errors.Join(err, rerr); err != nil {
			t.Fatalf("records.txt: %q: %v", s.Text(), err)
		}
		rs = append(rs, oldRecord{index: n, replaces: replaces, pseudonym: fields[2], payload: fields[3]})
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rs) == 0 {
		t.Fatal("records.txt lists no records")
	}
	return rs
}

// checkCounts returns the counts "medfed check" printed, by line: the
// first word of each indented line and the number after it ("ledger 7",
// "staff 2", ...).
func checkCounts(out string) map[string]int {
	counts := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^  (\w+) +(\d+)\b`).FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[2])
		counts[m[1]] = n
	}
	return counts
}

// The data directory of a centre the previous release made and stopped
// (format 1, without a FORMAT file) is upgraded in place by the first
// command of this medfed, "medfed check", which checks it as the old one
// did, finds what the old one found, and says it is now of the current format; its
// ledger verifies; its node starts on it and serves what the old centre
// recorded: every record's payload, the ledger of the same size, the
// staff credentials, the EHR registered and the patient's consent.
func TestUpgradeOfThePreviousReleasesDataDirectory(t *testing.T) {
	c := copyOldCentre(t)
	if _, err := os.Stat(filepath.Join(c.dir, node.FormatFile)); !os.IsNotExist(err) {
		t.Fatalf("the previous release's directory has a %s (%v): make.sh made it with the wrong medfed", node.FormatFile, err)
	}
	old, err := os.ReadFile(filepath.Join(upgradeFixture, "old-check.txt"))
	if err != nil {
		t.Fatal(err)
	}
	was := checkCounts(string(old))
	if was["ledger"] == 0 || was["payloads"] == 0 || was["staff"] == 0 {
		t.Fatalf("old-check.txt does not say what the old centre held:\n%s", old)
	}

	out := c.run("check")
	if !strings.Contains(out, "centre st-elsewhere: ok") {
		t.Fatalf("medfed check of the previous release's directory:\n%s", out)
	}
	// What the previous release checked, found again; the files it did
	// not have (devices.db) found empty; and the format.
	now, want := checkCounts(out), mapsWith(was, "format", node.CurrentFormat)
	for _, added := range []string{"devices"} {
		want[added] = 0
	}
	if !maps.Equal(now, want) {
		t.Errorf("medfed check found %v, want %v: what the previous release found, the files it lacked empty, and the format:\n%s", now, want, out)
	}
	if !strings.Contains(out, fmt.Sprintf("format       %d, upgraded from 1", node.CurrentFormat)) {
		t.Errorf("medfed check does not say it upgraded the directory from format 1 to %d:\n%s", node.CurrentFormat, out)
	}
	format, err := os.ReadFile(filepath.Join(c.dir, node.FormatFile))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("medfed data directory\nformat %d\nwritten-by medfed ", node.CurrentFormat); !strings.HasPrefix(string(format), want) {
		t.Errorf("%s after the upgrade:\n%s\nwant it to start %q", node.FormatFile, format, want)
	}
	if out := c.run("check"); !strings.Contains(out, fmt.Sprintf("format       %d\n", node.CurrentFormat)) {
		t.Errorf("the second medfed check:\n%s\nwant format %d, not upgraded again", out, node.CurrentFormat)
	}
	if code, out, errOut := medfedCmd(t, "ledger", "verify", "--data", c.dir); code != 0 || !regexp.MustCompile(fmt.Sprintf(`(?m)^  entries +%d$`, was["ledger"])).MatchString(out) || !strings.Contains(out, "every signature valid") {
		t.Errorf("medfed ledger verify of the upgraded directory exited %d, want 0 and %d entries: %s%s", code, was["ledger"], out, errOut)
	}
	staff := c.run("staff", "list")
	for _, label := range []string{"Dr A. Example, cardiology", "B. Example, front desk"} {
		if !strings.Contains(staff, label) {
			t.Errorf("medfed staff list lacks the old centre's %q:\n%s", label, staff)
		}
	}
	if out := c.run("client", "list"); !strings.Contains(out, "the EHR") {
		t.Errorf("medfed client list lacks the old centre's EHR:\n%s", out)
	}

	n := c.command("node")
	logs := &nodetest.Log{}
	n.Stdout, n.Stderr = logs, logs
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if n.ProcessState == nil {
			n.Process.Kill()
			n.Wait()
		}
		if t.Failed() {
			t.Logf("the node's log:\n%s", logs)
		}
	})
	var client *http.Client
	waitFor(t, 30*time.Second, "the upgraded centre's /healthz", func() bool {
		if client == nil {
			client, _ = pinnedClient(c.dir, 2*time.Second)
		}
		return client != nil && httpStatus(client, "https://"+c.api+"/healthz") == 200
	})
	get := func(token, path string, v any) {
		t.Helper()
		req, err := http.NewRequest("GET", "https://"+c.api+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, body)
		}
	}
	token := func(role string) string {
		t.Helper()
		tok := strings.TrimSpace(c.run("staff", "add", "--role", role))
		if tok == "" || strings.ContainsAny(tok, " \n") {
			t.Fatalf("staff add printed %q, not a token", tok)
		}
		return tok
	}
	clinician, admin := token("clinician"), token("admin")
	// Before the records are read: each reading appends its access entry.
	var st httpapi.LedgerStatus
	get(admin, "/v1/ledger", &st)
	if st.Size != int64(was["ledger"]) {
		t.Errorf("the upgraded centre's ledger has %d entries, the old one had %d", st.Size, was["ledger"])
	}
	records := oldRecords(t)
	replaced := map[int64]bool{}
	for _, r := range records {
		replaced[r.replaces] = true
	}
	for _, r := range records {
		if replaced[r.index] {
			continue // only the amendment is released
		}
		var doc struct {
			Subject struct {
				Identifier struct{ Value string } `json:"identifier"`
			} `json:"subject"`
			Content []struct {
				Attachment struct{ Data string } `json:"attachment"`
			} `json:"content"`
		}
		get(clinician, fmt.Sprintf("/v1/records/%d", r.index), &doc)
		if len(doc.Content) != 1 {
			t.Fatalf("record %d: %d attachments, want 1", r.index, len(doc.Content))
		}
		payload, err := base64.StdEncoding.DecodeString(doc.Content[0].Attachment.Data)
		if err != nil || string(payload) != r.payload || doc.Subject.Identifier.Value != r.pseudonym {
			t.Errorf("record %d: %q (%v) of %s, want %q of %s", r.index, payload, err, doc.Subject.Identifier.Value, r.payload, r.pseudonym)
		}
	}
	if out := c.run("consent", "show", "--pseudonym", records[0].pseudonym); !strings.Contains(out, "in force") {
		t.Errorf("the old centre's patient's consent contract is not in force:\n%s", out)
	}
	if err := n.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := n.Wait(); err != nil {
		t.Fatalf("the upgraded centre's node did not stop cleanly: %v", err)
	}
	if strings.Contains(logs.String(), "data directory upgraded") {
		t.Errorf("the node upgraded a directory medfed check had upgraded:\n%s", logs)
	}
}

// mapsWith is a copy of m with k set to v.
func mapsWith(m map[string]int, k string, v int) map[string]int {
	out := maps.Clone(m)
	out[k] = v
	return out
}

// A data directory of a format newer than this medfed knows is refused by
// "medfed check" and "medfed node", each saying which format it is, which
// medfed wrote it, which formats this one knows, and to run the newer
// one; and nothing in it changes, not even the lock file's pid.
func TestUpgradeRefusesANewerDataDirectory(t *testing.T) {
	c := copyOldCentre(t)
	next := node.CurrentFormat + 1
	newer := fmt.Sprintf("medfed data directory\nformat %d\nwritten-by medfed v99.0.0\nsomething a newer medfed keeps\n", next)
	if err := os.WriteFile(filepath.Join(c.dir, node.FormatFile), []byte(newer), 0o600); err != nil {
		t.Fatal(err)
	}
	before := dirSums(t, c.dir)
	for _, args := range [][]string{{"check"}, {"node"}, {"ledger", "status"}} {
		cmd := c.command(args...)
		done := make(chan struct{})
		go func() {
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
			}
		}()
		code, out, errOut := runCmd(t, cmd)
		close(done)
		if code != 1 {
			t.Errorf("medfed %s on a format %d directory exited %d, want 1: %s%s", strings.Join(args, " "), next, code, out, errOut)
		}
		for _, want := range []string{"newer format", fmt.Sprintf("format %d, written by medfed v99.0.0", next), fmt.Sprintf("knows formats up to %d", node.CurrentFormat), "run medfed v99.0.0, or a newer one, on it"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("medfed %s on a format %d directory does not say %q: %s%s", strings.Join(args, " "), next, want, out, errOut)
			}
		}
	}
	if after := dirSums(t, c.dir); !maps.Equal(before, after) {
		t.Errorf("the refused directory changed:\nbefore %v\nafter  %v", before, after)
	}
}

// dirSums is every file under dir: its mode and the SHA-256 of its
// contents, by path.
func dirSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var b []byte
		if d.Type().IsRegular() {
			if b, err = os.ReadFile(path); err != nil {
				return err
			}
		}
		sums[path] = fmt.Sprintf("%v %x", fi.Mode(), sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sums
}
