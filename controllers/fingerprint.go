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
	"maps"
	"slices"
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
// Each object fingerprints with a key of its own, the HMAC of the key Secret's
// key and the object's UID, so that no fingerprint compares across objects:
// the same password on two TokenRequests gives two fingerprints, and one
// copied from another object's Secret reads as unknown.
//
// A fingerprint is "<key id>:<mac>", where the key id is derived from the
// object's key. A fingerprint made with another key (the key Secret was
// deleted and made anew, a Secret written before keys were per object, a
// re-created TokenRequest adopting its retained Secret) cannot be compared:
// it counts as unknown, never as changed, so none of these costs a login.
type fingerprinter struct {
	// reader and writer reach the API server directly: the key Secret is
	// not labelled as tokensync's, so the manager's cache cannot see it.
	reader client.Reader
	writer client.Writer
	key    types.NamespacedName

	mu  sync.Mutex
	mac []byte // nil until loaded
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
}

// objectKey is the key an object fingerprints with, and its key id.
func objectKey(master []byte, uid types.UID) (key []byte, keyID string) {
	h := hmac.New(sha256.New, master)
	h.Write([]byte("tokensync object key\x00"))
	h.Write([]byte(uid))
	key = h.Sum(nil)
	id := sha256.Sum256(append([]byte("tokensync key id\x00"), key...))
	return key, hex.EncodeToString(id[:4])
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

// master is the key Secret's key, loaded on first use.
func (f *fingerprinter) master(ctx context.Context) ([]byte, error) {
	if err := f.load(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mac, nil
}

// sum is the fingerprint of parts for the object uid, with its own key.
func (f *fingerprinter) sum(ctx context.Context, uid types.UID, parts func(write func([]byte))) (string, error) {
	master, err := f.master(ctx)
	if err != nil {
		return "", err
	}
	key, keyID := objectKey(master, uid)
	return keyID + ":" + macOf(key, parts), nil
}

// macOf is the HMAC-SHA256 of parts with key, each part length-prefixed.
func macOf(key []byte, parts func(write func([]byte))) string {
	h := hmac.New(sha256.New, key)
	parts(func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	})
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// credentialParts writes the credentials a provider uses: their keys and
// values, in key order.
func credentialParts(creds providers.Credentials) func(write func([]byte)) {
	return func(write func([]byte)) {
		write([]byte("credentials"))
		for _, k := range slices.Sorted(maps.Keys(creds)) {
			write([]byte(k))
			write(creds[k])
		}
	}
}

// credentials fingerprints the credentials a provider uses for the object uid.
func (f *fingerprinter) credentials(ctx context.Context, uid types.UID, creds providers.Credentials) (string, error) {
	return f.sum(ctx, uid, credentialParts(creds))
}

// account identifies the account credentials log in as, the same for
// every object that uses them, so that the host's health can tell one
// account's failures from a host's (hosthealth.go). Keyed with the key
// Secret's key itself, it compares across objects: it is kept in memory
// only, never written to an object.
func (f *fingerprinter) account(ctx context.Context, creds providers.Credentials) (string, error) {
	master, err := f.master(ctx)
	if err != nil {
		return "", err
	}
	return macOf(master, credentialParts(creds)), nil
}

// token fingerprints a token value the object uid holds, to notice a token
// edited by hand.
func (f *fingerprinter) token(ctx context.Context, uid types.UID, value []byte) (string, error) {
	return f.sum(ctx, uid, func(write func([]byte)) {
		write([]byte("token"))
		write(value)
	})
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
