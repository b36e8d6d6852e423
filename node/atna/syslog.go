package atna

import (
	"strconv"
	"strings"
	"time"
)

// Facility is the syslog facility of the messages (RFC 5424 6.2.1).
type Facility uint8

// The facilities an audit message may be sent with. ATNA names
// authpriv, the security and authorization messages' facility, and some
// collectors file audit trails under log audit.
const (
	FacilityAuthPriv Facility = 10
	FacilityLogAudit Facility = 13
)

// Severities of the messages: notice for what went as asked, warning for
// a refusal or an emergency access, which an auditor looks at first.
const (
	severityWarning = 4
	severityNotice  = 5
)

// sdID names the structured data element that identifies a message: an
// enterprise ID under the private enterprise number 32473, which RFC 5612
// sets aside for documentation and examples. medfed has none of its own;
// a collector that keys on it matches this string.
const sdID = "medfed@32473"

// The RFC 5424 header fields' bounds (6.2.4 to 6.2.7).
const (
	maxHostname = 255
	maxAppName  = 48
	maxMsgID    = 32
)

// bom starts a message body in UTF-8 (RFC 5424 6.4).
const bom = "\xef\xbb\xbf"

// message is one syslog message before its framing.
type message struct {
	facility Facility
	severity uint8
	time     time.Time
	hostname string
	appName  string
	msgID    string
	origin   string // the ledger's, and
	index    int64  // the entry's: together the message's id
	kind     string
	body     []byte
}

// appendTo appends the RFC 5424 encoding of m to b: HEADER SP
// STRUCTURED-DATA SP MSG, with no PROCID (a ledger entry is not a
// process's) and the body in UTF-8 after its byte order mark.
func (m message) appendTo(b []byte) []byte {
	b = append(b, '<')
	b = strconv.AppendUint(b, uint64(m.facility)*8+uint64(m.severity), 10)
	b = append(b, ">1 "...)
	// RFC 5424 allows six digits of a second; the ledger's times have nine.
	b = m.time.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, ' ')
	b = append(b, m.hostname...)
	b = append(b, ' ')
	b = append(b, m.appName...)
	b = append(b, " - "...)
	b = append(b, m.msgID...)
	b = append(b, " ["+sdID+" ledger=\""...)
	b = append(b, sdEscape(m.origin)...)
	b = append(b, "\" index=\""...)
	b = strconv.AppendInt(b, m.index, 10)
	b = append(b, "\" kind=\""...)
	b = append(b, sdEscape(m.kind)...)
	b = append(b, "\"] "+bom...)
	return append(b, m.body...)
}

// sdEscape escapes a PARAM-VALUE: '"', '\' and ']' take a backslash
// (RFC 5424 6.3.3).
var sdEscape = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`).Replace

// appendFrame appends msg to b as RFC 5425 frames it: octet counting,
// MSG-LEN SP SYSLOG-MSG, so a body may hold any byte, line feeds
// included.
func appendFrame(b, msg []byte) []byte {
	b = strconv.AppendInt(b, int64(len(msg)), 10)
	b = append(b, ' ')
	return append(b, msg...)
}

// headerField reports whether s can be the RFC 5424 header field of at
// most limit characters: printable US-ASCII, no space, not empty.
func headerField(s string, limit int) bool {
	if s == "" || len(s) > limit {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}
