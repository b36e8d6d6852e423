package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadConfig feeds arbitrary bytes to the configuration loader as a
// centre's configuration file: it either loads a configuration that
// validates or refuses with a usage error naming what is wrong; it never
// panics and never returns half a configuration.
func FuzzLoadConfig(f *testing.F) {
	for _, name := range []string{"centre-a", "centre-b", "centre-c", "centre-d", "centre-e"} {
		raw, err := os.ReadFile(filepath.Join("..", "..", "configs", name+".yaml"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	for _, s := range []string{
		"centre: [1, 2]",
		"centre:\n  name: x\n  surprise: 1\n",
		"ledger:\n  max-batch: 1e99\n  checkpoint-interval: -1s\n",
		"p2p:\n  listen: /ip4/127.0.0.1/udp/1/quic-v1\n  psk-file: ''\n",
		"pseudonym:\n  systems:\n    - name: mrn\n      pattern: '[A-Z'\n      check: luhn\n",
		"api: {listen: ':::'}\nlog: {level: loud}\n",
		"&a [*a]",
		"\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(t.TempDir(), "centre.yaml")
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(nil, path)
		if err != nil {
			var usage usageError
			if !errors.As(err, &usage) || err.Error() == "" {
				t.Fatalf("a configuration refused without a usage error: %T %v", err, err)
			}
			if cfg.Centre.Name != "" || cfg.Data.Dir != "" {
				t.Fatalf("a refused configuration came back half loaded: %+v", cfg)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("a configuration that loaded does not validate: %v", err)
		}
	})
}
