package federation_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/multiformats/go-multiaddr"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
)

func TestJoinRequestRoundTrip(t *testing.T) {
	quic := testMember(t, "centre-q", 4110)
	quic.Addrs = []multiaddr.Multiaddr{
		mustAddr(t, "/ip6/2001:db8::10/udp/4110/quic-v1"),
		mustAddr(t, "/ip4/192.0.2.10/udp/4110/quic-v1"),
	}
	tests := []struct {
		name string
		r    federation.JoinRequest
	}{
		{"one address", federation.JoinRequest{Federation: testFederation, Member: testMember(t, "centre-d", 4104)}},
		{"quic addresses", federation.JoinRequest{Federation: "f", Member: quic}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := tt.r.Text()
			want := "medfed join request v1\nfederation " + tt.r.Federation + "\nmember " + tt.r.Member.Name + " " + tt.r.Member.ID.String()
			if !strings.HasPrefix(text, want) || !strings.HasSuffix(text, "\n") || strings.Count(text, "\n") != 3 {
				t.Errorf("Text() = %q", text)
			}
			got, err := federation.ParseJoinRequest(text)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.r) {
				t.Errorf("ParseJoinRequest(Text()) = %+v, want %+v", got, tt.r)
			}
			msg, err := federation.SignRequest(tt.r, testKey(tt.r.Member.Name))
			if err != nil {
				t.Fatal(err)
			}
			opened, err := federation.OpenRequest(msg)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(opened, tt.r) {
				t.Errorf("OpenRequest(SignRequest()) = %+v, want %+v", opened, tt.r)
			}
		})
	}
}

func TestJoinRequestRefused(t *testing.T) {
	r := federation.JoinRequest{Federation: testFederation, Member: testMember(t, "centre-d", 4104)}
	text := r.Text()
	good, err := federation.SignRequest(r, testKey("centre-d"))
	if err != nil {
		t.Fatal(err)
	}
	noAddrs := r
	noAddrs.Member.Addrs = nil
	badFederation := r
	badFederation.Federation = "Medfed"

	tests := []refusal{
		{"garbage", func() (any, error) { return asRequest(federation.ParseJoinRequest("join me\n")) }, node.ErrInvalid},
		{"charter header", func() (any, error) {
			return asRequest(federation.ParseJoinRequest(strings.Replace(text, "join request", "charter", 1)))
		}, node.ErrInvalid},
		{"extra line", func() (any, error) {
			return asRequest(federation.ParseJoinRequest(text + "member centre-e x /ip4/127.0.0.1/tcp/1\n"))
		}, node.ErrInvalid},
		{"truncated", func() (any, error) { return asRequest(federation.ParseJoinRequest(text[:len(text)-5])) }, node.ErrInvalid},
		{"RSA peer ID", func() (any, error) {
			return asRequest(federation.ParseJoinRequest(strings.Replace(text, r.Member.ID.String(), rsaPeerID, 1)))
		}, node.ErrInvalid},
		{"secp256k1 peer ID", func() (any, error) {
			return asRequest(federation.ParseJoinRequest(strings.Replace(text, r.Member.ID.String(), secp256k1PeerID(t).String(), 1)))
		}, node.ErrInvalid},
		{"bad multiaddr", func() (any, error) {
			return asRequest(federation.ParseJoinRequest(strings.Replace(text, "/tcp/4104", "/tcp/70000", 1)))
		}, node.ErrInvalid},
		{"oversized", func() (any, error) {
			return asRequest(federation.ParseJoinRequest(text + strings.Repeat("x", 5000) + "\n"))
		}, node.ErrInvalid},
		{"oversized note", func() (any, error) {
			return asRequest(federation.OpenRequest(append(good, strings.Repeat("— x AAAA\n", 1000)...)))
		}, node.ErrInvalid},
		{"sign without addresses", func() (any, error) { return asNote(federation.SignRequest(noAddrs, testKey("centre-d"))) }, node.ErrInvalid},
		{"sign for a bad federation name", func() (any, error) {
			return asNote(federation.SignRequest(badFederation, testKey("centre-d")))
		}, node.ErrInvalid},
		{"sign with another centre's key", func() (any, error) { return asNote(federation.SignRequest(r, testKey("centre-a"))) }, federation.ErrSignatures},
		{"signed by another centre", func() (any, error) { return asRequest(federation.OpenRequest(rawSign(t, text, "centre-a"))) }, federation.ErrSignatures},
		{"signed twice", func() (any, error) {
			return asRequest(federation.OpenRequest(rawSign(t, text, "centre-d", "centre-a")))
		}, federation.ErrSignatures},
		{"text altered after signing", func() (any, error) {
			return asRequest(federation.OpenRequest([]byte(strings.Replace(string(good), "4104", "4105", 1))))
		}, federation.ErrSignatures},
		{"corrupted signature", func() (any, error) { return asRequest(federation.OpenRequest(corruptSig(good))) }, federation.ErrSignatures},
		{"unsigned", func() (any, error) { return asRequest(federation.OpenRequest([]byte(text))) }, node.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.run()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if v := reflect.ValueOf(got); v.IsValid() && !v.IsZero() {
				t.Errorf("returned %v with its error", got)
			}
		})
	}
}
