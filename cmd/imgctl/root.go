package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imgctl/imgctl/internal/cstore"
	"github.com/imgctl/imgctl/internal/logging"
	"github.com/imgctl/imgctl/internal/output"
)

// globals are the flags every command shares. Commands read them after parsing;
// nothing here is package-level state.
type globals struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	stateDir  string // --state: artifacts, inventory, caches
	inventory string // --inventory: nodes.yaml (default: <state>/nodes.yaml)
	store     string // --store: postgres://… ("" = the file store in the state directory)
	output    string // -o: text | json | yaml
	quiet     bool   // -q: no progress
	verbose   bool   // -v: debug logs
	storage   cstore.Options
}

// logger returns the slog logger for this invocation (stderr, text).
func (g *globals) logger() *slog.Logger {
	return logging.New(g.stderr, g.verbose)
}

// printer returns the output printer chosen with -o.
func (g *globals) printer() (*output.Printer, error) {
	return output.New(g.stdout, g.output)
}

// printerFor returns a printer for an explicit format.
func (g *globals) printerFor(format string) (*output.Printer, error) {
	return output.New(g.stdout, format)
}

// inventoryPath is the inventory file: --inventory or <state>/nodes.yaml.
func (g *globals) inventoryPath() string {
	if g.inventory != "" {
		return g.inventory
	}
	return g.stateDir + "/nodes.yaml"
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := newRootCmd(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	// cobra reports unknown commands and wrong argument counts as plain errors;
	// they are usage mistakes (exit 2), not failures of the work.
	if err != nil && isCobraUsageError(err) {
		return &usageError{msg: err.Error()}
	}
	return err
}

func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command ", "accepts ", "requires at least ", "requires at most ", "invalid argument "} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "imgctl",
		Short: "Build node images from layered recipes and boot diskless clusters from them",
		Long: `imgctl builds OCI node images from layered YAML recipes, flattens them into
boot artifacts (kernel, dracut initramfs, squashfs root) and serves them to
diskless nodes over DHCP, TFTP, HTTP and NFS.`,
		Example: `  imgctl build layers/compute-slurm.yaml
  imgctl node add 'nid[001-004]' --mac-file macs.txt --group compute
  imgctl serve --config /etc/imgctl/serve.yaml`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{msg: err.Error() + "\nRun '" + c.CommandPath() + " --help' for usage."}
	})

	pf := root.PersistentFlags()
	pf.StringVar(&g.stateDir, "state", envOr("IMGCTL_STATE", "/var/lib/imgctl"), "state directory (artifacts, inventory, caches) [$IMGCTL_STATE]")
	pf.StringVar(&g.inventory, "inventory", os.Getenv("IMGCTL_INVENTORY"), "inventory file (default <state>/nodes.yaml) [$IMGCTL_INVENTORY]")
	pf.StringVar(&g.store, "store", os.Getenv("IMGCTL_STORE"), "boot-service store: postgres://USER[:PASSWORD]@HOST[:PORT]/DB for several boot servers on one database (default: the file store in --state) [$IMGCTL_STORE]")
	pf.StringVarP(&g.output, "output", "o", "text", "output format: text, json or yaml")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "no progress output")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "debug logging")
	pf.StringVar(&g.storage.GraphRoot, "storage-root", os.Getenv("IMGCTL_STORAGE_ROOT"), "containers/storage root (default: the system's storage.conf) [$IMGCTL_STORAGE_ROOT]")
	pf.StringVar(&g.storage.RunRoot, "storage-runroot", os.Getenv("IMGCTL_STORAGE_RUNROOT"), "containers/storage run root [$IMGCTL_STORAGE_RUNROOT]")
	pf.StringVar(&g.storage.Driver, "storage-driver", os.Getenv("IMGCTL_STORAGE_DRIVER"), "storage driver: overlay or vfs (default: overlay, vfs where overlay cannot work) [$IMGCTL_STORAGE_DRIVER]")

	// One constructor per command group, each in its own file.
	for _, add := range commandGroups {
		add(root, g)
	}
	return root
}

// envOr returns the environment variable key, or def when it is unset or empty.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
