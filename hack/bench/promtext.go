package main

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
)

// sample is one line of the Prometheus text exposition format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the Prometheus text format: comments are skipped, and
// so are lines it cannot read, since a benchmark only looks up a few series.
// It is small on purpose: the expfmt parser is not among the module's direct
// dependencies.
func parseMetrics(text []byte) []sample {
	var out []sample
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if s, ok := parseSample(line); ok {
			out = append(out, s)
		}
	}
	return out
}

func parseSample(line string) (sample, bool) {
	s := sample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, false
	}
	s.name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		var ok bool
		rest, ok = parseLabels(rest[1:], s.labels)
		if !ok {
			return s, false
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, false
	}
	s.value = v
	return s, true
}

// parseLabels reads name="value" pairs up to the closing brace and returns
// what follows it.
func parseLabels(in string, into map[string]string) (string, bool) {
	for {
		in = strings.TrimLeft(in, " ,")
		if in == "" {
			return "", false
		}
		if in[0] == '}' {
			return in[1:], true
		}
		eq := strings.IndexByte(in, '=')
		if eq < 0 || len(in) < eq+2 || in[eq+1] != '"' {
			return "", false
		}
		name := strings.TrimSpace(in[:eq])
		in = in[eq+2:]
		var value strings.Builder
		closed := false
		for j := 0; j < len(in); j++ {
			c := in[j]
			if c == '\\' && j+1 < len(in) {
				j++
				switch in[j] {
				case 'n':
					value.WriteByte('\n')
				default:
					value.WriteByte(in[j])
				}
				continue
			}
			if c == '"' {
				in = in[j+1:]
				closed = true
				break
			}
			value.WriteByte(c)
		}
		if !closed {
			return "", false
		}
		into[name] = value.String()
	}
}

// sumOf adds the values of the series named name whose labels include match.
func sumOf(samples []sample, name string, match map[string]string) float64 {
	var total float64
	for _, s := range samples {
		if s.name != name {
			continue
		}
		matched := true
		for k, v := range match {
			if s.labels[k] != v {
				matched = false
				break
			}
		}
		if matched {
			total += s.value
		}
	}
	return total
}
