package api

import (
	"bytes"
	"testing"
)

func TestDocumentEnvelope(t *testing.T) {
	h := documentHeader{ContentType: "text/plain; charset=utf-8", TypeSystem: "http://loinc.org", TypeCode: "11502-2", TypeDisplay: "Laboratory report"}
	sealed, err := sealDocument(h, []byte("Hb 135 g/L"))
	if err != nil {
		t.Fatal(err)
	}
	got, data, err := openDocument(sealed)
	if err != nil || got != h || string(data) != "Hb 135 g/L" {
		t.Fatalf("opened %+v %q %v", got, data, err)
	}
	// A payload of /v1 is bytes of no type.
	if got, data, err := openDocument([]byte("plain")); err != nil || got.ContentType != octetStream || string(data) != "plain" {
		t.Fatalf("a plain payload: %+v %q %v", got, data, err)
	}
	for name, bad := range map[string][]byte{
		"cut in its length":   sealed[:len(documentMagic)],
		"cut in its header":   sealed[:len(documentMagic)+5],
		"a header of no JSON": append(append(bytes.Clone(documentMagic), 3), "abc"...),
		"an unknown field":    append(append(bytes.Clone(documentMagic), 12), `{"x":"text"}`...),
		"no media type":       append(append(bytes.Clone(documentMagic), 18), `{"contentType":""}`...),
	} {
		if _, _, err := openDocument(bad); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	if _, err := sealDocument(documentHeader{ContentType: "not a type"}, nil); err == nil {
		t.Error("sealed a document of no media type")
	}
}

// FuzzDocumentEnvelope opens payloads as a holder's release brings them:
// never a panic, and what opens seals back to the same bytes.
func FuzzDocumentEnvelope(f *testing.F) {
	sealed, _ := sealDocument(documentHeader{ContentType: "application/pdf", TypeSystem: "http://loinc.org", TypeCode: "18842-5"}, []byte("%PDF-1.7"))
	f.Add(sealed)
	f.Add([]byte("plain bytes"))
	f.Add(append(bytes.Clone(documentMagic), 0xff, 0xff, 0xff, 0xff, 0x0f))
	f.Fuzz(func(t *testing.T, payload []byte) {
		h, data, err := openDocument(payload)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(payload, documentMagic) {
			if !bytes.Equal(data, payload) {
				t.Fatal("a plain payload changed")
			}
			return
		}
		again, err := sealDocument(h, data)
		if err != nil {
			t.Fatalf("an opened header does not seal: %v", err)
		}
		h2, data2, err := openDocument(again)
		if err != nil || h2 != h || !bytes.Equal(data2, data) {
			t.Fatalf("sealed again, it opens differently: %v", err)
		}
	})
}
