// Package settings decodes the settings block a TokenRequest gives a
// Configurable provider (spec.oauth2, spec.http). The block arrives as the
// JSON the API types marshal to; each provider package has its own struct
// with the same JSON names, and a name it does not know is an error rather
// than a setting silently ignored.
package settings

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tokensync/tokensync/providers"
)

// Decode reads data, the JSON of block (e.g. "spec.oauth2"), into v.
// Unknown fields are errors. Empty data or null leaves v as it is. Errors
// are InvalidTemplate *providers.Error values; they quote the spec only,
// which holds no secret.
func Decode(block string, data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Invalid("%s cannot be read: %s", block, jsonReason(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Invalid("%s cannot be read: data after the object", block)
	}
	return nil
}

// jsonReason words a decoding error without quoting values.
func jsonReason(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return fmt.Sprintf("field %s is not a %s", typeErr.Field, typeErr.Type)
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return "not valid JSON"
	}
	// encoding/json's unknown-field error names the field, from the spec.
	return err.Error()
}

// Invalid is an InvalidTemplate error: the settings cannot be used.
func Invalid(format string, args ...any) *providers.Error {
	return providers.Errorf(providers.InvalidTemplate, format, args...)
}

// Duration is a duration in a settings block, written as Go writes one
// ("1h30m0s"), as metav1.Duration marshals it.
type Duration time.Duration

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"1h\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a duration such as \"1h\"", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as Go does.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }
