package main

import (
	"encoding/json"
	"strings"

	"github.com/spf13/cobra"

	"github.com/medfed/medfed/cmd/internal/bench"
)

// newBenchCmd is `medfed bench`: the suites and the report are
// cmd/internal/bench's; the command reads the flags and prints.
func newBenchCmd() *cobra.Command {
	var asJSON, quick bool
	names := bench.Names()
	cmd := &cobra.Command{
		Use:   "bench [--json] [--quick] [SUITE...]",
		Short: "Measure medfed's speed against its baselines",
		Long: "bench runs benchmark suites on this machine, each metric beside its baseline\n" +
			"in the same run. Suites: " + strings.Join(names, ", ") + " (default: all but scale,\n" +
			"which runs only when named and prints its figures as Markdown tables, one row per federation size).",
		ValidArgs: names,
		RunE: func(cmd *cobra.Command, args []string) error {
			// An unknown suite is bench.ErrNoSuite, of kind invalid: a
			// usage error (exitCode).
			report, err := bench.Run(cmd.Context(), bench.Options{Suites: args, Quick: quick, Progress: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(report)
			}
			if len(report.Rows) > 0 {
				if err := report.Print(cmd.OutOrStdout()); err != nil {
					return err
				}
			}
			if err := report.PrintCores(cmd.OutOrStdout()); err != nil {
				return err
			}
			return report.PrintScale(cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as one JSON object")
	cmd.Flags().BoolVar(&quick, "quick", false, "smaller sizes, for a quick look")
	return cmd
}
