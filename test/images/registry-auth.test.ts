import test from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { createSign, randomBytes, X509Certificate } from 'node:crypto';
import { TestDaemon, exec } from '../helpers/daemon';
import { TestRegistry, freePort } from '../helpers/registry';
import { HttpTransport } from '../../src/images/registry/transport';
import type { BerthError } from '../../volumes/shared/errors';

/**
 * Registries that want credentials: htpasswd basic auth over TLS with a CA the test makes
 * and installs where Docker reads it (/etc/docker/certs.d/127.0.0.1:PORT/ca.crt, removed
 * after), and token auth with a small token server that signs JWTs with a test key, as
 * Docker Hub's flow does. `docker login` goes to POST /auth; the docker CLI's
 * X-Registry-Auth and berth's config.json credentials are honoured; the password never
 * shows in berthd's log.
 */

const USER = 'berthtester';
const PASSWORD = `pw-${randomBytes(6).toString('hex')}`;

let d: TestDaemon;
let work: string;

test.before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-regauth-'));
  d = await TestDaemon.start();
});

test.after.always(async () => {
  await d?.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

/** A CA, and a certificate for 127.0.0.1 it signs. */
async function makeCerts(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const f = (n: string) => path.join(dir, n);
  await exec('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=berth test CA', '-keyout', f('ca.key'), '-out', f('ca.crt')]);
  await exec('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', f('server.key'), '-out', f('server.csr')]);
  fs.writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n');
  await exec('openssl', ['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f('ext.cnf'), '-out', f('server.crt')]);
  return { ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key') };
}

test.serial('htpasswd over TLS: docker login through POST /auth, push and pull with the credentials, none of them in the log', async (t) => {
  const dir = path.join(work, 'tls');
  fs.mkdirSync(dir);
  const certs = await makeCerts(dir);
  const htpasswd = path.join(dir, 'htpasswd');
  await exec('htpasswd', ['-Bbc', htpasswd, USER, PASSWORD]);
  const reg = await TestRegistry.start({ htpasswd, tls: { cert: certs.cert, key: certs.key } });
  const certsDir = `/etc/docker/certs.d/${reg.host}`;
  // Leave /etc as found: remove the parents this test makes, not ones that were there.
  const made = ['/etc/docker', '/etc/docker/certs.d'].filter((p) => !fs.existsSync(p));
  t.teardown(async () => {
    fs.rmSync(certsDir, { recursive: true, force: true });
    for (const p of made.reverse()) fs.rmSync(p, { recursive: true, force: true });
    await reg.stop();
  });

  // A registry on loopback is insecure, as in Docker: HTTPS without verifying its
  // certificate, so the pull gets as far as the registry's own answer (no credentials).
  const before = await d.docker(['pull', `${reg.host}/nothing/here:v1`]);
  t.not(before.code, 0);
  t.regex(before.stderr, /unauthorized|authentication required/i);
  t.notRegex(before.stderr, /certificate/i);
  // The transport as an endpoint that is not insecure sees it: unverified without the CA,
  // verified with it; as an insecure one (--insecure-registry) it goes over HTTPS unverified.
  const secure = new HttpTransport({ domain: reg.host, host: reg.host, insecure: false, tls: {} });
  t.teardown(() => secure.close());
  const refused = await t.throwsAsync(secure.base(), { code: 'UNAVAILABLE' });
  t.regex(String((refused as BerthError).hint), /certs\.d/);
  const withCA = new HttpTransport({ domain: reg.host, host: reg.host, insecure: false, tls: { ca: [fs.readFileSync(certs.ca)] } });
  t.teardown(() => withCA.close());
  t.is(await withCA.base(), `https://${reg.host}`);
  const insecure = new HttpTransport({ domain: reg.host, host: reg.host, insecure: true, tls: {} });
  t.teardown(() => insecure.close());
  t.is(await insecure.base(), `https://${reg.host}`, 'HTTPS, not the plain HTTP fallback');

  fs.mkdirSync(certsDir, { recursive: true });
  fs.copyFileSync(certs.ca, path.join(certsDir, 'ca.crt'));

  const bad = await d.docker(['login', reg.host, '-u', USER, '--password-stdin'], { input: 'wrong-password\n' });
  t.not(bad.code, 0);
  t.regex(bad.stderr, /unauthorized/i);

  const login = await d.docker(['login', reg.host, '-u', USER, '--password-stdin'], { input: PASSWORD + '\n' });
  t.is(login.code, 0, login.stderr);
  t.regex(login.stdout, /Login Succeeded/);

  const name = `${reg.host}/private/bb:v1`;
  t.is((await d.docker(['tag', 'busybox', name])).code, 0);
  const push = await d.docker(['push', name]);
  t.is(push.code, 0, push.stderr);
  t.regex(push.stdout, /digest: sha256:/);
  // The registry holds it: skopeo reads it with the same credentials over verified TLS.
  const inspect = await exec('skopeo', ['inspect', '--cert-dir', certsDir, '--creds', `${USER}:${PASSWORD}`, `docker://${name}`]);
  t.is(JSON.parse(inspect.stdout).Layers.length, 1);

  t.is((await d.docker(['rmi', name])).code, 0);
  // berth reads the docker CLI's config.json: after docker logout it has no credentials.
  t.is((await d.docker(['logout', reg.host])).code, 0);
  const anon = await d.berth(['pull', name]);
  t.not(anon.code, 0, 'berth has no credentials for it now');
  t.regex(anon.stderr, /unauthorized|berth login/);

  // berth login writes the docker CLI's config.json; berth pull reads it.
  const bl = await d.berth(['login', reg.host, '-u', USER, '--password-stdin'], { input: PASSWORD + '\n' });
  t.is(bl.code, 0, bl.stderr);
  const cfg = JSON.parse(fs.readFileSync(path.join(d.env.DOCKER_CONFIG!, 'config.json'), 'utf8'));
  t.truthy(cfg.auths[reg.host]);
  const pull = await d.berth(['pull', name]);
  t.is(pull.code, 0, pull.stderr);
  const out = await d.docker(['run', '--rm', name, 'echo', 'over-tls']);
  t.is(out.stdout.trim(), 'over-tls');
  const logout = await d.berth(['logout', reg.host]);
  t.is(logout.code, 0);
  t.falsy(JSON.parse(fs.readFileSync(path.join(d.env.DOCKER_CONFIG!, 'config.json'), 'utf8')).auths[reg.host]);

  for (const secret of [PASSWORD, Buffer.from(`${USER}:${PASSWORD}`).toString('base64')]) t.false(d.log().includes(secret), 'berthd logged a credential');
  const inspectJson = (await d.docker(['inspect', name])).stdout;
  t.false(inspectJson.includes(PASSWORD));
});

/** Base64url without padding (JWT). */
const b64u = (b: Buffer | string) => Buffer.from(b).toString('base64url');

test.serial('token auth: a challenge sends berth to the token server, which it asks with the scope (access_token answers work too)', async (t) => {
  const dir = path.join(work, 'token');
  fs.mkdirSync(dir);
  // The key the token server signs with, and its certificate, which the registry trusts.
  await exec('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=berth token signer', '-keyout', path.join(dir, 'signer.key'), '-out', path.join(dir, 'signer.crt')]);
  const key = fs.readFileSync(path.join(dir, 'signer.key'));
  const certDer = new X509Certificate(fs.readFileSync(path.join(dir, 'signer.crt'))).raw;
  const port = await freePort();
  const asked: Array<{ scope: string[]; user?: string }> = [];
  let answerWith: 'token' | 'access_token' = 'token';
  const server = http.createServer((req, res) => {
    const u = new URL(req.url!, 'http://x');
    const authz = req.headers.authorization;
    let user: string | undefined;
    if (authz?.startsWith('Basic ')) {
      const [name, pass] = Buffer.from(authz.slice(6), 'base64').toString().split(':');
      if (name !== USER || pass !== PASSWORD) {
        res.writeHead(401).end();
        return;
      }
      user = name;
    }
    const scopes = u.searchParams.getAll('scope');
    asked.push({ scope: scopes, user });
    // Anyone may pull; only the user may push.
    const access = scopes.map((s) => {
      const [type, name, actions] = s.split(':');
      return { type, name, actions: actions.split(',').filter((a) => a === 'pull' || user) };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] };
    const claims = { iss: 'berth-test-issuer', sub: user ?? '', aud: u.searchParams.get('service'), exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
    const signing = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(claims))}`;
    const sig = createSign('RSA-SHA256').update(signing).sign(key);
    const token = `${signing}.${b64u(sig)}`;
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ [answerWith]: token, expires_in: 300, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const reg = await TestRegistry.start({
    token: { realm: `http://127.0.0.1:${port}/token`, service: 'berth-test-registry', issuer: 'berth-test-issuer', rootcertbundle: path.join(dir, 'signer.crt') },
  });
  t.teardown(async () => {
    server.close();
    await reg.stop();
  });

  const name = `${reg.host}/tok/bb:v1`;
  t.is((await d.docker(['tag', 'busybox', name])).code, 0);
  const anonPush = await d.berth(['push', name]);
  t.not(anonPush.code, 0, 'an anonymous token has no push access');

  const login = await d.docker(['login', reg.host, '-u', USER, '--password-stdin'], { input: PASSWORD + '\n' });
  t.is(login.code, 0, login.stderr);
  const push = await d.docker(['push', name]);
  t.is(push.code, 0, push.stderr);
  t.true(asked.some((a) => a.user === USER && a.scope.includes('repository:tok/bb:pull,push')), JSON.stringify(asked));

  t.is((await d.docker(['rmi', name])).code, 0);
  answerWith = 'access_token';
  t.is((await d.docker(['logout', reg.host])).code, 0);
  const pull = await d.berth(['pull', name]); // no credentials now: an anonymous token
  t.is(pull.code, 0, pull.stderr);
  t.true(asked.some((a) => !a.user && a.scope.includes('repository:tok/bb:pull')));
  t.false(d.log().includes(PASSWORD));
});
