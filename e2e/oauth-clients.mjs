// Standard clients nobody here wrote, against a running server (started by
// cmd/server's TestNodeClients): openid-client discovering the metadata,
// refreshing, introspecting and revoking; oauth4webapi as a strict RFC 9068
// resource server; jose through the JWKS before and after a key rotation.
//
// env: ISSUER (= JWT_ISSUER), AUDIENCE, REFRESH_TOKEN (a /v1/login one),
// CLIENT_ID and CLIENT_SECRET (a confidential client). After the first
// part it prints "ROTATE" and reads one line from stdin: an access token
// signed with the key rotated in meanwhile.
import * as client from 'openid-client';
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { joseVerifier, oauth4webapiVerifier } from './resource-server.mjs';

const { ISSUER, AUDIENCE, REFRESH_TOKEN, CLIENT_ID, CLIENT_SECRET } = process.env;
const opts = { algorithm: 'oauth2', execute: [client.allowInsecureRequests] };
const step = (name) => console.log('ok', name);

// rejectsWith awaits a call that must fail with an OAuth error code: in the
// body of a ResponseBodyError, or of the response behind a 401's
// WWWAuthenticateChallengeError.
async function rejectsWith(promise, code) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.error ?? (await e.response?.json())?.error, code, `${e.code}: ${e.message}`);
    return e;
  }
  assert.fail(`resolved; want ${code}`);
}

const pub = await client.discovery(new URL(ISSUER), 'accounts', undefined, client.None(), opts);
assert.equal(pub.serverMetadata().issuer, ISSUER);
const basic = await client.discovery(new URL(ISSUER), CLIENT_ID, CLIENT_SECRET, client.ClientSecretBasic(), opts);
const post = await client.discovery(new URL(ISSUER), CLIENT_ID, { client_secret: CLIENT_SECRET }, client.ClientSecretPost(), opts);
step('discovery');

// Refresh twice: the chain rotates.
const t1 = await client.refreshTokenGrant(pub, REFRESH_TOKEN);
assert.equal(t1.token_type, 'bearer');
assert.ok(t1.expiresIn() > 0);
assert.notEqual(t1.refresh_token, REFRESH_TOKEN);
const t2 = await client.refreshTokenGrant(pub, t1.refresh_token);
assert.notEqual(t2.refresh_token, t1.refresh_token);
step('refresh');

// A confidential client cannot refresh the first-party app's token.
await rejectsWith(client.refreshTokenGrant(basic, t2.refresh_token), 'invalid_grant');
step('another client refused');

// Introspection by the confidential client, both ways of authenticating.
for (const cfg of [basic, post]) {
  const info = await client.tokenIntrospection(cfg, t2.access_token);
  assert.equal(info.active, true);
  assert.equal(info.client_id, 'accounts');
  assert.equal(info.iss, ISSUER);
  assert.equal(info.token_type, 'Bearer');
  const rt = await client.tokenIntrospection(cfg, t2.refresh_token);
  assert.deepEqual(rt, { active: false });
}
// A public client may not introspect.
await rejectsWith(client.tokenIntrospection(pub, t2.access_token), 'invalid_client');
// A wrong secret: 401 invalid_client with WWW-Authenticate.
const wrong = await client.discovery(new URL(ISSUER), CLIENT_ID, 'wrong', client.ClientSecretBasic(), opts);
const challenge = await rejectsWith(client.tokenIntrospection(wrong, t2.access_token), 'invalid_client');
assert.equal(challenge.code, 'OAUTH_WWW_AUTHENTICATE_CHALLENGE');
step('introspection');

// The resource servers of the recipes accept the token.
const joseVerify = joseVerifier(ISSUER, AUDIENCE, { cooldownDuration: 0 });
const claims = await joseVerify(t2.access_token);
assert.equal(claims.client_id, 'accounts');
const strict = await oauth4webapiVerifier(ISSUER, AUDIENCE, { insecure: true });
const validated = await strict(new Request('http://rs.test/api', { headers: { authorization: `Bearer ${t2.access_token}` } }));
assert.equal(validated.sub, claims.sub);
// ...and refuse what is not an access token for them.
await assert.rejects(joseVerifier(ISSUER, 'another-audience')(t2.access_token));
await assert.rejects(joseVerify(t2.refresh_token));
step('resource servers');

// Revocation: the refresh token ends its session (200, as RFC 7009 asks,
// and again for a dead one); the session's access tokens stop working.
await client.tokenRevocation(pub, t2.refresh_token, { token_type_hint: 'refresh_token' });
await client.tokenRevocation(pub, t2.refresh_token);
await client.tokenRevocation(pub, 'garbage');
assert.deepEqual(await client.tokenIntrospection(basic, t2.access_token), { active: false });
await rejectsWith(client.refreshTokenGrant(pub, t2.refresh_token), 'invalid_grant');
step('revocation');

// Key rotation: the same jose key set, fetched before, meets a new kid.
console.log('ROTATE');
const lines = createInterface({ input: process.stdin });
const rotated = await new Promise((resolve) => lines.once('line', resolve));
lines.close();
const after = await joseVerify(rotated.trim());
assert.equal(after.client_id, 'accounts');
step('rotation');
console.log('all ok');
