package bench

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Axis labels of the chart; tests look for them.
const (
	LabelInstances  = "instances (workers)"
	LabelThroughput = "requests per second"
	LabelP99        = "p99 latency (ms)"
)

// WriteSVG draws the report as an SVG chart: requests/s (with the
// ideal linear scaling from the baseline row, dashed) above p99 latency,
// both against the instance count. It fails on a report without rows.
func (r Report) WriteSVG(w io.Writer) error {
	c := vgsvg.New(chartWidth, chartHeight)
	if err := r.draw(draw.New(c)); err != nil {
		return err
	}
	if _, err := c.WriteTo(w); err != nil {
		return fmt.Errorf("write svg: %w", err)
	}
	return nil
}

// WritePNG draws the same chart as WriteSVG, as a PNG.
func (r Report) WritePNG(w io.Writer) error {
	c := vgimg.New(chartWidth, chartHeight)
	if err := r.draw(draw.New(c)); err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(w); err != nil {
		return fmt.Errorf("write png: %w", err)
	}
	return nil
}

const (
	chartWidth  = 7 * vg.Inch
	chartHeight = 7 * vg.Inch
)

var (
	colorRPS   = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colorIdeal = color.RGBA{R: 0x99, G: 0x99, B: 0x99, A: 0xff}
	colorP99   = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
)

func (r Report) draw(dc draw.Canvas) error {
	if len(r.Runs) == 0 {
		return fmt.Errorf("chart: no runs to draw")
	}
	rps, ideal, p99 := make(plotter.XYs, len(r.Runs)), make(plotter.XYs, len(r.Runs)), make(plotter.XYs, len(r.Runs))
	base := r.Runs[0]
	for _, row := range r.Runs {
		if row.Instances == r.baseline() {
			base = row
			break
		}
	}
	maxN := 0
	for i, row := range r.Runs {
		n := float64(row.Instances)
		rps[i] = plotter.XY{X: n, Y: row.RPS}
		ideal[i] = plotter.XY{X: n, Y: base.RPS * n / float64(max(base.Instances, 1))}
		p99[i] = plotter.XY{X: n, Y: row.P99Ms}
		maxN = max(maxN, row.Instances)
	}

	top := newPanel(fmt.Sprintf("%s: throughput (%s, %d connections)", r.App, r.Mode, r.Connections), LabelThroughput, maxN)
	top.Y.Tick.Marker = countTicks{}
	idealLine, err := plotter.NewLine(ideal)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	idealLine.Color = colorIdeal
	idealLine.Dashes = []vg.Length{vg.Points(6), vg.Points(4)}
	line, points, err := plotter.NewLinePoints(rps)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	line.Color, line.Width = colorRPS, vg.Points(2)
	points.Color, points.Radius = colorRPS, vg.Points(3.5)
	top.Add(idealLine, line, points)
	top.Legend.Add("measured", line, points)
	top.Legend.Add(fmt.Sprintf("linear from %d", base.Instances), idealLine)
	// Top left: both lines start low at the left (the y axis starts at 0).
	top.Legend.Top, top.Legend.Left = true, true
	top.Legend.XOffs, top.Legend.YOffs = vg.Points(10), -vg.Points(4)
	top.Legend.ThumbnailWidth = vg.Points(28)
	top.Legend.Padding = vg.Points(4)
	top.Legend.TextStyle.Font.Size = vg.Points(11)
	top.Y.Min = 0
	top.Y.Max = math.Max(maxY(rps), maxY(ideal)) * 1.1

	bottom := newPanel("p99 latency", LabelP99, maxN)
	line, points, err = plotter.NewLinePoints(p99)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	line.Color, line.Width = colorP99, vg.Points(2)
	points.Color, points.Radius = colorP99, vg.Points(3.5)
	points.Shape = draw.BoxGlyph{}
	bottom.Add(line, points)
	bottom.Y.Min = 0
	bottom.Y.Max = maxY(p99) * 1.15

	plots := [][]*plot.Plot{{top}, {bottom}}
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadY: vg.Points(18), PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(16)}
	canvases := plot.Align(plots, tiles, dc)
	top.Draw(canvases[0][0])
	bottom.Draw(canvases[1][0])
	return nil
}

func newPanel(title, ylabel string, maxN int) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text = LabelInstances
	p.Y.Label.Text = ylabel
	p.X.Label.TextStyle.Font.Size = vg.Points(12)
	p.Y.Label.TextStyle.Font.Size = vg.Points(12)
	p.X.Tick.Label.Font.Size = vg.Points(11)
	p.Y.Tick.Label.Font.Size = vg.Points(11)
	p.X.Min, p.X.Max = 0.5, float64(maxN)+0.5
	p.X.Tick.Marker = instanceTicks{}
	p.Add(plotter.NewGrid())
	return p
}

func maxY(xys plotter.XYs) float64 {
	m := 0.0
	for _, xy := range xys {
		m = math.Max(m, xy.Y)
	}
	if m == 0 {
		return 1
	}
	return m
}

// instanceTicks labels whole instance counts (every one up to 16, then
// every few).
type instanceTicks struct{}

func (instanceTicks) Ticks(lo, hi float64) []plot.Tick {
	step := max(1, int(math.Ceil((hi-lo)/16)))
	var ts []plot.Tick
	for n := int(math.Ceil(lo)); float64(n) <= hi; n++ {
		if n%step == 0 || n == 1 {
			ts = append(ts, plot.Tick{Value: float64(n), Label: strconv.Itoa(n)})
		}
	}
	return ts
}

// countTicks is gonum's default ticks with labels like 12,000 or 45k
// rather than 1.2e+04.
type countTicks struct{}

func (countTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label == "" {
			continue
		}
		v := ts[i].Value
		if v == 0 {
			ts[i].Label = "0"
		} else if hi >= 100000 {
			ts[i].Label = strconv.FormatFloat(v/1000, 'f', -1, 64) + "k"
		} else {
			ts[i].Label = thousands(v)
		}
	}
	return ts
}
