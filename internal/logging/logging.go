// Package logging builds the slog loggers imgctl hands to its components.
package logging

import (
	"io"
	"log/slog"
)

// New returns a text logger on w at Info level, or Debug when verbose.
func New(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// OrDiscard returns l, or a logger that drops everything when l is nil, so that
// constructors can take a nil logger.
func OrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
