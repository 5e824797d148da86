// Package partnertest is the partner API's fake, written from its
// documentation: POST /login with {"accessKey", "secret"} answers 201
// Created with the bare JWT (HS384, valid an hour as in its example); a
// missing property gets the documented 400 InvalidRequestFormatError naming
// it, wrong credentials the documented 401 AuthenticationError with reason
// AccessKeyUnauthorized.
package partnertest

import (
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tokensync/tokensync/providers/providertest/fake"
)

// Name and Path of the fake's login.
const (
	Name = "partner"
	Path = "/login"
)

// Fake is the partner API.
var Fake = fake.Provider{
	Name:          Name,
	Method:        http.MethodPost,
	Path:          Path,
	SuccessStatus: http.StatusCreated,
	Lifetime:      time.Hour,
	Login:         login,
	ErrorBody:     errorBody,
	NoTokenBody:   `{"statusCode": "Created"}`,
	HugeBody:      func(filler string) string { return filler },
	Credentials:   map[string]string{"accessKey": "ak-1", "secret": "s3cr3t-value"},
	SentinelCredentials: func(sentinel string) map[string]string {
		return map[string]string{"accessKey": sentinel + "-key", "secret": sentinel + "-secret"}
	},
	Hostile: hostile,
}

// Unauthorized is the documented 401 answer.
const Unauthorized = `{
"statusCode": "Error",
"error": {
"message": "Service was unable to complete your request.",
"name": "AuthenticationError",
"code": "AuthenticationError",
"details": {
"reason": "AccessKeyUnauthorized"
}
}
}`

// Missing is the documented 400 answer for missing required properties.
func Missing(properties ...string) string {
	type detail struct {
		Path    string            `json:"path"`
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Info    map[string]string `json:"info"`
	}
	details := make([]detail, 0, len(properties))
	for _, p := range properties {
		details = append(details, detail{
			Path:    "",
			Code:    "required",
			Message: fmt.Sprintf("must have required property '%s'", p),
			Info:    map[string]string{"missingProperty": p},
		})
	}
	body, _ := json.Marshal(map[string]any{
		"statusCode": "Error",
		"error": map[string]any{
			"name":    "InvalidRequestFormatError",
			"message": "The request body is invalid. See error object `details` property for more info",
			"details": details,
		},
	})
	return string(body)
}

func login(l fake.Login, w http.ResponseWriter, r *http.Request) {
	req, ok := fake.ReadJSONObject(r)
	if !ok {
		fake.WriteJSON(w, http.StatusBadRequest, Missing("accessKey", "secret"))
		return
	}
	accessKey, _ := fake.StringField(req, "accessKey")
	secret, _ := fake.StringField(req, "secret")
	var missing []string
	if accessKey == "" {
		missing = append(missing, "accessKey")
	}
	if secret == "" {
		missing = append(missing, "secret")
	}
	if len(missing) > 0 {
		fake.WriteJSON(w, http.StatusBadRequest, Missing(missing...))
		return
	}
	if !l.Accepts(map[string]string{"accessKey": accessKey, "secret": secret}) {
		fake.WriteJSON(w, http.StatusUnauthorized, Unauthorized)
		return
	}
	token := l.Issue(accessKey, func(m fake.Mint) string {
		return m.JWT(sha512.New384, "HS384", map[string]any{
			"uid":    fake.StableID(Name, accessKey, 32),
			"ar":     []string{"Partner", "PartnerAdmin"},
			"ak":     fake.StableID(Name+"/key", accessKey, 32),
			"realm":  "Partner",
			"domain": "/partners-int",
			"jti":    m.UniqueID(),
		})
	})
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(token))
}

func errorBody(status int) string {
	switch status {
	case http.StatusBadRequest:
		return Missing("secret")
	case http.StatusUnauthorized:
		return Unauthorized
	}
	return `{"statusCode": "Error", "error": {"name": "Error", "message": ` + strconv.Quote(http.StatusText(status)) + `}}`
}

func hostile(h fake.Hostility, status int, text string) (fake.Answer, bool) {
	q := fake.Quote(text)
	seg := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	plain := func(body string) fake.Answer {
		return fake.Answer{Status: http.StatusCreated, ContentType: "text/plain", Body: body}
	}
	switch h {
	case fake.HostileError:
		details := `[{"message": ` + q + `, "info": {"missingProperty": ` + q + `}}]`
		if status == http.StatusUnauthorized {
			details = `{"reason": ` + q + `}`
		}
		return fake.JSONAnswer(status, `{"statusCode": `+q+`, "error": {"name": `+q+`, "message": `+q+`, "details": `+details+`}}`), true
	case fake.HostileNoToken:
		return fake.JSONAnswer(http.StatusCreated, `{"statusCode": "Created", "message": `+q+`}`), true
	case fake.HostileBadToken: // JWT characters, not a JWT
		w := fake.Word(text)
		return plain(w + "." + w + "." + w), true
	case fake.HostileBadExpiry: // exp and iat that are not numbers
		return plain(seg(`{"alg":"HS256"}`) + "." + seg(`{"exp":`+q+`,"iat":`+q+`,"sub":`+q+`}`) + "." + seg("sig")), true
	case fake.HostileFailure:
		return fake.JSONAnswer(http.StatusCreated, `{"statusCode": "Error", "error": {"message": `+q+`}}`), true
	}
	// HostileToken: a partner token is a JWT, which text is not.
	return fake.Answer{}, false
}
