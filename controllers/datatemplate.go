package controllers

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// Templates of spec.secretTemplate.data: Go text/template with a small, safe
// set of functions (no file, environment or network access: text/template
// itself has none, and none is added), rendered with the token's values
// only. Whoever may create a TokenRequest writes them, so they must not be
// able to exhaust the operator either: printf is left out (a width such as
// %0999999999d allocates gigabytes), and so are template and define (a
// template that calls itself with a doubling string grows without bound).
// Everything else is bounded by the template's own 4096 characters. A
// rendered value holds the token; it never appears in a message, and the
// errors below are built so that they cannot quote one.

// templateFuncs are the functions a data template may call besides the
// text/template builtins. None of them can fail in a way that quotes its
// input, except b64dec, whose error is replaced.
var templateFuncs = template.FuncMap{
	"b64enc":     func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
	"b64dec":     b64dec,
	"trim":       strings.TrimSpace,
	"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
	"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
	"replace":    func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
	"upper":      strings.ToUpper,
	"lower":      strings.ToLower,
	"quote":      strconv.Quote,
}

// allowedFuncs are the functions a data template may call: text/template's
// builtins but printf and call, and templateFuncs.
var allowedFuncs = func() map[string]bool {
	m := map[string]bool{}
	for _, f := range []string{"and", "or", "not", "len", "index", "slice", "eq", "ne", "lt", "le", "gt", "ge", "print", "println", "html", "js", "urlquery"} {
		m[f] = true
	}
	for f := range templateFuncs {
		m[f] = true
	}
	return m
}()

var errNotBase64 = errors.New("b64dec: the value is not base64")

func b64dec(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", errNotBase64
	}
	return string(b), nil
}

// templateError is a data template that does not parse or render. Its
// message names the key and the template's own text position, never a value.
type templateError struct {
	key, problem string
}

func (e *templateError) Error() string {
	return fmt.Sprintf("spec.secretTemplate.data[%q]: %s", e.key, e.problem)
}

// parseDataTemplates parses every data template; the first error (in key
// order) is returned.
func parseDataTemplates(data map[string]tokensyncv1alpha1.DataTemplate) (map[string]*template.Template, error) {
	out := make(map[string]*template.Template, len(data))
	for _, k := range slices.Sorted(maps.Keys(data)) {
		t, err := template.New(k).Funcs(templateFuncs).Option("missingkey=error").Parse(string(data[k]))
		if err != nil {
			return nil, &templateError{key: k, problem: "does not parse: " + parseProblem(k, err)}
		}
		if len(t.Templates()) > 1 {
			return nil, &templateError{key: k, problem: "define and block are not allowed"}
		}
		if err := checkNodes(t.Tree.Root); err != nil {
			return nil, &templateError{key: k, problem: err.Error()}
		}
		out[k] = t
	}
	return out, nil
}

// checkNodes refuses functions outside allowedFuncs and template calls.
func checkNodes(node parse.Node) error {
	switch n := node.(type) {
	case nil:
		return nil
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkNodes(c); err != nil {
				return err
			}
		}
	case *parse.ActionNode:
		return checkNodes(n.Pipe)
	case *parse.PipeNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Cmds {
			if err := checkNodes(c); err != nil {
				return err
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			if err := checkNodes(a); err != nil {
				return err
			}
		}
	case *parse.IdentifierNode:
		if !allowedFuncs[n.Ident] {
			return fmt.Errorf("function %s is not allowed (allowed: %s)", n.Ident, strings.Join(slices.Sorted(maps.Keys(allowedFuncs)), ", "))
		}
	case *parse.IfNode:
		return errors.Join(checkNodes(n.Pipe), checkNodes(n.List), checkNodes(n.ElseList))
	case *parse.RangeNode:
		return errors.Join(checkNodes(n.Pipe), checkNodes(n.List), checkNodes(n.ElseList))
	case *parse.WithNode:
		return errors.Join(checkNodes(n.Pipe), checkNodes(n.List), checkNodes(n.ElseList))
	case *parse.TemplateNode:
		return errors.New("template is not allowed")
	}
	return nil
}

// parseProblem keeps what a parse error says about the template's own text
// (which is in the spec, not a secret), without the template name prefix.
func parseProblem(key string, err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "template: ")
	msg = strings.TrimPrefix(msg, key+":")
	return strings.TrimSpace(msg)
}

// renderData renders the data templates with values (token, expiresAt and
// the provider's extra values). A key the token itself writes cannot be a
// template's.
func renderData(data map[string]tokensyncv1alpha1.DataTemplate, values map[string]string) (map[string][]byte, error) {
	templates, err := parseDataTemplates(data)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(templates))
	for _, k := range slices.Sorted(maps.Keys(templates)) {
		if _, taken := values[k]; taken {
			return nil, &templateError{key: k, problem: "is a key the provider writes with the token; use another key"}
		}
		var b strings.Builder
		if err := templates[k].Execute(&b, values); err != nil {
			return nil, &templateError{key: k, problem: "does not render: " + renderProblem(err, values)}
		}
		out[k] = []byte(b.String())
	}
	return out, nil
}

// renderProblem says why a template failed without quoting a value: the
// fields it may use, or the function that failed.
func renderProblem(err error, values map[string]string) string {
	var exec template.ExecError
	if errors.As(err, &exec) && strings.Contains(err.Error(), "map has no entry for key") {
		return fmt.Sprintf("it uses a value the token does not have (available: %s)", availableFields(values))
	}
	if errors.Is(err, errNotBase64) {
		return "b64dec was given a value that is not base64"
	}
	// Other execution errors (wrong argument counts or types) are about the
	// template's text; their messages name functions and positions. Keep only
	// the first line, and never anything when it could hold a value.
	msg := err.Error()
	for _, v := range values {
		if v != "" && strings.Contains(msg, v) {
			return "a function was called with arguments it does not take"
		}
	}
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

func availableFields(values map[string]string) string {
	keys := slices.Sorted(maps.Keys(values))
	for i, k := range keys {
		keys[i] = "." + k
	}
	return strings.Join(keys, ", ")
}
