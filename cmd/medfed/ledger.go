package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/medfed/medfed/federation"
	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest/harness"
	"github.com/medfed/medfed/node/smart"
)

func newLedgerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "Inspect and check a centre's ledger",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newLedgerVerifyCmd(), newLedgerStatusCmd(), newLedgerSoakCmd())
	return cmd
}

func newLedgerVerifyCmd() *cobra.Command {
	var dir, file, charter string
	cmd := &cobra.Command{
		Use:   "verify (--data DIR | --ledger FILE) [--charter FILE]",
		Short: "Recheck every hash and signature of a ledger against the charter, offline",
		Long: `verify recomputes every leaf and tree hash of a ledger (a centre's data
directory, or a copy of its ledger.db) and checks every stored checkpoint's
signature with the centre's key as the federation's charter lists it, and
every final checkpoint's cosignatures with the witnesses' keys. It needs no
private key: an auditor runs it on a copy. A centre that rewrote its ledger
and signed it again fails, since its witnesses cosigned the old roots.

--charter names the charter chain to check against (medfed federation
charter writes it; a founding charter file is a chain of one version).
Without it, verify checks the ledger against the chain adopted on the
ledger itself, verified from version 1 (the founders' signatures); a
centre in no federation yet is checked against the key in its data
directory's centre.key. It writes nothing, so it may run beside a live
node.

Exit status: 0 when the ledger is intact, 1 when it is not (the first bad
entry or checkpoint is named), 2 when DIR is not a centre's data directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := file
			switch {
			case dir == "" && file == "":
				return usagef("ledger verify: --data DIR is required (or --ledger FILE)")
			case dir != "" && file != "":
				return usagef("ledger verify: give --data DIR or --ledger FILE, not both")
			case dir != "":
				path = filepath.Join(dir, centre.LedgerFile)
				if _, err := os.Stat(path); err != nil {
					return usageError{fmt.Errorf("ledger verify: %s: %w (no %s)", dir, centre.ErrNotDataDir, centre.LedgerFile)}
				}
			}
			rep, against, err := verifyLedger(cmd.Context(), path, dir, charter)
			if errors.Is(err, centre.ErrNotDataDir) || errors.Is(err, ledger.ErrNotLedger) || errors.Is(err, node.ErrInvalid) && !isTamper(err) {
				return usageError{fmt.Errorf("ledger verify: %w", err)}
			}
			if isTamper(err) {
				return fmt.Errorf("ledger %s has been tampered with: %w", path, err)
			}
			if err != nil {
				return fmt.Errorf("ledger verify: %w", err)
			}
			out := &stickyWriter{w: cmd.OutOrStdout()}
			fmt.Fprintf(out, "ledger %s: ok\n", rep.Origin)
			fmt.Fprintf(out, "  key          %s\n", against)
			fmt.Fprintf(out, "  entries      %d\n", rep.Size)
			fmt.Fprintf(out, "  root         %s\n", base64.StdEncoding.EncodeToString(rep.Root[:]))
			fmt.Fprintf(out, "  checkpoints  %d, every signature valid\n", rep.Checkpoints)
			if rep.Final > 0 {
				fmt.Fprintf(out, "  final        %d, cosigned by the witness quorum; the latest covers %d of %d entries\n", rep.Final, rep.LatestFinal, rep.Size)
			} else {
				fmt.Fprintf(out, "  final        none: no entry is witnessed yet\n")
			}
			return out.err
		},
	}
	cmd.Flags().StringVar(&dir, "data", "", "the centre's data `directory`")
	cmd.Flags().StringVar(&file, "ledger", "", "a ledger `file` (a copy of a centre's ledger.db)")
	cmd.Flags().StringVar(&charter, "charter", "", "the charter chain `file` to check against (default: the chain on the ledger)")
	return cmd
}

func isTamper(err error) bool {
	var te *ledger.TamperError
	return errors.As(err, &te)
}

// verifyLedger verifies the ledger at path against the charter chain in
// charterFile, else the chain on the ledger, else (a centre in no
// federation, dir given) its own centre.key; it says which.
func verifyLedger(ctx context.Context, path, dir, charterFile string) (ledger.Report, string, error) {
	var (
		chain [][]byte
		from  string
	)
	if charterFile != "" {
		b, err := readIn(charterFile)
		if err != nil {
			return ledger.Report{}, "", err
		}
		if chain, err = federation.ParseChain(b); err != nil {
			return ledger.Report{}, "", fmt.Errorf("--charter %s: %w", charterFile, err)
		}
		from = "the charter in " + charterFile
	} else {
		var err error
		if chain, err = centre.ChainOnLedger(ctx, path); err != nil {
			return ledger.Report{}, "", err
		}
		from = "the charter adopted on the ledger"
	}
	if len(chain) == 0 {
		if dir == "" {
			return ledger.Report{}, "", usagef("ledger verify: the ledger holds no charter: give --charter FILE")
		}
		rep, err := centre.Verify(ctx, dir)
		return rep, "centre.key in " + dir + " (the ledger holds no charter: a centre in no federation yet)", err
	}
	rep, err := centre.VerifyPublic(ctx, path, chain)
	return rep, fmt.Sprintf("the centre's, from %s (%d version(s))", from, len(chain)), err
}

func newLedgerStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status --config FILE",
		Short: "Show the latest checkpoint, the latest final one and its cosigners, and any evidence",
		Args:  cobra.NoArgs,
	}
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		st, err := admin.Dial(cfg.Data.Dir).LedgerStatus(cmd.Context())
		if errors.Is(err, admin.ErrNotRunning) { // read the data directory itself
			err = withCentre(cmd.Context(), cfg, func(c *centre.Centre) error {
				local, err := c.LedgerStatus(cmd.Context())
				st = api.LedgerStatusOf(local)
				return err
			})
		}
		if err != nil {
			return err
		}
		out := &stickyWriter{w: cmd.OutOrStdout()}
		fmt.Fprintf(out, "ledger %s: %d entries\n", st.Origin, st.Size)
		if st.Latest != nil {
			fmt.Fprintf(out, "  latest checkpoint  size %d, root %s\n", st.Latest.Size, st.Latest.Root)
		} else {
			fmt.Fprintln(out, "  latest checkpoint  none signed yet")
		}
		if st.Final != nil {
			fmt.Fprintf(out, "  final checkpoint   size %d, cosigned by %s\n", st.Final.Size, strings.Join(st.Final.Cosigners, ", "))
		} else {
			fmt.Fprintln(out, "  final checkpoint   none yet")
		}
		if out.err != nil {
			return out.err
		}
		return printEvidence(cmd, st.Evidence)
	})
}

// soak writes scratch ledgers of their own origin: a real centre's data
// directory has another, so the ledger refuses to let soak append to it.
const soakFederation, soakCentre = "soak", "soak"

func newLedgerSoakCmd() *cobra.Command {
	var (
		dir      string
		writers  int
		duration time.Duration
	)
	cmd := &cobra.Command{
		Use:   "soak --data DIR",
		Short: "Append synthetic entries to a scratch ledger, to test a disk's durability",
		Long: `soak appends synthetic record entries (random pseudonyms, no patient data)
from several writers to a scratch ledger in DIR, printing "ack INDEX HASH"
for each entry the ledger acknowledged as durable, where HASH is the SHA-256
of the entry's body. Power off or kill the machine at any moment, then run
"medfed ledger verify --data DIR": every acknowledged entry must be there.
It refuses a real centre's data directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usagef("ledger soak: --data DIR is required")
			}
			if writers < 1 || writers > 1024 {
				return usagef("ledger soak: --writers must be 1 to 1024")
			}
			return soak(cmd.Context(), cmd.OutOrStdout(), dir, writers, duration)
		},
	}
	cmd.Flags().StringVar(&dir, "data", "", "scratch data `directory`")
	cmd.Flags().IntVar(&writers, "writers", 8, "concurrent writers")
	cmd.Flags().DurationVar(&duration, "duration", 0, "stop after this long (0: until interrupted)")
	return cmd
}

func soak(ctx context.Context, w io.Writer, dir string, writers int, duration time.Duration) error {
	cfg := centre.DefaultConfig()
	cfg.Centre.Name, cfg.Federation.ID, cfg.Data.Dir = soakCentre, soakFederation, dir
	c, err := centre.Open(ctx, cfg, nil)
	if err != nil {
		return fmt.Errorf("ledger soak: %w", err)
	}
	defer c.Close()
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	out := bufio.NewWriter(w)
	var mu sync.Mutex // one ack line at a time, flushed before the next append
	errs := make(chan error, writers)
	for range writers {
		go func() {
			for ctx.Err() == nil {
				e, err := harness.SyntheticRecord()
				if err != nil {
					errs <- err
					return
				}
				n, err := c.Ledger.Append(context.WithoutCancel(ctx), e)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				_, err = fmt.Fprintf(out, "ack %d %x\n", n, sha256.Sum256(e.Body))
				if err == nil {
					err = out.Flush()
				}
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range writers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return fmt.Errorf("ledger soak: %w", first)
	}
	return nil
}

func newCheckCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check --config FILE",
		Short: "Check every table of the centre's own data, with its keys (the node must be stopped)",
		Long: `check is the full check of a centre's data directory, with the centre's
keys: the ledger as medfed ledger verify checks it (against the charter on
it, whose key for this centre must be centre.key's), its pseudonym index,
the checkpoint this centre last cosigned of every other log and the
evidence it keeps of logs that signed two histories (each signed by that
log's key), and every record's payload, which must open with the records
key and match the commitment on the ledger, or be erased with an erasure
entry naming it. The rows of the files no ledger entry vouches for carry
MACs under keys derived from centre.key: every row of directory.db, of
staff.db and of clients.db (the systems registered, with medfed client)
must have its own, and the seals of staff.db and clients.db must match
their rows. A data directory of an older format (its FORMAT file) is
upgraded in place first and the check says so; one of a newer format is
refused, unchanged.

Exit status: 0 when everything checks out, 1 naming the first file, table
and row that does not, 2 when the configuration is wrong.`,
		Args: cobra.NoArgs,
	}
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		rep, err := centre.Check(cmd.Context(), cfg)
		var staff, clients int
		if err == nil {
			var key []byte
			if key, err = centre.RowKey(cfg.Data.Dir, api.StaffFile); err == nil {
				staff, err = api.CheckStaff(cmd.Context(), cfg.Data.Dir, key)
			}
		}
		if err == nil {
			var key []byte
			if key, err = centre.RowKey(cfg.Data.Dir, smart.ClientsFile); err == nil {
				clients, err = smart.CheckClients(cmd.Context(), cfg.Data.Dir, key)
			}
		}
		if errors.Is(err, centre.ErrTampered) {
			return fmt.Errorf("%s's data has been tampered with: %w", cfg.Centre.Name, err)
		}
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
		out := &stickyWriter{w: cmd.OutOrStdout()}
		fmt.Fprintf(out, "centre %s: ok\n", cfg.Centre.Name)
		fmt.Fprintf(out, "  ledger       %d entries, %d checkpoints (%d final), against %d charter version(s)\n", rep.Ledger.Size, rep.Ledger.Checkpoints, rep.Ledger.Final, rep.Charter)
		fmt.Fprintf(out, "  witnessing   %d other logs' cosigned checkpoints, %d pieces of evidence\n", rep.Witnessed, rep.Evidence)
		fmt.Fprintf(out, "  payloads     %d open and match their commitments, %d erased with their erasure entries\n", rep.Payloads, rep.Erased)
		fmt.Fprintf(out, "  directory    %d rows, each with its MAC\n", rep.Directory)
		fmt.Fprintf(out, "  devices      %d registrations, each with its MAC, and their seal\n", rep.Devices)
		fmt.Fprintf(out, "  staff        %d credentials, each with its MAC, the table sealed\n", staff)
		fmt.Fprintf(out, "  systems      %d registrations and their assertions' IDs, each with its MAC, the registrations sealed\n", clients)
		if rep.FormatWas != rep.Format {
			fmt.Fprintf(out, "  format       %d, upgraded from %d\n", rep.Format, rep.FormatWas)
		} else {
			fmt.Fprintf(out, "  format       %d\n", rep.Format)
		}
		return out.err
	})
}
