package e2e

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	node "github.com/medfed/medfed/node/centre"
)

// NHS numbers with valid check digits, and one with a wrong one.
const (
	nhsNumber = "9434765919"
	nhsOther  = "4010232137"
	nhsThird  = "9876543210"
	nhsBadSum = "9434765918"
)

var pseudonymLine = regexp.MustCompile(`^[0-9a-f]{64}$`)

// tryStdin runs one medfed command for centre c with stdin as its standard
// input.
func tryStdin(c *centre, stdin string, args ...string) (int, string, string) {
	c.t.Helper()
	cmd := c.command(args...)
	cmd.Stdin = strings.NewReader(stdin)
	return runCmd(c.t, cmd)
}

// pseudonymsOf runs "patient pseudonym" with args at centre c and returns
// the pseudonyms it printed, failing the test unless it printed want of
// them, each 64 hex characters.
func pseudonymsOf(c *centre, want int, args ...string) []string {
	c.t.Helper()
	return checkPseudonyms(c, want, c.run(append([]string{"patient", "pseudonym"}, args...)...))
}

func checkPseudonyms(c *centre, want int, out string) []string {
	c.t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if !strings.HasSuffix(out, "\n") || len(lines) != want {
		c.t.Fatalf("%s: want %d pseudonym lines, got %q", c.name, want, out)
	}
	for _, l := range lines {
		if !pseudonymLine.MatchString(l) {
			c.t.Fatalf("%s: %q is not a pseudonym (64 lower-case hex characters)", c.name, l)
		}
	}
	return lines
}

// foundThree founds a federation of centre-a, centre-b and centre-c from
// configs/ as operators do (requests, init, sign, install; charter.txt in
// root), starts their nodes, waits until they are connected, and has them
// generate the 2-of-3 pseudonym key together (federation keygen).
func foundThree(t *testing.T, root string) []*centre {
	t.Helper()
	a, b, c := newCentre(t, root, "centre-a"), newCentre(t, root, "centre-b"), newCentre(t, root, "centre-c")
	all := []*centre{a, b, c}
	file := func(name string) string { return filepath.Join(root, name) }
	for _, x := range all {
		x.run("federation", "request", "--out", file(x.name+"-request.txt"))
	}
	a.run("federation", "init", "--member", file("centre-b-request.txt"), "--member", file("centre-c-request.txt"), "--out", file("charter.txt"))
	if _, err := os.Stat(file("charter.txt.shares")); err == nil {
		t.Fatal("init dealt the pseudonym key: it wrote a shares file")
	}
	b.run("federation", "sign", file("charter.txt"))
	c.run("federation", "sign", file("charter.txt"))
	for _, x := range all {
		if out := x.run("federation", "install", file("charter.txt")); !strings.Contains(out, "version 1") {
			t.Fatalf("%s: install said %q", x.name, out)
		}
		x.start()
	}
	waitFor(t, 15*time.Second, "the founders connect", func() bool {
		return connectedTo(a, "centre-b", "centre-c")() && connectedTo(b, "centre-a", "centre-c")() && connectedTo(c, "centre-a", "centre-b")()
	})
	keyCeremony(t, "keygen", 2, []string{"centre-a", "centre-b", "centre-c"}, all...)
	return all
}

// keyCeremony runs "federation keygen" or "federation reshare" (op) with
// the committee and threshold on every centre of runners at once, as
// operators each run it on their own node, and checks that each ended
// with the charter version listing the key adopted. It returns what each
// printed.
func keyCeremony(t *testing.T, op string, threshold int, committee []string, runners ...*centre) []string {
	t.Helper()
	args := []string{"federation", op, "--committee", strings.Join(committee, ","), "--threshold", fmt.Sprint(threshold), "--wait", "1m"}
	outs := make([]string, len(runners))
	errs := make([]error, len(runners))
	var wg sync.WaitGroup
	for i, x := range runners {
		cmd := x.command(args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		wg.Go(func() {
			errs[i] = cmd.Run()
			outs[i] = out.String()
		})
	}
	wg.Wait()
	for i, x := range runners {
		if errs[i] != nil || !strings.Contains(outs[i], "is adopted") {
			t.Fatalf("%s: medfed %s: %v\n%s", x.name, strings.Join(args, " "), errs[i], outs[i])
		}
	}
	return outs
}

// Three centres found a federation and generate a 2-of-3 pseudonym key
// together, as operators do; each derives the same pseudonym for a patient's NHS
// number however it is written, from arguments or standard input; an
// invalid number is refused without being repeated; with one centre down
// the other two still agree, with two down none can be had; and the number
// is nowhere in the centres' files or logs.
func TestPatientPseudonymAcrossCentres(t *testing.T) {
	root := t.TempDir()
	all := foundThree(t, root)
	a, b, c := all[0], all[1], all[2]
	charter, err := os.ReadFile(filepath.Join(root, "charter.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?m)^oprf-key `).Match(charter) {
		t.Fatalf("version 1 lists a pseudonym key: one founder dealt it\n%s", charter)
	}
	for _, x := range all {
		// Each node moves its new share into place when it adopts the
		// version, a moment after the one that reported it adopted.
		share := filepath.Join(x.dir, node.ShareFile)
		waitFor(t, 10*time.Second, x.name+" keeps its share", func() bool {
			_, err := os.Stat(share)
			return err == nil
		})
		fi, err := os.Stat(share)
		if err != nil {
			t.Fatalf("%s: keygen left no share: %v", x.name, err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Fatalf("%s: %s has mode %#o, want 0600", x.name, node.ShareFile, perm)
		}
		if _, err := os.Stat(filepath.Join(x.dir, node.PendingShareFile)); err == nil {
			t.Fatalf("%s: the share is still pending after the version was adopted", x.name)
		}
	}

	// Every centre derives one and the same pseudonym.
	p := pseudonymsOf(a, 1, "--nhs", "943 476 5919")[0]
	for _, x := range []*centre{b, c} {
		if got := pseudonymsOf(x, 1, "--nhs", "943 476 5919")[0]; got != p {
			t.Fatalf("%s derives %s, centre-a %s", x.name, got, p)
		}
	}
	for _, x := range all {
		if got := pseudonymsOf(x, 1, "--nhs", "943-476-5919")[0]; got != p {
			t.Fatalf("%s: 943-476-5919 gives %s, 943 476 5919 gives %s", x.name, got, p)
		}
	}
	other := pseudonymsOf(b, 1, "--nhs", nhsOther)[0]
	third := pseudonymsOf(a, 1, "--nhs", nhsThird)[0]
	if other == p || third == p || other == third {
		t.Fatalf("three patients, pseudonyms %s, %s, %s", p, other, third)
	}
	if got := pseudonymsOf(c, 3, "--nhs", nhsOther, "--nhs", nhsNumber, "--nhs", nhsThird); !slices.Equal(got, []string{other, p, third}) {
		t.Fatalf("repeated --nhs gave %q, want %q", got, []string{other, p, third})
	}

	// The directory answers for the pseudonym: no centre holds records of
	// the patient yet, and every member it asked answered.
	out := b.run("directory", "lookup", "--pseudonym", p)
	if !strings.Contains(out, "# 0 holding centres; 3 members answered") {
		t.Fatalf("centre-b: directory lookup printed %q", out)
	}
	if code, _, errOut := b.try("directory", "lookup", "--pseudonym", "not-hex"); code != 2 || !strings.Contains(errOut, "64 hex digits") {
		t.Fatalf("centre-b: directory lookup of a bad pseudonym exited %d: %s", code, errOut)
	}
	if out := c.run("directory", "status"); !strings.Contains(out, "routing table:     2 members") {
		t.Fatalf("centre-c: directory status printed %q", out)
	}

	// Standard input: bare numbers, system|value, blank lines, in order.
	stdin := nhsNumber + "\n" +
		"nhs|401 023 2137\n" +
		"\n" +
		"  987-654-3210  \n" +
		"nhs|" + nhsNumber + "\n" +
		"https://fhir.nhs.uk/Id/nhs-number|" + nhsThird // no final newline
	code, out, errOut := tryStdin(c, stdin, "patient", "pseudonym", "--stdin")
	if code != 0 {
		t.Fatalf("centre-c: patient pseudonym --stdin exited %d: %s%s", code, out, errOut)
	}
	if got, want := checkPseudonyms(c, 5, out), []string{p, other, third, p, third}; !slices.Equal(got, want) {
		t.Fatalf("--stdin gave %q, want %q", got, want)
	}

	// An invalid number is refused before anything is asked, unrepeated.
	for _, x := range []struct {
		name  string
		stdin string
		args  []string
	}{
		{name: "--nhs", args: []string{"--nhs", nhsBadSum}},
		{name: "--nhs spaced", args: []string{"--nhs", "943 476 5918"}},
		{name: "--nhs after a valid one", args: []string{"--nhs", nhsNumber, "--nhs", nhsBadSum}},
		{name: "--id", args: []string{"--id", "nhs|" + nhsBadSum}},
		{name: "--stdin", stdin: nhsNumber + "\n" + nhsBadSum + "\n", args: []string{"--stdin"}},
	} {
		code, out, errOut := tryStdin(a, x.stdin, append([]string{"patient", "pseudonym"}, x.args...)...)
		if code != 2 || out != "" {
			t.Fatalf("invalid %s: exited %d, printed %q, want exit 2 and nothing; stderr %s", x.name, code, out, errOut)
		}
		if !strings.Contains(errOut, "invalid identifier") {
			t.Fatalf("invalid %s: the refusal does not say why: %s", x.name, errOut)
		}
		if strings.Contains(errOut, "943476591") || strings.Contains(errOut, "943 476 591") {
			t.Fatalf("invalid %s: the refusal repeats the number: %s", x.name, errOut)
		}
	}

	// centre-b stops: centre-a (a holder) and centre-c are two, enough.
	b.stop()
	if got := pseudonymsOf(a, 1, "--nhs", nhsNumber)[0]; got != p {
		t.Fatalf("with centre-b down, centre-a derives %s, before %s", got, p)
	}
	if got := pseudonymsOf(c, 1, "--nhs", nhsNumber)[0]; got != p {
		t.Fatalf("with centre-b down, centre-c derives %s, before %s", got, p)
	}
	// centre-c stops too: centre-a alone is one, too few.
	c.stop()
	code, out, errOut = a.try("patient", "pseudonym", "--nhs", nhsNumber)
	if code != 1 || out != "" || !strings.Contains(errOut, "pseudonyms unavailable") {
		t.Fatalf("centre-a alone: exited %d, printed %q, stderr %s; want exit 1 and pseudonyms unavailable", code, out, errOut)
	}
	if strings.Contains(errOut, nhsNumber) {
		t.Fatalf("the failure repeats the number: %s", errOut)
	}
	t.Logf("centre-a alone: %s", errOut)
	a.stop()

	// The number was never kept or logged, by any centre.
	for _, x := range all {
		if bytes.Contains(x.logs.Bytes(), []byte(nhsNumber)) {
			t.Errorf("%s's node logged the NHS number:\n%s", x.name, x.logs)
		}
		files := 0
		err := filepath.WalkDir(x.dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			files++
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if bytes.Contains(data, []byte(nhsNumber)) {
				t.Errorf("%s holds the NHS number", path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if files == 0 {
			t.Fatalf("%s: no files in %s", x.name, x.dir)
		}
	}
}
