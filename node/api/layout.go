package api

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/device"
	"github.com/medfed/medfed/federation/patient"
)

// The byte layouts of what a patient's app signs: the consent documents
// (federation/consent), the patient's own requests (federation/patient)
// and their devices' registrations, revocations and batches
// (federation/device), all encoded with node/wire. /openapi.json
// carries them twice from this one table: as Markdown in the schemas of
// the fields that hold them, for whoever writes an app, and as data in
// components.x-medfed-layouts, which layout_test.go reads to decode
// documents the Go code signed, so that neither can drift from the
// encoding.

// wireField is one field of an encoding, in order: no padding, no
// alignment, integers big-endian.
type wireField struct {
	Name     string `json:"name"`
	Encoding string `json:"encoding"` // one of wireEncodings
	Size     int    `json:"size,omitempty"`
	// Of names the layout of a list's elements or of a struct inline.
	Of string `json:"of,omitempty"`
	// A blob's content is the layout Cases names for the value of the
	// field By.
	By    string            `json:"by,omitempty"`
	Cases map[string]string `json:"cases,omitempty"`
	// Values says what an integer's values mean; as Flags, each is a
	// bit, any of them together. Value is the one value it may hold.
	Values map[string]string `json:"values,omitempty"`
	Flags  bool              `json:"flags,omitempty"`
	Value  *int              `json:"value,omitempty"`
	Max    int               `json:"max,omitempty"` // a str's bytes or a list's elements, at most
	About  string            `json:"description"`
}

// wireLayout is one encoding: its fields in order.
type wireLayout struct {
	About  string      `json:"description"`
	Fields []wireField `json:"fields"`
}

// wireEncodings are the fields' encodings, as /openapi.json explains them.
var wireEncodings = []struct{ name, about string }{
	{"u8", "1 byte, unsigned"},
	{"u16", "2 bytes, unsigned, big-endian"},
	{"u32", "4 bytes, unsigned, big-endian"},
	{"u64", "8 bytes, unsigned, big-endian"},
	{"bytes", "`size` bytes as they are"},
	{"str", "a u8 length n, then n bytes (UTF-8 text, or the binary form of a libp2p peer ID)"},
	{"blob", "a u32 length n, then n bytes"},
	{"time", "a u64 of Unix seconds (UTC); 0 where a time is unset (an open bound)"},
	{"millis", "a u64 of Unix milliseconds (UTC)"},
	{"list", "a u8 count n, then n elements, each laid out as `of` says"},
	{"struct", "the fields of the layout `of`, in place"},
}

// wireLayouts are the layouts, by name.
var wireLayouts = map[string]wireLayout{
	"consent-document": {
		About: "A consent document (at most " + strconv.Itoa(consent.MaxDocument) + " bytes). The signature is Ed25519 (RFC 8032, pure) by the key in `signer` " +
			"over the bytes `medfed/consent/v1`, one zero byte, then every byte of the document before `signer`. " +
			"The patient signs kinds 2, 3, 4, 6 and 7 with their key, which a member centre must have attested (POST /v1/patients/{pseudonym}/keys); " +
			"centres sign kinds 1 (attestation) and 5 (approval). POST /v1/consent takes kinds 2, 3, 6 and 7; a token (4) goes to its grantee. A decoder accepts only this exact encoding: no trailing bytes, no unknown kind or flag. " +
			"A document's hash, by which an approval or a veto names an attestation, is the SHA-256 of all its bytes, signature included.",
		Fields: []wireField{
			{Name: "version", Encoding: "u8", Value: ptr(1), About: "the encoding's version"},
			{Name: "kind", Encoding: "u8", Values: kindNames(), About: "what the document is"},
			{Name: "body", Encoding: "blob", By: "kind", Cases: map[string]string{"2": "contract", "3": "revocation", "4": "token", "6": "veto", "7": "erasure"},
				About: "the kind's body"},
			{Name: "signer", Encoding: "bytes", Size: 32, About: "the signer's Ed25519 public key"},
			{Name: "signature", Encoding: "bytes", Size: 64, About: "the Ed25519 signature (see above)"},
		},
	},
	"contract": {
		About: "Kind 2: the patient's consent, after FHIR Consent. A contract replaces every older one of the patient (by `issued`, then `version`): " +
			"the next version of the contract in force keeps its `id` and adds one to `version`; a contract after a revocation takes a new `id`. " +
			"Provisions, nested ones included, number at most " + strconv.Itoa(consent.MaxProvisions) + ", nested at most " + strconv.Itoa(consent.MaxDepth) + " deep.",
		Fields: []wireField{
			{Name: "id", Encoding: "bytes", Size: 16, About: "the contract's ID: 16 random bytes, not all zero (written as 32 hex digits elsewhere)"},
			{Name: "version", Encoding: "u32", About: "the contract's version, from 1"},
			federationField,
			subjectField,
			issuedField,
			{Name: "base", Encoding: "u8", Values: map[string]string{"1": "opt-in", "2": "opt-out"},
				About: "the base policy: opt-in permits unless a provision denies; opt-out denies unless a provision permits"},
			{Name: "provisions", Encoding: "list", Of: "provision", About: "the provisions, exceptions to the base policy"},
		},
	},
	"provision": {
		About: "A provision permits or denies what matches all of its scopes; an empty scope matches anything. " +
			"Among the provisions that apply at one level a deny overrides a permit; a nested provision that applies overrides its parent.",
		Fields: []wireField{
			{Name: "type", Encoding: "u8", Values: map[string]string{"1": "permit", "2": "deny"}, About: "what the provision does when it applies"},
			actionsField,
			{Name: "purposes", Encoding: "u8", Flags: true, Values: map[string]string{"1": "treatment", "2": "research", "4": "emergency"},
				About: "the purposes it covers, any of them; 0: any purpose. A deny naming emergency opts the patient out of emergency access"},
			{Name: "actors", Encoding: "list", Of: "actor", Max: 16, About: "who it covers, any of them; none: anyone"},
			classesField,
			{Name: "period", Encoding: "struct", Of: "period", About: "when the provision is in force"},
			{Name: "dataPeriod", Encoding: "struct", Of: "period", About: "which records it covers, by when they were recorded"},
			{Name: "provisions", Encoding: "list", Of: "provision", About: "nested provisions, its exceptions"},
		},
	},
	"actor": {
		About: "Who a provision or a token is about: every field set must match.",
		Fields: []wireField{
			{Name: "centre", Encoding: "str", Max: 64, About: "a member centre's libp2p peer ID in its binary form (the multihash bytes its base58 text form 12D3KooW… encodes: " +
				"for a centre's Ed25519 key, 38 bytes 00 24 08 01 12 20 then the key's 32 bytes); empty: any centre"},
			{Name: "role", Encoding: "u8", Values: roleNames(), About: "a staff role; 0: any role"},
			{Name: "staff", Encoding: "bytes", Size: 16, About: "a staff ID at the centre (32 hex digits elsewhere); all zero: anyone. A staff ID needs the centre"},
		},
	},
	"period": {
		About: "A half-open interval [start, end) of whole seconds.",
		Fields: []wireField{
			{Name: "start", Encoding: "time", About: "its start; 0: always"},
			{Name: "end", Encoding: "time", About: "its end, after the start; 0: open"},
		},
	},
	"data-class": {
		About: "A data class.",
		Fields: []wireField{
			{Name: "class", Encoding: "str", Max: 64, About: "1 to 64 characters of a-z, 0-9, `.`, `_` or `-`, starting with a letter or a digit (e.g. lab-result)"},
		},
	},
	"revocation": {
		About: "Kind 3: the patient withdraws a contract or a token. Revoking the contract in force leaves everything denied " +
			"but emergency access (as the charter and the patient's last contract allow) and unrevoked tokens.",
		Fields: []wireField{
			federationField,
			subjectField,
			{Name: "target", Encoding: "bytes", Size: 16, About: "the ID of the contract or token revoked"},
			issuedField,
		},
	},
	"token": {
		About: "Kind 4: the patient grants one grantee temporary access within a scope, for a number of uses (one use is one answer from one holder, " +
			"recorded on its ledger before it answers). The grantee presents it in base64 (the `token` of POST /v1/query, /v1/transfer, /v1/consent/tokens/check).",
		Fields: []wireField{
			{Name: "id", Encoding: "bytes", Size: 16, About: "the token's ID: 16 random bytes, not all zero"},
			federationField,
			subjectField,
			{Name: "grantee", Encoding: "struct", Of: "actor", About: "the grantee: a centre (required), or a staff member at one"},
			actionsField,
			{Name: "purposes", Encoding: "u8", Flags: true, Values: map[string]string{"1": "treatment", "2": "research"},
				About: "the purposes it allows, any of them; 0: any. Never emergency (emergency access needs no token)"},
			classesField,
			{Name: "dataPeriod", Encoding: "struct", Of: "period", About: "which records it covers, by when they were recorded"},
			issuedField,
			{Name: "expires", Encoding: "time", About: "when it expires: after `issued`, and at most the charter's token-max-lifetime after it"},
			{Name: "uses", Encoding: "u16", About: "how many uses it allows, 1 to 1000"},
		},
	},
	"veto": {
		About: "Kind 6: the patient's key in force refuses an attestation that would replace it (a key replacement they did not ask for). " +
			"It counts while the replacement awaits its second approval or is in its notice period. The patient's view lists the attestations (KeyEvents).",
		Fields: []wireField{
			federationField,
			subjectField,
			{Name: "attestation", Encoding: "bytes", Size: 32, About: "the refused attestation's hash (64 hex digits elsewhere)"},
			issuedField,
		},
	},
	"erasure": {
		About: "Kind 7: every holder is to erase the patient's records recorded before `issued`. It must be signed by a key in force for at least " +
			"the charter's key notice. Submitted to POST /v1/consent beside the signed erase request (POST /v1/patient/erase), it reaches, " +
			"and is honoured by, the holders the request could not reach.",
		Fields: []wireField{
			federationField,
			subjectField,
			issuedField,
		},
	},
	"patient-request": {
		About: "A patient's own request (at most 4096 bytes), made and posted to one centre, the relay, which asks every holder the directory lists for the patient (and every member, in a federation of up to 64). " +
			"The signature is Ed25519 (RFC 8032, pure) by the key in `key` over the bytes `medfed/patient/v1 request`, one zero byte, " +
			"then every byte of the request before `signature`. The key must be one a member attested for the patient, neither superseded nor reported compromised. " +
			"A centre takes a request only within " + strconv.Itoa(int(patient.MaxSkew.Minutes())) + " minutes of `time` by its own clock, and a nonce only once: each request needs a new one. " +
			"A decoder accepts only this exact encoding: no trailing bytes.",
		Fields: []wireField{
			{Name: "version", Encoding: "u8", Value: ptr(2), About: "the encoding's version"},
			{Name: "op", Encoding: "u8", Values: map[string]string{"1": "view", "2": "erase"}, About: "what the patient asks: view (POST /v1/patient/view) or erase (POST /v1/patient/erase)"},
			{Name: "federation", Encoding: "str", Max: 64, About: "the federation's ID (1 to 64 bytes)"},
			{Name: "relay", Encoding: "str", Max: 64, About: "the libp2p peer ID of the centre the request is posted to, in its binary form " +
				"(for a centre's Ed25519 key, 38 bytes 00 24 08 01 12 20 then the key's 32 bytes); a member takes the request from that centre alone"},
			subjectField,
			{Name: "key", Encoding: "bytes", Size: 32, About: "the patient's Ed25519 public key, which signs the request"},
			{Name: "nonce", Encoding: "bytes", Size: 16, About: "16 random bytes, not all zero"},
			{Name: "time", Encoding: "millis", About: "when the request was made"},
			{Name: "cursors", Encoding: "list", Of: "cursor", Max: patient.MaxCursors,
				About: "for a view's next page: where each holder named is to go on from (its answer's Next); sorted by holder's bytes, each holder once. None for an erasure"},
			{Name: "signature", Encoding: "bytes", Size: 64, About: "the Ed25519 signature (see above)"},
		},
	},
	"device-registration": {
		About: "A patient registers a device of theirs at one centre (at most 4096 bytes): POST /v1/devices. " +
			"The signature is Ed25519 (RFC 8032, pure) by the key in `key` over the bytes `" + device.RegistrationContext + "`, one zero byte, " +
			"then every byte of the registration before `signature`. The key must be one a member attested for the patient. " +
			"A later registration of the same device (by `time`) replaces it; one signed before the device's revocation is refused. A decoder accepts only this exact encoding.",
		Fields: []wireField{
			{Name: "version", Encoding: "u8", Value: ptr(1), About: "the encoding's version"},
			federationField,
			centreField,
			subjectField,
			{Name: "key", Encoding: "bytes", Size: 32, About: "the patient's Ed25519 public key, which signs the registration"},
			{Name: "device", Encoding: "bytes", Size: 32, About: "the device's Ed25519 public key, which signs its batches; its ID on ledgers is the first 16 bytes of SHA-256 of `" +
				"medfed/device/v1 id`, one zero byte, and the key"},
			{Name: "type", Encoding: "u8", Values: deviceTypes(), About: "what the device is: a code, never a name or a serial number"},
			{Name: "classes", Encoding: "list", Of: "data-class", Max: 16, About: "the data classes it may contribute: 1 to 16, sorted, each once, each one of the centre's records.classes"},
			{Name: "notBefore", Encoding: "time", About: "when its term begins: no reading dated before it is taken"},
			{Name: "expires", Encoding: "time", About: "when its term ends: after notBefore, at most two years after it"},
			{Name: "nonce", Encoding: "bytes", Size: 16, About: "16 random bytes, not all zero"},
			{Name: "time", Encoding: "millis", About: "when the patient signed it: at most 5 minutes ahead of the centre's clock"},
			{Name: "signature", Encoding: "bytes", Size: 64, About: "the Ed25519 signature (see above)"},
		},
	},
	"device-revocation": {
		About: "A patient revokes a device's registration at one centre: POST /v1/devices/revocations. Signed as a registration is, over the bytes `" +
			device.RevocationContext + "`, one zero byte, then every byte before `signature`. It ends every registration of the device the patient signed before it.",
		Fields: []wireField{
			{Name: "version", Encoding: "u8", Value: ptr(1), About: "the encoding's version"},
			federationField,
			centreField,
			subjectField,
			{Name: "key", Encoding: "bytes", Size: 32, About: "the patient's Ed25519 public key, which signs the revocation"},
			{Name: "device", Encoding: "bytes", Size: 32, About: "the device's Ed25519 public key"},
			{Name: "nonce", Encoding: "bytes", Size: 16, About: "16 random bytes, not all zero"},
			{Name: "time", Encoding: "millis", About: "when the patient signed it"},
			{Name: "signature", Encoding: "bytes", Size: 64, About: "the Ed25519 signature (see above)"},
		},
	},
	"device-batch": {
		About: "A device's batch of readings (at most " + strconv.Itoa(device.MaxBatch) + " bytes): POST /v1/devices/readings. The signature is Ed25519 (RFC 8032, pure) by the device's key in `device` " +
			"over the bytes `" + device.BatchContext + "`, one zero byte, then every byte of the batch before `signature`. " +
			"A centre takes a batch within " + strconv.Itoa(int(device.MaxSkew.Minutes())) + " minutes of `time` by its own clock, and a nonce once: each batch needs a new one.",
		Fields: []wireField{
			{Name: "version", Encoding: "u8", Value: ptr(1), About: "the encoding's version"},
			federationField,
			centreField,
			subjectField,
			{Name: "device", Encoding: "bytes", Size: 32, About: "the device's Ed25519 public key, which signs the batch"},
			{Name: "nonce", Encoding: "bytes", Size: 16, About: "16 random bytes, not all zero"},
			{Name: "time", Encoding: "millis", About: "when the device signed it"},
			{Name: "readings", Encoding: "list", Of: "reading", Max: device.MaxReadings, About: "the readings: 1 to " + strconv.Itoa(device.MaxReadings)},
			{Name: "signature", Encoding: "bytes", Size: 64, About: "the Ed25519 signature (see above)"},
		},
	},
	"reading": {
		About: "One reading: a FHIR R4 Observation's JSON, as the centre stores it (POST /v1/devices/readings says which Observations a device may post).",
		Fields: []wireField{
			{Name: "observation", Encoding: "blob", About: "the Observation's JSON, 1 to " + strconv.Itoa(device.MaxReading) + " bytes"},
		},
	},
	"cursor": {
		About: "Where one holder's entries go on from.",
		Fields: []wireField{
			{Name: "holder", Encoding: "str", Max: 64, About: "the holder's libp2p peer ID, binary (the answer's ID in base58)"},
			{Name: "from", Encoding: "u64", About: "the ledger index its entries go on from"},
		},
	},
}

// The fields many layouts share.
var (
	federationField = wireField{Name: "federation", Encoding: "str", Max: 64, About: "the federation's ID (1 to 64 bytes)"}
	subjectField    = wireField{Name: "subject", Encoding: "bytes", Size: 32, About: "the patient's pseudonym (64 hex digits elsewhere)"}
	issuedField     = wireField{Name: "issued", Encoding: "time", About: "when the patient signed it: a whole second from 1970 to 2261, at most 5 minutes ahead of the centres' clocks"}
	actionsField    = wireField{Name: "actions", Encoding: "u8", Flags: true, Values: map[string]string{"1": "access", "2": "copy"},
		About: "the actions covered, any of them (access: read in a query; copy: take into another centre's records); 0: any action"}
	classesField = wireField{Name: "classes", Encoding: "list", Of: "data-class", Max: 16, About: "the data classes covered, any of them; none: any class"}
	centreField  = wireField{Name: "centre", Encoding: "str", Max: 64, About: "the libp2p peer ID of the centre it is for, in its binary form " +
		"(for a centre's Ed25519 key, 38 bytes 00 24 08 01 12 20 then the key's 32 bytes): it counts at that centre alone"}
)

func deviceTypes() map[string]string {
	out := map[string]string{}
	for i, name := range device.Types() {
		out[strconv.Itoa(i+1)] = name
	}
	return out
}

func kindNames() map[string]string {
	out := map[string]string{}
	for k := consent.KindAttestation; k <= consent.KindErasure; k++ {
		out[strconv.Itoa(int(k))] = k.String()
	}
	return out
}

func roleNames() map[string]string {
	out := map[string]string{"0": "any"}
	for _, r := range Roles {
		role, err := consent.ParseRole(r)
		if err != nil {
			panic(fmt.Sprintf("api: role %q is not consent's", r)) // the tests build the document
		}
		out[strconv.Itoa(int(role))] = r
	}
	return out
}

// The layouts each signed field documents, the first one's fields first.
var (
	consentLayouts = []string{"consent-document", "contract", "provision", "actor", "period", "data-class", "revocation", "token", "veto", "erasure"}
	requestLayouts = []string{"patient-request", "cursor"}
)

// layoutMarkdown explains the layouts names in Markdown: a table each,
// with each field's offset where it is fixed.
func layoutMarkdown(names []string) string {
	var b strings.Builder
	b.WriteString("Fields follow each other in the order listed, with no padding; integers are big-endian. Encodings: ")
	for i, e := range wireEncodings {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "**%s**: %s", e.name, e.about)
	}
	b.WriteString(". The same layouts, as data: `components.x-medfed-layouts`.\n")
	for _, name := range names {
		l := wireLayouts[name]
		fmt.Fprintf(&b, "\n**%s**: %s\n\n| offset | field | encoding | meaning |\n|---|---|---|---|\n", name, l.About)
		offset := 0 // -1 once a field of variable length has passed
		for _, f := range l.Fields {
			at := "…"
			if offset >= 0 {
				at = strconv.Itoa(offset)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", at, f.Name, fieldEncoding(f), fieldMeaning(f))
			if n := fixedSize(f); n >= 0 && offset >= 0 {
				offset += n
			} else {
				offset = -1
			}
		}
	}
	return b.String()
}

func fieldEncoding(f wireField) string {
	switch f.Encoding {
	case "bytes":
		return fmt.Sprintf("bytes[%d]", f.Size)
	case "list":
		s := "list of " + f.Of
		if f.Max > 0 {
			s += fmt.Sprintf(" (at most %d)", f.Max)
		}
		return s
	case "struct":
		return f.Of
	case "str":
		if f.Max > 0 {
			return fmt.Sprintf("str (at most %d bytes)", f.Max)
		}
	}
	return f.Encoding
}

func fieldMeaning(f wireField) string {
	s := f.About
	if f.Value != nil {
		s += fmt.Sprintf(": %d", *f.Value)
	}
	if f.Cases != nil {
		var cases []string
		for _, k := range sortedKeys(f.Cases) {
			cases = append(cases, fmt.Sprintf("%s %s", k, f.Cases[k]))
		}
		s += fmt.Sprintf(", by %s: %s", f.By, strings.Join(cases, ", "))
	}
	if f.Values != nil {
		var vs []string
		for _, k := range sortedKeys(f.Values) {
			vs = append(vs, k+" "+f.Values[k])
		}
		if f.Flags {
			s += "; bits: "
		} else {
			s += "; values: "
		}
		s += strings.Join(vs, ", ")
	}
	return s
}

// sortedKeys orders a map of numbers' names by number.
func sortedKeys(m map[string]string) []string {
	return slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
}

// fixedSize is how many bytes f takes, or -1 when that varies.
func fixedSize(f wireField) int {
	switch f.Encoding {
	case "u8":
		return 1
	case "u16":
		return 2
	case "u32":
		return 4
	case "u64", "time", "millis":
		return 8
	case "bytes":
		return f.Size
	case "struct":
		n := 0
		for _, g := range wireLayouts[f.Of].Fields {
			m := fixedSize(g)
			if m < 0 {
				return -1
			}
			n += m
		}
		return n
	}
	return -1
}
