package federation_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/medfed/medfed/federation"
)

func cosignKey(seed string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte(seed))
	return ed25519.NewKeyFromSeed(s[:])
}

func TestCosignaturesVerifyAndCannotPassForTheLogsSignature(t *testing.T) {
	text := "medfed/f/centre-a\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
	wkey := cosignKey("witness")
	id, err := federation.PeerIDFromKey(wkey)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1_790_000_000, 0)
	c, err := federation.NewCosigner(wkey, func() time.Time { return at })
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: text}, c)
	if err != nil {
		t.Fatal(err)
	}
	v, err := federation.NewCosignatureVerifier(federation.Member{Name: "witness", ID: id})
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil || n.Text != text || len(n.Sigs) != 1 {
		t.Fatalf("open: %v", err)
	}

	// The same key as a plain Ed25519 note key does not accept it.
	vkey, err := note.NewEd25519VerifierKey(id.String(), wkey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	var unverified *note.UnverifiedNoteError
	if _, err := note.Open(msg, note.VerifierList(plain)); !errors.As(err, &unverified) {
		t.Fatalf("a cosignature verified as a log signature: %v", err)
	}

	// Another checkpoint body with the same cosignature fails.
	altered := strings.Replace(string(msg), "\n7\n", "\n8\n", 1)
	if _, err := note.Open([]byte(altered), note.VerifierList(v)); err == nil {
		t.Fatal("a cosignature verified over another checkpoint")
	}
}

// FuzzOpenCosigned feeds arbitrary notes to a log verifier and a witness's
// cosignature verifier: never a panic, and whatever opens verifies.
func FuzzOpenCosigned(f *testing.F) {
	wkey := cosignKey("witness")
	id, err := federation.PeerIDFromKey(wkey)
	if err != nil {
		f.Fatal(err)
	}
	c, err := federation.NewCosigner(wkey, func() time.Time { return time.Unix(1_790_000_000, 0) })
	if err != nil {
		f.Fatal(err)
	}
	text := "medfed/f/centre-a\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
	msg, err := note.Sign(&note.Note{Text: text}, c)
	if err != nil {
		f.Fatal(err)
	}
	v, err := federation.NewCosignatureVerifier(federation.Member{Name: "w", ID: id})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(msg)
	f.Add([]byte(text + "\n— x AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := note.Open(b, note.VerifierList(v))
		if err != nil {
			return
		}
		for _, s := range n.Sigs {
			if s.Name != id.String() {
				t.Fatalf("a signature by %q verified", s.Name)
			}
		}
	})
}
