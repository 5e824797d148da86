package providertest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// maxRequestBytes bounds the request bodies the fake reads.
const maxRequestBytes = 1 << 20

func readJSONObject(r *http.Request) (map[string]json.RawMessage, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes))
	if err != nil {
		return nil, false
	}
	var object map[string]json.RawMessage
	if json.Unmarshal(body, &object) != nil || object == nil {
		return nil, false
	}
	return object, true
}

// stringField returns object[name] when it is a JSON string.
func stringField(object map[string]json.RawMessage, name string) (string, bool) {
	var s string
	raw, ok := object[name]
	if !ok || json.Unmarshal(raw, &s) != nil || string(raw) == "null" {
		return "", false
	}
	return s, true
}

// accepts reports whether fields match one of provider's valid sets.
func (s *Server) accepts(provider string, object map[string]json.RawMessage) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	valid := s.state(provider).valid
	if len(valid) == 0 {
		return true
	}
	for _, set := range valid {
		matched := true
		for k, want := range set {
			if got, ok := stringField(object, k); !ok || got != want {
				matched = false
				break
			}
		}
		if matched {
			return true
		}
	}
	return false
}

// issue counts a login by id and returns the token mint makes from a
// unique sequence number, the clock and provider's lifetime.
func (s *Server) issue(provider, id string, mint func(seq uint64, now time.Time, lifetime time.Duration) string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state(provider)
	s.issued++
	token := mint(s.issued, s.now(), st.lifetime)
	st.logins++
	st.loginsFor[id]++
	st.lastToken = token
	return token
}

// --- AML Watcher ---

func amlFail(errorJSON string) string {
	return `{"error": ` + errorJSON + `, "status": "FAIL", "data": []}`
}

func (s *Server) loginAML(w http.ResponseWriter, r *http.Request) {
	req, ok := readJSONObject(r)
	if !ok {
		writeBody(w, http.StatusBadRequest, amlFail(`"The request body must be a JSON object."`))
		return
	}
	email, _ := stringField(req, "email")
	password, _ := stringField(req, "password")
	switch {
	case strings.TrimSpace(email) == "":
		writeBody(w, http.StatusUnprocessableEntity, amlFail(`{"email": ["The email field is required."]}`))
		return
	case password == "":
		writeBody(w, http.StatusUnprocessableEntity, amlFail(`{"password": ["The password field is required."]}`))
		return
	case utf8.RuneCountInString(password) < 8:
		writeBody(w, http.StatusUnprocessableEntity, amlFail(`{"password": ["The password must be at least 8 characters."]}`))
		return
	}
	if !s.accepts(AML, req) {
		writeBody(w, http.StatusUnauthorized, amlFail(`"Invalid email or password."`))
		return
	}
	token := s.issue(AML, email, func(seq uint64, now time.Time, lifetime time.Duration) string {
		return s.jwt(sha256.New, "HS256", map[string]any{"sub": email, "jti": uniqueID(seq)}, now, lifetime)
	})
	accessToken, _ := json.Marshal(map[string]string{"access_token": token})
	writeBody(w, http.StatusOK, s.amlSuccess(string(accessToken)))
}

// amlSuccess is AML Watcher's SUCCESS answer around data, an object in
// JSON, which is wrapped in an array when SetAMLDataArray is on.
func (s *Server) amlSuccess(data string) string {
	s.mu.Lock()
	array := s.amlDataArray
	s.mu.Unlock()
	if array {
		data = "[" + data + "]"
	}
	return `{"error": false, "status": "SUCCESS", "data": ` + data + `}`
}

// --- partner API ---

const partnerUnauthorized = `{
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

// partnerMissing is the documented 400 for missing required properties.
func partnerMissing(properties ...string) string {
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

func (s *Server) loginPartner(w http.ResponseWriter, r *http.Request) {
	req, ok := readJSONObject(r)
	if !ok {
		writeBody(w, http.StatusBadRequest, partnerMissing("accessKey", "secret"))
		return
	}
	accessKey, _ := stringField(req, "accessKey")
	secret, _ := stringField(req, "secret")
	var missing []string
	if accessKey == "" {
		missing = append(missing, "accessKey")
	}
	if secret == "" {
		missing = append(missing, "secret")
	}
	if len(missing) > 0 {
		writeBody(w, http.StatusBadRequest, partnerMissing(missing...))
		return
	}
	if !s.accepts(Partner, req) {
		writeBody(w, http.StatusUnauthorized, partnerUnauthorized)
		return
	}
	token := s.issue(Partner, accessKey, func(seq uint64, now time.Time, lifetime time.Duration) string {
		return s.jwt(sha512.New384, "HS384", map[string]any{
			"uid":    stableID(Partner, accessKey, 32),
			"ar":     []string{"Partner", "PartnerAdmin"},
			"ak":     stableID(Partner+"/key", accessKey, 32),
			"realm":  "Partner",
			"domain": "/partners-int",
			"jti":    uniqueID(seq),
		}, now, lifetime)
	})
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(token))
}

// --- AmpliFi ---

// ampliFiSchema lists, per channel, the required fields as the
// documentation's working examples use them (android without signature,
// test without dtsValueString); the first identifies the user.
var ampliFiSchema = map[string][]string{
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

func ampliFiFailure(message string) string {
	body, _ := json.Marshal(map[string]any{"success": false, "message": message})
	return string(body)
}

func (s *Server) loginAmpliFi(w http.ResponseWriter, r *http.Request) {
	req, ok := readJSONObject(r)
	if !ok {
		writeBody(w, http.StatusBadRequest, ampliFiFailure("The request body must be a JSON object."))
		return
	}
	channel, _ := stringField(req, "channel")
	required, ok := ampliFiSchema[channel]
	if !ok {
		writeBody(w, http.StatusBadRequest, ampliFiFailure("channel must be one of the documented channels"))
		return
	}
	for _, field := range required {
		if v, ok := stringField(req, field); !ok || v == "" {
			writeBody(w, http.StatusBadRequest, ampliFiFailure(fmt.Sprintf("must have required property '%s'", field)))
			return
		}
	}
	if !s.accepts(AmpliFi, req) {
		writeBody(w, http.StatusOK, ampliFiFailure("Invalid credentials"))
		return
	}
	id, _ := stringField(req, required[0])
	userID := stableID(AmpliFi, channel+"/"+id, 16)
	var expiry time.Time
	token := s.issue(AmpliFi, id, func(seq uint64, now time.Time, lifetime time.Duration) string {
		expiry = now.Add(lifetime)
		return letterToken(seq)
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
	writeBody(w, http.StatusOK, string(body))
}

// --- OAuth2 client credentials (RFC 6749 §4.4) ---

// oauth2Error is an RFC 6749 §5.2 error answer.
func oauth2Error(w http.ResponseWriter, status int, code, description string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="tokensync-fake"`)
	}
	body, _ := json.Marshal(map[string]string{"error": code, "error_description": description})
	w.Header().Set("Cache-Control", "no-store")
	writeBody(w, status, string(body))
}

func (s *Server) loginOAuth2(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		oauth2Error(w, http.StatusBadRequest, "invalid_request", "The request body must be application/x-www-form-urlencoded.")
		return
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxRequestBytes)
	if err := r.ParseForm(); err != nil {
		oauth2Error(w, http.StatusBadRequest, "invalid_request", "The request body is not a form.")
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		oauth2Error(w, http.StatusBadRequest, "unsupported_grant_type", "Only client_credentials is supported.")
		return
	}
	// RFC 6749 §2.3.1: Basic with the id and secret form-encoded first, or
	// both in the body; never both methods at once.
	id, secret, basic := r.BasicAuth()
	_, inForm := r.PostForm["client_secret"]
	switch {
	case basic && inForm:
		oauth2Error(w, http.StatusBadRequest, "invalid_request", "More than one client authentication method.")
		return
	case basic:
		var errID, errSecret error
		id, errID = url.QueryUnescape(id)
		secret, errSecret = url.QueryUnescape(secret)
		if errID != nil || errSecret != nil {
			oauth2Error(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed.")
			return
		}
	case inForm:
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	client := map[string]json.RawMessage{}
	for k, v := range map[string]string{"clientId": id, "clientSecret": secret} {
		client[k], _ = json.Marshal(v)
	}
	if id == "" || secret == "" || !s.accepts(OAuth2, client) {
		oauth2Error(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed.")
		return
	}
	scope := r.PostForm.Get("scope")
	var lifetime time.Duration
	token := s.issue(OAuth2, id, func(seq uint64, now time.Time, l time.Duration) string {
		lifetime = l
		return s.jwt(sha256.New, "HS256", map[string]any{"sub": id, "scope": scope, "jti": uniqueID(seq)}, now, l)
	})
	answer := map[string]any{"access_token": token, "token_type": "Bearer", "expires_in": int64(lifetime.Seconds())}
	if scope != "" {
		answer["scope"] = scope
	}
	body, _ := json.Marshal(answer)
	w.Header().Set("Cache-Control", "no-store")
	writeBody(w, http.StatusOK, string(body))
}

// --- tokens ---

// jwt signs claims plus iat (now) and exp (iat + lifetime, fractional
// when lifetime is) with the Server's key.
func (s *Server) jwt(newHash func() hash.Hash, alg string, claims map[string]any, now time.Time, lifetime time.Duration) string {
	iat := now.Unix()
	claims["iat"] = iat
	claims["exp"] = float64(iat) + lifetime.Seconds()
	header, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	payload, _ := json.Marshal(claims)
	signingInput := b64(header) + "." + b64(payload)
	mac := hmac.New(newHash, s.signKey)
	mac.Write([]byte(signingInput))
	return signingInput + "." + b64(mac.Sum(nil))
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// uniqueID is the sequence number and random bits.
func uniqueID(seq uint64) string {
	return fmt.Sprintf("%d-%x", seq, randomBytes(8))
}

// letterToken is a token like AmpliFi's documented one: 64 lowercase
// letters, the first 14 encoding seq (unique), the rest random.
func letterToken(seq uint64) string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	var b strings.Builder
	for range 14 {
		b.WriteByte(letters[seq%26])
		seq /= 26
	}
	for _, r := range randomBytes(50) {
		b.WriteByte(letters[int(r)%26])
	}
	return b.String()
}

// stableID derives an id of n characters from an identity, the same on
// every login, as a real user's id would be.
func stableID(namespace, identity string, n int) string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	sum := sha256.Sum256([]byte(namespace + "\x00" + identity))
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[int(sum[i%len(sum)]+byte(i/len(sum)))%len(alphabet)]
	}
	return string(b)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
