package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/medfed/medfed/node"
	"github.com/medfed/medfed/pseudonym"
)

func newPatientCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "patient",
		Short: "Patient identifiers and pseudonyms",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newPatientPseudonymCmd())
	return cmd
}

// maxStdinIdentifiers bounds one run of patient pseudonym --stdin.
const maxStdinIdentifiers = 1 << 20

func newPatientPseudonymCmd() *cobra.Command {
	var (
		nhs, ids []string
		stdin    bool
	)
	cmd := &cobra.Command{
		Use:   "pseudonym --config FILE (--nhs NUMBER | --id SYSTEM|VALUE | --stdin)...",
		Short: "Print the federation pseudonym of patient identifiers (registrar use; the node must be running)",
		Long: `pseudonym prints the federation pseudonym of each identifier, one per line:
NHS numbers (--nhs) first, then --id identifiers, then those read from
standard input, each in the order given. The running node computes them
with the federation's holders of the pseudonym key; the identifiers never
leave this centre.

An identifier is checked before anything is sent (an NHS number's check
digit, for example); an invalid one is refused without repeating it.
Arguments are visible to other users of this machine: on a shared machine
prefer --stdin, one "system|value" (or bare NHS number) per line.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringArrayVar(&nhs, "nhs", nil, "an NHS number (spaces and dashes allowed; repeat)")
	cmd.Flags().StringArrayVar(&ids, "id", nil, "an identifier as SYSTEM|VALUE, SYSTEM a configured name or URI (repeat)")
	cmd.Flags().BoolVar(&stdin, "stdin", false, "also read identifiers from standard input, one per line")
	return configCmd(cmd, func(cmd *cobra.Command, cfg node.Config, _ []string) error {
		rules, err := cfg.Pseudonym.Rules()
		if err != nil {
			return err
		}
		var canonical []string
		add := func(what string, id pseudonym.Identifier, err error) error {
			if err != nil {
				return usagef("patient pseudonym: %s: %v", what, err)
			}
			canonical = append(canonical, id.System+"|"+id.Value)
			return nil
		}
		for i, v := range nhs {
			id, err := pseudonym.ParseNHS(v)
			if err := add(fmt.Sprintf("--nhs %d", i+1), id, err); err != nil {
				return err
			}
		}
		for i, v := range ids {
			id, err := rules.Parse(v)
			if err := add(fmt.Sprintf("--id %d", i+1), id, err); err != nil {
				return err
			}
		}
		if stdin {
			if err := readIdentifiers(cmd.InOrStdin(), rules, add); err != nil {
				return err
			}
		}
		if len(canonical) == 0 {
			return usagef("patient pseudonym: give --nhs, --id or --stdin")
		}
		admin := node.Admin(cfg.Data.Dir)
		out := &stickyWriter{w: cmd.OutOrStdout()}
		for start := 0; start < len(canonical); start += node.MaxPseudonymRequest {
			ps, err := admin.Pseudonyms(cmd.Context(), canonical[start:min(start+node.MaxPseudonymRequest, len(canonical))])
			if err != nil {
				return err
			}
			for _, p := range ps {
				fmt.Fprintln(out, p)
			}
		}
		return out.err
	})
}

// readIdentifiers reads one identifier per line: SYSTEM|VALUE, or a bare
// NHS number. Blank lines are skipped.
func readIdentifiers(r io.Reader, rules *pseudonym.Rules, add func(string, pseudonym.Identifier, error) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 4096)
	line, n := 0, 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		if n++; n > maxStdinIdentifiers {
			return usagef("patient pseudonym: more than %d identifiers on standard input", maxStdinIdentifiers)
		}
		var id pseudonym.Identifier
		var err error
		if strings.Contains(s, "|") {
			id, err = rules.Parse(s)
		} else {
			id, err = pseudonym.ParseNHS(s)
		}
		if err := add(fmt.Sprintf("standard input line %d", line), id, err); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return usagef("patient pseudonym: standard input line %d is too long", line+1)
		}
		return err
	}
	return nil
}
