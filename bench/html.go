package bench

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

// WriteHTML writes the report as one self-contained HTML page: the chart
// of WriteSVG inline, and the table WriteTable prints. It loads nothing
// from anywhere and runs no script, so it opens offline and can be
// attached to a ticket as it is.
func (r Report) WriteHTML(w io.Writer) error {
	var svg bytes.Buffer
	if err := r.WriteSVG(&svg); err != nil {
		return err
	}
	chart := svg.Bytes()
	// An XML declaration has no place inside an HTML document.
	if i := bytes.Index(chart, []byte("<svg")); i > 0 {
		chart = chart[i:]
	}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		return err
	}
	var meta []string
	for _, s := range []string{r.File, r.URL,
		fmt.Sprintf("%s, %d connections, %g s per instance count", r.Mode, r.Connections, r.DurationS),
		time.Now().UTC().Format("2006-01-02 15:04 UTC")} {
		if s != "" {
			meta = append(meta, s)
		}
	}
	data := struct {
		App   string
		Meta  string
		Chart template.HTML
		Table string
	}{r.App, strings.Join(meta, " · "), template.HTML(chart), table.String()}
	if err := htmlPage.Execute(w, data); err != nil {
		return fmt.Errorf("write html: %w", err)
	}
	return nil
}

// The chart is our own SVG (gonum/plot's output), hence template.HTML.
var htmlPage = template.Must(template.New("bench").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>launch bench: {{.App}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
.meta { color: #555; }
svg { max-width: 100%; height: auto; }
</style>
</head>
<body>
<h1>launch bench: {{.App}}</h1>
<p class="meta">{{.Meta}}</p>
<figure>{{.Chart}}<figcaption>Requests per second (dashed: linear scaling from the baseline) and p99 latency against the number of instances.</figcaption></figure>
<h2>Table</h2>
<pre>{{.Table}}</pre>
</body>
</html>
`))
