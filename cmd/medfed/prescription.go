package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
)

func newPrescriptionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "prescription",
		Short: "Prescriptions that cannot be filled twice: issue, dispense, cancel, show",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newPrescriptionIssueCmd(), newPrescriptionDispenseCmd(), newPrescriptionCancelCmd(), newPrescriptionShowCmd())
	return cmd
}

func newPrescriptionIssueCmd() *cobra.Command {
	var (
		req         admin.IssueRequest
		from, until string
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "issue --config FILE --pseudonym P --prescriber ID --system dmd|snomed --code CODE --display NAME --quantity N --unit UNIT [flags]",
		Short: "Issue a prescription at this centre (the node must be running)",
		Long: `issue stores the prescription as a record of class prescription at this
centre (its content encrypted at rest; the ledger holds a commitment, never
the medication) and prints the token the patient takes to a pharmacy:
rx1.<this centre>.<index>.<secret>. The secret is shown once and not kept:
only its hash is, so a lost token cannot be printed again (cancel the
prescription and issue another).

Before it is issued, the federated query looks for the same medication
active from another prescriber (prescription.over-prescription in the
configuration): each one found is printed as a warning, and the
prescription is issued all the same.`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&req.Pseudonym, "pseudonym", "", "the patient's pseudonym, 64 hex digits")
	f.StringVar(&req.Prescriber, "prescriber", "", "the prescriber's staff ID, 32 hex digits")
	f.StringVar(&req.System, "system", "dmd", "the medication's code system: dmd or snomed")
	f.StringVar(&req.Code, "code", "", "the medication's dm+d or SNOMED CT code")
	f.StringVar(&req.Display, "display", "", "the medication's name, as the code system gives it")
	f.Uint32Var(&req.Quantity, "quantity", 0, "how much each supply holds, in --unit")
	f.StringVar(&req.Unit, "unit", "", "the unit of the quantity, e.g. tablet or mL")
	f.IntVar(&req.Repeats, "repeats", 0, "how many supplies may follow the first")
	f.StringVar(&from, "valid-from", "", "the first day or moment it may be dispensed (RFC 3339 or a date; default now)")
	f.StringVar(&until, "valid-until", "", "when it ends (RFC 3339 or a date; default six months after --valid-from)")
	f.StringVar(&req.Dosage, "dosage", "", "the dosage instruction")
	f.StringVar(&req.Location, "location", "", "where it was prescribed: one of records.locations")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		if req.Pseudonym == "" || req.Prescriber == "" || req.Code == "" || req.Display == "" || req.Quantity == 0 || req.Unit == "" {
			return usagef("prescription issue: --pseudonym, --prescriber, --code, --display, --quantity and --unit are required")
		}
		var err error
		if req.ValidFrom, err = consent.ParseTime(from); err != nil {
			return usagef("prescription issue: --valid-from: %v", err)
		}
		if req.ValidUntil, err = consent.ParseTime(until); err != nil {
			return usagef("prescription issue: --valid-until: %v", err)
		}
		res, err := admin.Dial(cfg.Data.Dir).IssuePrescription(cmd.Context(), req)
		if err != nil {
			return err
		}
		return printResult(cmd, asJSON, res, func(w io.Writer) error {
			fmt.Fprintf(w, "prescription %d for %s: %s\n", res.Index, res.Pseudonym, describeContent(res.Content))
			fmt.Fprintf(w, "token: %s\n", res.Token)
			for _, wn := range res.Warnings {
				fmt.Fprintf(w, "warning: %s\n", wn.Message)
			}
			if !res.Checked && len(res.Unchecked) == 0 {
				fmt.Fprintln(w, "over-prescription: not checked (prescription.over-prescription is off)")
			}
			for _, u := range res.Unchecked {
				fmt.Fprintf(w, "over-prescription: not checked: %s\n", u)
			}
			if res.AnnounceError != "" {
				fmt.Fprintf(w, "issued, but not yet announced in the directory (the node announces it at its next start; do not issue it again): %s\n", res.AnnounceError)
			}
			return nil
		})
	})
}

// describeContent is a prescription in a line.
func describeContent(c api.PrescriptionContent) string {
	s := fmt.Sprintf("%s (%s %s), %d %s, %d supply(ies), valid %s to %s", c.Display, c.System, c.Code, c.Quantity, c.Unit, c.Supplies,
		c.ValidFrom.Format(time.RFC3339), c.ValidUntil.Format(time.RFC3339))
	if c.Dosage != "" && printableText([]byte(c.Dosage)) {
		s += "; " + c.Dosage
	}
	return s
}

func newPrescriptionDispenseCmd() *cobra.Command {
	var (
		req    admin.DispenseRequest
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "dispense --config FILE --token TOKEN|- --pharmacist ID",
		Short: "Claim the next supply of a prescription from its issuing centre (the node must be running)",
		Long: `dispense claims the next supply of the prescription the patient's token
names, from the centre that issued it: that centre's ledger alone decides,
and records the dispense before it confirms it, so of two pharmacies
claiming the last supply at once exactly one is told yes. The confirmed
dispense is recorded on this centre's ledger too. It prints what to hand
over; --token - reads the token from standard input (out of the process
list).

It exits 1 when the issuing centre refuses: nothing is left to dispense,
the prescription is cancelled, not yet valid or expired, or the token opens
no prescription there; 2 when the token is not one.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&req.Token, "token", "", "the prescription's token (rx1.<centre>.<index>.<secret>), or - for standard input")
	cmd.Flags().StringVar(&req.Pharmacist, "pharmacist", "", "the pharmacist's staff ID, 32 hex digits")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		if req.Token == "" || req.Pharmacist == "" {
			return usagef("prescription dispense: --token and --pharmacist are required")
		}
		if req.Token == "-" {
			line, err := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), 256)).ReadString('\n')
			if err != nil && err != io.EOF {
				return err
			}
			req.Token = strings.TrimSpace(line)
		}
		res, err := admin.Dial(cfg.Data.Dir).Dispense(cmd.Context(), req)
		if err != nil {
			return err
		}
		return printResult(cmd, asJSON, res, func(w io.Writer) error {
			fmt.Fprintf(w, "dispensed supply %d of %d of %s's prescription %d (its dispense entry %d) for %s\n", res.Fill, res.Supplies, res.Issuer, res.Prescription, res.Dispense, res.Pseudonym)
			if res.Renewed {
				fmt.Fprintf(w, "this supply answers an earlier claim from this centre with this token, whose every answer was lost: it is the one supply for both\n")
			}
			fmt.Fprintf(w, "hand over: %s\n", describeContent(res.Content))
			if res.RecordError != "" {
				fmt.Fprintf(w, "dispensed, but not recorded on this centre's ledger: %s\n", res.RecordError)
			}
			return nil
		})
	})
}

func newPrescriptionCancelCmd() *cobra.Command {
	var (
		req    admin.CancelRequest
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "cancel --config FILE --index N --prescriber ID --reason REASON",
		Short: "Cancel a prescription this centre issued (the node must be running)",
		Long: `cancel records the prescriber's cancellation on this centre's ledger, with
a coded reason (error, changed, adverse-reaction, no-longer-needed or
patient-request): no supply is dispensed after it. Only the prescriber
cancels.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().Int64Var(&req.Index, "index", 0, "the prescription's ledger index (the second part of its token)")
	cmd.Flags().StringVar(&req.Prescriber, "prescriber", "", "the prescriber's staff ID, 32 hex digits")
	cmd.Flags().StringVar(&req.Reason, "reason", "", "error, changed, adverse-reaction, no-longer-needed or patient-request")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		if req.Index <= 0 || req.Prescriber == "" || req.Reason == "" {
			return usagef("prescription cancel: --index, --prescriber and --reason are required")
		}
		res, err := admin.Dial(cfg.Data.Dir).CancelPrescription(cmd.Context(), req)
		if err != nil {
			return err
		}
		return printResult(cmd, asJSON, res, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "prescription %d cancelled (%s) by entry %d; %d supply(ies) had been dispensed\n", req.Index, req.Reason, res.Index, len(res.Prescription.Dispenses))
			return err
		})
	})
}

func newPrescriptionShowCmd() *cobra.Command {
	var (
		req    admin.PrescriptionsRequest
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "show --config FILE --pseudonym P [--staff ID] [flags]",
		Short: "Show a patient's prescriptions across the federation (the node must be running)",
		Long: `show asks every centre holding the patient's records for their
prescriptions, through the federated query (consent decides, each holder
records the access), and prints each with, for those this centre issued,
every supply dispensed and any cancellation. Another centre's
prescriptions show their status as unknown: their issuer's ledger has it.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&req.Pseudonym, "pseudonym", "", "the patient's pseudonym, 64 hex digits")
	cmd.Flags().StringVar(&req.Role, "role", "clinician", "the requester's role")
	cmd.Flags().StringVar(&req.Staff, "staff", "", "the requester's staff ID, 32 hex digits")
	cmd.Flags().StringVar(&req.Purpose, "purpose", "treatment", "treatment, research or emergency")
	cmd.Flags().BoolVar(&req.Local, "local", false, "this centre's prescriptions only, without a directory lookup")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		res, err := admin.Dial(cfg.Data.Dir).Prescriptions(cmd.Context(), req)
		if err != nil {
			return err
		}
		if err := printResult(cmd, asJSON, res, func(w io.Writer) error {
			fmt.Fprintf(w, "# %s: %d prescription(s)\n", res.Pseudonym, len(res.Prescriptions))
			for _, p := range res.Prescriptions {
				left := ""
				if p.Left != nil {
					left = fmt.Sprintf(", %d left", *p.Left)
				}
				fmt.Fprintf(w, "%s %d: %s%s: %s\n", p.Holder, p.Index, p.Status, left, describeContent(p.Content))
				for _, d := range p.Dispenses {
					fmt.Fprintf(w, "  supply %d dispensed by %s (pharmacist %s) at %s, entry %d\n", d.Fill, d.Pharmacy, d.Pharmacist, d.Time.Format(time.RFC3339), d.Index)
				}
				if c := p.Cancelled; c != nil {
					fmt.Fprintf(w, "  cancelled (%s) by %s at %s, entry %d\n", c.Reason, c.Prescriber, c.Time.Format(time.RFC3339), c.Index)
				}
			}
			for _, u := range res.Unchecked {
				fmt.Fprintf(w, "not checked: %s\n", u)
			}
			return nil
		}); err != nil {
			return err
		}
		if len(res.Unchecked) > 0 {
			return fmt.Errorf("prescription show: %d holder(s) could not be asked", len(res.Unchecked))
		}
		return nil
	})
}
