package safetemplate

import (
	"errors"
	"fmt"
	"strings"
	"text/template/parse"
)

// The checker allows parse nodes by a list (deny by default): every node of
// every pipeline is visited, arguments, parenthesised pipelines and the
// branches of if included. It also collects the keys the template reads.

var (
	errNoLoops         = errors.New("range is not allowed: a template has no loops (write each value out)")
	errNoWith          = errors.New("with is not allowed: use if, and read values as .key")
	errNoTemplateCalls = errors.New("define, block and template are not allowed: a template cannot call another")
	errWholeData       = errors.New(`the data is read only as .key, $.key or index . "key"`)
)

// refusedAdvice says what to use instead of a function that is not allowed.
var refusedAdvice = map[string]string{
	"printf":  "use print (a printf width such as %0999999999d builds gigabytes)",
	"println": "use print and a newline in the text",
	"call":    "a template calls no code",
	"html":    "use urlquery or quote",
	"js":      "use urlquery or quote",
}

type checker struct {
	keys map[string]bool
}

func (c *checker) list(l *parse.ListNode) error {
	if l == nil {
		return nil
	}
	for _, n := range l.Nodes {
		if err := c.node(n); err != nil {
			return err
		}
	}
	return nil
}

// node checks a node of a template's body.
func (c *checker) node(n parse.Node) error {
	switch n := n.(type) {
	case *parse.TextNode, *parse.CommentNode:
		return nil
	case *parse.ActionNode:
		return c.pipe(n.Pipe)
	case *parse.IfNode:
		if err := c.pipe(n.Pipe); err != nil {
			return err
		}
		if err := c.list(n.List); err != nil {
			return err
		}
		return c.list(n.ElseList)
	case *parse.ListNode:
		return c.list(n)
	case *parse.RangeNode, *parse.BreakNode, *parse.ContinueNode:
		return errNoLoops
	case *parse.WithNode:
		return errNoWith
	case *parse.TemplateNode:
		return errNoTemplateCalls
	default:
		return fmt.Errorf("%s is not allowed", n)
	}
}

// pipe checks a pipeline: its variable declarations and every command.
func (c *checker) pipe(p *parse.PipeNode) error {
	if p == nil {
		return nil
	}
	for _, v := range p.Decl {
		if len(v.Ident) != 1 || v.Ident[0] == "$" {
			return fmt.Errorf("%s: $ always holds the data; declare another variable", v)
		}
	}
	for _, cmd := range p.Cmds {
		if err := c.command(cmd); err != nil {
			return err
		}
	}
	return nil
}

// command checks a command: a function and its arguments, or one operand.
// index . "key" reads a key of the data, which must be a quoted literal so
// that the keys a template reads are known from its text.
func (c *checker) command(cmd *parse.CommandNode) error {
	args := cmd.Args
	if len(args) >= 2 && isIdentifier(args[0], "index") && isDot(args[1]) {
		if len(args) < 3 {
			return errors.New(`index . takes a quoted key, as in index . "client-id"`)
		}
		key, ok := args[2].(*parse.StringNode)
		if !ok {
			return errors.New(`index . takes a quoted key, as in index . "client-id"`)
		}
		c.keys[key.Text] = true
		args = args[3:]
	}
	for _, a := range args {
		if err := c.operand(a); err != nil {
			return err
		}
	}
	return nil
}

// operand checks a function name, a value or a nested pipeline.
func (c *checker) operand(n parse.Node) error {
	switch n := n.(type) {
	case *parse.IdentifierNode:
		if !allowed[n.Ident] {
			msg := fmt.Sprintf("function %s is not allowed", n.Ident)
			if advice, ok := refusedAdvice[n.Ident]; ok {
				msg += ": " + advice
			}
			return fmt.Errorf("%s (allowed: %s)", msg, strings.Join(Functions(), ", "))
		}
	case *parse.FieldNode:
		if len(n.Ident) != 1 {
			return fmt.Errorf("%s: a value is text and has no fields", n)
		}
		c.keys[n.Ident[0]] = true
	case *parse.VariableNode:
		switch {
		case n.Ident[0] == "$" && len(n.Ident) == 2:
			c.keys[n.Ident[1]] = true
		case n.Ident[0] == "$":
			return errWholeData
		case len(n.Ident) > 1:
			return fmt.Errorf("%s: a variable holds text, which has no fields", n)
		}
	case *parse.DotNode:
		return errWholeData
	case *parse.PipeNode:
		return c.pipe(n)
	case *parse.ChainNode:
		return fmt.Errorf("%s: a value is text and has no fields", n)
	case *parse.StringNode, *parse.NumberNode, *parse.BoolNode, *parse.NilNode:
	default:
		return fmt.Errorf("%s is not allowed", n)
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
