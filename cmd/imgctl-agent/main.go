// Command imgctl-agent runs inside a node's initramfs (and once more from the
// booted root). It fetches the root image and checks every piece against the
// artifact manifest, and reports the node's boot state to the boot service.
// It is built static (CGO_ENABLED=0) so dracut can install it as one file.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage:
  imgctl-agent fetch --manifest URL --url URL --out FILE [--retries N] [--dist tree|multicast --coordinator URL --node NAME --token T [--group G --port P]]
  imgctl-agent seed --file FILE --manifest URL --coordinator URL --node NAME --token T [--for 10m]   serve a held root image to peers
  imgctl-agent phonehome --server URL --node NAME --token T --state STATE [--detail D] [--reason R] [--digest D | --manifest URL] [--timeline]
  imgctl-agent cmdline [--file /proc/cmdline]   print imgctl.* arguments as shell assignments`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "imgctl-agent:", err)
		var u usageErr
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageErr string

func (u usageErr) Error() string { return string(u) + "\n" + usage }

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErr("no command")
	}
	switch args[0] {
	case "fetch":
		return runFetch(ctx, args[1:])
	case "seed":
		return runSeed(ctx, args[1:])
	case "phonehome":
		return runPhoneHome(ctx, args[1:])
	case "cmdline":
		return runCmdline(args[1:])
	case "-h", "--help", "help":
		fmt.Println(usage)
		return nil
	}
	return usageErr("unknown command " + args[0])
}
