package main

import (
	"github.com/spf13/cobra"

	"github.com/medfed/medfed/cmd/internal/demo"
)

// newDemoCmd is `medfed demo`: the story is cmd/internal/demo's; the
// command reads the flag.
func newDemoCmd() *cobra.Command {
	var keep string
	cmd := &cobra.Command{
		Use:   "demo [--keep DIR]",
		Short: "Tell medfed's story: centres, ledgers, proofs, erasure, tampering caught",
		Long: `demo runs a small federation in this process, in a temporary directory it
removes afterwards, and narrates each step. With --keep DIR it keeps each
centre's data directory as DIR/<centre-name>, where "medfed ledger verify
--data DIR/<centre-name>" can check it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A --keep directory in use is demo.ErrKeep, of kind invalid:
			// a usage error (exitCode).
			return demo.Run(cmd.Context(), cmd.OutOrStdout(), keep)
		},
	}
	cmd.Flags().StringVar(&keep, "keep", "", "keep the centres' data directories under `DIR`")
	return cmd
}
