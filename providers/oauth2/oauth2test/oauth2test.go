// Package oauth2test is an OAuth 2.0 token endpoint's fake, written from
// RFC 6749: POST /oauth/token with the client credentials grant (§4.4)
// answers 200 with {"access_token": JWT, "token_type": "Bearer",
// "expires_in"} (§5.1), tokens valid an hour unless set otherwise. The client
// authenticates with HTTP Basic, its id and secret form-encoded first, or
// with client_id and client_secret in the form (§2.3.1); both at once is
// invalid_request, a wrong or missing one 401 invalid_client, another grant
// 400 unsupported_grant_type (§5.2). Credentials sets (SetValid) name the
// keys clientId and clientSecret.
package oauth2test

import (
	"crypto/sha256"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tokensync/tokensync/providers/providertest/fake"
)

// Name and Path of the fake's login. A TokenRequest's spec.endpoint is the
// token URL: the Server's URL and Path.
const (
	Name = "oauth2"
	Path = "/oauth/token"
)

// Fake is the token endpoint.
var Fake = fake.Provider{
	Name:          Name,
	Method:        http.MethodPost,
	Path:          Path,
	EndpointPath:  Path,
	SuccessStatus: http.StatusOK,
	Lifetime:      time.Hour,
	Login:         login,
	ErrorBody:     errorBody,
	NoTokenBody:   `{"token_type": "Bearer", "expires_in": 3600}`,
	HugeBody: func(filler string) string {
		return `{"access_token": "` + filler + `", "token_type": "Bearer", "expires_in": 3600}`
	},
	Credentials: map[string]string{"clientId": "svc", "clientSecret": "s3cr+t"},
	SentinelCredentials: func(sentinel string) map[string]string {
		return map[string]string{"clientId": sentinel + "-client", "clientSecret": sentinel + "-secret"}
	},
	// spec.oauth2 with the defaults: HTTP Basic client authentication, no scope.
	Settings: `{}`,
	Hostile:  hostile,
}

// writeError is an RFC 6749 §5.2 error answer.
func writeError(w http.ResponseWriter, status int, code, description string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="tokensync-fake"`)
	}
	body, _ := json.Marshal(map[string]string{"error": code, "error_description": description})
	w.Header().Set("Cache-Control", "no-store")
	fake.WriteJSON(w, status, string(body))
}

func login(l fake.Login, w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		writeError(w, http.StatusBadRequest, "invalid_request", "The request body must be application/x-www-form-urlencoded.")
		return
	}
	r.Body = http.MaxBytesReader(nil, r.Body, fake.MaxRequestBytes)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "The request body is not a form.")
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		writeError(w, http.StatusBadRequest, "unsupported_grant_type", "Only client_credentials is supported.")
		return
	}
	// RFC 6749 §2.3.1: Basic with the id and secret form-encoded first, or
	// both in the body; never both methods at once.
	id, secret, basic := r.BasicAuth()
	_, inForm := r.PostForm["client_secret"]
	switch {
	case basic && inForm:
		writeError(w, http.StatusBadRequest, "invalid_request", "More than one client authentication method.")
		return
	case basic:
		var errID, errSecret error
		id, errID = url.QueryUnescape(id)
		secret, errSecret = url.QueryUnescape(secret)
		if errID != nil || errSecret != nil {
			writeError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed.")
			return
		}
	case inForm:
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id == "" || secret == "" || !l.Accepts(map[string]string{"clientId": id, "clientSecret": secret}) {
		writeError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed.")
		return
	}
	scope := r.PostForm.Get("scope")
	var lifetime time.Duration
	token := l.Issue(id, func(m fake.Mint) string {
		lifetime = m.Lifetime
		return m.JWT(sha256.New, "HS256", map[string]any{"sub": id, "scope": scope, "jti": m.UniqueID()})
	})
	answer := map[string]any{"access_token": token, "token_type": "Bearer", "expires_in": int64(lifetime.Seconds())}
	if scope != "" {
		answer["scope"] = scope
	}
	body, _ := json.Marshal(answer)
	w.Header().Set("Cache-Control", "no-store")
	fake.WriteJSON(w, http.StatusOK, string(body))
}

func errorBody(status int) string {
	text := strconv.Quote(http.StatusText(status))
	switch {
	case status == http.StatusUnauthorized:
		return `{"error": "invalid_client", "error_description": "Client authentication failed."}`
	case status < 500:
		return `{"error": "invalid_request", "error_description": ` + text + `}`
	}
	return `{"error": "server_error", "error_description": ` + text + `}`
}

func hostile(h fake.Hostility, status int, text string) (fake.Answer, bool) {
	q := fake.Quote(text)
	ok := func(body string) (fake.Answer, bool) { return fake.JSONAnswer(http.StatusOK, body), true }
	switch h {
	case fake.HostileError:
		return fake.JSONAnswer(status, `{"error": `+q+`, "error_description": `+q+`, "error_uri": `+q+`}`), true
	case fake.HostileNoToken:
		return ok(`{"token_type": ` + q + `, "expires_in": 3600, "scope": ` + q + `}`)
	case fake.HostileBadToken: // a control character
		return ok(`{"access_token": ` + fake.Quote("\x01"+text) + `, "token_type": "Bearer", "expires_in": 3600, "scope": ` + q + `}`)
	case fake.HostileBadExpiry:
		return ok(`{"access_token": "tok", "token_type": "Bearer", "expires_in": ` + q + `, "scope": ` + q + `}`)
	case fake.HostileFailure:
		return ok(`{"error": ` + q + `, "error_description": ` + q + `}`)
	case fake.HostileToken:
		return ok(`{"access_token": ` + q + `, "token_type": "Bearer", "expires_in": 3600}`)
	}
	return fake.Answer{}, false
}
