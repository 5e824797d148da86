package providers

import "context"

// dialHostKey is the context key of WithDialHost.
type dialHostKey struct{}

// WithDialHost returns a copy of ctx saying for which URL host (host or
// host:port, as in url.URL.Host) the connections dialed under it are
// made. The providers' HTTP client sets it on every request it sends, from
// the request's URL; http.Transport dials with the request's context
// values, so Options.DialControlContext can read it with DialHost, next to
// the resolved address it judges.
func WithDialHost(ctx context.Context, host string) context.Context {
	return context.WithValue(ctx, dialHostKey{}, host)
}

// DialHost returns the URL host WithDialHost put in ctx, or "" when none.
func DialHost(ctx context.Context) string {
	host, _ := ctx.Value(dialHostKey{}).(string)
	return host
}
