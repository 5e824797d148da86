package main

import (
	"io"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metrics is one scrape of a Prometheus text endpoint (the API server's or
// the manager's /metrics), by metric family.
type metrics map[string]*dto.MetricFamily

func parseMetrics(r io.Reader) (metrics, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(r)
}

// value adds up the series of family name whose labels include match: the
// value of a counter or gauge, the sum of a histogram's or summary's
// observations.
func (m metrics) value(name string, match map[string]string) float64 {
	var total float64
	for _, s := range m.series(name, match) {
		switch {
		case s.Counter != nil:
			total += s.Counter.GetValue()
		case s.Gauge != nil:
			total += s.Gauge.GetValue()
		case s.Untyped != nil:
			total += s.Untyped.GetValue()
		case s.Histogram != nil:
			total += s.Histogram.GetSampleSum()
		case s.Summary != nil:
			total += s.Summary.GetSampleSum()
		}
	}
	return total
}

// observations adds up the observation counts of the histogram or summary
// series of family name whose labels include match.
func (m metrics) observations(name string, match map[string]string) float64 {
	var total float64
	for _, s := range m.series(name, match) {
		total += float64(s.GetHistogram().GetSampleCount() + s.GetSummary().GetSampleCount())
	}
	return total
}

// series are the series of family name whose labels include match.
func (m metrics) series(name string, match map[string]string) []*dto.Metric {
	var out []*dto.Metric
	for _, s := range m[name].GetMetric() {
		if matches(s, match) {
			out = append(out, s)
		}
	}
	return out
}

func matches(s *dto.Metric, match map[string]string) bool {
	for k, v := range match {
		if label(s, k) != v {
			return false
		}
	}
	return true
}

// label is the series' value of label name, "" when it has none.
func label(s *dto.Metric, name string) string {
	for _, l := range s.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
