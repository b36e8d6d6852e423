package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
)

func newDirectoryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "directory",
		Short: "The Patient Directory: which centres hold a patient's records",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newDirectoryLookupCmd(), newDirectoryStatusCmd(), newDirectoryCheckCmd())
	return cmd
}

func newDirectoryLookupCmd() *cobra.Command {
	var pseudonym string
	cmd := &cobra.Command{
		Use:   "lookup --config FILE --pseudonym P",
		Short: "List every centre holding records of a patient (the node must be running)",
		Long: `lookup asks the running node which members announced records of the
patient with pseudonym P (64 hex digits, as printed by medfed patient
pseudonym). It prints one holder per line, name then peer ID. A lookup
that could not reach enough members says so and exits 1, after listing
the holders it found.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&pseudonym, "pseudonym", "", "the patient's pseudonym, 64 hex digits")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		res, err := admin.Dial(cfg.Data.Dir).Lookup(cmd.Context(), pseudonym)
		if err != nil {
			return err
		}
		out := &stickyWriter{w: cmd.OutOrStdout()}
		printLookup(out, res)
		if out.err != nil {
			return out.err
		}
		if !res.Complete {
			return fmt.Errorf("directory lookup: %s", res.Problem)
		}
		return nil
	})
}

func printLookup(w io.Writer, res api.DirectoryLookup) {
	for _, h := range res.Holders {
		fmt.Fprintf(w, "%s\t%s\n", h.Name, h.ID)
	}
	fmt.Fprintf(w, "# %d holding centres; %d members answered in %.1f ms\n", len(res.Holders), res.Answered, res.Millis)
	if len(res.Failed) > 0 {
		fmt.Fprintf(w, "# did not answer: %s\n", strings.Join(res.Failed, ", "))
	}
}

func newDirectoryStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status --config FILE",
		Short: "Show what this centre announces and stores in the directory (the node must be running)",
		Args:  cobra.NoArgs,
	}
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		st, err := admin.Dial(cfg.Data.Dir).DirectoryStatus(cmd.Context())
		if err != nil {
			return err
		}
		out := &stickyWriter{w: cmd.OutOrStdout()}
		fmt.Fprintf(out, "keys announced:    %d (%d waiting to be sent, %d sent since start, %d waiting to be checked at their replicas)\n", st.Announced, st.Pending, st.Provided, st.RepairBacklog)
		fmt.Fprintf(out, "last reprovide:    %s\n", when(st.LastReprovide))
		fmt.Fprintf(out, "next reprovide:    %s\n", when(st.NextReprovide))
		fmt.Fprintf(out, "last sweep:        %s", when(st.LastSweep))
		if !st.LastSweep.IsZero() {
			fmt.Fprintf(out, " (%d keys checked at their replicas, %d sent again, %d replicas not reached)", st.SweepKeys, st.SweepResent, st.SweepFailed)
		}
		fmt.Fprintln(out)
		fmt.Fprintf(out, "stored for others: %d announcements\n", st.Stored)
		fmt.Fprintf(out, "routing table:     %d members\n", st.RoutingTable)
		fmt.Fprintf(out, "connectivity:      %s\n", st.Connectivity)
		fmt.Fprintf(out, "replication:       %d members per key, lookups read %d\n", st.Replication, st.LookupWidth)
		return out.err
	})
}

func when(t time.Time) string {
	if t.IsZero() {
		return "none yet"
	}
	return t.UTC().Format(time.RFC3339)
}

func newDirectoryCheckCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check --config FILE",
		Short: "Check that every patient on this centre's ledger is announced at all its replicas, and repair (the node must be running)",
		Long: `check compares this centre's ledger with the directory: for every
patient it holds records of, it asks each of the members that should
store its announcement (the replication factor's closest to the key)
whether it does, and sends the announcement to every one that does not.

Exit status: 0 when every replica answered (whether or not some had to be
sent the announcement), 1 when some could not be reached.`,
		Args: cobra.NoArgs,
	}
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		rep, err := admin.Dial(cfg.Data.Dir).DirectoryCheck(cmd.Context())
		if err != nil {
			return err
		}
		out := &stickyWriter{w: cmd.OutOrStdout()}
		fmt.Fprintf(out, "patients held:     %d\n", rep.Patients)
		fmt.Fprintf(out, "replicas checked:  %d, of which %d lacked this centre's announcement and were sent it\n", rep.Checked, rep.Resent)
		if out.err != nil {
			return out.err
		}
		if len(rep.Failed) > 0 {
			return fmt.Errorf("directory check: members not reached: %s (run it again once they are up)", strings.Join(rep.Failed, ", "))
		}
		return nil
	})
}
