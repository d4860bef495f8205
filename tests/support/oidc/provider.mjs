// A real OpenID Connect provider for the SSO tests (npm `oidc-provider`, OpenID Certified),
// listening on 127.0.0.1 only. Started and stopped by tests/support/oidc_provider.py.
//
// Configuration comes from the environment:
//   OIDC_TEST_PORT              port to listen on (127.0.0.1)
//   OIDC_TEST_CLIENT_ID / _SECRET   the one confidential client
//   OIDC_TEST_REDIRECT_URIS     comma-separated redirect URIs of the client
//   OIDC_TEST_POST_LOGOUT_URIS  comma-separated post-logout redirect URIs
//   OIDC_TEST_ACCOUNTS          path of a JSON file {login: {sub, email, ..., groups}}
//
// devInteractions is on: the login page accepts any password; the login typed in picks the
// account in OIDC_TEST_ACCOUNTS. That file is re-read on every lookup, so tests can change
// a person's claims (e.g. their groups) between two sign-ins.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) {
    console.error(`missing ${name}`);
    process.exit(2);
  }
  return value;
};
const list = (value) => value.split(',').map((s) => s.trim()).filter(Boolean);

const port = Number(env('OIDC_TEST_PORT'));
const issuer = `http://127.0.0.1:${port}`;
const accountsFile = env('OIDC_TEST_ACCOUNTS');

function readAccounts() {
  return JSON.parse(readFileSync(accountsFile, 'utf8'));
}

const escape = (value) => String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;

const configuration = {
  clients: [{
    client_id: env('OIDC_TEST_CLIENT_ID'),
    client_secret: env('OIDC_TEST_CLIENT_SECRET'),
    redirect_uris: list(env('OIDC_TEST_REDIRECT_URIS')),
    post_logout_redirect_uris: list(env('OIDC_TEST_POST_LOGOUT_URIS', '')),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'given_name', 'family_name'],
    groups: ['groups'],
  },
  async findAccount(ctx, id) {
    const account = readAccounts()[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        // Re-read at claim time too: a change made after sign-in shows in the next tokens.
        const current = readAccounts()[id] ?? account;
        return { sub: id, ...current };
      },
    };
  },
  // The app is a first-party client (as in a company IdP with admin consent): no consent
  // screen; every requested scope is granted.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '));
    await grant.save();
    return grant;
  },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.body = page('Sign out', `${form}<h1>Sign out of the test provider?</h1>
          <button type="submit" form="op.logoutForm" value="yes" name="logout" id="logout-yes">Yes, sign me out</button>
          <button type="submit" form="op.logoutForm" id="logout-no">No</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = page('Signed out', '<h1 id="signed-out">Signed out of the test provider</h1>');
      },
    },
  },
  cookies: { keys: ['assistant-test-oidc-cookie-key-not-secret'] },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1 id="op-error">${escape(out.error)}</h1><p>${escape(out.error_description)}</p>`);
  },
};

const provider = new Provider(issuer, configuration);
const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
