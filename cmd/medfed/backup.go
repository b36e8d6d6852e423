package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/centre"
)

func newBackupCmd() *cobra.Command {
	var to string
	var recipients []string
	cmd := &cobra.Command{
		Use:   "backup --config FILE --to DIR",
		Short: "Copy the centre, running or not, into a backup directory",
		Long: `backup makes a consistent copy of the centre into DIR, which must not
exist or be empty: each SQLite file through SQLite's online backup (the
ledger and the records store while no erasure runs, so that each erased
payload's erasure entry is in the copy), the key files, and MANIFEST
naming every file with its SHA-256. The pseudonym index is left out: it is
rebuilt from the ledger. A running node makes the copy itself and keeps
serving; otherwise the command opens the data directory.

DIR holds the centre's keys: keep it as private as the data directory.
With --recipient (an age X25519 public key, age1..., repeatable), the
backup is instead one file, DIR, that does not exist yet: a tar of the
same files encrypted with age to every recipient, whose identities are
kept away from the centre (age -d -i KEY FILE | tar x opens it too; medfed
restore --identity reads it). The plain copy is made beside it first and
removed.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&to, "to", "", "the backup directory (must not exist, or be empty), or with --recipient the backup file (must not exist)")
	cmd.Flags().StringArrayVar(&recipients, "recipient", nil, "encrypt the backup to this age public key (age1...); repeatable")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		if to == "" {
			return usagef("backup: --to is required")
		}
		dir, err := filepath.Abs(to)
		if err != nil {
			return err
		}
		var rs []age.Recipient
		for _, r := range recipients {
			x, err := age.ParseX25519Recipient(r)
			if err != nil {
				return usagef("backup: --recipient %q: %v", r, err)
			}
			rs = append(rs, x)
		}
		file := ""
		if len(rs) > 0 {
			if _, err := os.Lstat(dir); err == nil {
				return fmt.Errorf("backup: %s exists: an encrypted backup is a new file", dir)
			}
			tmp, err := os.MkdirTemp(filepath.Dir(dir), ".medfed-backup-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			file, dir = dir, filepath.Join(tmp, "backup")
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
		if file != "" {
			if err := sealBackup(dir, file, rs); err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			dir = file + " (encrypted to " + strconv.Itoa(len(rs)) + " recipient(s))"
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "backup of %s at %s: %d ledger entries, %d files, in %s\n", m.Centre, m.Taken.Format(time.RFC3339), m.LedgerSize, len(m.Files), dir)
		return err
	})
}

func newRestoreCmd() *cobra.Command {
	var from, identity string
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
backup is needed.

An encrypted backup (a file made with --recipient) needs --identity, a
file of age identities (AGE-SECRET-KEY-1...), one of whose public keys it
was encrypted to.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&from, "from", "", "the backup directory, or an encrypted backup file")
	cmd.Flags().StringVar(&identity, "identity", "", "the age identities file that opens an encrypted backup")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		if from == "" {
			return usagef("restore: --from is required")
		}
		if fi, err := os.Stat(from); err == nil && fi.Mode().IsRegular() {
			if identity == "" {
				return usagef("restore: %s is an encrypted backup: --identity is required", from)
			}
			tmp, err := openBackup(from, identity, filepath.Dir(filepath.Clean(cfg.Data.Dir)))
			if tmp != "" {
				defer os.RemoveAll(tmp)
			}
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			from = tmp
		}
		m, err := centre.Restore(cmd.Context(), from, cfg)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "restored %s from its backup of %s (%d ledger entries) into %s; the node resumes appending once every other member confirms the ledger\n", m.Centre, m.Taken.Format(time.RFC3339), m.LedgerSize, cfg.Data.Dir)
		return err
	})
}

// sealBackup writes the files of the backup directory dir, as a tar
// encrypted with age to recipients, into the new file path.
func sealBackup(dir, path string, recipients []age.Recipient) (err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err = errors.Join(err, f.Close()); err != nil {
			os.Remove(path)
		}
	}()
	enc, err := age.Encrypt(f, recipients...)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(enc)
	for _, e := range entries {
		if err := tarFile(tw, filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	if err := errors.Join(tw.Close(), enc.Close()); err != nil {
		return err
	}
	return f.Sync()
}

// tarFile streams the file at path into tw under its base name.
func tarFile(tw *tar.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: filepath.Base(path), Mode: 0o600, Size: fi.Size(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// maxBackupFile bounds one file read back from an encrypted backup.
const maxBackupFile = 1 << 40

// openBackup decrypts the encrypted backup at path with the identities in
// the file identity, into a new private directory under parent, which it
// returns (the caller removes it). Only plain files with plain names are
// taken; anything else in the archive is refused.
func openBackup(path, identity, parent string) (string, error) {
	idf, err := os.Open(identity)
	if err != nil {
		return "", err
	}
	ids, err := age.ParseIdentities(idf)
	idf.Close()
	if err != nil {
		return "", fmt.Errorf("--identity %s: %w", identity, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	dec, err := age.Decrypt(f, ids...)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(parent, ".medfed-restore-")
	if err != nil {
		return "", err
	}
	tr := tar.NewReader(dec)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return tmp, nil
		}
		if err != nil {
			return tmp, fmt.Errorf("%s: %w", path, err)
		}
		if h.Typeflag != tar.TypeReg || h.Name != filepath.Base(h.Name) || h.Name == "." || h.Name == ".." || h.Size < 0 || h.Size > maxBackupFile {
			return tmp, fmt.Errorf("%s: %w: the archive holds %q, not a backup's file", path, node.ErrInvalid, h.Name)
		}
		out, err := os.OpenFile(filepath.Join(tmp, h.Name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return tmp, err
		}
		_, err = io.Copy(out, io.LimitReader(tr, h.Size))
		if err := errors.Join(err, out.Close()); err != nil {
			return tmp, err
		}
	}
}
