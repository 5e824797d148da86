// Package amplifitest is AmpliFi's fake, written from its documentation:
// PUT /token with {"channel", ...that channel's fields} answers 200 with
// {"success": true, "token", "userId", "AFiUserId", "dtsExpiry", ...},
// dtsExpiry in RFC 3339 with milliseconds (an hour after the login unless
// set otherwise); wrong credentials get 200 and success: false, a body its
// schema refuses 400 and success: false. The schema checks accept the
// documentation's own examples: android without signature, test without
// dtsValueString.
package amplifitest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tokensync/tokensync/providers/providertest/fake"
)

// Name and Path of the fake's login.
const (
	Name = "amplifi"
	Path = "/token"
)

// Fake is AmpliFi. The identity LoginsFor counts by is the channel's
// identifying field: userName (internet), uuid (android), deviceId
// (browser), userId (statementGenerator, dicBuilder), transportUserId
// (chat), deviceTag (android_v1, mobile, ios_v1, test). Credentials sets
// (SetValid) name fields of the login body.
var Fake = fake.Provider{
	Name:          Name,
	Method:        http.MethodPut,
	Path:          Path,
	SuccessStatus: http.StatusOK,
	Lifetime:      time.Hour,
	Login:         login,
	ErrorBody: func(status int) string {
		return `{"success": false, "message": ` + strconv.Quote(http.StatusText(status)) + `}`
	},
	NoTokenBody: `{"success": true, "userId": "qweaurl8kgtlv9pc", "AFiUserId": "qweaurl8kgtlv9pc", "segment": "demo"}`,
	HugeBody: func(filler string) string {
		return `{"success": true, "token": "` + filler + `", "dtsExpiry": "2099-01-01T00:00:00.000Z"}`
	},
	Credentials: map[string]string{"credentials.json": `{"channel":"test","deviceTag":"tag-1","deviceData":{"platform":"test"}}`},
	SentinelCredentials: func(sentinel string) map[string]string {
		return map[string]string{"channel": "test", "deviceTag": sentinel, "deviceData": `{"platform":"` + sentinel + `"}`}
	},
	Hostile: hostile,
}

// schema lists, per channel, the required fields as the documentation's
// working examples use them (android without signature, test without
// dtsValueString); the first identifies the user.
var schema = map[string][]string{
	"internet":           {"userName", "password"},
	"android":            {"uuid", "deviceTagOpen"},
	"browser":            {"deviceId"},
	"statementGenerator": {"userId"},
	"dicBuilder":         {"userId"},
	"chat":               {"transportUserId", "transport"},
	"android_v1":         {"deviceTag", "dtsValueString", "cryptotext"},
	"mobile":             {"deviceTag", "dtsValueString", "cryptotext"},
	"ios_v1":             {"deviceTag", "dtsValueString", "cryptotext"},
	"test":               {"deviceTag"},
}

func failure(message string) string {
	body, _ := json.Marshal(map[string]any{"success": false, "message": message})
	return string(body)
}

func login(l fake.Login, w http.ResponseWriter, r *http.Request) {
	req, ok := fake.ReadJSONObject(r)
	if !ok {
		fake.WriteJSON(w, http.StatusBadRequest, failure("The request body must be a JSON object."))
		return
	}
	channel, _ := fake.StringField(req, "channel")
	required, ok := schema[channel]
	if !ok {
		fake.WriteJSON(w, http.StatusBadRequest, failure("channel must be one of the documented channels"))
		return
	}
	for _, field := range required {
		if v, ok := fake.StringField(req, field); !ok || v == "" {
			fake.WriteJSON(w, http.StatusBadRequest, failure(fmt.Sprintf("must have required property '%s'", field)))
			return
		}
	}
	if !l.Accepts(fake.StringFields(req)) {
		fake.WriteJSON(w, http.StatusOK, failure("Invalid credentials"))
		return
	}
	id, _ := fake.StringField(req, required[0])
	userID := fake.StableID(Name, channel+"/"+id, 16)
	var expiry time.Time
	token := l.Issue(id, func(m fake.Mint) string {
		expiry = m.Expiry()
		return m.LetterToken()
	})
	body, _ := json.Marshal(map[string]any{
		"success":                     true,
		"userId":                      userID,
		"AFiUserId":                   userID,
		"token":                       token,
		"segment":                     "demo",
		"postOnboardingStepsRequired": nil,
		"dtsExpiry":                   expiry.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		"isLocalSavingAllowed":        true,
	})
	fake.WriteJSON(w, http.StatusOK, string(body))
}

func hostile(h fake.Hostility, status int, text string) (fake.Answer, bool) {
	q := fake.Quote(text)
	ok := func(body string) (fake.Answer, bool) { return fake.JSONAnswer(http.StatusOK, body), true }
	switch h {
	case fake.HostileError:
		return fake.JSONAnswer(status, `{"success": false, "message": `+q+`, "error": `+q+`}`), true
	case fake.HostileNoToken:
		return ok(`{"success": true, "message": ` + q + `, "userId": ` + q + `}`)
	case fake.HostileBadToken: // a control character
		return ok(`{"success": true, "token": ` + fake.Quote("\x07"+text) + `, "dtsExpiry": "2099-01-01T00:00:00.000Z", "userId": ` + q + `}`)
	case fake.HostileBadExpiry:
		return ok(`{"success": true, "token": "tok", "dtsExpiry": ` + q + `, "userId": ` + q + `}`)
	case fake.HostileFailure:
		return ok(`{"success": false, "message": ` + q + `}`)
	case fake.HostileToken:
		return ok(`{"success": true, "token": ` + q + `, "dtsExpiry": "` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `", "userId": "u1"}`)
	}
	return fake.Answer{}, false
}
