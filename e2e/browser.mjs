// The account pages in a real browser (Debian's Chromium through
// playwright-core), against a running server: the flows a person goes
// through, with the real mails read from MAIL_DIR (SMTP_URL=file://), the
// cookie mode's security properties, and axe-core's accessibility rules on
// every page, at desktop width, at 360 px and in dark mode. Run by
// TestBrowser (cmd/server/browser_test.go), which starts the server with
// ACCESS_TOKEN_TTL=3s and JWT_LEEWAY=0s and passes
//   BASE_URL        the service, as http://localhost:PORT
//   MAIL_DIR        where the server writes each mail as an .eml file
//   PASSWORDS       three passwords, comma-separated (the Go test then checks
//                   that no log line holds one)
//   SCREENSHOT_DIR  when set, a PNG of each page is written there
//   CHROMIUM        the browser (default /usr/bin/chromium)
// Every wait is on a condition (a response, an element, an answer of the
// API), never a fixed sleep. It prints "ok: ..." per check and "all ok" last.

import { chromium } from 'playwright-core';
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import http from 'node:http';
import path from 'node:path';
import assert from 'node:assert/strict';

const BASE = process.env.BASE_URL;
const MAIL_DIR = process.env.MAIL_DIR;
const SHOTS = process.env.SCREENSHOT_DIR || '';
const [PW1, PW2, PW3] = (process.env.PASSWORDS || 'first correct horse,second correct horse,third correct horse').split(',');
if (!BASE || !MAIL_DIR) throw new Error('BASE_URL and MAIL_DIR are required');
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const EMAIL = 'pages-' + Date.now() + '@example.com';

function ok(what) { console.log('ok: ' + what); }

// ---- the API from outside the browser ----

function raw(method, url, headers = {}, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on('error', reject);
    if (body !== undefined) req.end(body); else req.end();
  });
}

function meWith(token) { return raw('GET', BASE + '/v1/me', { Authorization: 'Bearer ' + token }); }

async function until(what, cond, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---- mail ----

function decodeQP(s) {
  const bytes = [];
  const text = s.replace(/=\r?\n/g, '');
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(text[i], 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function headersOf(block) {
  const h = {};
  for (const line of block.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) h[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return h;
}

function splitHead(s) {
  const m = /\r?\n\r?\n/.exec(s);
  return m ? [s.slice(0, m.index), s.slice(m.index + m[0].length)] : [s, ''];
}

function decodePart(h, body) {
  const enc = (h['content-transfer-encoding'] || '7bit').toLowerCase();
  if (enc === 'quoted-printable') return decodeQP(body);
  if (enc === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  return body; // 7bit, 8bit: as written
}

// textOf finds the text/plain part of a message, however it is encoded.
// addressOf is the bare address of a To header ("Name <a@b>" or "a@b").
function addressOf(to) {
  const m = /<([^>]+)>/.exec(to || '');
  return (m ? m[1] : to || '').trim().toLowerCase();
}

function textOf(eml) {
  const [head, body] = splitHead(eml);
  const h = headersOf(head);
  const ct = h['content-type'] || 'text/plain';
  const b = /boundary="?([^";]+)"?/i.exec(ct);
  if (!b) return { to: h.to || '', text: ct.startsWith('text/plain') ? decodePart(h, body) : '' };
  for (const part of body.split('--' + b[1])) {
    const [ph, pb] = splitHead(part.replace(/^\r?\n/, ''));
    const phh = headersOf(ph);
    if ((phh['content-type'] || '').startsWith('text/plain')) return { to: h.to || '', text: decodePart(phh, pb) };
  }
  return { to: h.to || '', text: '' };
}

const seenMail = new Set();
let lastMailText = ''; // the text part of the mail mailLink returned last
// skipMails waits until n mails to `to` with a link to `page` have come,
// and sets them aside, so that mailLink returns a later one.
async function skipMails(to, page, n) {
  await until(n + ' mails to ' + to + ' with a link to ' + page, () => {
    const found = readdirSync(MAIL_DIR).filter((f) => f.endsWith('.eml') && !seenMail.has(f)).filter((f) => {
      const m = textOf(readFileSync(path.join(MAIL_DIR, f), 'utf8'));
      return addressOf(m.to) === to.toLowerCase() && m.text.includes(BASE + '/account/' + page + '#token=');
    });
    if (found.length < n) return false;
    for (const f of found) seenMail.add(f);
    return true;
  }, 30000);
}
// mailLink waits for a new mail to `to` whose text holds a link to the
// account page `page` (a line of its own) and returns the link.
async function mailLink(to, page) {
  return until('a mail to ' + to + ' with a link to ' + page, () => {
    for (const f of readdirSync(MAIL_DIR).filter((f) => f.endsWith('.eml'))) {
      if (seenMail.has(f)) continue;
      const m = textOf(readFileSync(path.join(MAIL_DIR, f), 'utf8'));
      if (addressOf(m.to) !== to.toLowerCase()) continue;
      const line = m.text.split(/\r?\n/).map((l) => l.trim()).find((l) => l.startsWith(BASE + '/account/' + page + '#token='));
      if (line) {
        seenMail.add(f);
        lastMailText = m.text;
        return line;
      }
    }
    return null;
  }, 30000);
}

// ---- the browser ----

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

async function newContext() {
  const ctx = await browser.newContext({ baseURL: BASE, viewport: { width: 1024, height: 800 }, colorScheme: 'light' });
  ctx.setDefaultTimeout(20000);
  return ctx;
}

const isRefresh = (r) => r.url() === BASE + '/v1/browser/refresh' && r.request().method() === 'POST';

// noTokenInStorage: script can read no cookie at all, and the page stores
// nothing in localStorage or sessionStorage.
async function noTokenInStorage(page, where) {
  const s = await page.evaluate(() => ({ cookie: document.cookie, local: localStorage.length, session: sessionStorage.length }));
  assert.deepEqual(s, { cookie: '', local: 0, session: 0 }, where + ': script-readable storage holds something');
}

async function cookieOf(ctx) {
  return (await ctx.cookies(BASE)).find((c) => c.name === '__Host-accounts_rt');
}

// audit runs axe on the page as it is now, at desktop width in light mode,
// at 360 px in light and in dark mode; at 360 px nothing may scroll sideways.
// It leaves the page as it found it.
const audited = [];
async function audit(page, name, shotDark = false) {
  const size = page.viewportSize();
  const modes = [['desktop light', size, 'light'], ['360 px light', { width: 360, height: 760 }, 'light'],
    ['360 px dark', { width: 360, height: 760 }, 'dark']];
  for (const [mode, vp, scheme] of modes) {
    await page.setViewportSize(vp);
    await page.emulateMedia({ colorScheme: scheme });
    // The page's CSP forbids every script but its own; the DevTools
    // protocol's evaluate is not a page script, so axe runs as it is.
    if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axeSource);
    const res = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    const bad = res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert.deepEqual(bad.map((v) => v.id + ': ' + v.help + ' [' + v.nodes.map((n) => n.target.join(' ')).join(', ') + ']'), [],
      name + ' (' + mode + '): serious or critical accessibility violations');
    if (vp.width === 360) {
      const w = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(w <= 360, name + ' (' + mode + '): scrolls sideways, ' + w + ' px wide');
    }
    if (SHOTS && mode === 'desktop light') await page.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: true });
    if (SHOTS && shotDark && mode === '360 px dark') await page.screenshot({ path: path.join(SHOTS, name + '-360-dark.png'), fullPage: true });
  }
  await page.setViewportSize(size);
  await page.emulateMedia({ colorScheme: 'light' });
  audited.push(name);
  ok('accessibility of ' + name + ': no serious or critical violation at 1024 px, 360 px, dark; no sideways scroll at 360 px');
}

// The attacker: a page on another site (127.0.0.1 is not the site of localhost).
const attacker = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end('<!doctype html><title>Win a prize</title><h1>Win a prize</h1>');
});
await new Promise((r) => attacker.listen(0, '127.0.0.1', r));
const EVIL = 'http://127.0.0.1:' + attacker.address().port;

try {
  // ---- the audit itself catches what it should (the other site's page has no lang) ----
  {
    const ctx = await newContext();
    const p = await ctx.newPage();
    await p.goto(EVIL + '/');
    await p.evaluate(axeSource);
    const res = await p.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    assert.ok(res.violations.some((v) => v.id === 'html-has-lang' && v.impact === 'serious'), 'axe missed a page without lang');
    await ctx.close();
    ok('axe runs and reports a serious violation where there is one');
  }

  // ---- without the script, a form leaks nothing ----
  {
    const ctx = await browser.newContext({ baseURL: BASE, javaScriptEnabled: false });
    const p = await ctx.newPage();
    for (const [url, field] of [['/account/signin', '#signin-password'], ['/account/signup', '#signup-password'],
      ['/account/reset', '#reset-password'], ['/account/forgot', '#forgot-email']]) {
      await p.goto(url);
      await p.fill(field, 'a secret that must not travel in a URL');
      const sent = p.waitForRequest((r) => r.isNavigationRequest() && r.url().startsWith(BASE + url) && r.method() !== 'GET');
      await p.press(field, 'Enter');
      const req = await sent;
      assert.equal(req.method(), 'POST');
      assert.equal(req.url(), BASE + url, 'the form sent a query string');
      assert.equal((await req.response()).status(), 405);
    }
    await ctx.close();
    ok('without the script, submitting a form is a POST to the page itself (405), never a query string');
  }

  // ---- sign up ----
  const a = await newContext();
  const pa = await a.newPage();
  await pa.goto('/account/signup');
  await noTokenInStorage(pa, 'signup');
  await audit(pa, 'signup');
  await pa.fill('#signup-email', EMAIL);
  await pa.fill('#signup-password', 'short');
  await pa.click('#signup-form button[type=submit]');
  await pa.locator('#signup-password-error').filter({ hasText: 'at least' }).waitFor();
  assert.equal(await pa.getAttribute('#signup-password', 'aria-invalid'), 'true');
  assert.equal(await pa.evaluate(() => document.activeElement.id), 'signup-password');
  ok('signup: a weak password is explained next to its field, which gets the focus');
  await pa.fill('#signup-password', PW1);
  await pa.click('#signup-form button[type=submit]');
  await pa.locator('#signup-done').waitFor();
  assert.equal(await pa.textContent('#signup-done-email'), EMAIL);
  ok('signup: the account is made');
  await pa.reload();
  await pa.fill('#signup-email', EMAIL.toUpperCase());
  await pa.fill('#signup-password', PW1);
  await pa.click('#signup-form button[type=submit]');
  await pa.locator('#signup-email-error').filter({ hasText: 'exists already' }).waitFor();
  await audit(pa, 'signup-errors');
  ok('signup: a taken address (409) is said next to the email field');

  // ---- verify from the mail: opening the link spends nothing, the button does ----
  const verifyLink = await mailLink(EMAIL, 'verify');
  await pa.goto(verifyLink);
  await pa.locator('#verify-form .with-token').waitFor();
  assert.ok(!pa.url().includes('token='), 'the token stays in the address bar');
  assert.ok(await pa.locator('#verify-email').isHidden());
  await noTokenInStorage(pa, 'verify');
  const probe = JSON.parse((await raw('POST', BASE + '/v1/login', { 'Content-Type': 'application/json' },
    JSON.stringify({ email: EMAIL, password: PW1 }))).body);
  assert.equal(JSON.parse((await meWith(probe.access_token)).body).email_verified, false, 'opening the link verified already');
  await audit(pa, 'verify');
  await pa.click('#verify-form button[type=submit]');
  await pa.locator('#verify-done').waitFor();
  assert.equal(JSON.parse((await meWith(probe.access_token)).body).email_verified, true);
  ok('verify: the link from the mail opens a page; only its button verifies');

  // ---- sign in, by keyboard; a wrong password first ----
  await pa.goto('/account/signin');
  await noTokenInStorage(pa, 'signin');
  for (let i = 0; i < 6 && (await pa.evaluate(() => document.activeElement.id)) !== 'signin-email'; i++) await pa.keyboard.press('Tab');
  assert.equal(await pa.evaluate(() => document.activeElement.id), 'signin-email', 'Tab does not reach the email field');
  const outline = await pa.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none', 'the focused field shows no focus');
  await pa.keyboard.type(EMAIL);
  await pa.keyboard.press('Tab');
  await pa.keyboard.type('not the password');
  await pa.keyboard.press('Enter');
  await pa.locator('#signin-form-error').filter({ hasText: 'not right' }).waitFor();
  await audit(pa, 'signin-error');
  await pa.fill('#signin-password', PW1);
  const firstRefresh = pa.waitForResponse(isRefresh);
  await pa.keyboard.press('Enter');
  await pa.waitForURL(BASE + '/account/me');
  const r1 = await firstRefresh;
  assert.equal(r1.status(), 200);
  const token1 = (await r1.json()).access_token;
  await pa.locator('#me-account').waitFor();
  assert.equal(await pa.textContent('#me-email'), EMAIL);
  assert.equal(await pa.textContent('#me-verified'), 'Yes');
  const current = pa.locator('#me-sessions li[data-current=true]');
  await current.waitFor();
  assert.match(await current.textContent(), /Chrome/);
  assert.match(await current.textContent(), /Last used/);
  ok('signin by keyboard; the account page shows the user and lists this session with its device and last use');

  // ---- the cookie ----
  const c1 = await cookieOf(a);
  assert.ok(c1, 'no __Host-accounts_rt cookie');
  assert.deepEqual({ httpOnly: c1.httpOnly, secure: c1.secure, sameSite: c1.sameSite, path: c1.path, domain: c1.domain },
    { httpOnly: true, secure: true, sameSite: 'Strict', path: '/', domain: 'localhost' });
  assert.ok(c1.expires > Date.now() / 1000, 'the cookie is a session cookie, not Max-Age');
  await noTokenInStorage(pa, 'me');
  ok('cookie __Host-accounts_rt: HttpOnly, Secure, SameSite=Strict, Path=/, host-only (no Domain), with Max-Age');

  // ---- the access token expires; the page refreshed before ----
  const r2 = await pa.waitForResponse((r) => isRefresh(r) && r.status() === 200);
  const token2 = (await r2.json()).access_token;
  assert.notEqual(token2, token1);
  await until('the first access token to expire', async () => (await meWith(token1)).status === 401, 15000);
  ok('the page refreshed by itself (POST /v1/browser/refresh) and the first access token is now refused by /v1/me');

  // ---- a second browser, signed in too ----
  const b = await newContext();
  const pb = await b.newPage();
  await pb.goto('/account/signin');
  await pb.fill('#signin-email', EMAIL);
  await pb.fill('#signin-password', PW1);
  await pb.click('#signin-form button[type=submit]');
  await pb.waitForURL(BASE + '/account/me');
  await pb.locator('#me-account').waitFor();
  ok('a second browser is signed in');

  // ---- cookie mode refuses what is not the page's own ----
  const evil = await a.newPage(); // the user's own browser, visiting another site
  await evil.goto(EVIL + '/');
  const tried = await evil.evaluate(async (base) => {
    const out = {};
    for (const [name, body] of [['login', '{"email":"x@example.com","password":"correct horse battery"}'], ['refresh', undefined], ['logout', undefined]]) {
      try {
        const r = await fetch(base + '/v1/browser/' + name, { method: 'POST', credentials: 'include', body,
          headers: { 'X-Requested-With': 'accounts', 'Content-Type': 'application/json' } });
        out[name] = 'status ' + r.status;
      } catch (e) {
        out[name] = 'failed';
      }
      // Without the header, a "simple" request goes out, blind (no-cors).
      await fetch(base + '/v1/browser/' + name, { method: 'POST', mode: 'no-cors', credentials: 'include', body }).catch(() => {});
    }
    return out;
  }, BASE);
  assert.deepEqual(tried, { login: 'failed', refresh: 'failed', logout: 'failed' });
  // A form posted from the other site (a top-level navigation, which a
  // fetch's CORS cannot stop): the cookie stays home, and the request is 403.
  const formNav = evil.waitForResponse((r) => r.url() === BASE + '/v1/browser/logout');
  await evil.evaluate((base) => {
    const f = document.createElement('form');
    f.method = 'POST';
    f.action = base + '/v1/browser/logout';
    document.body.append(f);
    f.submit();
  }, BASE);
  assert.equal((await formNav).status(), 403);
  await evil.close();
  const r3 = await pa.waitForResponse((r) => isRefresh(r) && r.status() === 200);
  assert.equal((await meWith((await r3.json()).access_token)).status, 200);
  ok('another site cannot log in, refresh or log out through the cookie (CORS refuses, the form post is 403); the session still works');
  const noHeader = await pa.evaluate(async () => {
    const r = await fetch('/v1/browser/refresh', { method: 'POST', credentials: 'same-origin' });
    return { status: r.status, error: (await r.json()).error };
  });
  assert.deepEqual(noHeader, { status: 403, error: 'forbidden' });
  await pa.waitForResponse((r) => isRefresh(r) && r.status() === 200);
  ok('a same-origin request without X-Requested-With is 403 forbidden; the session still refreshes');

  // ---- change the password: the other browser is signed out ----
  await audit(pa, 'me', true);
  await pa.fill('#password-current', 'not the password');
  await pa.fill('#password-new', PW2);
  await pa.click('#password-form button[type=submit]');
  await pa.locator('#password-current-error').filter({ hasText: 'not your current password' }).waitFor();
  ok('change password: a wrong current password (401) is said next to its field');
  await pa.fill('#password-current', PW1);
  const pwReq = pa.waitForRequest((r) => r.url() === BASE + '/v1/password');
  const pwRes = pa.waitForResponse((r) => r.url() === BASE + '/v1/password');
  await pa.click('#password-form button[type=submit]');
  assert.notEqual((await pwReq).headers().authorization, 'Bearer ' + token1, 'the page used its first access token again');
  assert.equal((await pwRes).status(), 204);
  await pa.locator('#password-done').waitFor();
  ok('change password (the page works long after its first access token expired)');
  await pb.locator('#me-signed-out').waitFor();
  assert.ok(await pb.locator('#me-account').isHidden());
  await noTokenInStorage(pb, 'me, signed out');
  await audit(pb, 'me-signed-out');
  await until('the session list to show this session alone', async () => (await pa.locator('#me-sessions li').count()) === 1);
  assert.ok(await pa.locator('#me-account').isVisible());
  ok('the other browser\'s session ended: it shows signed out; this one lists itself alone');
  await b.close();

  // ---- forgot, reset from the mail ----
  const c = await newContext();
  const pc = await c.newPage();
  await pc.goto('/account/forgot');
  await noTokenInStorage(pc, 'forgot');
  await audit(pc, 'forgot');
  await pc.fill('#forgot-email', EMAIL);
  await pc.click('#forgot-form button[type=submit]');
  await pc.locator('#forgot-done').waitFor();
  const resetLink = await mailLink(EMAIL, 'reset');
  await pc.goto(resetLink);
  await pc.locator('#reset-form .with-token').waitFor();
  assert.ok(!pc.url().includes('token='));
  await noTokenInStorage(pc, 'reset');
  await audit(pc, 'reset');
  await pc.fill('#reset-password', PW3);
  await pc.click('#reset-form button[type=submit]');
  await pc.locator('#reset-done').waitFor();
  ok('forgot, then reset with the link from the mail');
  await pa.locator('#me-signed-out').waitFor();
  ok('the reset ended the first browser\'s session too: it shows signed out');

  // ---- sign in with the new password, log out: the old cookie is dead ----
  await pa.goto('/account/signin');
  await pa.fill('#signin-email', EMAIL);
  await pa.fill('#signin-password', PW2);
  await pa.click('#signin-form button[type=submit]');
  await pa.locator('#signin-form-error').filter({ hasText: 'not right' }).waitFor();
  await pa.fill('#signin-password', PW3);
  await pa.click('#signin-form button[type=submit]');
  await pa.waitForURL(BASE + '/account/me');
  await pa.locator('#me-account').waitFor();
  ok('the password before the reset no longer works; the new one does');
  const saved = (await cookieOf(a)).value;
  const out = pa.waitForResponse((r) => r.url() === BASE + '/v1/browser/logout');
  await pa.click('#me-logout');
  assert.equal((await out).status(), 204);
  await pa.waitForURL(BASE + '/account/signin');
  await pa.locator('#signin-notice').filter({ hasText: 'signed out' }).waitFor();
  assert.equal(await cookieOf(a), undefined, 'the cookie is still in the browser');
  const replay = await raw('POST', BASE + '/v1/browser/refresh', { 'X-Requested-With': 'accounts', Cookie: '__Host-accounts_rt=' + saved });
  assert.equal(replay.status, 401);
  assert.equal(JSON.parse(replay.body).error, 'invalid_grant');
  await audit(pa, 'signin', false);
  ok('log out: the cookie is cleared, and the saved cookie replayed to /v1/browser/refresh is 401 invalid_grant');

  // ---- change the address, confirm from the new one, deny from the old one ----
  // The two "password changed" notices (the change, the reset) carry a
  // "this wasn't me" link too: set them aside.
  await skipMails(EMAIL, 'deny', 2);
  const MOVED = 'moved-' + EMAIL;
  await pa.fill('#signin-email', EMAIL);
  await pa.fill('#signin-password', PW3);
  await pa.click('#signin-form button[type=submit]');
  await pa.waitForURL(BASE + '/account/me');
  await pa.locator('#me-account').waitFor();
  await pa.fill('#change-email-new', MOVED);
  await pa.fill('#change-email-password', 'not the password');
  await pa.click('#change-email-form button[type=submit]');
  await pa.locator('#change-email-password-error').filter({ hasText: 'not your current password' }).waitFor();
  await pa.fill('#change-email-password', PW3);
  await pa.click('#change-email-form button[type=submit]');
  await pa.locator('#change-email-done').waitFor();
  ok('change email: a wrong password is said next to its field; then the confirmation is on its way');
  await pc.goto(await mailLink(MOVED, 'email'));
  await pc.locator('#email-form .with-token').waitFor();
  assert.ok(!pc.url().includes('token='));
  await noTokenInStorage(pc, 'email');
  await audit(pc, 'email-link');
  await pc.click('#email-form button[type=submit]');
  await pc.locator('#email-done').waitFor();
  await pa.reload();
  await pa.locator('#me-account').waitFor();
  assert.equal(await pa.textContent('#me-email'), MOVED);
  ok('confirm the email change with the link mailed to the new address; the account page shows it');
  await pc.goto(await mailLink(EMAIL, 'deny'));
  await pc.locator('#deny-form button:not([disabled])').waitFor();
  assert.ok(!pc.url().includes('token='));
  await pc.click('#deny-form button[type=submit]');
  await pc.locator('#deny-done').waitFor();
  await pa.locator('#me-signed-out').waitFor();
  const after = await raw('POST', BASE + '/v1/login', { 'Content-Type': 'application/json' }, JSON.stringify({ email: EMAIL, password: PW3 }));
  assert.equal(after.status, 401, 'the password still works after "this wasn\'t me"');
  await mailLink(EMAIL, 'reset'); // the reset mail goes to the restored, old address
  const codes = lastMailText.match(/(?<![0-9])[0-9]{8}(?![0-9])/g);
  assert.equal(codes && codes.length, 1, 'the reset mail holds one 8-digit code');
  ok('"this wasn\'t me" from the old address\'s notice: every session ends (the page shows signed out), the password stops working, a reset mail goes to the old address');

  // ---- reset with the code instead of the link ----
  await pc.goto('/account/reset');
  assert.equal(await pc.getAttribute('#reset-code', 'autocomplete'), 'one-time-code');
  await pc.fill('#reset-email', EMAIL);
  await pc.fill('#reset-code', '00000000');
  await pc.fill('#reset-password', PW1);
  await pc.click('#reset-form button[type=submit]');
  await pc.locator('#reset-form-error').filter({ hasText: 'does not work any more' }).waitFor();
  await pc.fill('#reset-code', codes[0]);
  await pc.click('#reset-form button[type=submit]');
  await pc.locator('#reset-done').waitFor();
  await pa.goto('/account/signin');
  await pa.fill('#signin-email', EMAIL);
  await pa.fill('#signin-password', PW1);
  await pa.click('#signin-form button[type=submit]');
  await pa.waitForURL(BASE + '/account/me');
  await pa.locator('#me-account').waitFor();
  assert.equal(await pa.textContent('#me-email'), EMAIL);
  ok('reset with the address and the 8-digit code from the mail (a wrong code is explained); signed in again at the old address');

  // ---- end another session from the list; then sign out everywhere ----
  const d = await newContext();
  const pd = await d.newPage();
  await pd.goto('/account/signin');
  await pd.fill('#signin-email', EMAIL);
  await pd.fill('#signin-password', PW1);
  await pd.click('#signin-form button[type=submit]');
  await pd.waitForURL(BASE + '/account/me');
  await pd.locator('#me-account').waitFor();
  await pa.reload();
  const other = pa.locator('#me-sessions li:not([data-current])');
  await until('the other browser in the list', async () => (await other.count()) === 1);
  await other.getByRole('button', { name: 'End this session' }).click();
  await pa.locator('#me-status').filter({ hasText: 'has ended' }).waitFor();
  await pd.locator('#me-signed-out').waitFor();
  assert.equal(await pa.locator('#me-sessions li').count(), 1);
  ok('end another session from the list: that browser shows signed out');
  await pa.click('#me-logout-all');
  await pa.locator('#me-signed-out').waitFor();
  assert.equal(await cookieOf(a), undefined, 'the cookie outlived "sign out everywhere"');
  ok('sign out everywhere: signed out, the cookie cleared');
  await d.close();

  // ---- what the API says, in words (answers made up by the test) ----
  const answers = [
    [429, { 'Retry-After': '120' }, 'too_many_requests', 'Too many attempts. Try again in 2 minutes.'],
    [503, { 'Retry-After': '1' }, 'service_unavailable', 'The service is busy right now. Try again in 1 second.'],
    [403, {}, 'email_not_verified', 'Verify your email address first'],
    [0, {}, '', 'We could not reach the service'],
  ];
  await pc.goto('/account/signin');
  for (const [status, headers, error, said] of answers) {
    await pc.route(BASE + '/v1/browser/login', (route) => (status === 0 ? route.abort() : route.fulfill({
      status, headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify({ error, error_description: 'made up by the test' }) })));
    await pc.fill('#signin-email', EMAIL);
    await pc.fill('#signin-password', PW1);
    await pc.click('#signin-form button[type=submit]');
    await pc.locator('#signin-form-error').filter({ hasText: said }).waitFor();
    assert.equal(await pc.locator('#signin-resend').isVisible(), error === 'email_not_verified');
    await pc.unroute(BASE + '/v1/browser/login');
  }
  await audit(pc, 'signin-not-verified-offline');
  ok('429 (with how long to wait), 503, 403 email_not_verified (with a button to mail the link again) and no network are said in words');

  // ---- the pages not met on the way ----
  for (const [name, url] of [['email', '/account/email'], ['deny', '/account/deny'], ['verify-code', '/account/verify'],
    ['reset-code', '/account/reset'], ['not-found', '/account/no-such-page']]) {
    await pc.goto(url);
    await noTokenInStorage(pc, name);
    await audit(pc, name);
  }
  await pc.goto('/account/email#token=' + 'A'.repeat(43));
  await pc.click('#email-form button[type=submit]');
  await pc.locator('#email-form-error').filter({ hasText: 'does not work any more' }).waitFor();
  await pc.goto('/account/deny#token=' + 'A'.repeat(43));
  await pc.locator('#deny-form button:not([disabled])').waitFor();
  await audit(pc, 'deny-link');
  ok('a dead link\'s token is explained (401 invalid_grant)');
  await a.close();
  await c.close();
  console.log('audited: ' + audited.join(', '));
  console.log('all ok');
} finally {
  await browser.close();
  attacker.close();
}
