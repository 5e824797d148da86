package httplogin

import (
	"github.com/tokensync/tokensync/internal/safetemplate"
	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/settings"
)

// Templates are Go text/template, rendered with the credentials Secret's
// keys as data ({{ .email }}, or {{ index . "client-id" }} for keys that
// are not identifiers), in tokensync's template sandbox
// (internal/safetemplate): the functions and nodes it allows, data read
// only as .key, $.key or index . "key" (so the keys a login uses,
// UsedCredentials, are known from the text), at most 64 KiB per rendered
// value, and at most 1 MiB for a whole request.
//
// A rendered value is a credential: it never appears in a message or a log.

// credentialTemplate is one parsed template and the credential keys it reads.
type credentialTemplate struct {
	// name says where the template is in the spec, for messages:
	// spec.http.headers["Authorization"].
	name string
	tmpl *safetemplate.Template
	keys []string
}

// parseTemplate parses text, found at name, and finds the keys it reads.
// Errors are InvalidTemplate; they quote the spec, never a credential.
func parseTemplate(name, text string) (*credentialTemplate, error) {
	t, err := safetemplate.Parse(name, text)
	if err != nil {
		return nil, settings.Invalid("%s", err)
	}
	return &credentialTemplate{name: name, tmpl: t, keys: t.Keys()}, nil
}

// render executes the template with data, the credentials it reads.
// Errors are InvalidTemplate and never quote data or the rendered text.
func (t *credentialTemplate) render(data map[string]string) (string, error) {
	v, err := t.tmpl.Render(data)
	if err != nil {
		return "", settings.Invalid("%s", err)
	}
	return v, nil
}

// requestSize sums what the templates of one request render, against
// safetemplate.MaxTotalBytes.
type requestSize int

func (n *requestSize) add(v string) error {
	if *n += requestSize(len(v)); *n > safetemplate.MaxTotalBytes {
		return settings.Invalid("%s renders to more than %d KiB in all (headers and body fields)", block, safetemplate.MaxTotalBytes>>10)
	}
	return nil
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
