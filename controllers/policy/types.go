package policy

import (
	"crypto/hmac"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tokensync/tokensync/providers"
)

// HeldToken is what a target Secret says about the token it holds.
type HeldToken struct {
	ObtainedAt time.Time
	ExpiresAt  time.Time
	// Provider and Endpoint issued the token; empty when not recorded.
	Provider, Endpoint string
	// SettingsDigest identifies the provider settings it was obtained
	// with; empty for providers without any, and when not recorded.
	SettingsDigest string
	// CredentialsVersion and CredentialsFingerprint identify the credentials
	// the token was obtained with.
	CredentialsVersion, CredentialsFingerprint string
	// Intact is false when the token was edited or removed by hand.
	Intact bool
}

// Issued is a token with what it was obtained for.
type Issued struct {
	Token                  *providers.Token
	Provider, Endpoint     string
	SettingsDigest         string
	CredentialsVersion     string
	CredentialsFingerprint string
	TokenFingerprint       string
}

// FormatTime is RFC 3339 in UTC at second precision, as written to Secrets.
func FormatTime(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

func MetaTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t.UTC().Truncate(time.Second))
	return &mt
}

// PendingToken is a token obtained, not yet written.
type PendingToken struct {
	Issued Issued
	// Force is the Force-refresh value the login honoured; Reason and
	// Message say why it was made.
	Force, Reason, Message string
	Failures               int32
	RetryAt                time.Time
	// HeldBytes is what the token counts against HeldTokenLimits since its
	// write was refused; zero while it is only on its way to its Secret.
	HeldBytes int64
}

// Size is the bytes a held token takes: its value and extra values.
func (p *PendingToken) Size() int64 {
	n := int64(len(p.Issued.Token.Value))
	for k, v := range p.Issued.Token.Extra {
		n += int64(len(k) + len(v))
	}
	return n
}

// HostView is what the gate says of an endpoint host.
type HostView struct {
	// Name is the host as the gate counts it (endpointHost).
	Name string
	Down bool
	// NextProbe: while down, when the next probe goes (now when one is
	// under way, or when it waits for a login to probe with).
	NextProbe time.Time
	// Probing: a probe is under way.
	Probing bool
}

// SameFingerprint compares two fingerprints. known is false when either is
// missing or they were made with different keys: then nothing can be said.
func SameFingerprint(a, b string) (same, known bool) {
	ka, _, okA := strings.Cut(a, ":")
	kb, _, okB := strings.Cut(b, ":")
	if !okA || !okB || ka != kb {
		return false, false
	}
	return hmac.Equal([]byte(a), []byte(b)), true
}

// Latest is the later of two times.
func Latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
