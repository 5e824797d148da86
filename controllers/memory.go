package controllers

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/tokensync/tokensync/controllers/policy"

	"k8s.io/apimachinery/pkg/types"
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
	// held counts the bytes of the tokens kept for refused writes, by
	// namespace ("" for cluster-scoped owners) and in all, within heldLimits.
	held       map[string]int64
	heldTotal  int64
	heldLimits HeldTokenLimits
}

// HeldTokenLimits bound the bytes of the tokens the operator keeps in memory
// because their Secret write was refused (a policy, a quota, a template that
// does not render). Zero fields mean the defaults.
type HeldTokenLimits struct {
	// PerNamespace bounds one namespace's held tokens
	// (--max-held-token-bytes-per-namespace, 4 MiB).
	PerNamespace int64
	// Total bounds every namespace's together (--max-held-token-bytes, 64 MiB).
	Total int64
}

// DefaultHeldTokenLimits: a token is rarely over a few KiB, so 4 MiB holds
// hundreds of one namespace's, and 64 MiB is an eighth of the chart's
// memory limit.
var DefaultHeldTokenLimits = HeldTokenLimits{PerNamespace: 4 << 20, Total: 64 << 20}

func (l HeldTokenLimits) withDefaults() HeldTokenLimits {
	if l.PerNamespace <= 0 {
		l.PerNamespace = DefaultHeldTokenLimits.PerNamespace
	}
	if l.Total <= 0 {
		l.Total = DefaultHeldTokenLimits.Total
	}
	return l
}

type remembered struct {
	uid types.UID
	// touched is when the entry was last written; see sweep.
	touched time.Time
	// secretNamespace, secretName and secretRV: the Secret holding the
	// token as tokensync last wrote it.
	secretNamespace, secretName, secretRV string
	// statusRV: the TokenRequest as tokensync last wrote its status.
	statusRV string
	// unwrittenStatus: a status whose write failed (the kind's status
	// type: *TokenRequestStatus, *ClusterTokenRequestStatus).
	unwrittenStatus any
	pending         *policy.PendingToken
	// loginFailed: a login that failed, not yet recorded in the status.
	loginFailed *failedLogin
	// loginErr: a login could not be made for a reason of tokensync's own
	// (the API server did not answer a read); the next reconcile returns it,
	// so that the controller's own backoff applies.
	loginErr error
}

// failedLogin is a failure of a login made off the workers, with what the
// login was made for: it is recorded only if the TokenRequest still asks
// for that issuer.
type failedLogin struct {
	policy.Failure
	provider, endpoint, settingsDigest string
}

// credentialsKey names a credentials Secret as one provider, with one set
// of settings (which may decide the keys it reads), reads it for one object
// (uid), whose key its fingerprint is made with.
type credentialsKey struct {
	types.NamespacedName
	uid                types.UID
	provider, settings string
}

// credentialsSeen is the fingerprint of one version of a credentials Secret.
type credentialsSeen struct {
	version, fingerprint string
	seen                 time.Time
}

func newMemory(limits HeldTokenLimits) *memory {
	return &memory{requests: map[types.NamespacedName]*remembered{}, credentials: map[credentialsKey]credentialsSeen{},
		held: map[string]int64{}, heldLimits: limits.withDefaults()}
}

// get returns the entry of a TokenRequest, dropping one left by an earlier
// TokenRequest of the same name.
func (m *memory) get(key types.NamespacedName, uid types.UID) *remembered {
	e, ok := m.requests[key]
	if !ok || e.uid != uid {
		if ok {
			m.setPending(key, e, nil)
		}
		e = &remembered{uid: uid}
		m.requests[key] = e
	}
	return e
}

// setPending replaces the entry's pending token, releasing what the one it
// replaces held. Called with m.mu held.
func (m *memory) setPending(key types.NamespacedName, e *remembered, p *policy.PendingToken) {
	if old := e.pending; old != nil && old != p && old.HeldBytes > 0 {
		m.held[key.Namespace] -= old.HeldBytes
		if m.held[key.Namespace] <= 0 {
			delete(m.held, key.Namespace)
		}
		m.heldTotal -= old.HeldBytes
		old.HeldBytes = 0
	}
	e.pending = p
}

// holdRefused keeps e's pending token, whose write was refused, within the
// HeldTokenLimits: counted once, or dropped (the message says why) when its
// namespace's or everyone's held tokens would pass their bound. Called with
// m.mu held.
func (m *memory) holdRefused(key types.NamespacedName, e *remembered) (dropped string) {
	p := e.pending
	if p == nil || p.HeldBytes > 0 {
		return ""
	}
	n := p.Size()
	switch {
	case m.held[key.Namespace]+n > m.heldLimits.PerNamespace:
		m.setPending(key, e, nil)
		return fmt.Sprintf("the token obtained (%d bytes) was not kept for a later write: the tokens kept for refused writes in this namespace would pass %d bytes (--max-held-token-bytes-per-namespace); the next login waits for the write to be allowed", n, m.heldLimits.PerNamespace)
	case m.heldTotal+n > m.heldLimits.Total:
		m.setPending(key, e, nil)
		return fmt.Sprintf("the token obtained (%d bytes) was not kept for a later write: the tokens kept for refused writes in all namespaces would pass %d bytes (--max-held-token-bytes); the next login waits for the write to be allowed", n, m.heldLimits.Total)
	}
	p.HeldBytes = n
	m.held[key.Namespace] += n
	m.heldTotal += n
	return ""
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
		if e.pending != nil && e.pending.Issued.Token != nil && !now.Before(e.pending.Issued.Token.ExpiresAt) {
			m.setPending(key, e, nil) // no use any more, and a token held for nothing
		}
		if e.pending == nil && e.unwrittenStatus == nil && e.loginFailed == nil && e.loginErr == nil && now.Sub(e.touched) > settleAfter {
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
	if e := m.requests[key]; e != nil {
		m.setPending(key, e, nil)
	}
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
