package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBenchHTML: the page holds the chart (valid SVG with its labels) and
// the table, loads nothing and runs no script; where Chromium is installed
// it renders the page headless and must log no console message or error.
func TestBenchHTML(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	i, j := strings.Index(page, "<svg"), strings.LastIndex(page, "</svg>")
	if !strings.HasPrefix(page, "<!DOCTYPE html>") || i < 0 || j < i {
		t.Fatalf("no doctype or no chart:\n%.400s", page)
	}
	checkSVG(t, []byte(page[i:j+len("</svg>")]))
	for _, bad := range []string{"<script", "<?xml", "http://", "https://"} {
		if strings.Contains(page[:i]+page[j:], bad) {
			t.Errorf("the page has %q outside the chart", bad)
		}
	}
	if !strings.Contains(page, "speed-up vs 1") {
		t.Errorf("the page lacks the table")
	}

	chromium := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		t.Log("no Chromium here: the page was not rendered (apt-get install chromium to check it)")
		return
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "bench.html")
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--enable-logging=stderr", "--v=0",
		"--screenshot="+filepath.Join(dir, "shot.png"), "--window-size=900,1400", "file://"+file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, "CONSOLE") || strings.Contains(line, "Uncaught") {
			t.Errorf("console: %s", line)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "shot.png")); err != nil || st.Size() < 10000 {
		t.Errorf("no screenshot of the page (%v)", err)
	}
	if p := os.Getenv("BENCH_HTML_PNG"); p != "" {
		shot, _ := os.ReadFile(filepath.Join(dir, "shot.png"))
		os.WriteFile(p, shot, 0o644)
	}
}
