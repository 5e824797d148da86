package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/prometheus/procfs"
)

// machine reads CPU time and memory, the machine's and its processes', from
// /proc.
type machine struct{ fs procfs.FS }

func newMachine() (machine, error) {
	fs, err := procfs.NewDefaultFS()
	return machine{fs}, err
}

// cpuTime is a process's user and system CPU time so far.
func (m machine) cpuTime(pid int) (time.Duration, error) {
	stat, err := m.procStat(pid)
	return seconds(stat.CPUTime()), err
}

// rss is a process's resident set size in bytes.
func (m machine) rss(pid int) (int64, error) {
	p, err := m.fs.Proc(pid)
	if err != nil {
		return 0, err
	}
	status, err := p.NewStatus()
	return int64(status.VmRSS), err
}

func (m machine) procStat(pid int) (procfs.ProcStat, error) {
	p, err := m.fs.Proc(pid)
	if err != nil {
		return procfs.ProcStat{}, err
	}
	return p.Stat()
}

// String describes the machine for the report's header.
func (m machine) String() string {
	ram := "memory unknown"
	if mem, err := m.fs.Meminfo(); err == nil && mem.MemTotalBytes != nil {
		ram = fmt.Sprintf("%.1f GiB RAM", float64(*mem.MemTotalBytes)/(1<<30))
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s, %d CPUs, %s", host, runtime.NumCPU(), ram)
}

// load is the one-minute load average, for progress lines: the bench shares
// the machine, and a busy neighbour shows in every figure.
func (m machine) load() string {
	avg, err := m.fs.LoadAvg()
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.2f", avg.Load1)
}

// The bench tells how busy its neighbours keep the machine by the CPU time
// the machine spent outside the bench's own process tree (the bench, the
// control plane, the manager, go build).

// busy is the CPU time of the whole machine so far, idle and I/O wait
// excluded, in seconds.
func (m machine) busy() float64 {
	stat, err := m.fs.Stat()
	if err != nil {
		return 0
	}
	c := stat.CPUTotal
	return c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
}

// ownCPU is the CPU time of this process and all its descendants, the
// reaped ones included, in seconds.
func (m machine) ownCPU() float64 {
	procs, err := m.fs.AllProcs()
	if err != nil {
		return 0
	}
	parent := map[int]int{}
	ticks := map[int]int{}
	for _, p := range procs {
		stat, err := p.Stat()
		if err != nil {
			continue // exited meanwhile
		}
		parent[p.PID] = stat.PPID
		ticks[p.PID] = int(stat.UTime+stat.STime) + stat.CUTime + stat.CSTime
	}
	self, total := os.Getpid(), 0
	for pid, t := range ticks {
		for p := pid; p > 1; p = parent[p] {
			if p == self {
				total += t
				break
			}
		}
	}
	return float64(total) / userHZ
}

// userHZ is the unit of /proc's per-process CPU times: 100 on every Linux
// architecture Go supports.
const userHZ = 100

// neighbourWatch is the share of all CPUs used by processes outside the
// bench, over the run and over its busiest neighbourInterval.
type neighbourWatch struct{ mean, peak float64 }

const neighbourInterval = 5 * time.Second

// watchNeighbours samples the CPU share others took until ctx ends, then
// reports through done.
func (m machine) watchNeighbours(ctx context.Context, done chan<- neighbourWatch) {
	cpus := float64(runtime.NumCPU())
	share := func(busy, own float64, since time.Time) float64 {
		wall := time.Since(since).Seconds() * cpus
		if wall <= 0 {
			return 0
		}
		return max(0, (busy-own)/wall)
	}
	var w neighbourWatch
	busy0, own0, start := m.busy(), m.ownCPU(), time.Now()
	busyPrev, ownPrev, prev := busy0, own0, start
	tick := time.NewTicker(neighbourInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			w.mean = share(m.busy()-busy0, m.ownCPU()-own0, start)
			done <- w
			return
		case <-tick.C:
			busy, own := m.busy(), m.ownCPU()
			w.peak = max(w.peak, share(busy-busyPrev, own-ownPrev, prev))
			busyPrev, ownPrev, prev = busy, own, time.Now()
		}
	}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
