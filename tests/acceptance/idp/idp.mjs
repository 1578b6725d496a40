// The OpenID Connect provider of the acceptance suite (tests/sso.rs): the
// certified `oidc-provider` library with its own login and consent pages,
// listening on 127.0.0.1 behind a Caddy that terminates TLS with its
// internal CA (the issuer is https://localhost:PORT).
//
// Usage: node idp.mjs CONFIG.json
// CONFIG: {
//   "issuer": "https://localhost:PORT",   // as Synapse is told
//   "port": 12345,                          // plain HTTP on 127.0.0.1 (Caddy's upstream)
//   "clients": [{"client_id", "client_secret", "redirect_uris": [...]}],
//   "accounts": [{"sub", "username", "password", "name", "email", "groups": [...]}]
// }
// Every request is logged on standard output as one line (method, path,
// status); tokens and secrets are never logged.

import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: 'acceptance' };

const accounts = new Map(config.accounts.map((a) => [a.sub, a]));

const provider = new Provider(config.issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: c.redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  // The claims Synapse maps (id_token), by scope.
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const a = accounts.get(sub);
    if (!a) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          name: a.name,
          preferred_username: a.username,
          email: a.email,
          email_verified: true,
          groups: a.groups,
        };
      },
    };
  },
});
// Behind Caddy: trust its X-Forwarded-Proto/Host.
provider.proxy = true;

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const page = (title, body) => `<!doctype html>
<html><head><meta charset="utf-8"><title>${escape(title)}</title></head>
<body><h1>${escape(title)}</h1>${body}</body></html>`;

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 16384) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function loginPage(uid, clientId, error) {
  return page('Sign in', `
${error ? `<p class="error">${escape(error)}</p>` : ''}
<p>to continue to ${escape(clientId)}</p>
<form method="post" action="/interaction/${escape(uid)}/login">
  <input name="username" autocomplete="username">
  <input name="password" type="password" autocomplete="current-password">
  <button type="submit">Sign in</button>
</form>`);
}

function consentPage(uid, clientId, scopes) {
  return page('Authorize', `
<p>${escape(clientId)} asks for: ${escape(scopes.join(' '))}</p>
<form method="post" action="/interaction/${escape(uid)}/confirm">
  <button type="submit">Continue</button>
</form>`);
}

// One line per request: method, path (no query: it holds codes and state), status.
provider.use(async (ctx, next) => {
  await next();
  console.log(`${ctx.method} ${ctx.path} ${ctx.status}`);
});

// The login and consent pages (oidc-provider leaves them to the embedder).
provider.use(async (ctx, next) => {
  const m = ctx.path.match(/^\/interaction\/([A-Za-z0-9_-]+)(\/login|\/confirm)?$/);
  if (!m) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { uid, prompt, params } = details;
  ctx.set('Cache-Control', 'no-store');
  ctx.type = 'html';
  if (ctx.method === 'GET' && !m[2]) {
    ctx.body = prompt.name === 'login'
      ? loginPage(uid, params.client_id)
      : consentPage(uid, params.client_id, String(params.scope || '').split(' '));
    return undefined;
  }
  if (ctx.method === 'POST' && m[2] === '/login') {
    const form = await readForm(ctx.req);
    const account = [...accounts.values()].find((a) => a.username === form.get('username'));
    if (!account || account.password !== form.get('password')) {
      ctx.status = 401;
      ctx.body = loginPage(uid, params.client_id, 'Wrong user name or password');
      return undefined;
    }
    const to = await provider.interactionResult(ctx.req, ctx.res,
      { login: { accountId: account.sub } }, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(to);
    return undefined;
  }
  if (ctx.method === 'POST' && m[2] === '/confirm') {
    await readForm(ctx.req);
    const { prompt: { details: missing }, session: { accountId } } = details;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId, clientId: params.client_id });
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    if (missing.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    const to = await provider.interactionResult(ctx.req, ctx.res,
      { consent: details.grantId ? {} : { grantId } }, { mergeWithLastSubmission: true });
    ctx.status = 303;
    ctx.redirect(to);
    return undefined;
  }
  ctx.status = 405;
  ctx.body = page('Not allowed', '');
  return undefined;
});

provider.on('server_error', (ctx, err) => console.log(`server_error ${err.message}`));
provider.on('grant.error', (ctx, err) => console.log(`grant.error ${err.name}: ${err.message}`));

provider.listen(config.port, '127.0.0.1', () => {
  console.log(`listening on 127.0.0.1:${config.port} as ${config.issuer}`);
});
