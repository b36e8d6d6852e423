package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/centre"
)

func newBackupCmd() *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "backup --config FILE --to DIR",
		Short: "Copy the centre, running or not, into a backup directory",
		Long: `backup makes a consistent copy of the centre into DIR, which must not
exist or be empty: each SQLite file through SQLite's online backup (the
ledger and the records store while no erasure runs, so that each erased
payload's erasure entry is in the copy), the key files, and manifest.json
naming every file with its SHA-256. The pseudonym index is left out: it is
rebuilt from the ledger. A running node makes the copy itself and keeps
serving; otherwise the command opens the data directory.

DIR holds the centre's keys: keep it as private as the data directory.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&to, "to", "", "the backup directory (must not exist, or be empty)")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		if to == "" {
			return usagef("backup: --to is required")
		}
		dir, err := filepath.Abs(to)
		if err != nil {
			return err
		}
		m, err := admin.Dial(cfg.Data.Dir).Backup(cmd.Context(), dir)
		if errors.Is(err, admin.ErrNotRunning) {
			err = withCentre(cmd.Context(), cfg, func(c *centre.Centre) error {
				m, err = c.Backup(cmd.Context(), dir)
				return err
			})
		}
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "backup of %s at %s: %d ledger entries, %d files, in %s\n", m.Centre, m.Taken.Format(time.RFC3339), m.LedgerSize, len(m.Files), dir)
		return err
	})
}

func newRestoreCmd() *cobra.Command {
	var from string
	cmd := &cobra.Command{
		Use:   "restore --config FILE --from DIR",
		Short: "Bring a centre back from a backup into an empty data directory",
		Long: `restore checks a backup made by medfed backup (it must be this centre's,
and every file must match the manifest), copies it into the data
directory, which must not exist or be empty, and verifies its ledger
against the charter on it.

A restored ledger may be behind what the other members cosigned of it: an
entry appended now would sit at an index they hold another entry for. So
the restored node appends and signs nothing (its /readyz says why) until
every other member has told it what it cosigned of this centre's ledger:
if the ledger holds all of it, the node resumes; if a member cosigned
more, the node stays halted, logs which member and how far, and a newer
backup is needed.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&from, "from", "", "the backup directory")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		if from == "" {
			return usagef("restore: --from is required")
		}
		m, err := centre.Restore(cmd.Context(), from, cfg)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "restored %s from its backup of %s (%d ledger entries) into %s; the node resumes appending once every other member confirms the ledger\n", m.Centre, m.Taken.Format(time.RFC3339), m.LedgerSize, cfg.Data.Dir)
		return err
	})
}
