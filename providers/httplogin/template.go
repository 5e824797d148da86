package httplogin

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/login"
	"github.com/tokensync/tokensync/providers/internal/settings"
)

// Templates are Go text/template, rendered with the credentials Secret's
// keys as data ({{ .email }}, or {{ index . "client-id" }} for keys that
// are not identifiers). They are restricted so that what they read and
// what they cost is plain from the text alone:
//   - data is reached only as .key, $.key or index . "key", so the keys a
//     login uses (UsedCredentials) are known without rendering;
//   - no range, with, define, template or block: no loops, no dot rebound;
//   - only the functions in allowedFuncs: comparisons, len, index, slice,
//     print, urlquery, and b64enc, b64dec, trim, lower, upper. None reads a
//     file, the environment or the network; printf is left out, since a
//     width such as %0999999999d makes one small template allocate
//     gigabytes.
//
// A rendered value is a credential: it never appears in a message or a log.

// maxRenderedBytes bounds one rendered value.
const maxRenderedBytes = login.MaxCredentialBytes

// templateFuncs are tokensync's own functions.
var templateFuncs = template.FuncMap{
	"b64enc": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
	"b64dec": func(s string) (string, error) {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return "", errors.New("b64dec: not base64")
		}
		return string(b), nil
	},
	"trim":  strings.TrimSpace,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
}

// allowedFuncs are the functions a template may call: text/template's
// builtins that cannot be made to allocate much or call anything, and
// templateFuncs.
var allowedFuncs = map[string]bool{
	"and": true, "or": true, "not": true,
	"eq": true, "ne": true, "lt": true, "le": true, "gt": true, "ge": true,
	"len": true, "index": true, "slice": true, "print": true, "urlquery": true,
	"b64enc": true, "b64dec": true, "trim": true, "lower": true, "upper": true,
}

// credentialTemplate is one parsed template and the credential keys it reads.
type credentialTemplate struct {
	// name says where the template is in the spec, for messages:
	// spec.http.headers["Authorization"].
	name string
	tmpl *template.Template
	keys []string
}

// parseTemplate parses text, found at name, and finds the keys it reads.
// Errors are InvalidTemplate; they quote the spec, never a credential.
func parseTemplate(name, text string) (*credentialTemplate, error) {
	t, err := template.New(name).Funcs(templateFuncs).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, settings.Invalid("%s is not a valid template: %s", name, strings.TrimPrefix(err.Error(), "template: "))
	}
	if len(t.Templates()) > 1 {
		return nil, settings.Invalid("%s must not define templates", name)
	}
	keys := map[string]bool{}
	if t.Tree != nil && t.Root != nil {
		if err := walk(t.Root, keys); err != nil {
			return nil, settings.Invalid("%s: %s", name, err)
		}
	}
	return &credentialTemplate{name: name, tmpl: t, keys: slices.Sorted(maps.Keys(keys))}, nil
}

var errWholeData = errors.New("templates may read the credentials only as .key, $.key or index . \"key\"")

// walk collects the credential keys a template's nodes read, and refuses
// what the rules above rule out.
func walk(node parse.Node, keys map[string]bool) error {
	switch n := node.(type) {
	case nil:
		return nil
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := walk(c, keys); err != nil {
				return err
			}
		}
	case *parse.TextNode, *parse.CommentNode, *parse.StringNode, *parse.NumberNode, *parse.BoolNode, *parse.NilNode:
	case *parse.ActionNode:
		return walk(n.Pipe, keys)
	case *parse.IfNode:
		for _, c := range []parse.Node{n.Pipe, n.List, n.ElseList} {
			if err := walk(c, keys); err != nil {
				return err
			}
		}
	case *parse.PipeNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Cmds {
			if err := walk(c, keys); err != nil {
				return err
			}
		}
	case *parse.CommandNode:
		args := n.Args
		if len(args) >= 3 && isIdentifier(args[0], "index") && isDot(args[1]) {
			key, ok := args[2].(*parse.StringNode)
			if !ok {
				return errors.New(`index . takes a quoted key, as in index . "client-id"`)
			}
			keys[key.Text] = true
			args = args[3:]
		}
		for _, a := range args {
			if err := walk(a, keys); err != nil {
				return err
			}
		}
	case *parse.IdentifierNode:
		if !allowedFuncs[n.Ident] {
			return fmt.Errorf("function %s is not allowed (allowed: %s)", n.Ident, strings.Join(slices.Sorted(maps.Keys(allowedFuncs)), ", "))
		}
	case *parse.FieldNode:
		if len(n.Ident) != 1 {
			return fmt.Errorf("%s: a credential is a string and has no fields", n)
		}
		keys[n.Ident[0]] = true
	case *parse.VariableNode:
		switch {
		case n.Ident[0] == "$" && len(n.Ident) == 2:
			keys[n.Ident[1]] = true
		case n.Ident[0] == "$":
			return errWholeData
		case len(n.Ident) > 1:
			return fmt.Errorf("%s: a variable holds a string, which has no fields", n)
		}
	case *parse.DotNode:
		return errWholeData
	case *parse.ChainNode:
		return fmt.Errorf("%s: a credential is a string and has no fields", n)
	case *parse.RangeNode, *parse.WithNode, *parse.TemplateNode, *parse.BreakNode, *parse.ContinueNode:
		return errors.New("range, with, template, block, break and continue are not allowed")
	default:
		return fmt.Errorf("%s is not allowed", node)
	}
	return nil
}

func isIdentifier(n parse.Node, name string) bool {
	id, ok := n.(*parse.IdentifierNode)
	return ok && id.Ident == name
}

func isDot(n parse.Node) bool {
	_, ok := n.(*parse.DotNode)
	return ok
}

// render executes the template with data, the credentials it reads.
// Errors are InvalidTemplate and never quote data or the rendered text
// (text/template's execution errors can hold values).
func (t *credentialTemplate) render(data map[string]string) (string, error) {
	var b limitedBuilder
	if err := t.tmpl.Execute(&b, data); err != nil {
		if errors.Is(err, errTooLong) {
			return "", settings.Invalid("%s renders to more than 64 KiB", t.name)
		}
		return "", settings.Invalid("%s could not be rendered: a function refused a credential's value (b64dec of text that is not base64, slice out of range, ...)", t.name)
	}
	return b.String(), nil
}

var errTooLong = errors.New("rendered value too long")

// limitedBuilder is a strings.Builder that refuses to grow past maxRenderedBytes.
type limitedBuilder struct{ strings.Builder }

func (b *limitedBuilder) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxRenderedBytes {
		return 0, errTooLong
	}
	return b.Builder.Write(p)
}

// templateData is the part of creds a set of templates reads.
func templateData(creds providers.Credentials, keys []string) map[string]string {
	data := make(map[string]string, len(keys))
	for _, k := range keys {
		if v, ok := creds[k]; ok {
			data[k] = string(v)
		}
	}
	return data
}
