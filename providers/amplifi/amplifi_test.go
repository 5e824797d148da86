package amplifi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokensync/tokensync/providers"
	"github.com/tokensync/tokensync/providers/internal/login"
	"github.com/tokensync/tokensync/providers/providertest"
	"github.com/tokensync/tokensync/providers/providertest/conformance"
	"github.com/tokensync/tokensync/providers/providertest/fake"
)

// The documentation's credential examples, verbatim, comments included.
const (
	docInternet = `  { //credentials for a web channel
    "userName":"ali",
    "password":"qa",
    "channel":"internet"
  } `
	docAndroid = `  { //credentials for a mobile app
    "uuid":"unique id of the device", 
    "deviceTagOpen":"a string generated on the mobile phone",
    "channel":"android",
    "specifics": {
      "serial":"SN of the phone",
      "platform":"whatever", 
      "model":"SONY"
    }
  }`
	docTest = `  { //credentials for a demo test
  "channel": "test",
  "deviceTag":"my_deviceTag",
  "deviceData": {
      "platform": "test"
    }
  }`
	// docRequestBody is the documented request body of the test login.
	docRequestBody = `{
"channel": "test",
  "deviceTag":"my_deviceTag",
  "deviceData": {
      "platform": "test"
    }
}`
	docResponse = `{
    "success": true,
    "userId": "qweaurl8kgtlv9pc",
    "AFiUserId": "qweaurl8kgtlv9pc",
    "token": "qftegnutbrnuzfklzqeugrcxeullacfzrjococtlqgoygjkbviwhvzsgphrlljiw",
    "segment": "demo",
    "postOnboardingStepsRequired": null,
    "dtsExpiry": "2023-12-15T15:35:24.503Z",
    "isLocalSavingAllowed": true
}`
)

// docNow is an hour before the documented dtsExpiry.
var docNow = time.Date(2023, 12, 15, 14, 35, 24, 0, time.UTC)

func docClock() time.Time { return docNow }

// Flat forms of the documented examples: one key per field.
var (
	flatInternet = providers.Credentials{"userName": []byte("ali"), "password": []byte("qa"), "channel": []byte("internet")}
	flatAndroid  = providers.Credentials{
		"uuid": []byte("unique id of the device"), "deviceTagOpen": []byte("a string generated on the mobile phone"),
		"channel": []byte("android"), "specifics": []byte(`{"serial":"SN of the phone","platform":"whatever","model":"SONY"}`),
	}
	flatTest = providers.Credentials{"channel": []byte("test"), "deviceTag": []byte("my_deviceTag"), "deviceData": []byte(`{"platform": "test"}`)}
)

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not a JSON object: %v", err)
	}
	return v
}

func TestRequestBodyDocumentedExamples(t *testing.T) {
	for _, tc := range []struct {
		name  string
		creds providers.Credentials
		want  string
	}{
		{"internet, credentials.json", providers.Credentials{CredentialsJSONKey: []byte(docInternet)}, `{"userName":"ali","password":"qa","channel":"internet"}`},
		{"android without signature, credentials.json", providers.Credentials{CredentialsJSONKey: []byte(docAndroid)},
			`{"uuid":"unique id of the device","deviceTagOpen":"a string generated on the mobile phone","channel":"android","specifics":{"serial":"SN of the phone","platform":"whatever","model":"SONY"}}`},
		{"test without dtsValueString, credentials.json", providers.Credentials{CredentialsJSONKey: []byte(docTest)}, docRequestBody},
		{"request body, credentials.json", providers.Credentials{CredentialsJSONKey: []byte(docRequestBody)}, docRequestBody},
		{"internet, flat", flatInternet, `{"userName":"ali","password":"qa","channel":"internet"}`},
		{"android without signature, flat", flatAndroid,
			`{"uuid":"unique id of the device","deviceTagOpen":"a string generated on the mobile phone","channel":"android","specifics":{"serial":"SN of the phone","platform":"whatever","model":"SONY"}}`},
		{"test without dtsValueString, flat", flatTest, docRequestBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := RequestBody(tc.creds)
			if err != nil {
				t.Fatalf("RequestBody: %v", err)
			}
			if got, want := decode(t, body), decode(t, []byte(tc.want)); !reflect.DeepEqual(got, want) {
				t.Errorf("body = %v, want %v", got, want)
			}
			if err := New(providers.Options{}).Validate(tc.creds); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

// TestRequestBodySendsOnlyFieldKeys: flat keys the documentation names for
// any channel are sent as given, whatever the channel; other keys of the
// Secret are not. credentials.json is the body as written, unknown members
// included.
func TestRequestBodySendsOnlyFieldKeys(t *testing.T) {
	creds := providers.Credentials{
		"channel": []byte("internet"), "userName": []byte("ali"), "password": []byte(" qa "),
		"deviceTag": []byte("<&>"), "signature": []byte("42"),
		"language": []byte("en"), "html": []byte("<&>"), "Password": []byte("x"), "credentials.yaml": []byte("x"),
	}
	body, err := RequestBody(creds)
	if err != nil {
		t.Fatalf("RequestBody: %v", err)
	}
	want := map[string]any{"channel": "internet", "userName": "ali", "password": " qa ", "deviceTag": "<&>", "signature": "42"}
	if got := decode(t, body); !reflect.DeepEqual(got, want) {
		t.Errorf("body = %v, want %v", got, want)
	}

	jsonCreds := providers.Credentials{
		CredentialsJSONKey: []byte(`{"channel":"browser","deviceId":"d","n":1.50,"nested":{"a":[1,"//x"]},"url":"http://x/*y*/"}`),
		"language":         []byte("en"),
	}
	body, err = RequestBody(jsonCreds)
	if err != nil {
		t.Fatalf("RequestBody: %v", err)
	}
	if want := `{"channel":"browser","deviceId":"d","n":1.50,"nested":{"a":[1,"//x"]},"url":"http://x/*y*/"}`; !reflect.DeepEqual(decode(t, body), decode(t, []byte(want))) || !strings.Contains(string(body), "1.50") {
		t.Errorf("body = %s, want %s", body, want)
	}
}

func TestUsedCredentials(t *testing.T) {
	for _, tc := range []struct {
		name  string
		creds providers.Credentials
		want  []string
	}{
		{"flat", providers.Credentials{"channel": nil, "userName": nil, "password": nil, "note": nil, "Channel": nil}, []string{"channel", "password", "userName"}},
		{"every field key", providers.Credentials{
			"channel": nil, "userName": nil, "password": nil, "uuid": nil, "deviceTagOpen": nil, "signature": nil, "deviceId": nil,
			"userId": nil, "transportUserId": nil, "transport": nil, "deviceTag": nil, "dtsValueString": nil, "cryptotext": nil,
			"deviceData": nil, "specifics": nil, "token": nil,
		}, []string{
			"channel", "cryptotext", "deviceData", "deviceId", "deviceTag", "deviceTagOpen", "dtsValueString", "password",
			"signature", "specifics", "transport", "transportUserId", "userId", "userName", "uuid",
		}},
		{"credentials.json", providers.Credentials{CredentialsJSONKey: nil, "note": nil}, []string{CredentialsJSONKey}},
		{"credentials.json and a field key", providers.Credentials{CredentialsJSONKey: nil, "channel": nil, "note": nil}, []string{"channel", CredentialsJSONKey}},
		{"nothing usable", providers.Credentials{"note": nil}, nil},
		{"nil", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := slices.Sorted(maps.Keys(UsedCredentials(tc.creds)))
			if !slices.Equal(got, tc.want) {
				t.Errorf("UsedCredentials keys = %v, want %v", got, tc.want)
			}
			if reg := Registration.UsedCredentials(tc.creds); len(reg) != len(got) {
				t.Errorf("Registration.UsedCredentials = %v, want the provider's", reg)
			}
		})
	}
	// Every field a channel requires is one that is sent.
	for channel, fields := range requiredFields {
		for _, f := range fields {
			if _, ok := fieldKeys[f]; !ok {
				t.Errorf("channel %s requires %s, which is not a field key", channel, f)
			}
		}
	}
}

// TestLoginNeverSendsUnrelatedKeys: a sentinel value in keys AmpliFi does
// not document never reaches the server (here the fake providers), with
// flat keys or with credentials.json.
func TestLoginNeverSendsUnrelatedKeys(t *testing.T) {
	fake := providertest.New()
	defer fake.Close()
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(body))
		r.Body = io.NopCloser(bytes.NewReader(body))
		fake.Handler().ServeHTTP(w, r)
	}))
	defer srv.Close()

	unrelated := providers.Credentials{
		"note":                     []byte(conformance.SentinelSecret),
		"Password":                 []byte(conformance.SentinelPassword),
		conformance.SentinelSecret: []byte("x"),
	}
	for name, creds := range map[string]providers.Credentials{
		"flat":             flatTest,
		"credentials.json": {CredentialsJSONKey: []byte(docTest)},
	} {
		t.Run(name, func(t *testing.T) {
			bodies = nil
			all := maps.Clone(creds)
			maps.Copy(all, unrelated)
			if _, err := New(providers.Options{}).Login(context.Background(), srv.URL, all); err != nil {
				t.Fatalf("Login: %v", err)
			}
			if len(bodies) != 1 {
				t.Fatalf("the server saw %d requests", len(bodies))
			}
			for _, s := range conformance.Sentinels {
				if strings.Contains(bodies[0], s) {
					t.Errorf("request body %s carries an unrelated key's value or name", bodies[0])
				}
			}
		})
	}
}

func TestRequestBodyChannels(t *testing.T) {
	// A complete set of fields for each channel.
	complete := map[string]providers.Credentials{
		"internet":           {"userName": []byte("u"), "password": []byte("p")},
		"android":            {"uuid": []byte("u"), "deviceTagOpen": []byte("d")},
		"browser":            {"deviceId": []byte("d")},
		"statementGenerator": {"userId": []byte("u")},
		"dicBuilder":         {"userId": []byte("u")},
		"chat":               {"transportUserId": []byte("u"), "transport": []byte("t")},
		"android_v1":         {"deviceTag": []byte("d"), "dtsValueString": []byte("s"), "cryptotext": []byte("c")},
		"mobile":             {"deviceTag": []byte("d"), "dtsValueString": []byte("s"), "cryptotext": []byte("c")},
		"ios_v1":             {"deviceTag": []byte("d"), "dtsValueString": []byte("s"), "cryptotext": []byte("c")},
		"test":               {"deviceTag": []byte("d")},
	}
	if got := Channels(); len(got) != len(complete) {
		t.Fatalf("Channels() = %v", got)
	}
	for channel, fields := range complete {
		with := func(drop, blank string) providers.Credentials {
			c := providers.Credentials{"channel": []byte(channel)}
			for k, v := range fields {
				switch k {
				case drop:
				case blank:
					c[k] = []byte("  ")
				default:
					c[k] = v
				}
			}
			return c
		}
		t.Run(channel, func(t *testing.T) {
			if _, err := RequestBody(with("", "")); err != nil {
				t.Errorf("complete fields: %v", err)
			}
			for field := range fields {
				_, err := RequestBody(with(field, ""))
				pe := conformance.RequireError(t, err, providers.InvalidCredentials)
				if !strings.Contains(pe.Message, fmt.Sprintf("%q", field)) || !strings.Contains(pe.Message, fmt.Sprintf("%q", channel)) {
					t.Errorf("without %s: message %q names neither the field nor the channel", field, pe.Message)
				}
				_, err = RequestBody(with("", field))
				pe = conformance.RequireError(t, err, providers.InvalidCredentials)
				if !strings.Contains(pe.Message, "empty") {
					t.Errorf("blank %s: message %q", field, pe.Message)
				}
			}
		})
	}
}

func TestRequestBodyInvalid(t *testing.T) {
	for _, tc := range []struct {
		name  string
		creds providers.Credentials
		want  string // part of the message
	}{
		{"no credentials", nil, `key "channel"`},
		{"no channel", providers.Credentials{"userName": []byte("u"), "password": []byte("p")}, `key "channel"`},
		{"unknown channel", providers.Credentials{"channel": []byte("fax")}, "not a documented channel"},
		{"channel with different case", providers.Credentials{"channel": []byte("Internet")}, "not a documented channel"},
		{"android_v1 needs dtsValueString", providers.Credentials{"channel": []byte("android_v1"), "deviceTag": []byte("d"), "cryptotext": []byte("c")}, `"dtsValueString"`},
		{"deviceData not JSON", providers.Credentials{"channel": []byte("test"), "deviceTag": []byte("d"), "deviceData": []byte("{platform: test}")}, `key "deviceData" is not a JSON object`},
		{"specifics an array", providers.Credentials{"channel": []byte("android"), "uuid": []byte("u"), "deviceTagOpen": []byte("d"), "specifics": []byte("[]")}, `key "specifics" is not a JSON object`},
		{"specifics null", providers.Credentials{"channel": []byte("android"), "uuid": []byte("u"), "deviceTagOpen": []byte("d"), "specifics": []byte("null")}, `key "specifics"`},
		{"value not UTF-8", providers.Credentials{"channel": []byte("browser"), "deviceId": []byte{0xff, 0xfe}}, `key "deviceId" is not UTF-8`},
		{"credentials.json not JSON", providers.Credentials{CredentialsJSONKey: []byte(`{"channel": "internet", "password": "x"`)}, `key "credentials.json" is not a JSON object`},
		{"credentials.json an array", providers.Credentials{CredentialsJSONKey: []byte(`[{"channel": "test"}]`)}, `"credentials.json" is not a JSON object`},
		{"credentials.json with an open comment", providers.Credentials{CredentialsJSONKey: []byte(`{"channel": "test", "deviceTag": "d"} /*`)}, `"credentials.json" is not a JSON object`},
		{"credentials.json and a field key", providers.Credentials{CredentialsJSONKey: []byte(docTest), "deviceTag": []byte("d")}, `and the field key "deviceTag"`},
		{"credentials.json and field keys", providers.Credentials{CredentialsJSONKey: []byte(docTest), "userId": []byte("d"), "channel": []byte("test")}, `and the field key "channel"`},
		{"unrelated keys only", providers.Credentials{"user": []byte("u"), "pass": []byte("p")}, `key "channel"`},
		{"credentials.json channel not a string", providers.Credentials{CredentialsJSONKey: []byte(`{"channel": 1}`)}, `field "channel" of credentials.json is not a string`},
		{"credentials.json field not a string", providers.Credentials{CredentialsJSONKey: []byte(`{"channel": "browser", "deviceId": 7}`)}, `field "deviceId" of credentials.json to be a string`},
		{"credentials.json field missing", providers.Credentials{CredentialsJSONKey: []byte(`{"channel": "chat", "transport": "sms"}`)}, `AmpliFi channel "chat" requires the field "transportUserId" of credentials.json`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := RequestBody(tc.creds)
			pe := conformance.RequireError(t, err, providers.InvalidCredentials)
			if !strings.Contains(pe.Message, tc.want) {
				t.Errorf("message %q does not contain %q", pe.Message, tc.want)
			}
		})
	}
}

func server(t *testing.T, status int, body string, inspect func(*http.Request, []byte)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqBody, _ := io.ReadAll(r.Body)
		if inspect != nil {
			inspect(r, reqBody)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestLoginDocumentedExchange(t *testing.T) {
	var seen bool
	srv := server(t, http.StatusOK, docResponse, func(r *http.Request, body []byte) {
		seen = true
		if r.Method != http.MethodPut || r.URL.Path != "/token" {
			t.Errorf("request = %s %s, want PUT /token", r.Method, r.URL.Path)
		}
		for header, want := range map[string]string{
			"Content-Type": "application/json",
			"Accept":       "application/json",
			"User-Agent":   login.DefaultUserAgent,
		} {
			if got := r.Header.Get(header); got != want {
				t.Errorf("%s = %q, want %q", header, got, want)
			}
		}
		if got, want := decode(t, body), decode(t, []byte(docRequestBody)); !reflect.DeepEqual(got, want) {
			t.Errorf("request body = %v, want %v", got, want)
		}
	})
	for _, creds := range []providers.Credentials{flatTest, {CredentialsJSONKey: []byte(docRequestBody)}} {
		token, err := New(providers.Options{Now: docClock}).Login(context.Background(), srv.URL+"/", creds)
		if err != nil {
			t.Fatalf("Login: %v", err)
		}
		if !seen {
			t.Fatal("the server saw no request")
		}
		want := &providers.Token{
			Value:      "qftegnutbrnuzfklzqeugrcxeullacfzrjococtlqgoygjkbviwhvzsgphrlljiw",
			ObtainedAt: docNow,
			ExpiresAt:  time.Date(2023, 12, 15, 15, 35, 24, 503e6, time.UTC),
			Extra:      map[string]string{"userId": "qweaurl8kgtlv9pc"},
		}
		if !reflect.DeepEqual(token, want) {
			t.Errorf("token = %+v, want %+v", token, want)
		}
	}
}

func TestLoginResponses(t *testing.T) {
	const tok = `"token": "abc"`
	for _, tc := range []struct {
		name   string
		status int
		body   string
		kind   providers.ErrorKind // "" for success
		expiry time.Duration       // after docNow, on success
		extra  map[string]string
	}{
		{"no fraction", 200, `{"success": true, ` + tok + `, "dtsExpiry": "2023-12-15T15:35:24Z"}`, "", time.Hour, nil},
		{"nanoseconds and offset", 200, `{"success": true, ` + tok + `, "dtsExpiry": "2023-12-15T16:35:24.000000001+01:00"}`, "", time.Hour + time.Nanosecond, nil},
		{"201", 201, `{"success": true, ` + tok + `, "dtsExpiry": "2023-12-15T15:35:24Z"}`, "", time.Hour, nil},
		{"AFiUserId differs", 200, `{"success": true, ` + tok + `, "userId": "u1", "AFiUserId": "a1", "dtsExpiry": "2023-12-15T15:35:24Z"}`,
			"", time.Hour, map[string]string{"userId": "u1", "AFiUserId": "a1"}},
		{"only AFiUserId", 200, `{"success": true, ` + tok + `, "AFiUserId": "a1", "dtsExpiry": "2023-12-15T15:35:24Z"}`,
			"", time.Hour, map[string]string{"AFiUserId": "a1"}},
		{"userId by exact name only", 200, `{"success": true, ` + tok + `, "userid": "u1", "UserId": "u2", "dtsExpiry": "2023-12-15T15:35:24Z"}`, "", time.Hour, nil},
		{"success false", 200, `{"success": false, "message": "Invalid credentials"}`, providers.AuthenticationFailed, 0, nil},
		{"400", 400, `{"success": false}`, providers.AuthenticationFailed, 0, nil},
		{"401 success false", 401, `{"success": false, "message": "Unauthorized"}`, providers.AuthenticationFailed, 0, nil},
		{"403 success false", 403, `{"success": false}`, providers.AuthenticationFailed, 0, nil},
		{"400 not in the shape", 400, `{"message": "Bad Request"}`, providers.InvalidCredentials, 0, nil},
		{"400 HTML", 400, `<html></html>`, providers.InvalidCredentials, 0, nil},
		{"401 empty", 401, ``, providers.RequestBlocked, 0, nil},
		{"403 HTML", 403, `<html></html>`, providers.RequestBlocked, 0, nil},
		{"403 success true", 403, `{"success": true}`, providers.RequestBlocked, 0, nil},
		{"401 success a string", 401, `{"success": "false"}`, providers.RequestBlocked, 0, nil},
		{"404", 404, `Not Found`, providers.InvalidCredentials, 0, nil},
		{"409", 409, `{"success": false}`, providers.InvalidCredentials, 0, nil},
		{"no success member", 200, `{` + tok + `, "dtsExpiry": "2023-12-15T15:35:24Z"}`, providers.InvalidResponse, 0, nil},
		{"success a string", 200, `{"success": "true", ` + tok + `, "dtsExpiry": "2023-12-15T15:35:24Z"}`, providers.InvalidResponse, 0, nil},
		{"success null", 200, `{"success": null, ` + tok + `, "dtsExpiry": "2023-12-15T15:35:24Z"}`, providers.InvalidResponse, 0, nil},
		{"Token, not token", 200, `{"success": true, "Token": "abc", "dtsExpiry": "2023-12-15T15:35:24Z"}`, providers.InvalidResponse, 0, nil},
		{"no token", 200, `{"success": true, "dtsExpiry": "2023-12-15T15:35:24Z"}`, providers.InvalidResponse, 0, nil},
		{"empty token", 200, `{"success": true, "token": "", "dtsExpiry": "2023-12-15T15:35:24Z"}`, providers.InvalidResponse, 0, nil},
		{"numeric token", 200, `{"success": true, "token": 5, "dtsExpiry": "2023-12-15T15:35:24Z"}`, providers.InvalidResponse, 0, nil},
		{"no dtsExpiry", 200, `{"success": true, ` + tok + `}`, providers.InvalidResponse, 0, nil},
		{"dtsExpiry not RFC 3339", 200, `{"success": true, ` + tok + `, "dtsExpiry": "15/12/2023 15:35"}`, providers.InvalidResponse, 0, nil},
		{"dtsExpiry without zone", 200, `{"success": true, ` + tok + `, "dtsExpiry": "2023-12-15T15:35:24.503"}`, providers.InvalidResponse, 0, nil},
		{"dtsExpiry a number", 200, `{"success": true, ` + tok + `, "dtsExpiry": 1702654524}`, providers.InvalidResponse, 0, nil},
		{"dtsExpiry in the past", 200, `{"success": true, ` + tok + `, "dtsExpiry": "2023-12-15T14:35:23.999Z"}`, providers.InvalidResponse, 0, nil},
		{"dtsExpiry now", 200, `{"success": true, ` + tok + `, "dtsExpiry": "2023-12-15T14:35:24Z"}`, providers.InvalidResponse, 0, nil},
		{"dtsExpiry over a year", 200, `{"success": true, ` + tok + `, "dtsExpiry": "2024-12-15T14:35:25Z"}`, providers.InvalidResponse, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := server(t, tc.status, tc.body, nil)
			token, err := New(providers.Options{Now: docClock}).Login(context.Background(), srv.URL, flatTest)
			if tc.kind != "" {
				conformance.RequireError(t, err, tc.kind)
				return
			}
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			if got := token.ExpiresAt.Sub(docNow); got != tc.expiry {
				t.Errorf("expiry in %s, want %s", got, tc.expiry)
			}
			if !reflect.DeepEqual(token.Extra, tc.extra) {
				t.Errorf("Extra = %v, want %v", token.Extra, tc.extra)
			}
		})
	}
}

// TestLoginCountsFromStart: ObtainedAt is the login's start, before the
// request is sent, even when the answer takes 30 s; dtsExpiry is absolute.
// A dtsExpiry already past when the answer arrives is an answer we cannot
// use.
func TestLoginCountsFromStart(t *testing.T) {
	for _, tc := range []struct {
		name      string
		dtsExpiry string
		ok        bool
	}{
		{"documented expiry, an hour after the start", "2023-12-15T15:35:24.503Z", true},
		{"expired while the answer was on its way", "2023-12-15T14:35:34Z", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := conformance.NewManualClock(docNow)
			body := `{"success": true, "token": "abc", "dtsExpiry": "` + tc.dtsExpiry + `"}`
			srv := server(t, http.StatusOK, body, func(*http.Request, []byte) { clock.Advance(30 * time.Second) })
			token, err := New(providers.Options{Now: clock.Now}).Login(context.Background(), srv.URL, flatTest)
			if !tc.ok {
				conformance.RequireError(t, err, providers.InvalidResponse)
				return
			}
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			want, _ := time.Parse(time.RFC3339Nano, tc.dtsExpiry)
			if !token.ObtainedAt.Equal(docNow) || !token.ExpiresAt.Equal(want) {
				t.Errorf("ObtainedAt %s, ExpiresAt %s; want %s and %s", token.ObtainedAt, token.ExpiresAt, docNow, want)
			}
		})
	}
}

func TestLoginValidatesBeforeSending(t *testing.T) {
	srv := server(t, http.StatusOK, docResponse, func(*http.Request, []byte) { t.Error("a request was sent") })
	_, err := New(providers.Options{}).Login(context.Background(), srv.URL, providers.Credentials{"channel": []byte("internet")})
	conformance.RequireError(t, err, providers.InvalidCredentials)
}

var sentinelCreds = providers.Credentials{
	"channel":  []byte("internet"),
	"userName": []byte(conformance.SentinelUser),
	"password": []byte(conformance.SentinelPassword),
}

func TestLoginUndocumented(t *testing.T) {
	conformance.RunUndocumented(t, func(o providers.Options) providers.Provider { return New(o) }, http.StatusOK, sentinelCreds)
}

// TestLoginRejections: AmpliFi's rejection is an answer with success:
// false, with 200, 400, 401 or 403; any other 401 or 403 is RequestBlocked.
func TestLoginRejections(t *testing.T) {
	failure := `{"success": false, "message": "Invalid credentials ` + conformance.SentinelBody + `"}`
	conformance.RunRejections(t, func(o providers.Options) providers.Provider { return New(o) }, sentinelCreds, conformance.Rejections{
		Documented: map[string]fake.Answer{
			"200": fake.JSONAnswer(200, failure),
			"400": fake.JSONAnswer(400, failure),
			"401": fake.JSONAnswer(401, failure),
			"403": fake.JSONAnswer(403, failure),
		},
		Undocumented: map[string]fake.Answer{
			"gateway 403":  conformance.GatewayForbidden(403),
			"success true": fake.JSONAnswer(401, `{"success": true}`),
			"success null": fake.JSONAnswer(403, `{"success": null}`),
		},
	})
}

func TestErrorsNeverLeak(t *testing.T) {
	s := conformance.SentinelUser + " " + conformance.SentinelPassword + " " + conformance.SentinelBody
	for _, tc := range []struct {
		status int
		body   string
	}{
		{200, `{"success": false, "message": "` + s + `", "userId": "` + conformance.SentinelUser + `"}`},
		{400, `{"success": false, "message": "` + s + `"}`},
		{401, s},
		{418, s},
		{200, `{"success": "` + s + `"}`},
		{200, `{"success": true, "token": "` + conformance.SentinelToken + `"}`},
		{200, `{"success": true, "token": "` + conformance.SentinelToken + `", "dtsExpiry": "` + s + `"}`},
		{200, `{"success": true, "token": "` + conformance.SentinelToken + `", "dtsExpiry": "2000-01-01T00:00:00Z"}`},
		{200, `{"success": true, "token": "` + conformance.SentinelToken + `\n", "dtsExpiry": "2023-12-15T15:35:24Z"}`},
		{200, `{"success": true, "token": ["` + s + `"]}`},
		{200, `<html>` + s + `</html>`},
	} {
		srv := server(t, tc.status, tc.body, nil)
		_, err := New(providers.Options{Now: docClock}).Login(context.Background(), srv.URL, sentinelCreds)
		if err == nil {
			t.Errorf("HTTP %d %s: no error", tc.status, tc.body)
			continue
		}
		conformance.RequireNoSentinel(t, err.Error())
	}
	for _, c := range []providers.Credentials{
		{"channel": []byte(conformance.SentinelSecret)},
		{"channel": []byte("internet"), "userName": []byte(conformance.SentinelUser)},
		{"channel": []byte("internet"), "userName": []byte(conformance.SentinelUser), "password": []byte(" "), "specifics": []byte(conformance.SentinelSecret)},
		{"channel": []byte("test"), "deviceTag": []byte("d"), "deviceData": []byte(`{"a": "` + conformance.SentinelSecret + `"`)},
		{CredentialsJSONKey: []byte(`{"password": "` + conformance.SentinelPassword + `"`)},
		{CredentialsJSONKey: []byte(`{"channel": "` + conformance.SentinelSecret + `"}`)},
		{CredentialsJSONKey: []byte(`{"channel": "internet", "userName": "` + conformance.SentinelUser + `", "password": 5}`)},
		{CredentialsJSONKey: []byte(`{"channel": "internet"}`), conformance.SentinelSecret: []byte("x")},
	} {
		_, err := New(providers.Options{}).Login(context.Background(), "http://127.0.0.1:1", c)
		conformance.RequireError(t, err, providers.InvalidCredentials)
	}
}
