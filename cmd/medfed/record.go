package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/centre"
	"github.com/medfed/medfed/pseudonym"
)

func newRecordCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "record",
		Short: "Records held at this centre",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newRecordAddCmd())
	return cmd
}

// maxRecordFile is the largest payload record add reads: the record
// store's limit.
const maxRecordFile = 16 << 20

func newRecordAddCmd() *cobra.Command {
	var (
		req                     admin.RecordRequest
		nhs, id, file, occurred string
	)
	cmd := &cobra.Command{
		Use:   "add --config FILE (--pseudonym P | --nhs NUMBER | --id SYSTEM|VALUE) --class CLASS --file PAYLOAD",
		Short: "Register a record at this centre (the node must be running)",
		Long: `add stores the payload in FILE ("-" for standard input) in the centre's
encrypted record store, appends a record entry to its ledger (the
patient's pseudonym, the data class, when, where and by whom, and a keyed
commitment to the payload; never the payload or an identifier), and
announces the centre in the directory as holding the patient's records.
Name the patient by pseudonym, or by an identifier that the node turns
into the pseudonym and forgets. With --replaces INDEX the record is an
amendment of the record at that ledger index. It prints the pseudonym and
the new entry's index.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&req.Pseudonym, "pseudonym", "", "the patient's pseudonym, 64 hex digits")
	cmd.Flags().StringVar(&nhs, "nhs", "", "the patient's NHS number")
	cmd.Flags().StringVar(&id, "id", "", "the patient's identifier as SYSTEM|VALUE")
	cmd.Flags().StringVar(&req.Class, "class", "", "the data class, e.g. lab-result")
	cmd.Flags().StringVar(&file, "file", "", "the payload `file` (- for standard input)")
	cmd.Flags().StringVar(&occurred, "occurred", "", "when it happened (RFC 3339 or a date; default now)")
	cmd.Flags().StringVar(&req.Location, "location", "", "department or site code")
	cmd.Flags().StringVar(&req.Author, "author", "", "the author's staff ID, 32 hex digits")
	cmd.Flags().Int64Var(&req.Replaces, "replaces", 0, "the ledger index of the record this amends")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		given := 0
		for _, v := range []string{req.Pseudonym, nhs, id} {
			if v != "" {
				given++
			}
		}
		if given != 1 {
			return usagef("record add: name the patient with one of --pseudonym, --nhs or --id")
		}
		switch {
		case req.Pseudonym != "":
		case nhs != "":
			n, err := pseudonym.ParseNHS(nhs)
			if err != nil {
				return usagef("record add: --nhs: %v", err)
			}
			req.Identifier = n.System + "|" + n.Value
		default:
			req.Identifier = id
		}
		if req.Class == "" || file == "" {
			return usagef("record add: --class and --file are required")
		}
		t, err := consent.ParseTime(occurred)
		if err != nil {
			return usagef("record add: --occurred: %v", err)
		}
		if t.IsZero() {
			t = time.Now().UTC()
		}
		req.Occurred = t
		var in io.Reader
		if file == "-" {
			in = cmd.InOrStdin()
		} else {
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		}
		if req.Payload, err = io.ReadAll(io.LimitReader(in, maxRecordFile+1)); err != nil {
			return err
		}
		if len(req.Payload) > maxRecordFile {
			return usagef("record add: the payload is larger than %d bytes", maxRecordFile)
		}
		res, err := admin.Dial(cfg.Data.Dir).AddRecord(cmd.Context(), req)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(cmd.OutOrStdout(), "record %d for %s\n", res.Index, res.Pseudonym); err != nil {
			return err
		}
		if res.AnnounceError != "" {
			return fmt.Errorf("record %d is stored, but announcing it in the directory failed (the node announces it again at its next start; do not add it again): %s", res.Index, res.AnnounceError)
		}
		return nil
	})
}
