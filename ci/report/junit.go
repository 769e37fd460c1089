// Package report writes a CI run (package ci) as JUnit XML, a static HTML
// page that works offline (no scripts, no external styles), and a
// history.json of the last runs that the page shows as a trend.
package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/imgctl/imgctl/ci"
)

// JUnit types: the schema Jenkins, GitLab and GitHub test reporters read.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     float64      `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      float64     `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      float64       `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// JUnit writes run as JUnit XML: one testsuite per recipe, with the test
// cases build, boot (bootable targets), one per test command, and publish
// (when it was tried). A failure's text is the step's last output lines.
func JUnit(w io.Writer, run *ci.Run) error {
	out := junitSuites{Name: "imgctl ci", Time: run.Seconds}
	for _, r := range run.Recipes {
		s := junitSuite{Name: r.Name, Timestamp: run.Started.Format("2006-01-02T15:04:05Z")}
		add := func(c junitCase) {
			c.Classname = r.Name
			s.Tests++
			s.Time += c.Time
			if c.Failure != nil {
				s.Failures++
			}
			if c.Skipped != nil {
				s.Skipped++
			}
			s.Cases = append(s.Cases, c)
		}
		switch {
		case r.Build == nil:
			add(junitCase{Name: "build", Skipped: &junitMessage{Message: r.Reason}})
		default:
			add(stepCase("build", *r.Build, r.Build.Error))
		}
		if r.Boot != nil {
			add(stepCase("boot", r.Boot.Step, r.Boot.Error))
		}
		for _, t := range r.Tests {
			c := junitCase{Name: "test: " + t.Command, Time: t.Seconds, SystemOut: t.Output}
			msg := fmt.Sprintf("exit code %d", t.ExitCode)
			if t.Error != "" {
				msg += ": " + t.Error
			}
			switch t.Status {
			case ci.Failed:
				c.Failure = &junitMessage{Message: msg, Text: t.Output}
			case ci.Skipped:
				c.Skipped = &junitMessage{Message: t.Error}
			}
			add(c)
		}
		if r.Publish != nil {
			add(stepCase("publish", r.Publish.Step, r.Publish.Error))
		}
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Skipped += s.Skipped
		out.Suites = append(out.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// stepCase is a test case for a build, boot or publish step; text is the
// error, whose last lines are the failure text.
func stepCase(name string, s ci.Step, text string) junitCase {
	c := junitCase{Name: name, Time: s.Seconds}
	switch s.Status {
	case ci.Failed:
		c.Failure = &junitMessage{Message: firstLine(text), Text: lastLines(text, 30)}
	case ci.Skipped:
		c.Skipped = &junitMessage{Message: text}
	}
	return c
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
