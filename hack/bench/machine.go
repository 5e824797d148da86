package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// The bench shares its machine with whatever else runs there, and a busy
// neighbour shows in every timing. It tells how busy by the CPU time the
// machine spent outside the bench's own process tree (the bench, the
// control plane, the manager, go build), from /proc.

// machineBusy is the CPU time of the whole machine, idle and I/O wait
// excluded, in clock ticks.
func machineBusy() (int64, bool) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	fields := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, false
	}
	var busy int64
	for i, f := range fields[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, false
		}
		busy += n
	}
	return busy, true
}

// ownCPU is the CPU time of this process and all its descendants, the
// reaped ones included, in clock ticks.
func ownCPU() int64 {
	self := os.Getpid()
	parent := map[int]int{}
	ticks := map[int]int64{}
	entries, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, e := range entries {
		raw, err := os.ReadFile(e)
		if err != nil {
			continue // exited meanwhile
		}
		s := string(raw)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 15 {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(e)))
		parent[pid], _ = strconv.Atoi(fields[1])
		var t int64
		for _, f := range fields[11:15] { // utime stime cutime cstime
			n, _ := strconv.ParseInt(f, 10, 64)
			t += n
		}
		ticks[pid] = t
	}
	var total int64
	for pid, t := range ticks {
		for p := pid; p > 1; p = parent[p] {
			if p == self {
				total += t
				break
			}
		}
	}
	return total
}

// neighbourWatch samples the CPU share others took, every interval.
type neighbourWatch struct {
	// mean and peak are the share of all CPUs used by processes outside the
	// bench, over the run and over the busiest interval.
	mean, peak float64
}

const neighbourInterval = 5 * time.Second

// watchNeighbours runs until ctx ends, then reports through done.
func watchNeighbours(ctx context.Context, done chan<- neighbourWatch) {
	cpus := float64(runtime.NumCPU())
	var w neighbourWatch
	busy0, ok := machineBusy()
	if !ok {
		done <- w
		return
	}
	own0, start := ownCPU(), time.Now()
	busyPrev, ownPrev, prev := busy0, own0, start
	tick := time.NewTicker(neighbourInterval)
	defer tick.Stop()
	share := func(busy, own int64, since time.Time) float64 {
		wall := time.Since(since).Seconds() * cpus * clockTicks
		if wall <= 0 {
			return 0
		}
		return max(0, float64(busy-own)/wall)
	}
	for {
		select {
		case <-ctx.Done():
			busy, _ := machineBusy()
			w.mean = share(busy-busy0, ownCPU()-own0, start)
			done <- w
			return
		case <-tick.C:
			busy, _ := machineBusy()
			own := ownCPU()
			w.peak = max(w.peak, share(busy-busyPrev, own-ownPrev, prev))
			busyPrev, ownPrev, prev = busy, own, time.Now()
		}
	}
}
