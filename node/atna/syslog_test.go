package atna

import (
	"bytes"
	"strconv"
	"testing"
	"time"
)

// A message is RFC 5424's HEADER SP STRUCTURED-DATA SP BOM MSG, and its
// frame RFC 5425's MSG-LEN SP SYSLOG-MSG, the length in octets.
func TestMessageAndFrame(t *testing.T) {
	tests := []struct {
		name string
		m    message
		want string
	}{
		{
			name: "notice in authpriv, nanoseconds cut to microseconds",
			m: message{facility: FacilityAuthPriv, severity: severityNotice, time: time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC),
				hostname: "host.example", appName: "medfed", msgID: "IHE+RFC-3881", origin: "medfed/fed/centre-a", index: 42, kind: "access", body: []byte("<x/>")},
			want: `<85>1 2025-03-04T05:06:07.123456Z host.example medfed - IHE+RFC-3881 [medfed@32473 ledger="medfed/fed/centre-a" index="42" kind="access"] ` + bom + "<x/>",
		},
		{
			name: "warning in log audit, a local time written in UTC",
			m: message{facility: FacilityLogAudit, severity: severityWarning, time: time.Date(2025, 3, 4, 7, 6, 7, 0, time.FixedZone("CEST", 2*3600)),
				hostname: "h", appName: "a", msgID: "FHIR+AuditEvent", origin: "o", index: 0, kind: "consent", body: []byte("{}")},
			want: `<108>1 2025-03-04T05:06:07.000000Z h a - FHIR+AuditEvent [medfed@32473 ledger="o" index="0" kind="consent"] ` + bom + "{}",
		},
		{
			name: "structured data escaped",
			m: message{facility: FacilityAuthPriv, severity: severityNotice, time: time.Unix(0, 0), hostname: "h", appName: "a", msgID: "m",
				origin: `a"b\c]d`, index: 1, kind: "k", body: []byte("line one\nline two")},
			want: `<85>1 1970-01-01T00:00:00.000000Z h a - m [medfed@32473 ledger="a\"b\\c\]d" index="1" kind="k"] ` + bom + "line one\nline two",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := tt.m.appendTo(nil)
			if string(msg) != tt.want {
				t.Fatalf("message\n got %q\nwant %q", msg, tt.want)
			}
			frame := appendFrame([]byte("before"), msg)
			rest, ok := bytes.CutPrefix(frame, []byte("before"))
			if !ok {
				t.Fatal("appendFrame lost what was before")
			}
			n, body, ok := bytes.Cut(rest, []byte(" "))
			if !ok {
				t.Fatalf("frame %q has no space after its length", rest)
			}
			if l, err := strconv.Atoi(string(n)); err != nil || l != len(body) || !bytes.Equal(body, msg) {
				t.Fatalf("frame length %q for %d octets", n, len(body))
			}
		})
	}
}

func TestHeaderField(t *testing.T) {
	tests := []struct {
		name  string
		s     string
		limit int
		ok    bool
	}{
		{"printable", "medfed", 48, true},
		{"at the limit", "abcd", 4, true},
		{"over the limit", "abcde", 4, false},
		{"empty", "", 4, false},
		{"a space", "a b", 4, false},
		{"not ASCII", "é", 4, false},
		{"a control character", "a\nb", 4, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := headerField(tt.s, tt.limit); got != tt.ok {
				t.Fatalf("headerField(%q, %d) = %v", tt.s, tt.limit, got)
			}
		})
	}
}
