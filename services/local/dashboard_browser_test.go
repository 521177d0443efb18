package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/streamproc/streamproc/internal/eventually"
	"github.com/streamproc/streamproc/services/loadgen/load"
	"github.com/streamproc/streamproc/services/local/pipeline"
)

// chromiumPath finds Debian's Chromium. `make test` installs it (package chromium) when it is missing and it runs
// as root; without it this test fails, never skips.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatal("Chromium is not installed, and the dashboard test drives it: install Debian's chromium package " +
		"(sudo apt-get install chromium), or run `make test` as root, which installs it")
	return ""
}

// TestDashboardShowsTheLoadLive drives the local dashboard in headless Chromium while load runs: the charts update,
// and the page's count of records in matches what the load generator had acknowledged. With DASHBOARD_SCREENSHOT
// set to a path, it saves a screenshot there (the README's).
func TestDashboardShowsTheLoadLive(t *testing.T) {
	// GIVEN the local pipeline and its dashboard open in a browser
	browser := chromiumPath(t)
	r := startLocalRun(t, pipeline.Config{Consumers: 2})
	ctx, cancel := chromedp.NewExecAllocator(t.Context(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.WindowSize(1280, 1500))...)
	defer cancel()
	ctx, cancel = chromedp.NewContext(ctx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(r.p.DashboardURL()), chromedp.WaitVisible("#chart-records-in svg")); err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}
	firstUpdate := pageValue(ctx, t, `document.body.dataset.updated`)

	// WHEN load runs through the producer
	res, err := load.Run(ctx, load.Config{URL: r.p.ProducerURL(), Rate: 200, Records: 900, Batch: 10}, time.Second, nil)
	if err != nil || res.Acked == 0 {
		t.Fatalf("load: %+v, %v", res, err)
	}

	// THEN the page counts exactly the acknowledged records in, and processed at least as many
	want := strconv.FormatInt(res.Acked, 10)
	eventually.Succeeds(t, time.Minute, func() error {
		in := digits(pageValue(ctx, t, `document.getElementById('records-in').textContent`))
		processed := digits(pageValue(ctx, t, `document.getElementById('records-processed').textContent`))
		if in != want {
			return fmt.Errorf("page shows %s records in, the load generator had %s acknowledged", in, want)
		}
		if n, _ := strconv.Atoi(processed); int64(n) < res.Acked {
			return fmt.Errorf("page shows %s records processed, want at least %s", processed, want)
		}
		return nil
	})
	// AND the charts drew the load: several points in, per worker processed, and the page kept refreshing
	for _, chart := range []string{"records-in", "processed", "put-latency", "leases", "shards"} {
		points := pageValue(ctx, t, fmt.Sprintf(
			`Math.max(0, ...[...document.querySelectorAll('#chart-%s path.line')].map(p => +p.dataset.points))`, chart))
		if n, _ := strconv.Atoi(points); n < 2 {
			t.Errorf("chart %s draws %s points, want a line", chart, points)
		}
	}
	if last := pageValue(ctx, t, `document.body.dataset.updated`); last == firstUpdate {
		t.Errorf("the page did not refresh during the load (updated %s both times)", last)
	}
	saveScreenshot(ctx, t, os.Getenv("DASHBOARD_SCREENSHOT"))
	// AND on a phone's screen every chart fits the width: nothing to scroll sideways
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	eventually.Succeeds(t, 10*time.Second, func() error {
		if wide := pageValue(ctx, t, `document.documentElement.scrollWidth > window.innerWidth`); wide != "false" {
			return fmt.Errorf("the page is wider than a 390 px phone screen")
		}
		return nil
	})
	r.stopAndCheckNothingLeft(t)
}

// pageValue evaluates a JavaScript expression in the page, as a string.
func pageValue(ctx context.Context, t *testing.T, expr string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return fmt.Sprint(v)
}

// digits keeps the digits of a number the page formatted for people ("1,234").
func digits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// saveScreenshot writes a PNG of the whole page to path, when one is given.
func saveScreenshot(ctx context.Context, t *testing.T, path string) {
	t.Helper()
	if path == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 makes a PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Clean(path), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot written to %s", path)
}
