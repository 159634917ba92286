package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Signing algorithms the service supports.
const (
	AlgEdDSA = "EdDSA"
	AlgES256 = "ES256"
	AlgRS256 = "RS256"
	AlgHS256 = "HS256"
)

// ValidAlg reports whether alg is a supported JWT_ALG.
func ValidAlg(alg string) bool {
	switch alg {
	case AlgEdDSA, AlgES256, AlgRS256, AlgHS256:
		return true
	}
	return false
}

// MinHMACSecret is the shortest HS256 secret accepted (RFC 8725 §3.5).
const MinHMACSecret = 32

// KeyReloadInterval is how often an instance re-reads the keys on its own,
// so that one that keeps signing with a key rotated out elsewhere stops soon.
const KeyReloadInterval = time.Minute

// StoredKey is a signing key as the database keeps it.
type StoredKey struct {
	KID        string
	Alg        string
	PrivateKey []byte // PKCS#8 DER, sealed with the key-encryption key when Sealed
	Sealed     bool
	CreatedAt  time.Time
	RetiredAt  *time.Time
}

// KeyStore is what the key ring needs from the database.
type KeyStore interface {
	// SigningKeys returns the keys of alg that are active or were retired after retiredAfter.
	SigningKeys(ctx context.Context, alg string, retiredAfter time.Time) ([]StoredKey, error)
	// EnsureSigningKey stores k unless a key of k.Alg is already active; it
	// serialises callers so that instances starting together make one key.
	EnsureSigningKey(ctx context.Context, k StoredKey) error
	// AddSigningKey retires the active keys of k.Alg and stores k as the active one.
	AddSigningKey(ctx context.Context, k StoredKey, now time.Time) error
}

// KeyConfig configures a KeyRing.
type KeyConfig struct {
	Alg        string
	HMACSecret []byte // HS256 only
	// KEK, when set, seals private keys at rest (XChaCha20-Poly1305, kid as associated data).
	KEK []byte
	// Retention is how long a retired key still verifies: RevocationWindow
	// plus one KeyReloadInterval (Options.KeyConfig sets it).
	Retention time.Duration
}

type verifyKey struct {
	kid       string
	alg       string
	public    any // ed25519.PublicKey, *ecdsa.PublicKey, *rsa.PublicKey, or []byte for HS256
	signer    any // the private key, nil if this key no longer signs
	createdAt time.Time
}

// KeyRing holds the signing key and every key that still verifies, shared
// with the other instances through the database.
type KeyRing struct {
	cfg   KeyConfig
	store KeyStore
	now   func() time.Time

	mu      sync.RWMutex
	keys    map[string]*verifyKey
	current *verifyKey
	loaded  time.Time

	// reloads runs the reloads that unknown kids trigger, one at a time;
	// lastReload is the last one that succeeded, lastTry the last attempt
	// (both used only inside reloads).
	reloads    singleflight.Group
	lastReload time.Time
	lastTry    time.Time
}

const (
	// kidReloadEvery bounds the reloads unknown kids can trigger: at most
	// one successful reload a second, whatever the traffic.
	kidReloadEvery = time.Second
	// kidRetryAfter is how soon a failed reload may be tried again, so that
	// one failure does not leave a newly rotated key unknown for a second.
	kidRetryAfter = 100 * time.Millisecond
	// kidReloadTimeout bounds a reload; it runs apart from the request
	// that triggered it, which may be gone before it finishes.
	kidReloadTimeout = 5 * time.Second
)

// NewKeyRing loads the keys of cfg.Alg, making the first one when there is
// none. With HS256 the only key is cfg.HMACSecret and nothing is stored.
func NewKeyRing(ctx context.Context, cfg KeyConfig, store KeyStore, now func() time.Time) (*KeyRing, error) {
	kr := &KeyRing{cfg: cfg, store: store, now: now, keys: map[string]*verifyKey{}}
	if cfg.Alg == AlgHS256 {
		if len(cfg.HMACSecret) < MinHMACSecret {
			return nil, fmt.Errorf("key ring: HS256 secret must be at least %d bytes", MinHMACSecret)
		}
		sum := sha256.Sum256(append([]byte("kid:"), cfg.HMACSecret...))
		k := &verifyKey{kid: "hs256-" + base64.RawURLEncoding.EncodeToString(sum[:9]), alg: AlgHS256,
			public: cfg.HMACSecret, signer: cfg.HMACSecret}
		kr.keys[k.kid], kr.current = k, k
		return kr, nil
	}
	if !ValidAlg(cfg.Alg) {
		return nil, fmt.Errorf("key ring: unsupported algorithm %q", cfg.Alg)
	}
	first, err := kr.newStoredKey()
	if err != nil {
		return nil, err
	}
	if err := store.EnsureSigningKey(ctx, first); err != nil {
		return nil, fmt.Errorf("key ring: %w", err)
	}
	if err := kr.Reload(ctx); err != nil {
		return nil, err
	}
	return kr, nil
}

// Alg is the algorithm every token is signed and verified with.
func (kr *KeyRing) Alg() string { return kr.cfg.Alg }

// Reload reads the keys from the database again.
func (kr *KeyRing) Reload(ctx context.Context) error {
	if kr.cfg.Alg == AlgHS256 {
		return nil
	}
	now := kr.now()
	stored, err := kr.store.SigningKeys(ctx, kr.cfg.Alg, now.Add(-kr.cfg.Retention))
	if err != nil {
		return fmt.Errorf("key ring: load keys: %w", err)
	}
	keys := make(map[string]*verifyKey, len(stored))
	var current *verifyKey
	for _, sk := range stored {
		k, err := kr.open(sk)
		if err != nil {
			return err
		}
		if sk.RetiredAt != nil {
			k.signer = nil
		} else if current == nil || k.createdAt.After(current.createdAt) {
			current = k
		}
		keys[k.kid] = k
	}
	if current == nil {
		return errors.New("key ring: no active signing key in the database")
	}
	kr.mu.Lock()
	kr.keys, kr.current, kr.loaded = keys, current, now
	kr.mu.Unlock()
	return nil
}

// lookup returns the key for kid. An unknown kid makes the ring read the
// database again, at most once a second, so that a key rotated in by another
// instance verifies at once. Requests meeting unknown kids together share
// one reload, and each waits for it only as long as its own context lets
// it; the reload itself runs apart from them (a client that hangs up, or a
// stream of junk kids sent with short deadlines, must not cancel it), and
// only a reload that succeeded spends the second: a failed one may be
// retried after kidRetryAfter.
func (kr *KeyRing) lookup(ctx context.Context, kid string) *verifyKey {
	if k := kr.key(kid); k != nil || kr.cfg.Alg == AlgHS256 {
		return k
	}
	select {
	case <-kr.reloads.DoChan("reload", func() (any, error) { kr.reloadForKid(); return nil, nil }):
	case <-ctx.Done():
		return nil
	}
	return kr.key(kid)
}

func (kr *KeyRing) key(kid string) *verifyKey {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.keys[kid]
}

// reloadForKid reloads unless the last success was under kidReloadEvery
// ago or the last attempt under kidRetryAfter ago. Only lookup's
// singleflight calls it, one at a time.
func (kr *KeyRing) reloadForKid() {
	now := kr.now()
	if now.Sub(kr.lastReload) < kidReloadEvery || now.Sub(kr.lastTry) < kidRetryAfter {
		return
	}
	kr.lastTry = now
	ctx, cancel := context.WithTimeout(context.Background(), kidReloadTimeout)
	defer cancel()
	if err := kr.Reload(ctx); err == nil {
		kr.lastReload = now
	}
}

func (kr *KeyRing) signingKey() *verifyKey {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.current
}

// Rotate makes a new key that signs from now on; the old ones keep verifying
// until the last token they signed has expired.
func (kr *KeyRing) Rotate(ctx context.Context) (kid string, err error) {
	if kr.cfg.Alg == AlgHS256 {
		return "", errors.New("key ring: HS256 keys come from JWT_SECRET; change the secret to rotate")
	}
	sk, err := kr.newStoredKey()
	if err != nil {
		return "", err
	}
	if err := kr.store.AddSigningKey(ctx, sk, kr.now()); err != nil {
		return "", fmt.Errorf("key ring: rotate: %w", err)
	}
	return sk.KID, kr.Reload(ctx)
}

func (kr *KeyRing) newStoredKey() (StoredKey, error) {
	var priv crypto.Signer
	var err error
	switch kr.cfg.Alg {
	case AlgEdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case AlgES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgRS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		err = fmt.Errorf("unsupported algorithm %q", kr.cfg.Alg)
	}
	if err != nil {
		return StoredKey{}, fmt.Errorf("key ring: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return StoredKey{}, fmt.Errorf("key ring: encode key: %w", err)
	}
	kidBytes := make([]byte, 12)
	if _, err := rand.Read(kidBytes); err != nil {
		return StoredKey{}, fmt.Errorf("key ring: kid: %w", err)
	}
	sk := StoredKey{KID: base64.RawURLEncoding.EncodeToString(kidBytes), Alg: kr.cfg.Alg, PrivateKey: der}
	if kr.cfg.KEK != nil {
		sealed, err := SealKey(kr.cfg.KEK, sk.KID, der)
		if err != nil {
			return StoredKey{}, err
		}
		sk.PrivateKey, sk.Sealed = sealed, true
	}
	return sk, nil
}

func (kr *KeyRing) open(sk StoredKey) (*verifyKey, error) {
	der := sk.PrivateKey
	if sk.Sealed {
		if kr.cfg.KEK == nil {
			return nil, fmt.Errorf("key ring: key %s is encrypted and KEY_ENCRYPTION_KEY is not set", sk.KID)
		}
		var err error
		if der, err = OpenKey(kr.cfg.KEK, sk.KID, der); err != nil {
			return nil, fmt.Errorf("key ring: key %s does not open with KEY_ENCRYPTION_KEY", sk.KID)
		}
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("key ring: key %s: %w", sk.KID, err)
	}
	k := &verifyKey{kid: sk.KID, alg: sk.Alg, signer: priv, createdAt: sk.CreatedAt}
	switch p := priv.(type) {
	case ed25519.PrivateKey:
		k.public = p.Public().(ed25519.PublicKey)
	case *ecdsa.PrivateKey:
		k.public = &p.PublicKey
	case *rsa.PrivateKey:
		k.public = &p.PublicKey
	default:
		return nil, fmt.Errorf("key ring: key %s has an unsupported type", sk.KID)
	}
	if !keyMatchesAlg(k.public, sk.Alg) {
		return nil, fmt.Errorf("key ring: key %s does not match its algorithm %s", sk.KID, sk.Alg)
	}
	return k, nil
}

func keyMatchesAlg(pub any, alg string) bool {
	switch pub.(type) {
	case ed25519.PublicKey:
		return alg == AlgEdDSA
	case *ecdsa.PublicKey:
		return alg == AlgES256
	case *rsa.PublicKey:
		return alg == AlgRS256
	}
	return false
}
