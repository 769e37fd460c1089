package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// runCmdline prints the imgctl.* kernel arguments as shell assignments
// (imgctl.node=nid001 → IMGCTL_NODE='nid001') for the dracut hooks to eval;
// values are single-quoted so nothing in them is executed.
func runCmdline(args []string) error {
	fs := flag.NewFlagSet("cmdline", flag.ContinueOnError)
	file := fs.String("file", "/proc/cmdline", "kernel command line file")
	if err := fs.Parse(args); err != nil {
		return usageErr(err.Error())
	}
	b, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	for _, kv := range parseCmdline(string(b)) {
		fmt.Printf("%s=%s\n", kv[0], shellQuote(kv[1]))
	}
	return nil
}

// parseCmdline returns [VAR, value] for each imgctl.KEY=value argument.
func parseCmdline(s string) [][2]string {
	var out [][2]string
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		name, isOurs := strings.CutPrefix(k, "imgctl.")
		if !ok || !isOurs || name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz_") != "" {
			continue
		}
		out = append(out, [2]string{"IMGCTL_" + strings.ToUpper(name), v})
	}
	return out
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
