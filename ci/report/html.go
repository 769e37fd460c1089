package report

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/imgctl/imgctl/ci"
	"github.com/imgctl/imgctl/internal/output"
)

// page is what the HTML template sees.
type page struct {
	Run     *ci.Run
	LogBase string // LogDir relative to the report directory, slash separated
	History []HistoryRun
	Names   []string // recipes that appear in the history, for the trend table
	MaxSecs float64
}

var funcs = template.FuncMap{
	"secs": func(s float64) string { return fmt.Sprintf("%.1fs", s) },
	"size": output.Bytes,
	"link": func(base, rel string) string { return filepath.ToSlash(filepath.Join(base, rel)) },
	"short": func(s string, n int) string {
		s = strings.TrimPrefix(s, "sha256:")
		if len(s) > n {
			return s[:n]
		}
		return s
	},
	"bar": func(s, max float64) int {
		if max <= 0 {
			return 0
		}
		return int(120 * s / max)
	},
	"status": func(h HistoryRun, name string) string {
		if r, ok := h.Recipes[name]; ok {
			return string(r.Status)
		}
		return "none"
	},
	"date": func(h HistoryRun) string { return h.Started.Format("01-02 15:04") },
}

var pageTmpl = template.Must(template.New("page").Funcs(funcs).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>imgctl ci {{.Run.Started.Format "2006-01-02 15:04"}}: {{.Run.Passed}} passed, {{.Run.Failed}} failed, {{.Run.Skipped}} skipped</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.2em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.passed{background:#d8f5d8}.failed{background:#f9d0d0}.skipped{background:#f3ecc8}.none{background:#fff}
pre{background:#f7f7f7;padding:.5em;overflow:auto;max-height:20em;margin:.2em 0}
.bar{display:inline-block;height:.8em;background:#7a9cc6}
section{border-top:2px solid #ddd;margin-top:1em}
</style></head><body>
<h1>imgctl ci</h1>
<p id="summary">Run of {{.Run.Started.Format "2006-01-02 15:04:05 UTC"}} ({{.Run.Mode}} boots{{if .Run.Accel}}, accel {{.Run.Accel}}{{end}}) took {{secs .Run.Seconds}}:
<b>{{.Run.Passed}}</b> passed, <b>{{.Run.Failed}}</b> failed, <b>{{.Run.Skipped}}</b> skipped{{if .Run.Canceled}}, <b>interrupted</b>{{end}}.</p>
<table id="recipes"><tr><th>recipe</th><th>status</th><th>build</th><th>flatten</th><th>boot</th><th>tests</th><th>publish</th><th>image</th><th>root image</th><th>packages</th></tr>
{{range .Run.Recipes}}<tr class="recipe {{.Status}}" data-recipe="{{.Name}}" data-status="{{.Status}}">
<td><a href="#r-{{.Name}}">{{.Name}}</a>{{if not .Target}} <small>(parent)</small>{{end}}</td>
<td class="status">{{.Status}}</td>
<td>{{with .Build}}{{.Status}} {{secs .Seconds}}{{if .Cached}} cached{{end}}{{end}}</td>
<td>{{with .Flatten}}{{.Status}} {{secs .Seconds}}{{end}}</td>
<td>{{with .Boot}}{{.Status}} {{secs .Seconds}}{{end}}</td>
<td>{{range .Tests}}<span class="{{.Status}}">{{.Status}}</span> {{end}}</td>
<td>{{with .Publish}}{{.Status}}{{end}}</td>
<td>{{if .ImageSize}}{{size .ImageSize}}{{end}}</td>
<td>{{if .RootSize}}{{size .RootSize}}{{end}}</td>
<td>{{with .Packages}}{{if .Error}}-{{else}}{{.Count}}{{if .Previous}}: +{{len .Added}} −{{len .Removed}} ~{{len .Upgraded}}{{end}}{{end}}{{end}}</td>
</tr>
{{end}}</table>
{{if .History}}<h2>Trend (last {{len .History}} runs)</h2>
<table id="trend"><tr><th>run</th><th>time</th>{{range .Names}}<th>{{.}}</th>{{end}}</tr>
{{$names := .Names}}{{$max := .MaxSecs}}{{range .History}}{{$h := .}}<tr><td>{{date .}}</td><td><span class="bar" style="width:{{bar .Seconds $max}}px"></span> {{secs .Seconds}}</td>{{range $names}}{{$s := status $h .}}<td class="{{$s}}">{{$s}}</td>{{end}}</tr>
{{end}}</table>{{end}}
{{$base := .LogBase}}{{range .Run.Recipes}}<section id="r-{{.Name}}" class="detail" data-recipe="{{.Name}}">
<h2>{{.Name}} <span class="{{.Status}}">{{.Status}}</span></h2>
{{if .Reason}}<p class="reason">{{.Reason}}</p>{{end}}
<p>File {{.File}}{{if .Parent}}, parent {{.Parent}}{{end}}{{if .CacheKey}}, cache key {{short .CacheKey 12}}{{end}}{{if .Digest}}, image {{short .Digest 12}}{{end}}.</p>
<table><tr><th>step</th><th>status</th><th>time</th><th>log / detail</th></tr>
{{with .Build}}<tr class="{{.Status}}"><td>build</td><td>{{.Status}}{{if .Cached}} (cached){{end}}</td><td>{{secs .Seconds}}</td><td>{{if .Log}}<a href="{{link $base .Log}}">build.log</a>{{end}}{{if .Error}}<pre>{{.Error}}</pre>{{end}}</td></tr>{{end}}
{{with .Flatten}}<tr class="{{.Status}}"><td>flatten</td><td>{{.Status}}</td><td>{{secs .Seconds}}</td><td>{{if .Log}}<a href="{{link $base .Log}}">flatten.log</a>{{end}}{{if .Error}}<pre>{{.Error}}</pre>{{end}}</td></tr>{{end}}
{{with .Boot}}<tr class="{{.Status}}"><td>boot ({{.Node}})</td><td>{{.Status}}</td><td>{{secs .Seconds}}</td><td>
{{if .ConsoleLog}}<a href="{{link $base .ConsoleLog}}">console log</a>{{end}} {{if .ServeLog}}<a href="{{link $base .ServeLog}}">serve log</a>{{end}} {{if .QEMULog}}<a href="{{link $base .QEMULog}}">qemu log</a>{{end}}
{{if .RootMount}}<br>root: {{.RootMount}}{{end}}{{if .Error}}<pre>{{.Error}}</pre>{{end}}
{{if .Phases}}<table class="phases"><tr><th>phase</th><th>seen by</th><th>at</th></tr>{{range .Phases}}<tr><td>{{.Phase}}</td><td>{{.Source}}</td><td>{{secs .At}}</td></tr>{{end}}</table>{{end}}</td></tr>{{end}}
{{range .Tests}}<tr class="{{.Status}} test"><td>test <code>{{.Command}}</code></td><td>{{.Status}} (exit {{.ExitCode}})</td><td>{{secs .Seconds}}</td><td>{{if .Error}}{{.Error}}{{end}}{{if .Output}}<pre>{{.Output}}</pre>{{end}}</td></tr>{{end}}
{{with .Publish}}<tr class="{{.Status}}"><td>publish</td><td>{{.Status}}</td><td>{{secs .Seconds}}</td><td>{{.Repository}}{{range .Tags}} :{{.}}{{end}}{{if .Error}}<pre>{{.Error}}</pre>{{end}}</td></tr>{{end}}
</table>
{{with .Packages}}<h3>Packages</h3>{{if .Error}}<p>{{.Error}}</p>{{else}}<p>{{.Count}} installed{{if .Previous}}; compared with {{.Previous}} (published {{.PreviousAt.Format "2006-01-02 15:04"}}): {{len .Added}} added, {{len .Removed}} removed, {{len .Upgraded}} changed{{else}}; no earlier publish to compare with{{end}}.</p>
{{if or .Added .Removed .Upgraded}}<table class="pkgdiff"><tr><th>package</th><th>change</th><th>before</th><th>now</th></tr>
{{range .Added}}<tr class="passed"><td>{{.Name}}</td><td>added</td><td></td><td>{{.Version}}</td></tr>{{end}}
{{range .Removed}}<tr class="failed"><td>{{.Name}}</td><td>removed</td><td>{{.Version}}</td><td></td></tr>{{end}}
{{range .Upgraded}}<tr class="skipped"><td>{{.Name}}</td><td>changed</td><td>{{.From}}</td><td>{{.To}}</td></tr>{{end}}
</table>{{end}}{{end}}{{end}}
</section>
{{end}}</body></html>
`))

// HTML writes the run's page; logBase is the log directory relative to
// where the page is (links are relative, so the directory can be moved or
// served as is).
func HTML(w io.Writer, run *ci.Run, hist *History, logBase string) error {
	p := page{Run: run, LogBase: filepath.ToSlash(logBase)}
	if hist != nil {
		p.History = hist.Runs
		seen := map[string]bool{}
		for _, h := range hist.Runs {
			if h.Seconds > p.MaxSecs {
				p.MaxSecs = h.Seconds
			}
			for n := range h.Recipes {
				if !seen[n] {
					seen[n] = true
					p.Names = append(p.Names, n)
				}
			}
		}
		sort.Strings(p.Names)
	}
	var b bytes.Buffer
	if err := pageTmpl.Execute(&b, p); err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}
