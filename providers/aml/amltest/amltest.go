// Package amltest is AML Watcher's fake, written from its documentation:
// POST /api/get-access-token with {"email", "password"} answers 200 with
// {"error": false, "status": "SUCCESS", "data": {"access_token": JWT}}, a
// token valid for 3 hours; wrong credentials get 401 and a FAIL body about
// invalid credentials, a missing field or a password under 8 characters 422
// and a FAIL body. Fake answers data as the object of the document's sample;
// DataArray as the array of one object its response table describes.
package amltest

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tokensync/tokensync/providers/providertest/fake"
)

// Name and Path of the fake's login.
const (
	Name = "aml"
	Path = "/api/get-access-token"
)

// Fake is AML Watcher as its sample answers: data is an object.
var Fake = newFake(false)

// DataArray is AML Watcher as its response table describes data: an array
// of one object, [{"access_token": ...}]. Serve it with
// providertest.WithFakes(amltest.DataArray).
var DataArray = newFake(true)

func newFake(dataArray bool) fake.Provider {
	success := func(data string) string {
		if dataArray {
			data = "[" + data + "]"
		}
		return `{"error": false, "status": "SUCCESS", "data": ` + data + `}`
	}
	return fake.Provider{
		Name:          Name,
		Method:        http.MethodPost,
		Path:          Path,
		SuccessStatus: http.StatusOK,
		Lifetime:      3 * time.Hour,
		Login: func(l fake.Login, w http.ResponseWriter, r *http.Request) {
			login(l, w, r, success)
		},
		ErrorBody:   errorBody,
		NoTokenBody: success(`{}`),
		HugeBody: func(filler string) string {
			return success(`{"access_token": "` + filler + `"}`)
		},
		Credentials: map[string]string{"email": "ops@example.com", "password": "correct-horse"},
		SentinelCredentials: func(sentinel string) map[string]string {
			return map[string]string{"email": sentinel + "@example.com", "password": sentinel + "-password"}
		},
		Hostile: hostile,
	}
}

func fail(errorJSON string) string {
	return `{"error": ` + errorJSON + `, "status": "FAIL", "data": []}`
}

func login(l fake.Login, w http.ResponseWriter, r *http.Request, success func(string) string) {
	req, ok := fake.ReadJSONObject(r)
	if !ok {
		fake.WriteJSON(w, http.StatusBadRequest, fail(`"The request body must be a JSON object."`))
		return
	}
	email, _ := fake.StringField(req, "email")
	password, _ := fake.StringField(req, "password")
	switch {
	case strings.TrimSpace(email) == "":
		fake.WriteJSON(w, http.StatusUnprocessableEntity, fail(`{"email": ["The email field is required."]}`))
		return
	case password == "":
		fake.WriteJSON(w, http.StatusUnprocessableEntity, fail(`{"password": ["The password field is required."]}`))
		return
	case utf8.RuneCountInString(password) < 8:
		fake.WriteJSON(w, http.StatusUnprocessableEntity, fail(`{"password": ["The password must be at least 8 characters."]}`))
		return
	}
	if !l.Accepts(map[string]string{"email": email, "password": password}) {
		fake.WriteJSON(w, http.StatusUnauthorized, fail(`"Invalid email or password."`))
		return
	}
	token := l.Issue(email, func(m fake.Mint) string {
		return m.JWT(sha256.New, "HS256", map[string]any{"sub": email, "jti": m.UniqueID()})
	})
	fake.WriteJSON(w, http.StatusOK, success(`{"access_token": `+fake.Quote(token)+`}`))
}

func errorBody(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return fail(`"Invalid email or password."`)
	case http.StatusUnprocessableEntity:
		return fail(`{"password": ["The password must be at least 8 characters."]}`)
	}
	return fail(strconv.Quote(http.StatusText(status)))
}

func hostile(h fake.Hostility, status int, text string) (fake.Answer, bool) {
	q := fake.Quote(text)
	success := func(data string) fake.Answer {
		return fake.JSONAnswer(http.StatusOK, `{"error": false, "status": "SUCCESS", "data": `+data+`}`)
	}
	switch h {
	case fake.HostileError:
		return fake.JSONAnswer(status, `{"error": `+q+`, "status": "FAIL", "message": `+q+`}`), true
	case fake.HostileNoToken:
		return success(`{"note": ` + q + `}`), true
	case fake.HostileBadToken: // control characters
		return success(`{"access_token": ` + fake.Quote("\x01"+text) + `}`), true
	case fake.HostileBadExpiry: // a JWT that expired long ago
		seg := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
		token := seg(`{"alg":"HS256"}`) + "." + seg(`{"exp":1000000,"sub":`+q+`}`) + "." + seg("sig")
		return success(`{"access_token": "` + token + `"}`), true
	case fake.HostileFailure:
		return fake.JSONAnswer(http.StatusOK, `{"error": `+fake.Quote(fake.Word(text))+`, "status": "FAIL"}`), true
	case fake.HostileToken:
		return success(`{"access_token": ` + q + `}`), true
	}
	return fake.Answer{}, false
}
