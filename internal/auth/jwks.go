package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"math/big"
)

// JWK is one public key of the JWKS.
type JWK struct {
	KID string `json:"kid"`
	Kty string `json:"kty"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

// JWKS returns the public keys that verify tokens; none with HS256.
func (kr *KeyRing) JWKS() []JWK {
	out := []JWK{}
	if kr.cfg.Alg == AlgHS256 {
		return out
	}
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	enc := base64.RawURLEncoding
	for _, k := range kr.keys {
		j := JWK{KID: k.kid, Alg: k.alg, Use: "sig"}
		switch pub := k.public.(type) {
		case ed25519.PublicKey:
			j.Kty, j.Crv, j.X = "OKP", "Ed25519", enc.EncodeToString(pub)
		case *ecdsa.PublicKey:
			ecdh, err := pub.ECDH()
			if err != nil {
				continue
			}
			raw := ecdh.Bytes() // 0x04 || X || Y
			j.Kty, j.Crv = "EC", "P-256"
			j.X, j.Y = enc.EncodeToString(raw[1:33]), enc.EncodeToString(raw[33:65])
		case *rsa.PublicKey:
			j.Kty, j.N = "RSA", enc.EncodeToString(pub.N.Bytes())
			j.E = enc.EncodeToString(big.NewInt(int64(pub.E)).Bytes())
		default:
			continue
		}
		out = append(out, j)
	}
	return out
}
