// The Node recipes of docs/resource-servers.md, as the tests run them:
// a resource server verifying the service's access tokens itself.
import * as jose from 'jose';
import * as oauth from 'oauth4webapi';

// recipe: jose
// One remote key set per process: it caches the JWKS and refetches it
// when a token names a kid it does not know (cooldownDuration: how soon
// after a fetch it may fetch again; 30 s by default).
export function joseVerifier(issuer, audience, { cooldownDuration = 30_000 } = {}) {
  const jwks = jose.createRemoteJWKSet(new URL(issuer + '/.well-known/jwks.json'), { cooldownDuration });
  return async (token) => {
    const { payload } = await jose.jwtVerify(token, jwks, {
      issuer,                    // exact string: JWT_ISSUER
      audience,                  // JWT_AUDIENCE
      typ: 'at+jwt',             // RFC 9068: refuse ID tokens and other JWTs
      algorithms: ['EdDSA'],     // JWT_ALG: never take the token's word for it
      requiredClaims: ['exp', 'iat', 'sub', 'jti', 'client_id'], // jose checks exp only when present
      clockTolerance: 5,         // seconds, like JWT_LEEWAY
    });
    return payload;              // payload.sub is the user, payload.sid the session
  };
}
// end recipe

// recipe: oauth4webapi
// validateJwtAccessToken is a strict RFC 9068 resource server: typ at+jwt,
// iss, exp, aud, sub, iat, jti and client_id required. It caches the JWKS
// per `as` object: keep one.
export async function oauth4webapiVerifier(issuer, audience, { insecure = false } = {}) {
  const issuerURL = new URL(issuer);
  const as = await oauth.discoveryRequest(issuerURL, { algorithm: 'oauth2', [oauth.allowInsecureRequests]: insecure })
    .then((res) => oauth.processDiscoveryResponse(issuerURL, res));
  return (request) => oauth.validateJwtAccessToken(as, request, audience, {
    signingAlgorithms: ['EdDSA'],
    [oauth.allowInsecureRequests]: insecure, // only for an http:// issuer in development
  });
}
// end recipe
