package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/medfed/medfed/node"
	"github.com/spf13/cobra"
)

// version, when set at build time with -ldflags "-X main.version=…",
// is what `medfed version` prints instead of the build information.
var version = ""

// Exit codes, mapped from errors in one place (exitCode).
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and found a problem, or failed
	exitUsage   = 2 // bad flags, arguments or configuration, or input the node found invalid
)

// usageError marks an error caused by how medfed was called: a bad flag,
// argument or configuration file. It maps to exitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitCode is the one place where errors become exit codes: the kind of
// an error the node returned crosses the admin socket with it, so input
// the node refused as invalid exits as a usage error without the command
// parsing it first.
func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue), node.KindOf(err) == node.Invalid:
		return exitUsage
	default:
		return exitFailure
	}
}

// run executes the medfed command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "medfed: %v\n", err)
	}
	return exitCode(err)
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "medfed",
		Short:         "A federation directory for medical records",
		Long:          "medfed runs one centre of a federation of independent healthcare centres:\na libp2p node with its own tamper-evident ledger.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newVersionCmd(),
		newConfigCmd(),
		newLedgerCmd(),
		newCheckCmd(),
		newBackupCmd(),
		newRestoreCmd(),
		newBenchCmd(),
		newDemoCmd(),
		newNodeCmd(),
		newFederationCmd(),
		newPatientCmd(),
		newDirectoryCmd(),
		newConsentCmd(),
		newRecordCmd(),
		newPrescriptionCmd(),
		newDeviceCmd(),
		newQueryCmd(),
		newEmergencyCmd(),
		newTransferCmd(),
		newStaffCmd(),
		newClientCmd(),
	)
	return root
}

// describeBuild is the version line of a build: the version set at link
// time if any, else the module's version as the go command stamped it
// (a release tag, or a pseudo-version from the commit), then the VCS
// revision and time, and "modified" for a build from a tree with changes
// not committed. The Go toolchain closes the line.
func describeBuild(linked string, info *debug.BuildInfo) string {
	if info == nil {
		return cmp.Or(linked, "(no build information)")
	}
	v, revision := buildLabels(linked, info)
	var vcs []string
	if revision != "" {
		vcs = append(vcs, "revision "+revision)
	}
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.time" && s.Value != "":
			vcs = append(vcs, s.Value)
		case s.Key == "vcs.modified" && s.Value == "true":
			vcs = append(vcs, "modified")
		}
	}
	vcs = append(vcs, info.GoVersion)
	return v + " (" + strings.Join(vcs, ", ") + ")"
}

// buildLabels are the version and VCS revision of a build, as
// describeBuild finds them, for the metrics' medfed_build_info.
func buildLabels(linked string, info *debug.BuildInfo) (v, revision string) {
	if info == nil {
		return cmp.Or(linked, "(devel)"), ""
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			revision = s.Value
		}
	}
	return cmp.Or(linked, info.Main.Version, "(devel)"), revision
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the medfed version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info, _ := debug.ReadBuildInfo() // nil without: describeBuild says so
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "medfed %s\n", describeBuild(version, info))
			return err
		},
	}
}
