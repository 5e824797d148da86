// Package safetemplate is tokensync's template sandbox: the one place that
// parses, checks and renders the Go text/templates a TokenRequest's author
// writes (spec.secretTemplate.data, and the headers and body fields of
// spec.http).
//
// That author is not trusted, and the operator serves every tenant, so a
// template may do only what two lists allow, and what it does is bounded:
//   - nodes: text, actions, if / else if / else, pipelines (with variables,
//     chained with | and nested in parentheses) and literals. No range or
//     with (no loops, no rebound dot), no define, block or template (no
//     template calling another, or itself), no break or continue.
//   - functions: those in Functions, nothing else; none reads a file, the
//     environment or the network, or calls code the template names.
//   - data is reached only as .key, $.key or index . "key", so the keys a
//     template reads are known from its text (Template.Keys).
//   - every function that builds text computes the size of its result
//     before building it and refuses more than MaxValueBytes; the functions
//     of one render build at most MaxWorkBytes together; the rendered text
//     is at most MaxValueBytes. With no loop, each node runs at most once,
//     so a render's time is bounded by the template's length (at most
//     MaxTextBytes) times MaxValueBytes.
//
// What a template is rendered with (a token, credentials) is secret: an
// error names the template and the problem, never a value.
//
// Callers that render several templates into one object (a Secret's data,
// a login request) bound the sum at MaxTotalBytes.
package safetemplate

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
)

const (
	// MaxTextBytes bounds a template's text; the CRD has the same limit.
	MaxTextBytes = 4096
	// MaxValueBytes bounds a rendered value, and the result of every
	// function within a render.
	MaxValueBytes = 64 << 10
	// MaxWorkBytes bounds the text the functions of one render build
	// together, intermediate results included.
	MaxWorkBytes = 1 << 20
	// MaxTotalBytes bounds what the templates of one object render
	// together: a Secret's data, a login request. The caller sums.
	MaxTotalBytes = 1 << 20
)

// Error says why a template cannot be used: where it is (Name, as the
// caller named it) and the problem. It never quotes a value the template
// was rendered with.
type Error struct {
	Name    string
	Problem string
}

func (e *Error) Error() string { return e.Name + ": " + e.Problem }

// Template is a parsed and checked template.
type Template struct {
	name string
	tmpl *template.Template
	keys []string

	// mu lets one render run at a time: tmpl's functions are bound to r,
	// which counts what a render's functions build.
	mu sync.Mutex
	r  *render
}

// Keys are the data keys the template reads, sorted.
func (t *Template) Keys() []string { return slices.Clone(t.keys) }

// Parse parses text, found at name, and checks it against the sandbox's
// rules. Errors are *Error.
func Parse(name, text string) (*Template, error) {
	if len(text) > MaxTextBytes {
		return nil, &Error{name, fmt.Sprintf("is longer than %d bytes", MaxTextBytes)}
	}
	r := &render{}
	t, err := template.New(name).Option("missingkey=error").Funcs(r.funcs()).Parse(text)
	if err != nil {
		return nil, &Error{name, "does not parse: " + parseProblem(name, err)}
	}
	if len(t.Templates()) > 1 {
		return nil, &Error{name, errNoTemplateCalls.Error()}
	}
	c := checker{keys: map[string]bool{}}
	if t.Tree != nil {
		if err := c.list(t.Root); err != nil {
			return nil, &Error{name, err.Error()}
		}
	}
	return &Template{name: name, tmpl: t, keys: slices.Sorted(maps.Keys(c.keys)), r: r}, nil
}

// parseProblem keeps what a parse error says about the template's own text
// (which is in the spec, not a secret), without text/template's prefix.
func parseProblem(name string, err error) string {
	msg := strings.TrimPrefix(err.Error(), "template: ")
	msg = strings.TrimPrefix(msg, name+":")
	return strings.TrimSpace(msg)
}

// Render executes the template with data, which must hold every key the
// template reads. Errors are *Error and never quote data.
func (t *Template) Render(data map[string]string) (string, error) {
	for _, k := range t.keys {
		if _, ok := data[k]; !ok {
			return "", &Error{t.name, fmt.Sprintf("does not render: it reads %s, which is not there (available: %s)", keyRef(k), available(data))}
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	*t.r = render{}
	out := limitedWriter{max: MaxValueBytes}
	if err := t.tmpl.Execute(&out, data); err != nil {
		return "", &Error{t.name, renderProblem(t.name, err, data)}
	}
	return out.b.String(), nil
}

// renderProblem says why a render failed without quoting a value.
//
// text/template's execution error reads "template: NAME:LINE:COL: executing
// "NAME" at <ACTION>: PROBLEM": all of it the template's own text but
// PROBLEM. This package's functions fail with a *funcError, which never
// holds a value, so their message is kept whole. text/template's own
// problems (a wrong argument type or count) name types, counts and
// functions; they are kept too, unless they hold a value after all (a short
// value can be a count by chance: the message then says less).
func renderProblem(name string, err error, data map[string]string) string {
	if errors.Is(err, errValueTooLarge) {
		return errValueTooLarge.Error()
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	msg = strings.TrimPrefix(msg, "template: ")
	msg = strings.TrimPrefix(msg, name+":")
	if i := strings.Index(msg, "executing "+strconv.Quote(name)+" "); i >= 0 {
		msg = msg[:i] + msg[i+len("executing "+strconv.Quote(name)+" "):]
	}
	msg = strings.TrimSpace(msg)
	var fe *funcError
	if errors.As(err, &fe) {
		return "does not render: " + msg
	}
	// Only the problem, after the action, could hold a value.
	where, problem := "", msg
	if i := strings.Index(msg, ">: "); i >= 0 {
		where, problem = msg[:i+len(">: ")], msg[i+len(">: "):]
	}
	for _, v := range data {
		if v != "" && strings.Contains(problem, v) {
			return "does not render: " + where + "a function was given arguments it does not take"
		}
	}
	return "does not render: " + msg
}

// keyRef is how a template reads key.
func keyRef(k string) string {
	if isKeyName(k) {
		return "." + k
	}
	return fmt.Sprintf("index . %q", k)
}

func isKeyName(k string) bool {
	for i, c := range k {
		if c != '_' && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && (i == 0 || !(c >= '0' && c <= '9')) {
			return false
		}
	}
	return k != ""
}

func available(data map[string]string) string {
	if len(data) == 0 {
		return "none"
	}
	refs := make([]string, 0, len(data))
	for _, k := range slices.Sorted(maps.Keys(data)) {
		refs = append(refs, keyRef(k))
	}
	return strings.Join(refs, ", ")
}

var errValueTooLarge = fmt.Errorf("renders to more than %d KiB, the limit of one value", MaxValueBytes>>10)

// limitedWriter keeps what is written, up to max bytes.
type limitedWriter struct {
	b   strings.Builder
	max int
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) > w.max {
		return 0, errValueTooLarge
	}
	return w.b.Write(p)
}
