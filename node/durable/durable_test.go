package durable_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/medfed/medfed/node/durable"
)

// WriteNew makes a file once and refuses to overwrite it; Replace
// replaces it whole. Neither leaves a temporary file behind, and the
// files are the owner's alone.
func TestWriteNewAndReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	if err := durable.WriteNew(path, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := durable.WriteNew(path, []byte("two")); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("a second WriteNew: %v, want it refused", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "one" {
		t.Fatalf("after a refused WriteNew: %q, %v", b, err)
	}
	if err := durable.Replace(path, []byte("three")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "three" {
		t.Fatalf("after Replace: %q, %v", b, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v, %v", fi, err)
	}
	left, err := filepath.Glob(filepath.Join(dir, durable.TempPrefix+"*"))
	if err != nil || len(left) != 0 {
		t.Fatalf("temporary files left: %v, %v", left, err)
	}
	if err := durable.Replace(filepath.Join(dir, "no", "such"), nil); err == nil {
		t.Fatal("Replace into a missing directory succeeded")
	}
}
