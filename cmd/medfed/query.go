package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/medfed/medfed/federation/consent"
	"github.com/medfed/medfed/federation/prescription"
	"github.com/medfed/medfed/node/admin"
	"github.com/medfed/medfed/node/api"
	"github.com/medfed/medfed/node/centre"
)

// errIncomplete: some holder did not answer, or its answer was rejected.
var errIncomplete = errors.New("query: not every holder answered")

func newQueryCmd() *cobra.Command {
	var (
		req       admin.QueryRequest
		tokenFile string
		out       string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "query --config FILE --pseudonym P --purpose PURPOSE [flags]",
		Short: "Ask every centre holding a patient's records for what consent allows (the node must be running)",
		Long: `query looks the patient up in the directory and asks every holding centre
at once, with a request this centre signs. Each holder checks it, decides
by the patient's consent, writes the access to its ledger, then answers
with the records permitted, each proven in its final (witnessed)
checkpoint and its payload sealed to this query. Every proof and payload is
checked here; an answer that does not verify is rejected whole.

It prints each holder's answer: its records (with the payloads, or written
to --out DIR), a denial and why, or why it failed (down, too slow, refused,
rejected). It exits 1 when a holder failed.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&req.Pseudonym, "pseudonym", "", "the patient's pseudonym, 64 hex digits")
	cmd.Flags().StringVar(&req.Purpose, "purpose", "", "treatment, research or emergency")
	cmd.Flags().StringVar(&req.Role, "role", "clinician", "the requester's role")
	cmd.Flags().StringVar(&req.Staff, "staff", "", "the requester's staff ID, 32 hex digits")
	cmd.Flags().StringArrayVar(&req.Classes, "class", nil, "a data class to ask for (repeat; default all)")
	cmd.Flags().StringVar(&tokenFile, "token", "", "a `file` holding the patient's token (medfed consent token)")
	cmd.Flags().StringVar(&req.Reason, "reason", "", "the emergency reason: unconscious, life-threatening, urgent-treatment or public-health")
	cmd.Flags().StringVar(&out, "out", "", "write the payloads to this `directory` instead of printing them")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		if req.Purpose == "" {
			return usagef("query: --purpose: give treatment, research or emergency")
		}
		var err error
		if req.Token, err = readToken(tokenFile); err != nil {
			return err
		}
		res, err := admin.Dial(cfg.Data.Dir).QueryRecords(cmd.Context(), req)
		if err != nil {
			return err
		}
		if err := printResult(cmd, asJSON, res, func(w io.Writer) error { return printQuery(w, res, out) }); err != nil {
			return err
		}
		for _, h := range res.Holders {
			if h.Status == "failed" {
				return errIncomplete
			}
		}
		if res.Lookup != "" {
			return fmt.Errorf("query: the directory lookup was incomplete: %s", res.Lookup)
		}
		return nil
	})
}

func printQuery(w io.Writer, res api.QueryResult, out string) error {
	fmt.Fprintf(w, "# %s: %d holding centres, %.1f ms\n", res.Pseudonym, len(res.Holders), res.Millis)
	for _, h := range res.Holders {
		switch h.Status {
		case "failed":
			fmt.Fprintf(w, "%s: failed: %s\n", h.Name, h.Error)
			continue
		case "denied":
			if h.Basis == consent.BasisNotHeld.String() {
				fmt.Fprintf(w, "%s: holds no records of the patient (nothing recorded there)\n", h.Name)
				continue
			}
			fmt.Fprintf(w, "%s: denied (%s): %s (access entry %d)\n", h.Name, h.Basis, h.Reason, h.Access)
		default:
			fmt.Fprintf(w, "%s: %d record(s), proven in final checkpoint %d (access entry %d)\n", h.Name, len(h.Records), h.Checkpoint, h.Access)
		}
		if h.Denied > 0 && h.Status != "denied" {
			fmt.Fprintf(w, "  %d record(s) withheld by consent\n", h.Denied)
		}
		if h.Pending > 0 {
			fmt.Fprintf(w, "  %d record(s) newer than its final checkpoint: ask again in a moment\n", h.Pending)
		}
		for _, r := range h.Records {
			fmt.Fprintf(w, "  %s %d  %s  %s", r.Kind, r.Index, r.Class, r.Occurred.Format(time.RFC3339))
			if r.Location != "" {
				fmt.Fprintf(w, "  %s", r.Location)
			}
			// A document an EHR sent through FHIR: its bytes, and its type.
			contentType, payload := api.OpenDocument(r.Payload)
			if contentType != "application/octet-stream" && !r.Erased {
				fmt.Fprintf(w, "  %s", contentType)
			}
			r.Payload = payload
			rx, rxErr := prescription.Parse(r.Payload)
			switch {
			case r.Erased:
				fmt.Fprintf(w, "  (no payload at the source: erased, or lost with its disk)\n")
			case rxErr == nil && out == "":
				// A prescription's content is binary: said in words.
				fmt.Fprintf(w, "\n    prescription: %s\n", describeContent(api.PrescriptionContentOf(h.Name, rx)))
			case out != "":
				path := filepath.Join(out, fmt.Sprintf("%s-%d", h.Name, r.Index))
				if err := writeSecret(path, r.Payload); err != nil {
					return err
				}
				fmt.Fprintf(w, "  -> %s\n", path)
			case printableText(r.Payload):
				fmt.Fprintf(w, "\n    %s\n", strings.ReplaceAll(strings.TrimRight(string(r.Payload), "\n"), "\n", "\n    "))
			default:
				fmt.Fprintf(w, "  (%d bytes, not text: use --out)\n", len(r.Payload))
			}
		}
	}
	return nil
}

// printableText reports whether a payload is text that is safe to print
// to a terminal: valid UTF-8 of printable characters, newlines and tabs
// (no control sequences, no direction overrides).
func printableText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if r != '\n' && r != '\t' && (!unicode.IsPrint(r) || unicode.Is(unicode.Bidi_Control, r)) {
			return false
		}
	}
	return true
}

// readToken reads a token file written by medfed consent token; no file,
// no token.
func readToken(file string) (string, error) {
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func newEmergencyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "emergency",
		Short: "Stop break-glass access (it starts with medfed query --purpose emergency)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newEmergencyStopCmd())
	return cmd
}

func newEmergencyStopCmd() *cobra.Command {
	var (
		req    admin.StopRequest
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "stop --config FILE --pseudonym P [--staff ID]",
		Short: "Stop this centre's emergency access to a patient at every holder (the node must be running)",
		Long: `stop asks every centre holding the patient's records to end this centre's
emergency sessions for them: one staff member's with --staff, else every
one of its staff's. Each holder records the stop on its ledger and in its
notification feed, for the patient and its privacy officer. A session not
stopped ends on its own after the charter's emergency-duration.

It prints how many sessions each holder stopped, and exits 1 when a holder
could not be reached (its sessions then end on their own).`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&req.Pseudonym, "pseudonym", "", "the patient's pseudonym, 64 hex digits")
	cmd.Flags().StringVar(&req.Staff, "staff", "", "the staff member's ID, 32 hex digits (default: all of this centre's staff)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return configCmd(cmd, func(cmd *cobra.Command, cfg centre.Config, _ []string) error {
		res, err := admin.Dial(cfg.Data.Dir).StopEmergency(cmd.Context(), req)
		if err != nil {
			return err
		}
		if err := printResult(cmd, asJSON, res, func(w io.Writer) error {
			for _, h := range res.Holders {
				if h.Error != "" {
					fmt.Fprintf(w, "%s: not reached (%s); its sessions end on their own\n", h.Centre, h.Error)
					continue
				}
				fmt.Fprintf(w, "%s: %d session(s) stopped\n", h.Centre, h.Stopped)
			}
			if res.Lookup != "" {
				fmt.Fprintf(w, "the directory lookup was incomplete: %s\n", res.Lookup)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, h := range res.Holders {
			if h.Error != "" {
				return fmt.Errorf("emergency stop: %s not reached", h.Centre)
			}
		}
		return nil
	})
}
