// app.js: the one script of the account pages. It drives the forms with
// fetch to the JSON API of the same origin. The refresh token lives in the
// HttpOnly cookie of cookie mode (/v1/browser/*); the access token lives in
// a variable of this script only: never in localStorage, sessionStorage or
// a cookie script can read. Everything the API says is put in the page with
// textContent, never as HTML.
'use strict';

(() => {
  // ---- talking to the API ----

  // api sends one request and reads the answer; a network failure is status 0.
  async function api(method, path, opts = {}) {
    const headers = {};
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    if (opts.token) headers.Authorization = 'Bearer ' + opts.token;
    if (opts.browser) headers['X-Requested-With'] = 'accounts';
    let res;
    try {
      res = await fetch(path, {
        method, headers, credentials: 'same-origin', cache: 'no-store', redirect: 'error',
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      });
    } catch {
      return { status: 0, data: null, retryAfter: 0 };
    }
    let data = null;
    if ((res.headers.get('Content-Type') || '').startsWith('application/json')) {
      try { data = await res.json(); } catch { data = null; }
    }
    return { status: res.status, data, retryAfter: parseInt(res.headers.get('Retry-After') || '0', 10) || 0 };
  }

  function code(r) { return (r.data && r.data.error) || ''; }

  function wait(seconds) {
    if (seconds < 60) return seconds === 1 ? '1 second' : seconds + ' seconds';
    const m = Math.ceil(seconds / 60);
    return m === 1 ? '1 minute' : m + ' minutes';
  }

  // describe turns an answer into words for people: one for the form and
  // one per field. ctx holds what a status means on this form.
  function describe(r, ctx = {}) {
    const out = { form: '', fields: {}, notVerified: false };
    const c = code(r);
    if (r.status === 0) {
      out.form = 'We could not reach the service. Check your connection and try again.';
    } else if (r.status === 400 && r.data && r.data.fields) {
      for (const [name, text] of Object.entries(r.data.fields)) out.fields[name] = text;
      if (ctx.fieldsForm) out.form = ctx.fieldsForm;
    } else if (r.status === 400) {
      out.form = 'Something in the form is not right. Check it and try again.';
    } else if (r.status === 401 && c === 'invalid_credentials') {
      if (ctx.wrongPasswordField) out.fields[ctx.wrongPasswordField] = 'This is not your current password.';
      else out.form = 'The email address or the password is not right.';
    } else if (r.status === 401 && c === 'invalid_grant') {
      out.form = ctx.invalidGrant || 'This link or code does not work any more: it was used already, or it has expired. Ask for a new one.';
    } else if (r.status === 401) {
      out.form = 'You are signed out. Sign in again.';
    } else if (r.status === 403 && c === 'email_not_verified') {
      out.form = 'Verify your email address first: open the link we mailed to you.';
      out.notVerified = true;
    } else if (r.status === 403) {
      out.form = 'The service refused this request. Reload the page and try again.';
    } else if (r.status === 409 && c === 'email_taken') {
      if (ctx.takenField) out.fields[ctx.takenField] = 'An account with this address exists already. Sign in, or reset its password.';
      else out.form = 'Another account uses this address now, so it cannot move to yours.';
    } else if (r.status === 429) {
      out.form = 'Too many attempts. Try again in ' + wait(Math.max(1, r.retryAfter)) + '.';
    } else if (r.status === 503) {
      out.form = 'The service is busy right now. Try again in ' + wait(Math.max(1, r.retryAfter || 5)) + '.';
    } else {
      out.form = 'Something went wrong on our side. Try again later.';
    }
    return out;
  }

  // ---- forms ----

  function $(id) { return document.getElementById(id); }

  function visible(el) { return !el.closest('[hidden]') && !el.disabled; }

  function labelOf(input) {
    const l = document.querySelector('label[for="' + input.id + '"]');
    return l ? l.textContent.trim() : input.name;
  }

  function clearErrors(form) {
    for (const el of form.querySelectorAll('.field-error, .form-error')) el.textContent = '';
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  }

  // showErrors puts each field's message next to its input (named as the
  // API names it) and the rest at the top of the form, then moves the focus
  // to the first field in error.
  function showErrors(form, d) {
    let first = null;
    const rest = [];
    for (const [name, text] of Object.entries(d.fields)) {
      const input = form.elements.namedItem(name);
      const err = input && input.id && $(input.id + '-error');
      if (input && err && visible(input)) {
        const msg = text.startsWith('This ') || text.startsWith('An ') ? text : labelOf(input) + ' ' + text + '.';
        err.textContent = msg;
        input.setAttribute('aria-invalid', 'true');
        first = first || input;
      } else if (name === 'token') {
        rest.push('Enter your address and the code from the mail, or open the link in the mail.');
      } else {
        rest.push(name.charAt(0).toUpperCase() + name.slice(1).replace(/_/g, ' ') + ' ' + text + '.');
      }
    }
    const formErr = form.querySelector('.form-error');
    const msgs = [d.form, ...rest].filter(Boolean);
    if (formErr) formErr.textContent = msgs.join(' ');
    if (first) first.focus();
  }

  function values(form) {
    const v = {};
    for (const el of form.elements) {
      if (el.name && el.tagName === 'INPUT' && visible(el)) v[el.name] = el.type === 'email' ? el.value.trim() : el.value;
    }
    return v;
  }

  // bindForm runs handler on submit, never letting the browser submit the
  // form itself, and marks the form busy meanwhile.
  function bindForm(form, handler) {
    if (!form) return;
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (form.getAttribute('aria-busy') === 'true') return;
      clearErrors(form);
      const btn = form.querySelector('button[type=submit]');
      form.setAttribute('aria-busy', 'true');
      if (btn) btn.disabled = true;
      try {
        await handler(values(form));
      } finally {
        form.removeAttribute('aria-busy');
        if (btn) btn.disabled = false;
      }
    });
  }

  // done hides the form and shows (and focuses) its success notice.
  function done(form, notice) {
    form.hidden = true;
    notice.hidden = false;
    notice.focus();
  }

  // fragmentToken reads the token of a mail link (#token=…) and takes it out
  // of the address bar and the history; nothing is spent until a click.
  function fragmentToken() {
    const token = new URLSearchParams(location.hash.slice(1)).get('token');
    if (location.hash) history.replaceState(null, '', location.pathname + location.search);
    return token || '';
  }

  // tokenForm shows the button alone when the link brought a token, else the
  // email-and-code fields.
  function tokenForm(form) {
    const token = fragmentToken();
    for (const el of form.querySelectorAll('.with-token')) el.hidden = !token;
    for (const el of form.querySelectorAll('.without-token')) el.hidden = !!token;
    return token;
  }

  function withToken(token, v) {
    if (token) {
      delete v.email;
      delete v.code;
      v.token = token;
    }
    return v;
  }

  // ---- the pages ----

  const pages = {};

  pages.signin = () => {
    const form = $('signin-form');
    const notice = $('signin-notice');
    if (location.hash === '#signed-out') {
      history.replaceState(null, '', location.pathname);
      notice.textContent = 'You are signed out.';
      notice.hidden = false;
    }
    bindForm(form, async (v) => {
      $('signin-resend').hidden = true;
      const r = await api('POST', '/v1/browser/login', { browser: true, body: { email: v.email, password: v.password } });
      if (r.status === 200) {
        location.assign('/account/me');
        return;
      }
      const d = describe(r);
      showErrors(form, d);
      if (d.notVerified) $('signin-resend').hidden = false;
      if (r.status === 401) form.elements.namedItem('password').focus();
    });
    $('signin-resend-button').addEventListener('click', async () => {
      const email = form.elements.namedItem('email').value.trim();
      const r = await api('POST', '/v1/email/verification', { body: { email } });
      clearErrors(form);
      if (r.status === 202) {
        $('signin-resend').hidden = true;
        notice.textContent = 'We sent a new verification link to ' + email + '.';
        notice.hidden = false;
      } else {
        showErrors(form, describe(r));
      }
    });
  };

  pages.signup = () => {
    const form = $('signup-form');
    bindForm(form, async (v) => {
      const r = await api('POST', '/v1/signup', { body: { email: v.email, password: v.password } });
      if (r.status === 201) {
        $('signup-done-email').textContent = (r.data && r.data.email) || v.email;
        done(form, $('signup-done'));
        return;
      }
      showErrors(form, describe(r, { takenField: 'email' }));
    });
  };

  pages.forgot = () => {
    const form = $('forgot-form');
    bindForm(form, async (v) => {
      const r = await api('POST', '/v1/password/forgot', { body: { email: v.email } });
      if (r.status === 202) done(form, $('forgot-done'));
      else showErrors(form, describe(r));
    });
  };

  pages.reset = () => {
    const form = $('reset-form');
    const token = tokenForm(form);
    bindForm(form, async (v) => {
      const r = await api('POST', '/v1/password/reset', { body: withToken(token, v) });
      if (r.status === 204) done(form, $('reset-done'));
      else showErrors(form, describe(r));
    });
  };

  pages.verify = () => {
    const form = $('verify-form');
    const token = tokenForm(form);
    bindForm(form, async (v) => {
      const r = await api('POST', '/v1/email/verify', { body: withToken(token, v) });
      if (r.status === 204) done(form, $('verify-done'));
      else showErrors(form, describe(r));
    });
  };

  pages.email = () => {
    const form = $('email-form');
    const token = tokenForm(form);
    bindForm(form, async (v) => {
      const r = await api('POST', '/v1/email/change/confirm', { body: withToken(token, v) });
      if (r.status === 204) done(form, $('email-done'));
      else showErrors(form, describe(r));
    });
  };

  pages.deny = () => {
    const form = $('deny-form');
    const token = fragmentToken();
    if (!token) {
      form.querySelector('.form-error').textContent = 'Open this page from the link in the mail: it carries what the button needs.';
      form.querySelector('button').disabled = true;
      return;
    }
    bindForm(form, async () => {
      const r = await api('POST', '/v1/account/deny', { body: { token } });
      if (r.status === 204) done(form, $('deny-done'));
      else showErrors(form, describe(r));
    });
  };

  pages.me = () => {
    let access = null; // the access token: this variable is its only home
    let timer = 0;
    let refreshing = null;
    let me = null;
    const status = $('me-status');

    function say(text) { status.textContent = text; }

    function signedOut() {
      access = null;
      clearTimeout(timer);
      $('me-account').hidden = true;
      say('');
      const box = $('me-signed-out');
      if (box.hidden) {
        box.hidden = false;
        box.focus();
      }
    }

    // refreshAt renews the access token a little before it expires: a third
    // of its lifetime early, at most a minute.
    function refreshAt(expiresIn) {
      clearTimeout(timer);
      const early = Math.min(60, Math.max(1, expiresIn / 3));
      timer = setTimeout(refresh, Math.max(1, expiresIn - early) * 1000);
    }

    // refresh gets a new access token with the cookie, once at a time.
    function refresh() {
      if (!refreshing) {
        refreshing = (async () => {
          const r = await api('POST', '/v1/browser/refresh', { browser: true });
          if (r.status === 200 && r.data && r.data.access_token) {
            access = r.data.access_token;
            refreshAt(r.data.expires_in);
            return true;
          }
          access = null;
          clearTimeout(timer);
          if (r.status === 401) {
            signedOut();
          } else {
            // Not an answer about the session (offline, busy): try again later.
            say(describe(r).form);
            timer = setTimeout(refresh, Math.max(5, r.retryAfter) * 1000);
          }
          return false;
        })().finally(() => { refreshing = null; });
      }
      return refreshing;
    }

    // call is a bearer request that refreshes first when there is no token,
    // and once more on a 401 (the token expired or was cut off meanwhile).
    async function call(method, path, body) {
      if (!access && !(await refresh())) return null;
      let r = await api(method, path, { body, token: access });
      if (r.status === 401 && code(r) === 'invalid_token') {
        if (!(await refresh())) return null;
        r = await api(method, path, { body, token: access });
        if (r.status === 401 && code(r) === 'invalid_token') {
          signedOut();
          return null;
        }
      }
      return r;
    }

    const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
    const relFmt = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
    function when(iso) { return dateFmt.format(new Date(iso)); }
    function ago(iso) {
      const s = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
      if (Math.abs(s) < 60) return 'just now';
      if (Math.abs(s) < 3600) return relFmt.format(Math.round(s / 60), 'minute');
      if (Math.abs(s) < 86400) return relFmt.format(Math.round(s / 3600), 'hour');
      return relFmt.format(Math.round(s / 86400), 'day');
    }

    // device names a user agent the way people say it ("Firefox on Windows").
    function device(ua) {
      if (!ua) return 'Unknown device';
      const browser = [['Edg/', 'Edge'], ['OPR/', 'Opera'], ['Firefox/', 'Firefox'], ['HeadlessChrome/', 'Headless Chrome'],
        ['Chrome/', 'Chrome'], ['Safari/', 'Safari'], ['curl/', 'curl']].find(([k]) => ua.includes(k));
      const os = [['Android', 'Android'], ['iPhone', 'iPhone'], ['iPad', 'iPad'], ['CrOS', 'ChromeOS'], ['Windows', 'Windows'],
        ['Mac OS X', 'macOS'], ['Linux', 'Linux']].find(([k]) => ua.includes(k));
      if (browser && os) return browser[1] + ' on ' + os[1];
      if (browser) return browser[1];
      return ua.length > 40 ? ua.slice(0, 40) + '…' : ua;
    }

    function el(tag, cls, text) {
      const e = document.createElement(tag);
      if (cls) e.className = cls;
      if (text !== undefined) e.textContent = text;
      return e;
    }

    function renderMe() {
      $('me-email').textContent = me.email;
      $('me-verified').textContent = me.email_verified ? 'Yes' : 'Not yet';
      $('me-created').textContent = when(me.created_at);
      $('me-resend').hidden = !!me.email_verified;
      $('me-pending').hidden = !me.pending_email;
      $('me-pending-email').textContent = me.pending_email || '';
    }

    function renderSessions(list) {
      const ul = $('me-sessions');
      ul.replaceChildren();
      for (const s of list) {
        const li = el('li');
        li.dataset.session = s.id;
        if (s.current) li.dataset.current = 'true';
        const name = el('p', 'device', device(s.user_agent));
        name.id = 'session-' + s.id;
        if (s.current) name.append(' ', el('span', 'badge', 'this device'));
        li.append(name);
        li.append(el('p', 'meta', 'Last used ' + ago(s.last_used_at) + ' (' + when(s.last_used_at) + ')' + (s.ip ? ' from ' + s.ip : '')));
        li.append(el('p', 'meta', s.user_agent || 'No user agent was sent'));
        const btn = el('button', 'secondary', s.current ? 'Sign out here' : 'End this session');
        btn.type = 'button';
        btn.setAttribute('aria-describedby', name.id);
        btn.addEventListener('click', () => endSession(s, btn));
        li.append(btn);
        ul.append(li);
      }
    }

    async function load() {
      const [rm, rs] = await Promise.all([call('GET', '/v1/me'), call('GET', '/v1/sessions')]);
      if (!rm || !rs) return;
      if (rm.status !== 200 || rs.status !== 200) {
        say(describe(rm.status !== 200 ? rm : rs).form);
        return;
      }
      me = rm.data;
      renderMe();
      renderSessions(rs.data.sessions);
      $('me-account').hidden = false;
    }

    async function loadSessions() {
      const r = await call('GET', '/v1/sessions');
      if (!r) return;
      if (r.status === 200) renderSessions(r.data.sessions);
      else $('me-sessions-error').textContent = describe(r).form;
    }

    async function endSession(s, btn) {
      $('me-sessions-error').textContent = '';
      btn.disabled = true;
      const r = await call('DELETE', '/v1/sessions/' + encodeURIComponent(s.id));
      btn.disabled = false;
      if (!r) return;
      if (r.status === 204 || r.status === 404) {
        if (s.current) {
          await api('POST', '/v1/browser/logout', { browser: true });
          signedOut();
          return;
        }
        say('That session has ended.');
        await loadSessions();
        $('me-sessions-title').focus();
      } else {
        $('me-sessions-error').textContent = describe(r).form;
      }
    }

    $('me-sessions-title').tabIndex = -1;

    // Signed out only once the service says so: on a 503 or a lost
    // network the session (and its cookie) is still live, and saying
    // otherwise would leave the next person at this computer signed in.
    $('me-logout').addEventListener('click', async (ev) => {
      ev.target.disabled = true;
      $('me-logout-error').textContent = '';
      const r = await api('POST', '/v1/browser/logout', { browser: true });
      ev.target.disabled = false;
      if (r.status !== 204) {
        $('me-logout-error').textContent = 'You are still signed in: ' +
          (describe(r).form || 'the service could not sign you out.') + ' Press Sign out again.';
        return;
      }
      access = null;
      clearTimeout(timer);
      location.assign('/account/signin#signed-out');
    });

    $('me-logout-all').addEventListener('click', async (ev) => {
      ev.target.disabled = true;
      const r = await call('POST', '/v1/logout/all');
      ev.target.disabled = false;
      if (!r) return;
      if (r.status === 204) {
        await api('POST', '/v1/browser/logout', { browser: true });
        signedOut();
      } else {
        $('me-sessions-error').textContent = describe(r).form;
      }
    });

    $('me-resend-button').addEventListener('click', async () => {
      const r = await call('POST', '/v1/email/verification');
      if (!r) return;
      say(r.status === 202 ? 'We sent a new verification link to ' + me.email + '.' : describe(r).form);
    });

    const pwForm = $('password-form');
    bindForm(pwForm, async (v) => {
      $('password-done').hidden = true;
      const r = await call('POST', '/v1/password', { current_password: v.current_password, new_password: v.new_password });
      if (!r) return;
      if (r.status === 204) {
        pwForm.reset();
        $('password-done').hidden = false;
        await loadSessions();
      } else {
        showErrors(pwForm, describe(r, { wrongPasswordField: 'current_password' }));
      }
    });

    const emailForm = $('change-email-form');
    bindForm(emailForm, async (v) => {
      $('change-email-done').hidden = true;
      const r = await call('POST', '/v1/email/change', { new_email: v.new_email, current_password: v.current_password });
      if (!r) return;
      if (r.status === 202) {
        emailForm.reset();
        $('change-email-done').hidden = false;
      } else {
        showErrors(emailForm, describe(r, { wrongPasswordField: 'current_password' }));
      }
    });

    say('Loading your account…');
    refresh().then((ok) => (ok ? load() : null)).then(() => { if (!$('me-account').hidden) say(''); });
  };

  // A page restored from the back-forward cache would show what it showed
  // before (after a sign-out, say): load it afresh instead.
  window.addEventListener('pageshow', (ev) => { if (ev.persisted) location.reload(); });

  const run = pages[document.body.dataset.page];
  if (run) run();
})();
