// Package output prints command results as aligned text tables, JSON or YAML,
// chosen with the CLI's -o flag. Data goes to stdout; progress never does.
package output

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"gopkg.in/yaml.v3"
)

// Format is an output format name accepted by -o.
type Format string

// The formats -o accepts.
const (
	Text Format = "text"
	JSON Format = "json"
	YAML Format = "yaml"
)

// Printer writes results in one format.
type Printer struct {
	w      io.Writer
	format Format
}

// New returns a Printer for format ("" means text), or an error naming the
// accepted formats.
func New(w io.Writer, format string) (*Printer, error) {
	switch Format(format) {
	case "", Text:
		return &Printer{w: w, format: Text}, nil
	case JSON, YAML:
		return &Printer{w: w, format: Format(format)}, nil
	}
	return nil, fmt.Errorf("unknown output format %q (want text, json or yaml)", format)
}

// Format reports the chosen format.
func (p *Printer) Format() Format { return p.format }

// Structured reports whether the output is for machines (json or yaml).
func (p *Printer) Structured() bool { return p.format != Text }

// Value prints v as JSON or YAML. In text mode it prints text() instead, so each
// command decides how its result reads for people.
func (p *Printer) Value(v any, text func(w io.Writer) error) error {
	switch p.format {
	case JSON:
		enc := json.NewEncoder(p.w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case YAML:
		enc := yaml.NewEncoder(p.w)
		enc.SetIndent(2)
		if err := enc.Encode(v); err != nil {
			return err
		}
		return enc.Close()
	}
	return text(p.w)
}

// Table prints rows under header in aligned columns (text mode), or v as
// JSON/YAML in the structured modes.
func (p *Printer) Table(v any, header []string, rows [][]string) error {
	return p.Value(v, func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(header, "\t"))
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		return tw.Flush()
	})
}
