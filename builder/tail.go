package builder

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
)

// tailLines keeps the last n lines written to it, so a failed command can be
// reported with its final output without keeping all of it.
type tailLines struct {
	mu    sync.Mutex
	n     int
	lines []string
	part  bytes.Buffer
}

func newTail(n int) *tailLines { return &tailLines{n: n} }

func (t *tailLines) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part.Write(p)
	for {
		line, err := t.part.ReadString('\n')
		if err != nil { // incomplete line: keep it for the next write
			t.part.Reset()
			t.part.WriteString(line)
			break
		}
		t.lines = append(t.lines, strings.TrimRight(line, "\r\n"))
		if len(t.lines) > t.n {
			t.lines = t.lines[len(t.lines)-t.n:]
		}
	}
	return len(p), nil
}

// String returns the kept lines, indented for an error message.
func (t *tailLines) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if t.part.Len() > 0 {
		lines = append(append([]string(nil), lines...), t.part.String())
	}
	if len(lines) == 0 {
		return "    (no output)"
	}
	return "    " + strings.Join(lines, "\n    ")
}

// CommandError is a recipe or bootstrap command that failed: what ran, how it
// ended and its last output lines.
type CommandError struct {
	Recipe  string
	Command string
	Status  string // "exit status 3", or the error that stopped it
	Tail    string
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("%s: command failed (%s):\n    %s\n  last output:\n%s", e.Recipe, e.Status, e.Command, e.Tail)
}
