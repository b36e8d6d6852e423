package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"
)

// span is one span as a collector received it, with the service
// instance (the centre) that sent it.
type span struct {
	centre, name          string
	trace, id, parent     string
	attrs                 map[string]string
	links                 int
	kind                  int32
	statusCode, statusMsg string
}

// otlpCollector receives OTLP/HTTP trace exports (protobuf, as the
// OpenTelemetry Collector's otlphttp receiver does) on 127.0.0.1 and
// keeps their spans.
type otlpCollector struct {
	url   string
	mu    sync.Mutex
	spans []span
	bad   []string
}

func newOTLPCollector(t *testing.T) *otlpCollector {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &otlpCollector{url: "http://" + ln.Addr().String() + "/v1/traces"}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", c.receive)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return c
}

func (c *otlpCollector) receive(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		z, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = z
	}
	b, err := io.ReadAll(body)
	var req collectortrace.ExportTraceServiceRequest
	if err == nil && r.Header.Get("Content-Type") != "application/x-protobuf" {
		err = fmt.Errorf("content type %q", r.Header.Get("Content-Type"))
	}
	if err == nil {
		err = proto.Unmarshal(b, &req)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.bad = append(c.bad, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	str := func(v *commonpb.AnyValue) string {
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			return x.StringValue
		case *commonpb.AnyValue_IntValue:
			return fmt.Sprint(x.IntValue)
		case *commonpb.AnyValue_BoolValue:
			return fmt.Sprint(x.BoolValue)
		}
		return v.String()
	}
	for _, rs := range req.GetResourceSpans() {
		centre := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.instance.id" {
				centre = str(kv.GetValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s := span{centre: centre, name: sp.GetName(), trace: hex.EncodeToString(sp.GetTraceId()), id: hex.EncodeToString(sp.GetSpanId()),
					parent: hex.EncodeToString(sp.GetParentSpanId()), attrs: map[string]string{}, links: len(sp.GetLinks()), kind: int32(sp.GetKind()),
					statusCode: sp.GetStatus().GetCode().String(), statusMsg: sp.GetStatus().GetMessage()}
				for _, kv := range sp.GetAttributes() {
					s.attrs[kv.GetKey()] = str(kv.GetValue())
				}
				c.spans = append(c.spans, s)
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(nil)
}

func (c *otlpCollector) received() ([]span, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]span(nil), c.spans...), append([]string(nil), c.bad...)
}

// Two centres export their traces over OTLP to a collector. A clinician's
// query at centre-a is one trace: centre-a's "medfed.query" with one
// "medfed.query.ask" for each holder, and each holder's
// "medfed.query.answer", exported by its own process, in the same trace
// under the request. The spans say who asked whom and what came of it,
// never the patient, a staff member or a payload.
func TestAQueryIsOneTraceAcrossCentres(t *testing.T) {
	root := t.TempDir()
	col := newOTLPCollector(t)
	a, b := newCentre(t, root, "centre-a"), newCentre(t, root, "centre-b")
	for _, x := range []*centre{a, b} {
		x.extra = []string{"MEDFED_TRACING_ENDPOINT=" + col.url}
	}
	foundTwo(t, root, a, b)
	p := dayOfWork(t, root, a, b)
	// The batchers send within a second; stopping the nodes sends the rest.
	a.stop()
	b.stop()

	spans, bad := col.received()
	if len(bad) > 0 {
		t.Fatalf("the collector refused exports: %v", bad)
	}
	// The last query released both records: its trace.
	var root0 *span
	for i := range spans {
		s := &spans[i]
		if s.centre == "centre-a" && s.name == "medfed.query" && s.attrs["medfed.holders"] == "2" {
			root0 = s // the last such
		}
	}
	if root0 == nil {
		t.Fatalf("no medfed.query span of centre-a among %d spans", len(spans))
	}
	asks, answers := map[string]span{}, map[string]span{}
	for _, s := range spans {
		if s.trace != root0.trace {
			continue
		}
		switch s.name {
		case "medfed.query.ask":
			if s.centre != "centre-a" || s.parent != root0.id {
				t.Errorf("an ask span of %s under %s, want centre-a's under its query span %s", s.centre, s.parent, root0.id)
			}
			asks[s.attrs["medfed.holder"]] = s
		case "medfed.query.answer":
			if s.parent != root0.parent {
				t.Errorf("%s's answer span is under %s, want the request's %s, as the query span is", s.centre, s.parent, root0.parent)
			}
			answers[s.centre] = s
		}
	}
	for _, holder := range []string{"centre-a", "centre-b"} {
		ask, ok := asks[holder]
		if !ok || ask.attrs["medfed.outcome"] != "released" || ask.attrs["medfed.records"] != "1" {
			t.Errorf("centre-a's ask of %s: %+v, want released with 1 record", holder, ask)
		}
		ans, ok := answers[holder]
		if !ok || ans.attrs["medfed.outcome"] != "released" || ans.attrs["medfed.requester"] != "centre-a" || ans.attrs["medfed.purpose"] != "treatment" {
			t.Errorf("%s's answer in the query's trace: %+v, want released to centre-a for treatment", holder, ans)
		}
	}
	if answers["centre-b"].kind != 2 || asks["centre-b"].kind != 3 { // SPAN_KIND_SERVER, SPAN_KIND_CLIENT
		t.Errorf("span kinds: answer %d, ask %d; want server and client", answers["centre-b"].kind, asks["centre-b"].kind)
	}
	var all bytes.Buffer
	for _, s := range spans {
		fmt.Fprintf(&all, "%+v\n", s)
	}
	for _, secret := range []string{p, nhsNumber, "5eed5eed5eed5eed5eed5eed5eed5eed", "synthetic lab result"} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("a span holds %q", secret)
		}
	}
}
