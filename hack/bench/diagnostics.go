package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// managerStats are sums from the manager's own metrics, to explain a figure
// (never to make one): where reconciles waited and for how long.
type managerStats struct {
	// queueWait is the time items waited in the TokenRequest work queue.
	queueWait, queued float64
	// reconcileTime is the time spent in Reconcile.
	reconcileTime, reconciles float64
	// limiterWait is the time requests waited for client-go's client-side
	// rate limiter, by verb; only a --diagnose build reports it.
	limiterWait, limited map[string]float64
}

func statsFrom(samples []sample) managerStats {
	queue := map[string]string{"name": "tokenrequest"}
	ctrl := map[string]string{"controller": "tokenrequest"}
	s := managerStats{
		queueWait:     sumOf(samples, "workqueue_queue_duration_seconds_sum", queue),
		queued:        sumOf(samples, "workqueue_queue_duration_seconds_count", queue),
		reconcileTime: sumOf(samples, "controller_runtime_reconcile_time_seconds_sum", ctrl),
		reconciles:    sumOf(samples, "controller_runtime_reconcile_time_seconds_count", ctrl),
		limiterWait:   map[string]float64{},
		limited:       map[string]float64{},
	}
	for _, x := range samples {
		switch x.name {
		case "rest_client_rate_limiter_duration_seconds_sum":
			s.limiterWait[x.labels["verb"]] += x.value
		case "rest_client_rate_limiter_duration_seconds_count":
			s.limited[x.labels["verb"]] += x.value
		}
	}
	return s
}

func (s managerStats) since(before managerStats) managerStats {
	d := managerStats{
		queueWait: s.queueWait - before.queueWait, queued: s.queued - before.queued,
		reconcileTime: s.reconcileTime - before.reconcileTime, reconciles: s.reconciles - before.reconciles,
		limiterWait: map[string]float64{}, limited: map[string]float64{},
	}
	for k, v := range s.limiterWait {
		d.limiterWait[k] = v - before.limiterWait[k]
	}
	for k, v := range s.limited {
		d.limited[k] = v - before.limited[k]
	}
	return d
}

func (s managerStats) String() string {
	mean := func(sum, n float64) string {
		if n == 0 {
			return "—"
		}
		return ms(time.Duration(sum / n * float64(time.Second)))
	}
	out := fmt.Sprintf("%.0f reconciles, mean %s in Reconcile, mean %s waiting in the queue",
		s.reconciles, mean(s.reconcileTime, s.reconciles), mean(s.queueWait, s.queued))
	var verbs []string
	for v := range s.limited {
		verbs = append(verbs, v)
	}
	sort.Strings(verbs)
	var limits []string
	for _, v := range verbs {
		if s.limited[v] > 0 {
			limits = append(limits, fmt.Sprintf("%s %.0f requests, %s waited in all (mean %s)",
				v, s.limited[v], secs(time.Duration(s.limiterWait[v]*float64(time.Second))), mean(s.limiterWait[v], s.limited[v])))
		}
	}
	if len(limits) > 0 {
		out += "; client-side rate limiter: " + strings.Join(limits, ", ")
	}
	return out
}

// managerStatsNow reads the manager's metrics into managerStats.
func (b *bench) managerStatsNow() (managerStats, error) {
	s, err := b.mgr.metrics()
	if err != nil {
		return managerStats{}, err
	}
	return statsFrom(s), nil
}

// profile saves a pprof profile of the manager (a --diagnose build) into
// the run's directory; seconds > 0 asks for a CPU profile of that length.
// It returns the file written, or "" when the run is not diagnosing.
func (b *bench) profile(ctx context.Context, kind string, seconds int, name string) (string, error) {
	if b.mcfg.pprofAddr == "" {
		return "", nil
	}
	url := fmt.Sprintf("http://%s/debug/pprof/%s", b.mcfg.pprofAddr, kind)
	if seconds > 0 {
		url += fmt.Sprintf("?seconds=%d", seconds)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("pprof %s: %w", kind, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("pprof %s: %s", kind, resp.Status)
	}
	path := filepath.Join(b.mcfg.logDir, name)
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		return "", err
	}
	return path, nil
}
