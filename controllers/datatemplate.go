package controllers

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
	"github.com/tokensync/tokensync/internal/safetemplate"
)

// Templates of spec.secretTemplate.data are rendered in tokensync's
// template sandbox (internal/safetemplate), the one spec.http uses too:
// its functions and nodes only (no range, with, define or template, no
// printf), data read as .token, .expiresAt and the provider's extra values,
// at most 64 KiB per rendered value, and at most 1 MiB for the data
// templates of one Secret together. Past a bound the render stops with a
// *templateError: nothing is written, and a token obtained stays pending
// until the template is fixed. A rendered value holds the token; it never
// appears in a message, and the sandbox's errors cannot quote one.

// templateError is a data template that does not parse or render. Its
// message names the key and the template's own text position, never a value.
type templateError struct {
	key, problem string
}

func (e *templateError) Error() string {
	return fmt.Sprintf("spec.secretTemplate.data[%q]: %s", e.key, e.problem)
}

// parseDataTemplates parses and checks every data template; the first
// error (in key order) is returned.
func parseDataTemplates(data map[string]tokensyncv1alpha1.DataTemplate) (map[string]*safetemplate.Template, error) {
	out := make(map[string]*safetemplate.Template, len(data))
	for _, k := range slices.Sorted(maps.Keys(data)) {
		t, err := safetemplate.Parse(fmt.Sprintf("spec.secretTemplate.data[%q]", k), string(data[k]))
		if err != nil {
			return nil, asTemplateError(k, err)
		}
		out[k] = t
	}
	return out, nil
}

// asTemplateError keeps the sandbox's problem, which quotes no value.
func asTemplateError(key string, err error) *templateError {
	var e *safetemplate.Error
	if errors.As(err, &e) {
		return &templateError{key: key, problem: e.Problem}
	}
	return &templateError{key: key, problem: "could not be used"}
}

// renderData renders the data templates with values (token, expiresAt and
// the provider's extra values), at most safetemplate.MaxTotalBytes in all.
// A key the token itself writes cannot be a template's.
func renderData(data map[string]tokensyncv1alpha1.DataTemplate, values map[string]string) (map[string][]byte, error) {
	templates, err := parseDataTemplates(data)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(templates))
	total := 0
	for _, k := range slices.Sorted(maps.Keys(templates)) {
		if _, taken := values[k]; taken {
			return nil, &templateError{key: k, problem: "is a key the provider writes with the token; use another key"}
		}
		v, err := templates[k].Render(values)
		if err != nil {
			return nil, asTemplateError(k, err)
		}
		if total += len(v); total > safetemplate.MaxTotalBytes {
			return nil, &templateError{key: k, problem: fmt.Sprintf(
				"the data templates render to more than %d KiB together, the limit of one Secret", safetemplate.MaxTotalBytes>>10)}
		}
		out[k] = []byte(v)
	}
	return out, nil
}
