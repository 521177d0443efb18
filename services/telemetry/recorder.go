package telemetry

// Recorder receives metrics. *Metrics implements it (EMF lines), Discard drops them, and tests count with their
// own. Every package that emits metrics (kpl, ingest, kcl, multilang) takes a Recorder in its Config.
type Recorder interface {
	// Add adds value to the counter name.
	Add(name string, unit Unit, value float64, dims ...Dimension)
	// Observe records one observation of name (a distribution: latencies, sizes).
	Observe(name string, unit Unit, value float64, dims ...Dimension)
}

// Discard is a Recorder that drops every metric: the default where a Config names none.
var Discard Recorder = discard{}

type discard struct{}

func (discard) Add(string, Unit, float64, ...Dimension)     {}
func (discard) Observe(string, Unit, float64, ...Dimension) {}
