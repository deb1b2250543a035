// A real OpenID Connect provider for Warden's tests (node-oidc-provider).
//
// Usage: node provider.mjs '<config json>'
//   config: { "audience": "warden",
//             "clients": [{ "client_id": "...", "client_secret": "...",
//                           "groups": ["..."], "email": "..." }],
//             "web_clients": [{ "client_id": "...", "client_secret": "...",
//                               "redirect_uri": "http://127.0.0.1:PORT/auth/callback" }],
//             "accounts": { "dana": { "email": "...", "groups": ["dba"] } } }
//
// `web_clients` log people in with the authorization code flow (PKCE) through
// the provider's own login and consent pages (devInteractions: any password);
// the ID token carries the account's `email` and `groups`.
//
// Listens on a random 127.0.0.1 port and prints one line of JSON,
// {"issuer": "http://127.0.0.1:PORT"}, once it accepts requests.
// Access tokens from the client_credentials grant are RS256 JWTs for the
// resource `audience`, carrying `groups` (and `email` when given).

import http from 'node:http';
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2] ?? '{}');
const audience = config.audience ?? 'warden';
const clients = config.clients ?? [];
const webClients = config.web_clients ?? [];
const accounts = config.accounts ?? {};
const byId = new Map(clients.map((c) => [c.client_id, c]));

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const signingKey = { ...(await exportJWK(privateKey)), kid: 'test-rs256', alg: 'RS256', use: 'sig' };

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })).concat(webClients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['authorization_code'],
      redirect_uris: [c.redirect_uri],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }))),
    jwks: { keys: [signingKey] },
    claims: { openid: ['sub'], email: ['email'], profile: ['groups'] },
    // Scope claims go into the ID token itself (the UI reads only that).
    conformIdTokenClaims: false,
    findAccount: async (_ctx, id) => {
      const account = accounts[id];
      if (!account) return undefined;
      return {
        accountId: id,
        claims: async () => ({ sub: id, email: account.email, groups: account.groups ?? [] }),
      };
    },
    features: {
      devInteractions: { enabled: webClients.length > 0 },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Resource indicators must be absolute URIs; the token's `aud` is `audience`.
        defaultResource: async () => 'urn:warden:test-resource',
        useGrantedResource: async () => true,
        getResourceServerInfo: async () => ({
          scope: 'read',
          audience,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    extraTokenClaims: async (_ctx, token) => {
      const client = byId.get(token.clientId);
      if (!client) return undefined;
      const claims = { groups: client.groups ?? [] };
      if (client.email) claims.email = client.email;
      return claims;
    },
  });
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));
  server.on('request', provider.callback());
  console.log(JSON.stringify({ issuer }));
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
