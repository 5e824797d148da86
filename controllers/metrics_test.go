package controllers

import (
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// seriesFor counts the tokensync series labelled with a TokenRequest.
func seriesFor(t *testing.T, namespace, name string) int {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "tokensync_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var ns, nm string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "namespace":
					ns = l.GetValue()
				case "name":
					nm = l.GetValue()
				}
			}
			if ns == namespace && nm == name {
				n++
			}
		}
	}
	return n
}
