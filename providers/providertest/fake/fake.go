// Package fake is what a provider's fake is made of: the login it answers,
// written from the provider's documentation (never from tokensync's
// client), the shapes of its failures, and what tests need to log in to it.
//
// Each provider declares its Provider in its own folder, as
// providers/<name>/<name>test.Fake, next to the provider it fakes and
// without importing it. providertest.Server serves every built-in fake on one
// URL, and the tests that must cover every provider (the controller's, the
// secrecy and leak tests, the demo) take their credentials, settings and
// hostile answers from it, so that adding a provider edits none of them.
package fake

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Provider is one provider's fake and its test registration.
type Provider struct {
	// Name is the provider's name, as in its providers.Registration.
	Name string

	// Method and Path are the login request the fake answers, Path from
	// the Server's URL. A provider without a wire format of its own (http)
	// leaves them empty and logs in to Via's fake, configured by Settings.
	Method string
	Path   string
	// Via is the fake a provider without a wire format of its own logs in
	// to; its answers, faults and counters are Via's.
	Via string
	// EndpointPath is appended to the Server's URL to make spec.endpoint:
	// empty when the endpoint is a base URL the provider joins its login
	// path to, the login path when the endpoint is the login URL itself
	// (oauth2's token URL).
	EndpointPath string

	// SuccessStatus answers a successful login; zero means 200.
	SuccessStatus int
	// Lifetime of the tokens the fake issues, until Server.SetLifetime.
	Lifetime time.Duration
	// Login answers a login request, once the Server has counted it and
	// played its scripted faults. l is the Server's side: which
	// credentials it accepts, and the tokens it issues.
	Login func(l Login, w http.ResponseWriter, r *http.Request)

	// The answers of the Server's scripted faults, in the provider's
	// shape: ErrorBody for an error status (the documented body where there
	// is one), NoTokenBody a success without a token, HugeBody a success
	// whose token is filler (over the 1 MiB clients read).
	ErrorBody   func(status int) string
	NoTokenBody string
	HugeBody    func(filler string) string

	// Credentials are the keys and values of a credentials Secret the fake
	// accepts: what tests log in with.
	Credentials map[string]string
	// SentinelCredentials returns credentials the fake accepts in which
	// every value contains sentinel, so that a test can search logs,
	// events and statuses for them.
	SentinelCredentials func(sentinel string) map[string]string
	// Settings, for a provider its TokenRequest configures, is the JSON of
	// its settings block (spec.<Name>) that logs in to the fake.
	Settings string
	// Hostile returns the provider's answer of kind h with text wherever
	// a client might read it (status is the status of HostileError), and
	// false when the provider has no such answer. The secrecy tests serve
	// them and search statuses, events and logs for text.
	Hostile func(h Hostility, status int, text string) (Answer, bool)
}

// Served reports whether the fake answers a login of its own (Path).
func (p Provider) Served() bool { return p.Path != "" }

// Endpoint is spec.endpoint for logging in to a Server at base.
func (p Provider) Endpoint(base string) string { return base + p.EndpointPath }

// Success is the status of a successful login.
func (p Provider) Success() int {
	if p.SuccessStatus == 0 {
		return http.StatusOK
	}
	return p.SuccessStatus
}

// Check says what a Provider lacks, naming its fields.
func (p Provider) Check() error {
	var missing []string
	need := func(ok bool, field string) {
		if !ok {
			missing = append(missing, field)
		}
	}
	need(p.Name != "", "Name")
	need(len(p.Credentials) > 0, "Credentials")
	need(p.SentinelCredentials != nil, "SentinelCredentials")
	if p.Served() {
		need(p.Via == "", "no Via (it has a Path)")
		need(p.Method != "", "Method")
		need(strings.HasPrefix(p.Path, "/"), "a Path starting with /")
		need(p.Lifetime > 0, "Lifetime")
		need(p.Login != nil, "Login")
		need(p.ErrorBody != nil, "ErrorBody")
		need(p.NoTokenBody != "", "NoTokenBody")
		need(p.HugeBody != nil, "HugeBody")
		need(p.Hostile != nil, "Hostile")
	} else {
		need(p.Via != "", "Path, or Via and Settings")
		need(p.Settings != "", "Settings (it logs in to Via's fake)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("fake %q lacks %s", p.Name, strings.Join(missing, ", "))
	}
	return nil
}

// Login is the Server's side of one login request.
type Login interface {
	// Accepts reports whether sent, the credential fields of the request,
	// match one of the sets the Server accepts (SetValid): every key of a
	// set sent with exactly its value. Without sets, any credentials do.
	Accepts(sent map[string]string) bool
	// Issue counts a login of identity id (what Server.LoginsFor counts
	// by) and returns the new token mint makes.
	Issue(id string, mint func(Mint) string) string
}

// Mint is what a new token is made of.
type Mint struct {
	// Seq is unique among the Server's tokens.
	Seq uint64
	// Now is the Server's clock, Lifetime the provider's.
	Now      time.Time
	Lifetime time.Duration
	// SigningKey is the Server's key for JWT.
	SigningKey []byte
}

// Expiry is Now plus Lifetime.
func (m Mint) Expiry() time.Time { return m.Now.Add(m.Lifetime) }

// JWT signs claims plus iat (Now) and exp (iat + Lifetime, fractional when
// Lifetime is) with the Server's key.
func (m Mint) JWT(newHash func() hash.Hash, alg string, claims map[string]any) string {
	iat := m.Now.Unix()
	claims["iat"] = iat
	claims["exp"] = float64(iat) + m.Lifetime.Seconds()
	header, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	payload, _ := json.Marshal(claims)
	signingInput := b64(header) + "." + b64(payload)
	mac := hmac.New(newHash, m.SigningKey)
	mac.Write([]byte(signingInput))
	return signingInput + "." + b64(mac.Sum(nil))
}

// UniqueID is Seq and random bits: a jti.
func (m Mint) UniqueID() string {
	return fmt.Sprintf("%d-%x", m.Seq, RandomBytes(8))
}

// LetterToken is an opaque token of 64 lowercase letters, the first 14
// encoding Seq (unique), the rest random.
func (m Mint) LetterToken() string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	seq := m.Seq
	var b strings.Builder
	for range 14 {
		b.WriteByte(letters[seq%26])
		seq /= 26
	}
	for _, r := range RandomBytes(50) {
		b.WriteByte(letters[int(r)%26])
	}
	return b.String()
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// StableID derives an id of n characters from an identity, the same on
// every login, as a real user's id would be.
func StableID(namespace, identity string, n int) string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	sum := sha256.Sum256([]byte(namespace + "\x00" + identity))
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[int(sum[i%len(sum)]+byte(i/len(sum)))%len(alphabet)]
	}
	return string(b)
}

// RandomBytes returns n random bytes.
func RandomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// MaxRequestBytes bounds the request bodies a fake reads.
const MaxRequestBytes = 1 << 20

// ReadJSONObject reads the request body as a JSON object; false when it is
// not one.
func ReadJSONObject(r *http.Request) (map[string]json.RawMessage, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBytes))
	if err != nil {
		return nil, false
	}
	var object map[string]json.RawMessage
	if json.Unmarshal(body, &object) != nil || object == nil {
		return nil, false
	}
	return object, true
}

// StringField returns object[name] when it is a JSON string.
func StringField(object map[string]json.RawMessage, name string) (string, bool) {
	var s string
	raw, ok := object[name]
	if !ok || json.Unmarshal(raw, &s) != nil || string(raw) == "null" {
		return "", false
	}
	return s, true
}

// StringFields returns the fields of object that are JSON strings.
func StringFields(object map[string]json.RawMessage) map[string]string {
	fields := map[string]string{}
	for k := range object {
		if s, ok := StringField(object, k); ok {
			fields[k] = s
		}
	}
	return fields
}

// WriteJSON answers status with body, a JSON document.
func WriteJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// Quote is s as a JSON string.
func Quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Hostility is a kind of hostile answer (Provider.Hostile).
type Hostility int

const (
	// HostileError is an error answer of the given status, the provider's
	// error shape with text in every field.
	HostileError Hostility = iota
	// HostileNoToken is the success shape without a token, text elsewhere.
	HostileNoToken
	// HostileBadToken is the success shape with an unusable token made of text.
	HostileBadToken
	// HostileBadExpiry is the success shape whose expiry is unusable, made
	// of text.
	HostileBadExpiry
	// HostileFailure is a failure the provider reports in a 2xx answer.
	HostileFailure
	// HostileToken is a success whose token, usable, is text: stored,
	// never shown. A provider whose tokens have a form text cannot take (a
	// JWT) has none.
	HostileToken
)

// Hostilities lists every kind but HostileError.
func Hostilities() []Hostility {
	return []Hostility{HostileNoToken, HostileBadToken, HostileBadExpiry, HostileFailure, HostileToken}
}

func (h Hostility) String() string {
	switch h {
	case HostileError:
		return "error"
	case HostileNoToken:
		return "no-token"
	case HostileBadToken:
		return "bad-token"
	case HostileBadExpiry:
		return "bad-expiry"
	case HostileFailure:
		return "failure-2xx"
	case HostileToken:
		return "token-is-sentinel"
	}
	return "hostility-" + strconv.Itoa(int(h))
}

// Answer is a canned answer.
type Answer struct {
	Status      int
	ContentType string
	Body        string
}

// JSONAnswer is status with a JSON body.
func JSONAnswer(status int, body string) Answer {
	return Answer{Status: status, ContentType: "application/json", Body: body}
}

// Write sends a.
func (a Answer) Write(w http.ResponseWriter) {
	w.Header().Set("Content-Type", a.ContentType)
	w.WriteHeader(a.Status)
	_, _ = io.WriteString(w, a.Body)
}

// Word is the first word of text: a short piece of a hostile text, for
// fields a client quotes only when short, or that must hold no space.
func Word(text string) string {
	if f := strings.Fields(text); len(f) > 0 {
		return f[0]
	}
	return text
}
