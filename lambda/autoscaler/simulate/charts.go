package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Colours of the charts' series.
var (
	loadColour         = color.RGBA{A: 255}
	autoscalerColour   = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 255}
	scalingUtilsColour = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 255}
)

// writeCharts writes one SVG chart per trace into dir (created if needed), named after the trace (chartFile):
// load, and the capacity (open shards) of this autoscaler and of Scaling Utils over time, with each controller's
// throttled minutes marked on its capacity line. rows[i] is traces[i] replayed with set.
func writeCharts(dir string, traces []Trace, rows []Row, set Settings) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("charts: %w", err)
	}
	for i, tr := range traces {
		p, err := chart(tr, rows[i], set)
		if err != nil {
			return fmt.Errorf("chart of %q: %w", tr.Name, err)
		}
		if err := p.Save(8*vg.Inch, 3.2*vg.Inch, filepath.Join(dir, chartFile(tr.Name))); err != nil {
			return fmt.Errorf("chart of %q: %w", tr.Name, err)
		}
	}
	return nil
}

// chartFile is the SVG file name of a trace's chart: its name in lower case, words joined by dashes.
func chartFile(trace string) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return ' '
	}, trace)
	return strings.Join(strings.Fields(clean), "-") + ".svg"
}

// chart draws one trace: the x axis in hours, the y axis in shards (a shard-unit of load is one shard's write
// limit, so load and capacity share it).
func chart(tr Trace, row Row, set Settings) (*plot.Plot, error) {
	set = set.withDefaults()
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: %d / %d throttled minutes, %.1f / %.1f shard-hours (autoscaler / Scaling Utils)", tr.Name,
		row.Policy.ThrottledMinutes, row.ScalingUtils.ThrottledMinutes, row.Policy.ShardHours, row.ScalingUtils.ShardHours)
	p.Title.TextStyle.Font.Size = vg.Points(9)
	p.X.Label.Text = "hours"
	p.Y.Label.Text = "shards (load in shard-units)"
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	loads := make(plotter.XYs, tr.Minutes)
	for t := range loads {
		loads[t] = plotter.XY{X: float64(t) / 60, Y: tr.load(minuteTime(t), set.Seed).Total()}
	}
	load, err := plotter.NewLine(loads)
	if err != nil {
		return nil, err
	}
	load.Color, load.Width = loadColour, vg.Points(0.8)
	p.Add(load)
	p.Legend.Add("load", load)
	for _, c := range []struct {
		name   string
		res    Result
		colour color.Color
		glyph  draw.GlyphDrawer
	}{
		{"autoscaler", row.Policy, autoscalerColour, draw.CircleGlyph{}},
		{"Scaling Utils", row.ScalingUtils, scalingUtilsColour, draw.CrossGlyph{}},
	} {
		if err := addController(p, c.name, c.res, c.colour, c.glyph); err != nil {
			return nil, err
		}
	}
	// Room above the data for the legend.
	p.Y.Min, p.Y.Max = 0, 1.5*p.Y.Max
	return p, nil
}

// addController adds a controller's capacity as a step line and its throttled minutes as glyphs on it.
func addController(p *plot.Plot, name string, res Result, colour color.Color, glyph draw.GlyphDrawer) error {
	capacity := make(plotter.XYs, 0, 2*len(res.Shards))
	var throttled plotter.XYs
	for t, n := range res.Shards {
		x := float64(t) / 60
		capacity = append(capacity, plotter.XY{X: x, Y: float64(n)}, plotter.XY{X: x + 1.0/60, Y: float64(n)})
		if res.Throttled[t] {
			throttled = append(throttled, plotter.XY{X: x + 0.5/60, Y: float64(n)})
		}
	}
	line, err := plotter.NewLine(capacity)
	if err != nil {
		return err
	}
	line.Color, line.Width = colour, vg.Points(1.2)
	p.Add(line)
	p.Legend.Add(name+" capacity", line)
	if len(throttled) == 0 {
		return nil
	}
	marks, err := plotter.NewScatter(throttled)
	if err != nil {
		return err
	}
	marks.GlyphStyle = draw.GlyphStyle{Color: colour, Radius: vg.Points(2.2), Shape: glyph}
	p.Add(marks)
	p.Legend.Add(name+" throttled minute", marks)
	return nil
}
