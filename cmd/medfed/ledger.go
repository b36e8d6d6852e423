package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/node/ledger"
	"github.com/medfed/medfed/node/nodetest/harness"
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
	var dir string
	cmd := &cobra.Command{
		Use:   "verify --data DIR",
		Short: "Recheck every hash and signature of a ledger, offline",
		Long: `verify recomputes every leaf and tree hash of the ledger in a centre's data
directory and checks every stored checkpoint's signature with the centre's
public key. It writes nothing, so it may run beside a live node.

Exit status: 0 when the ledger is intact, 1 when it is not (the first bad
entry or checkpoint is named), 2 when DIR is not a centre's data directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usagef("ledger verify: --data DIR is required")
			}
			rep, err := centre.Verify(cmd.Context(), dir)
			if errors.Is(err, centre.ErrNotDataDir) || errors.Is(err, ledger.ErrNotLedger) {
				return usageError{fmt.Errorf("ledger verify: %w", err)}
			}
			var te *ledger.TamperError
			if errors.As(err, &te) {
				return fmt.Errorf("ledger %s has been tampered with: %w", dir, err)
			}
			if err != nil {
				return fmt.Errorf("ledger verify: %w", err)
			}
			out := &stickyWriter{w: cmd.OutOrStdout()}
			fmt.Fprintf(out, "ledger %s: ok\n", rep.Origin)
			fmt.Fprintf(out, "  entries      %d\n", rep.Size)
			fmt.Fprintf(out, "  root         %s\n", base64.StdEncoding.EncodeToString(rep.Root[:]))
			fmt.Fprintf(out, "  checkpoints  %d, every signature valid\n", rep.Checkpoints)
			return out.err
		},
	}
	cmd.Flags().StringVar(&dir, "data", "", "the centre's data `directory`")
	return cmd
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
