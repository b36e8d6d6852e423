package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// The browser tests drive medfed's web pages in a headless chromium. They
// skip without one on a developer's machine, unless
// MEDFED_REQUIRE_BROWSER=1 (CI), where they fail.
const requireBrowserEnv = "MEDFED_REQUIRE_BROWSER"

// browserTimeout bounds each step a helper below takes in the browser, so
// that a page that hangs fails the test instead of stalling it.
const browserTimeout = time.Minute

// The two widths each page is shown at in e2e/screenshots.
const (
	desktopWidth, desktopHeight = 1280, 800
	phoneWidth, phoneHeight     = 390, 844
)

// browserLogKey is the key of a tab's *browserLog in its context.
type browserLogKey struct{}

// browserLog is what a tab's pages wrote to the console. Chromedp calls
// add from the loop that reads the tab's messages, in their order, so an
// exception a page throws is there before the next command returns.
type browserLog struct {
	t      *testing.T
	mu     sync.Mutex
	closed bool     // after the test's cleanup: log nothing more
	errors []string // the uncaught exceptions and security errors, in order
}

// add logs one event of the tab, and keeps it when it is an exception.
func (l *browserLog) add(ev any) {
	var line string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		line = fmt.Sprintf("console.%s: %s", ev.Type, consoleArgs(ev.Args))
	case *runtime.EventExceptionThrown:
		line = "exception: " + exceptionText(ev.ExceptionDetails)
	case *log.EventEntryAdded:
		line = fmt.Sprintf("browser %s %s: %s", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text)
		if ev.Entry.URL != "" {
			line += " (" + ev.Entry.URL + ")"
		}
	default:
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if isPageError(ev) {
		l.errors = append(l.errors, line)
	}
	if !l.closed {
		l.t.Log("chromium: " + line)
	}
}

// isPageError reports whether ev is an exception the page did not catch,
// or the browser refusing something for security: a script, a style or a
// request the Content-Security-Policy blocks.
func isPageError(ev any) bool {
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		return true
	case *log.EventEntryAdded:
		return ev.Entry.Source == log.EntrySourceSecurity && ev.Entry.Level == log.EntryLevelError
	}
	return false
}

// consoleArgs renders the arguments of a console call: strings as they
// are, other values as JSON or as the browser describes them.
func consoleArgs(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		parts = append(parts, remoteText(a))
	}
	return strings.Join(parts, " ")
}

// remoteText renders one value of the page.
func remoteText(o *runtime.RemoteObject) string {
	if o == nil {
		return ""
	}
	if len(o.Value) > 0 {
		var s string
		if o.Type == runtime.RemoteObjectTypeString && json.Unmarshal([]byte(o.Value), &s) == nil {
			return s
		}
		return string(o.Value)
	}
	if o.UnserializableValue != "" {
		return string(o.UnserializableValue)
	}
	if o.Description != "" {
		return o.Description
	}
	return string(o.Type)
}

// exceptionText renders an uncaught exception: its text, the error and
// where it was thrown.
func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "(no details)"
	}
	s := d.Text
	if d.Exception != nil {
		desc, _, _ := strings.Cut(remoteText(d.Exception), "\n")
		s += " " + desc
	}
	where := d.URL
	if where == "" && d.StackTrace != nil && len(d.StackTrace.CallFrames) > 0 {
		where = d.StackTrace.CallFrames[0].URL
	}
	if where != "" {
		s += fmt.Sprintf(" at %s:%d:%d", where, d.LineNumber+1, d.ColumnNumber+1)
	}
	return s
}

// findBrowser returns the path of chromium, skipping the test when there
// is none (failing it under MEDFED_REQUIRE_BROWSER=1).
func findBrowser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv(requireBrowserEnv) == "1" {
		t.Fatalf("no chromium, chromium-browser or google-chrome on PATH, and %s=1: install chromium", requireBrowserEnv)
	}
	t.Skipf("no chromium, chromium-browser or google-chrome on PATH (apt-get install chromium; %s=1 makes this a failure)", requireBrowserEnv)
	return ""
}

// newBrowser starts a headless chromium and returns the context of its
// one tab, for chromedp's actions and the helpers below. The browser
// accepts the centres' self-signed certificates. What its pages write to
// the console, every exception they do not catch and every message of the
// browser (such as a Content-Security-Policy violation) goes to the test's
// log; jsErrors returns the exceptions and the security errors. The
// browser stops when the test ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := findBrowser(t)
	l := &browserLog{t: t}
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.closed = true
	})
	// On a busy machine chromium has, rarely, closed its end of the
	// DevTools pipe before its first answer: a second try starts it.
	ctx, err := startBrowser(t, path, l)
	if err != nil {
		t.Logf("starting %s: %v; once more", path, err)
		ctx, err = startBrowser(t, path, l)
	}
	if err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	version, err := chromedp.CallBrowser(ctx, browser.GetVersion, cdp.Empty{})
	if err != nil {
		t.Fatalf("asking %s its version: %v", path, err)
	}
	t.Logf("browser: %s (%s)", version.Product, path)
	return ctx
}

// startBrowser starts chromium at path, with its tab's events going to l,
// and returns the tab's context. A cleanup of t stops the browser.
func startBrowser(t *testing.T, path string, l *browserLog) (context.Context, error) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.WindowSize(desktopWidth, desktopHeight),
		// The test centres serve self-signed certificates at
		// https://localhost:PORT.
		chromedp.Flag("ignore-certificate-errors", true),
		// /dev/shm is small in containers; chromium crashes when it fills.
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to start its sandbox as root.
		opts = append(opts, chromedp.NoSandbox)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx,
		chromedp.WithListener(l.add),
		chromedp.WithErrorf(func(format string, args ...any) {
			l.mu.Lock()
			defer l.mu.Unlock()
			if !l.closed {
				t.Logf("chromedp: "+format, args...)
			}
		}),
	)
	stop := func() {
		cancelTab()
		cancelAlloc()
	}
	ctx := context.WithValue(tabCtx, browserLogKey{}, l)
	// The first Do starts the browser and opens the tab, which live as long
	// as ctx, not as long as this call: a timer bounds the start.
	timer := time.AfterFunc(browserTimeout, cancelAlloc)
	err := chromedp.Do(ctx)
	if !timer.Stop() {
		err = errors.Join(err, fmt.Errorf("not started within %v", browserTimeout))
	}
	if err != nil {
		stop()
		return nil, err
	}
	t.Cleanup(stop)
	return ctx, nil
}

// jsErrors returns the exceptions the pages of newBrowser's tab have not
// caught so far, and the browser's security errors (a script or a request
// the Content-Security-Policy blocked), in order.
func jsErrors(ctx context.Context) []string {
	l, ok := ctx.Value(browserLogKey{}).(*browserLog)
	if !ok {
		panic("jsErrors: not a context from newBrowser")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errors...)
}

// addVirtualAuthenticator gives the tab a virtual platform authenticator
// (CTAP2, with resident keys and user verification), which answers the
// pages' WebAuthn calls at once, as if the user had touched it. It
// returns the authenticator's ID for virtualCredentials.
func addVirtualAuthenticator(t *testing.T, ctx context.Context) webauthn.AuthenticatorID {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("enabling WebAuthn in the browser: %v", err)
	}
	res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Transport:                   webauthn.AuthenticatorTransportInternal,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		t.Fatalf("adding a virtual authenticator: %v", err)
	}
	return res.AuthenticatorID
}

// virtualCredentials returns the credentials the virtual authenticator id
// holds.
func virtualCredentials(t *testing.T, ctx context.Context, id webauthn.AuthenticatorID) []*webauthn.Credential {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	if err != nil {
		t.Fatalf("reading the virtual authenticator's credentials: %v", err)
	}
	return res.Credentials
}

// axeViolation is one rule of axe-core that the page breaks.
type axeViolation struct {
	ID      string `json:"id"`
	Impact  string `json:"impact"`
	Help    string `json:"help"`
	HelpURL string `json:"helpUrl"`
	Nodes   []struct {
		Target []any `json:"target"`
	} `json:"nodes"`
}

// checkAccessibility runs axe-core on the tab's current page and fails the
// test for each serious or critical violation, naming page. It logs how
// many lesser ones there are. axe-core comes from fhirjs/node_modules; it
// is evaluated through DevTools, which the pages' Content-Security-Policy
// does not govern.
func checkAccessibility(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	axeJS, err := os.ReadFile(filepath.Join(nodeModules(t), "axe-core", "axe.min.js"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof axe === "object"`))
	if err != nil {
		t.Fatalf("%s: %v", page, err)
	}
	if !loaded {
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](string(axeJS))); err != nil {
			t.Fatalf("%s: injecting axe-core: %v", page, err)
		}
	}
	violations, err := chromedp.Run(ctx, chromedp.Evaluate[[]axeViolation](
		`axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations)`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: running axe-core: %v", page, err)
	}
	lesser := 0
	for _, v := range violations {
		if v.Impact != "serious" && v.Impact != "critical" {
			lesser++
			t.Logf("%s: accessibility (%s): %s: %s (%d nodes)", page, v.Impact, v.ID, v.Help, len(v.Nodes))
			continue
		}
		var targets []string
		for i, n := range v.Nodes {
			if i == 3 {
				targets = append(targets, fmt.Sprintf("and %d more", len(v.Nodes)-i))
				break
			}
			targets = append(targets, fmt.Sprint(n.Target...))
		}
		t.Errorf("%s: accessibility (%s): %s: %s (%s) at %s", page, v.Impact, v.ID, v.Help, v.HelpURL, strings.Join(targets, ", "))
	}
	t.Logf("%s: axe-core: %d violations, %d of them neither serious nor critical", page, len(violations), lesser)
}

// screenshotsEnv, set to 1, has the tests write their screenshots into
// e2e/screenshots, which the README links; otherwise they go to a
// temporary folder (taken and checked all the same), so that a test run
// leaves the tree as it was.
const screenshotsEnv = "MEDFED_SCREENSHOTS"

// screenshot writes full-page screenshots of the tab's current page at a
// desktop's width and at a phone's, as <name>-desktop.png and
// <name>-phone.png (the tests are where those pictures come from): to
// e2e/screenshots with MEDFED_SCREENSHOTS=1.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := t.TempDir()
	if os.Getenv(screenshotsEnv) == "1" {
		dir = "screenshots"
	}
	screenshotTo(t, ctx, dir, name)
}

// screenshotTo is screenshot, writing to dir. Each file is written under a
// temporary name and renamed, so that a failure leaves no half picture.
// The desktop viewport is restored afterwards.
func screenshotTo(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()
	defer func() {
		if _, err := chromedp.Call(ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{}); err != nil {
			t.Errorf("restoring the desktop viewport: %v", err)
		}
	}()
	for _, view := range []struct {
		suffix        string
		width, height int64
		opts          []chromedp.EmulateViewportOption
	}{
		{"desktop", desktopWidth, desktopHeight, nil},
		{"phone", phoneWidth, phoneHeight, []chromedp.EmulateViewportOption{chromedp.EmulateMobile, chromedp.EmulatePortrait}},
	} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(view.width, view.height, view.opts...)); err != nil {
			t.Fatalf("%s: %s viewport: %v", name, view.suffix, err)
		}
		// A phone's browser lays a page out wider than the screen when
		// something in it cannot shrink (a long word, a wide table), and
		// shows it zoomed out: the page is not made for phones.
		laidOut, err := chromedp.Run(ctx, chromedp.Evaluate[int64](`document.documentElement.scrollWidth`))
		if err != nil {
			t.Fatalf("%s: %s width: %v", name, view.suffix, err)
		}
		if laidOut > view.width {
			t.Errorf("%s: at %d px wide (%s) the page is laid out %d px wide: something in it does not fit", name, view.width, view.suffix, laidOut)
		}
		shot, err := chromedp.Run(ctx, fullPageScreenshot)
		if err != nil {
			t.Fatalf("%s: %s screenshot: %v", name, view.suffix, err)
		}
		if err := writeFileAtomic(filepath.Join(dir, name+"-"+view.suffix+".png"), shot); err != nil {
			t.Fatal(err)
		}
	}
}

// fullPageScreenshot captures the whole page as PNG, beyond the viewport
// down to the end of its content.
func fullPageScreenshot(ctx context.Context, tab *chromedp.Target) ([]byte, error) {
	m, err := cdp.Call(ctx, tab, page.GetLayoutMetrics, cdp.Empty{})
	if err != nil {
		return nil, err
	}
	if m.CSSContentSize == nil || m.CSSLayoutViewport == nil {
		return nil, errors.New("the browser reported no layout metrics")
	}
	// The content is never narrower than the viewport.
	w := max(m.CSSContentSize.Width, float64(m.CSSLayoutViewport.ClientWidth))
	h := max(m.CSSContentSize.Height, float64(m.CSSLayoutViewport.ClientHeight))
	res, err := cdp.Call(ctx, tab, page.CaptureScreenshot, page.CaptureScreenshotParams{
		Format:                page.CaptureScreenshotFormatPng,
		Clip:                  &page.Viewport{Width: w, Height: h, Scale: 1},
		CaptureBeyondViewport: new(true),
		FromSurface:           new(true),
	})
	if err != nil {
		return nil, err
	}
	return res.Data, nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// folder, renamed into place once complete.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// The self-test's page: accessible, and with no inline script, under the
// same kind of Content-Security-Policy as medfed's pages.
const (
	harnessCSP  = "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
	harnessHTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Browser harness</title>
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<main>
<h1>Browser harness</h1>
<p><label for="name">Name</label> <input id="name" name="name" autocomplete="name"></p>
<p><button id="register" type="button">Register a passkey</button></p>
<p>Public key: <output id="result" for="register" aria-live="polite"></output></p>
</main>
</body>
</html>
`
	// On a click, app.js makes a passkey for localhost and shows its public
	// key (SubjectPublicKeyInfo, DER) in base64, or the error.
	harnessCSS = `body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 0 auto; padding: 1rem; }
output { overflow-wrap: anywhere; font-family: monospace; }
`
	harnessJS = `"use strict";
document.getElementById("register").addEventListener("click", async () => {
  const out = document.getElementById("result");
  try {
    const cred = await navigator.credentials.create({publicKey: {
      rp: {name: "t", id: "localhost"},
      user: {id: new Uint8Array(16), name: "p", displayName: "p"},
      challenge: new Uint8Array(32),
      pubKeyCredParams: [{type: "public-key", alg: -7}, {type: "public-key", alg: -257}],
      authenticatorSelection: {userVerification: "preferred", residentKey: "preferred"},
    }});
    const spki = new Uint8Array(cred.response.getPublicKey());
    out.value = btoa(String.fromCharCode(...spki));
  } catch (e) {
    out.value = "error: " + e.name + ": " + e.message;
  }
});
`
)

// The harness works on its own, with no medfed node: chromium starts,
// loads a page over HTTPS with a self-signed certificate from localhost
// under a strict Content-Security-Policy, makes a passkey with the virtual
// authenticator (whose P-256 public key Go parses), passes axe-core, and
// is photographed at both widths.
func TestBrowserHarness(t *testing.T) {
	ctx := newBrowser(t)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, harnessHTML)
	})
	mux.HandleFunc("GET /app.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		io.WriteString(w, harnessCSS)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /app.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		io.WriteString(w, harnessJS)
	})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", harnessCSP)
		mux.ServeHTTP(w, r)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener.Close()
	srv.Listener = ln
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	// localhost, not the address: WebAuthn's relying-party ID is a domain.
	pageURL := "https://localhost:" + u.Port() + "/"

	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(pageURL))
	if err != nil {
		t.Fatalf("loading %s: %v", pageURL, err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("loading %s: status %d", pageURL, resp.Status)
	}

	// The policy holds in the page (an inline script does not run), and
	// DevTools' evaluation, which the helpers use, still works.
	inline, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
		const s = document.createElement("script");
		s.textContent = "window.inlineRan = true";
		document.body.append(s);
		s.remove();
		return window.inlineRan === true;
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if inline {
		t.Fatal("an inline script ran: the Content-Security-Policy is not in force")
	}

	id := addVirtualAuthenticator(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("register"))); err != nil {
		t.Fatal(err)
	}
	result, err := chromedp.Run(ctx, chromedp.Poll[string](`document.getElementById("result").textContent`,
		chromedp.WithPollingTimeout(browserTimeout)))
	if err != nil {
		t.Fatalf("waiting for the passkey: %v", err)
	}
	if strings.HasPrefix(result, "error: ") {
		t.Fatalf("navigator.credentials.create: %s", strings.TrimPrefix(result, "error: "))
	}
	der, err := base64.StdEncoding.DecodeString(result)
	if err != nil {
		t.Fatalf("the page's public key %q: %v", result, err)
	}
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		t.Fatalf("the page's public key is no SubjectPublicKeyInfo: %v", err)
	}
	if k, ok := key.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Fatalf("the page's public key is a %T, want an ECDSA key on P-256", key)
	}
	creds := virtualCredentials(t, ctx, id)
	if len(creds) != 1 {
		t.Fatalf("the virtual authenticator holds %d credentials, want 1", len(creds))
	}
	if creds[0].RpID != "localhost" {
		t.Errorf("the credential is for %q, want localhost", creds[0].RpID)
	}

	checkAccessibility(t, ctx, "the harness page")

	dir := t.TempDir()
	screenshotTo(t, ctx, dir, "harness")
	for name, width := range map[string]int{"harness-desktop.png": desktopWidth, "harness-phone.png": phoneWidth} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cfg.Width != width {
			t.Errorf("%s is %dx%d, want %d wide", name, cfg.Width, cfg.Height, width)
		}
	}
	width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.innerWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if width != desktopWidth {
		t.Errorf("after the screenshots the page is %d wide, want %d", width, desktopWidth)
	}

	// jsErrors has the inline script the policy blocked above, and an
	// exception the page does not catch.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`setTimeout(() => { throw new Error("harness boom") })`)); err != nil {
		t.Fatal(err)
	}
	// A later timer runs after the one that throws.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`new Promise(resolve => setTimeout(resolve))`,
		chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	errs := jsErrors(ctx)
	if len(errs) != 2 || !strings.Contains(errs[0], "Content Security Policy") || !strings.Contains(errs[1], "harness boom") {
		t.Errorf("jsErrors: got %d, want the blocked inline script and the exception:\n%s", len(errs), strings.Join(errs, "\n"))
	}
}
