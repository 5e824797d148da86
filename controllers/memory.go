package controllers

import (
	"context"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	tokensyncv1alpha1 "github.com/tokensync/tokensync/api/v1alpha1"
)

// memory is what the operator knows that its caches may not show yet, per
// TokenRequest: the resourceVersions of its own last writes (so that a cache
// behind them is noticed and the API server asked, and only then), a status
// it could not write (so that a failed status write never leads to an
// immediate retry of a failed login), a token obtained by a login and not
// yet written (just obtained off the workers, or kept after its Secret
// write was refused, so that the login is not spent again), and how a
// login that failed off the workers ended, for the next reconcile to record. It is
// lost on a restart, and nothing in it is needed for correctness after one:
// the caches then start from the API server.
type memory struct {
	mu          sync.Mutex
	requests    map[types.NamespacedName]*remembered
	credentials map[credentialsKey]credentialsSeen
}

type remembered struct {
	uid types.UID
	// touched is when the entry was last written; see sweep.
	touched time.Time
	// secretName and secretRV: the target Secret as tokensync last wrote it
	// (secretNamespace: for a ClusterTokenRequest, the namespace of the
	// last of its Secrets written).
	secretNamespace, secretName, secretRV string
	// statusRV: the TokenRequest as tokensync last wrote its status.
	statusRV string
	// unwrittenStatus: a status whose write failed.
	unwrittenStatus *tokensyncv1alpha1.TokenRequestStatus
	// unwrittenClusterStatus: the same, of a ClusterTokenRequest.
	unwrittenClusterStatus *tokensyncv1alpha1.ClusterTokenRequestStatus
	pending                *pendingToken
	// loginFailed: a login that failed, not yet recorded in the status.
	loginFailed *failedLogin
	// loginErr: a login could not be made for a reason of tokensync's own
	// (the API server did not answer a read); the next reconcile returns it,
	// so that the controller's own backoff applies.
	loginErr error
}

// pendingToken is a token obtained, not yet written.
type pendingToken struct {
	issued issued
	// force is the force-refresh value the login honoured; reason and
	// message say why it was made.
	force, reason, message string
	failures               int32
	retryAt                time.Time
}

// failedLogin is a failure of a login made off the workers, with what the
// login was made for: it is recorded only if the TokenRequest still asks
// for that issuer.
type failedLogin struct {
	failure
	provider, endpoint, settingsDigest string
}

// credentialsKey names a credentials Secret as one provider, with one set
// of settings (which may decide the keys it reads), reads it.
type credentialsKey struct {
	types.NamespacedName
	provider, settings string
}

// credentialsSeen is the fingerprint of one version of a credentials Secret.
type credentialsSeen struct {
	version, fingerprint string
	seen                 time.Time
}

func newMemory() *memory {
	return &memory{requests: map[types.NamespacedName]*remembered{}, credentials: map[credentialsKey]credentialsSeen{}}
}

// get returns the entry of a TokenRequest, dropping one left by an earlier
// TokenRequest of the same name.
func (m *memory) get(key types.NamespacedName, uid types.UID) *remembered {
	e, ok := m.requests[key]
	if !ok || e.uid != uid {
		e = &remembered{uid: uid}
		m.requests[key] = e
	}
	return e
}

// with runs f on a TokenRequest's entry under the lock.
func (m *memory) with(key types.NamespacedName, uid types.UID, f func(*remembered)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.get(key, uid)
	f(e)
	e.touched = time.Now()
}

// settleAfter is how long after tokensync's last write an entry that holds
// nothing but resourceVersions is kept: the caches show a write within
// milliseconds, so after this long the entry only takes memory.
const settleAfter = 2 * time.Minute

// sweep drops the entries that hold only resourceVersions of writes older
// than settleAfter, and the fingerprints of credentials versions not used
// since then. A pending token is kept until it expires, an unwritten status
// and a login's end until a reconcile takes them.
// takeLoginResult forgets how a login ended once a reconcile has observed
// it (rem is what it read at the start), so that it is acted on once. It is
// taken only then: a reconcile whose observation failed leaves it for the
// next one, rather than lose a failure the provider was asked for (and log
// in again at once). A failure recorded since rem was read stays.
func (m *memory) takeLoginResult(key types.NamespacedName, uid types.UID, rem remembered) {
	if rem.loginFailed == nil && rem.loginErr == nil {
		return
	}
	m.with(key, uid, func(e *remembered) {
		if e.loginFailed == rem.loginFailed {
			e.loginFailed = nil
		}
		if rem.loginErr != nil {
			e.loginErr = nil
		}
	})
}

func (m *memory) sweep(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, e := range m.requests {
		if e.pending != nil && e.pending.issued.Token != nil && !now.Before(e.pending.issued.Token.ExpiresAt) {
			e.pending = nil // no use any more, and a token held for nothing
		}
		if e.pending == nil && e.unwrittenStatus == nil && e.unwrittenClusterStatus == nil && e.loginFailed == nil && e.loginErr == nil && now.Sub(e.touched) > settleAfter {
			delete(m.requests, key)
		}
	}
	for key, c := range m.credentials {
		if now.Sub(c.seen) > settleAfter {
			delete(m.credentials, key)
		}
	}
}

// sweeper sweeps memory and the login gate's idle hosts every settleAfter
// while the manager runs.
type sweeper struct {
	m *memory
	g *loginGate
}

func (s sweeper) Start(ctx context.Context) error {
	t := time.NewTicker(settleAfter)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			s.m.sweep(now)
			s.g.sweep(now)
		}
	}
}

// NeedLeaderElection: only the leader reconciles, but sweeping is harmless.
func (sweeper) NeedLeaderElection() bool { return false }

// forget drops a deleted TokenRequest.
func (m *memory) forget(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.requests, key)
}

// credentialsFingerprint returns the fingerprint recorded for a version of a
// credentials Secret.
func (m *memory) credentialsFingerprint(key credentialsKey, version string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen, ok := m.credentials[key]
	if !ok || seen.version != version {
		return "", false
	}
	seen.seen = time.Now()
	m.credentials[key] = seen
	return seen.fingerprint, true
}

func (m *memory) setCredentialsFingerprint(key credentialsKey, version, fingerprint string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.credentials[key] = credentialsSeen{version: version, fingerprint: fingerprint, seen: time.Now()}
}

// cacheBehind reports whether an object the cache holds at cachedRV may be
// older than the one tokensync wrote at writtenRV. resourceVersions are
// compared as numbers when both are (as with etcd); otherwise any difference
// counts, and the caller asks the API server.
func cacheBehind(cachedRV, writtenRV string) bool {
	if writtenRV == "" || cachedRV == writtenRV {
		return false
	}
	c, errC := strconv.ParseUint(cachedRV, 10, 64)
	w, errW := strconv.ParseUint(writtenRV, 10, 64)
	if errC != nil || errW != nil {
		return true
	}
	return c < w
}
