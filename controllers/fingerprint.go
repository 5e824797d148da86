package controllers

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tokensync/tokensync/providers"
)

// fingerprintKeyBytes is the size of the HMAC key, and fingerprintKeyData
// the key of the Secret data that holds it.
const (
	fingerprintKeyBytes = 32
	fingerprintKeyData  = "key"
)

// fingerprinter identifies credentials and tokens by a keyed HMAC-SHA256, so
// that a change of content can be told from a change of metadata without
// storing anything that could be brute-forced: a plain hash of a short
// password can be reversed by trying candidates, an HMAC cannot without the
// key. The key is a random value in a Secret in the operator's own namespace,
// created on first use and shared by every replica (as Vault Secrets
// Operator keeps its HMAC key).
//
// A fingerprint is "<key id>:<mac>", where the key id is derived from the
// key. A fingerprint made with another key (the key Secret was deleted and
// made anew) cannot be compared: it counts as unknown, never as changed, so
// losing the key never costs a login storm.
type fingerprinter struct {
	// reader and writer reach the API server directly: the key Secret is
	// not labelled as tokensync's, so the manager's cache cannot see it.
	reader client.Reader
	writer client.Writer
	key    types.NamespacedName

	mu    sync.Mutex
	mac   []byte // nil until loaded
	keyID string
}

// newFingerprinter returns a fingerprinter whose key lives in the Secret key.
func newFingerprinter(reader client.Reader, writer client.Writer, key types.NamespacedName) *fingerprinter {
	return &fingerprinter{reader: reader, writer: writer, key: key}
}

// staticFingerprinter uses a fixed key (unit tests).
func staticFingerprinter(key []byte) *fingerprinter {
	f := &fingerprinter{}
	f.setKey(key)
	return f
}

func (f *fingerprinter) setKey(key []byte) {
	f.mac = append([]byte(nil), key...)
	id := sha256.Sum256(append([]byte("tokensync key id\x00"), key...))
	f.keyID = hex.EncodeToString(id[:4])
}

// load reads the key Secret, creating it when it does not exist. Two
// replicas racing to create it both end up with the one that was stored.
func (f *fingerprinter) load(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mac != nil {
		return nil
	}
	s := &corev1.Secret{}
	err := f.reader.Get(ctx, f.key, s)
	if apierrors.IsNotFound(err) {
		key := make([]byte, fingerprintKeyBytes)
		if _, err := rand.Read(key); err != nil {
			return fmt.Errorf("generate fingerprint key: %w", err)
		}
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: f.key.Name, Namespace: f.key.Namespace,
				Annotations: map[string]string{
					"tokensync.io/description": "HMAC key tokensync uses to notice credential changes without storing hashes of them. Deleting it costs no logins.",
				},
			},
			Type:      corev1.SecretTypeOpaque,
			Immutable: ptrTo(true),
			Data:      map[string][]byte{fingerprintKeyData: key},
		}
		err = f.writer.Create(ctx, s)
		if apierrors.IsAlreadyExists(err) {
			err = f.reader.Get(ctx, f.key, s)
		}
	}
	if err != nil {
		return fmt.Errorf("fingerprint key Secret %s: %w", f.key, err)
	}
	key := s.Data[fingerprintKeyData]
	if len(key) < 16 {
		return fmt.Errorf("fingerprint key Secret %s: key %q holds %d bytes, want at least 16 (delete the Secret to have it made anew)", f.key, fingerprintKeyData, len(key))
	}
	f.setKey(key)
	return nil
}

func (f *fingerprinter) sum(ctx context.Context, parts func(write func([]byte))) (string, error) {
	if err := f.load(ctx); err != nil {
		return "", err
	}
	f.mu.Lock()
	mac, keyID := f.mac, f.keyID
	f.mu.Unlock()
	h := hmac.New(sha256.New, mac)
	parts(func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	})
	return keyID + ":" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)), nil
}

// credentials fingerprints the credentials a provider uses: their keys and
// values, in key order, each length-prefixed.
func (f *fingerprinter) credentials(ctx context.Context, creds providers.Credentials) (string, error) {
	keys := make([]string, 0, len(creds))
	for k := range creds {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return f.sum(ctx, func(write func([]byte)) {
		write([]byte("credentials"))
		for _, k := range keys {
			write([]byte(k))
			write(creds[k])
		}
	})
}

// token fingerprints a token value, to notice a token edited by hand.
func (f *fingerprinter) token(ctx context.Context, value []byte) (string, error) {
	return f.sum(ctx, func(write func([]byte)) {
		write([]byte("token"))
		write(value)
	})
}

// sameFingerprint compares two fingerprints. known is false when either is
// missing or they were made with different keys: then nothing can be said.
func sameFingerprint(a, b string) (same, known bool) {
	ka, _, okA := strings.Cut(a, ":")
	kb, _, okB := strings.Cut(b, ":")
	if !okA || !okB || ka != kb {
		return false, false
	}
	return hmac.Equal([]byte(a), []byte(b)), true
}

// legacyTokenSHA256 is the token fingerprint written before fingerprints were
// keyed; Secrets written then are still recognised as intact.
func legacyTokenSHA256(tok []byte) string {
	sum := sha256.Sum256(tok)
	return hex.EncodeToString(sum[:])
}

// annotationLegacyTokenSHA256 is where legacyTokenSHA256 was kept.
const annotationLegacyTokenSHA256 = "tokensync.io/token-sha256"

func ptrTo[T any](v T) *T { return &v }
