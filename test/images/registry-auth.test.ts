import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { createSign, randomBytes, X509Certificate } from 'node:crypto';
import { TestDaemon, exec } from '../helpers/daemon';
import { TestRegistry, faultProxy, freePort } from '../helpers/registry';
import { HttpTransport } from '../../src/images/registry/transport';
import { RemoteRegistryService } from '../../src/client/registry';
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
/** Where the test credential helpers (docker-credential-berthstore, -berthhelper) live and keep their JSON stores and logs. */
let helperDir: string;

/**
 * A credential helper of the docker-credential-helpers protocol: `get` (server URL on
 * stdin, {ServerURL,Username,Secret} out, or "credentials not found" and exit 1), `store`
 * (that JSON on stdin), `erase` (server URL on stdin), `list`. It keeps NAME.json beside
 * itself, and logs each action and server (never a secret) to NAME.log.
 */
const HELPER = `#!/usr/bin/python3
import json, os, sys
name = os.path.basename(sys.argv[0])[len('docker-credential-'):]
here = os.path.dirname(os.path.abspath(sys.argv[0]))
path = os.path.join(here, name + '.json')
store = json.load(open(path)) if os.path.exists(path) else {}
action = sys.argv[1]
data = sys.stdin.read()
def save():
    json.dump(store, open(path, 'w'))
def log(server):
    open(os.path.join(here, name + '.log'), 'a').write(action + ' ' + server + '\\n')
if action == 'get':
    server = data.strip(); log(server)
    if server not in store:
        print('credentials not found in native keychain'); sys.exit(1)
    print(json.dumps({'ServerURL': server, 'Username': store[server]['Username'], 'Secret': store[server]['Secret']}))
elif action == 'store':
    c = json.loads(data); log(c['ServerURL'])
    store[c['ServerURL']] = {'Username': c['Username'], 'Secret': c['Secret']}; save()
elif action == 'erase':
    server = data.strip(); log(server)
    store.pop(server, None); save()
elif action == 'list':
    print(json.dumps({k: v['Username'] for k, v in store.items()}))
`;

function helperStore(name: string): Record<string, { Username: string; Secret: string }> {
  const p = path.join(helperDir, `${name}.json`);
  return fs.existsSync(p) ? JSON.parse(fs.readFileSync(p, 'utf8')) : {};
}

function helperLog(name: string): string {
  const p = path.join(helperDir, `${name}.log`);
  return fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : '';
}

test.before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-regauth-'));
  helperDir = path.join(work, 'bin');
  fs.mkdirSync(helperDir);
  for (const n of ['berthstore', 'berthhelper']) fs.writeFileSync(path.join(helperDir, `docker-credential-${n}`), HELPER, { mode: 0o755 });
  // The berth and docker CLIs this file runs find the helpers on PATH.
  process.env.PATH = `${helperDir}:${process.env.PATH}`;
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
  const certsDir = certsDirOf(t, reg);

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

  // Credential helpers (the docker-credential-helpers protocol): credsStore for every
  // registry, credHelpers per registry, which wins.
  const cfgPath = path.join(d.env.DOCKER_CONFIG!, 'config.json');
  const config = () => JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
  fs.writeFileSync(cfgPath, JSON.stringify({ ...config(), credsStore: 'berthstore' }));
  const outputs: string[] = [];
  const berth = async (args: string[], input?: string) => {
    const r = await d.berth(args, input === undefined ? {} : { input });
    outputs.push(r.stdout, r.stderr);
    return r;
  };
  t.is((await berth(['login', reg.host, '-u', USER, '--password-stdin'], PASSWORD + '\n')).code, 0);
  t.is(helperStore('berthstore')[reg.host]?.Secret, PASSWORD, 'berth login stored through credsStore');
  t.falsy(config().auths?.[reg.host]?.auth, 'not into auths');
  t.is((await d.docker(['rmi', name])).code, 0);
  const viaStore = await berth(['pull', name]);
  t.is(viaStore.code, 0, viaStore.stderr);
  const pushName = `${reg.host}/private/bb:helper`;
  t.is((await d.docker(['tag', name, pushName])).code, 0);
  const pushed = await berth(['push', pushName]);
  t.is(pushed.code, 0, pushed.stderr);
  t.true(helperLog('berthstore').includes(`get ${reg.host}`));

  // credHelpers names another helper for this registry: it wins over credsStore (a wrong
  // password there fails the pull), and login, pull and logout go through it.
  fs.writeFileSync(cfgPath, JSON.stringify({ ...config(), credHelpers: { [reg.host]: 'berthhelper' } }));
  fs.writeFileSync(path.join(helperDir, 'berthhelper.json'), JSON.stringify({ [reg.host]: { Username: USER, Secret: 'not-the-password' } }));
  t.is((await d.docker(['rmi', name])).code, 0);
  const wrong = await berth(['pull', name]);
  t.not(wrong.code, 0);
  t.regex(wrong.stderr, /unauthorized/);
  t.is((await berth(['login', reg.host, '-u', USER, '--password-stdin'], PASSWORD + '\n')).code, 0);
  t.is(helperStore('berthhelper')[reg.host]?.Secret, PASSWORD);
  const viaHelper = await berth(['pull', name]);
  t.is(viaHelper.code, 0, viaHelper.stderr);
  t.true(helperLog('berthhelper').includes(`get ${reg.host}`));
  t.is((await berth(['logout', reg.host])).code, 0);
  t.falsy(helperStore('berthhelper')[reg.host], 'logout erased through credHelpers');
  t.truthy(helperStore('berthstore')[reg.host], 'credsStore untouched');
  fs.writeFileSync(cfgPath, JSON.stringify({ ...config(), credHelpers: {} }));
  t.is((await berth(['logout', reg.host])).code, 0);
  t.falsy(helperStore('berthstore')[reg.host], 'logout erased through credsStore');
  for (const o of outputs) t.false(o.includes(PASSWORD), 'berth printed a credential');
  t.false(d.log().includes(PASSWORD));
  fs.writeFileSync(cfgPath, JSON.stringify({ ...config(), credsStore: undefined }));
});

test.serial('client certificates: a registry with http.tls.clientcas takes client.cert/client.key from certs.d; without them the pull fails saying so', async (t) => {
  const dir = path.join(work, 'mtls');
  fs.mkdirSync(dir);
  const certs = await makeCerts(dir);
  const f = (n: string) => path.join(dir, n);
  await exec('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=berth test client', '-keyout', f('client.key'), '-out', f('client.csr')]);
  fs.writeFileSync(f('client.cnf'), 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
  await exec('openssl', ['x509', '-req', '-in', f('client.csr'), '-CA', certs.ca, '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f('client.cnf'), '-out', f('client.cert')]);
  const reg = await TestRegistry.start({ tls: { cert: certs.cert, key: certs.key, clientcas: [certs.ca] } });
  const certsDir = certsDirOf(t, reg);
  fs.mkdirSync(certsDir, { recursive: true });
  fs.copyFileSync(certs.ca, path.join(certsDir, 'ca.crt'));
  const name = `${reg.host}/mtls/bb:v1`;

  const refused = await t.throwsAsync(new RemoteRegistryService(d.transport).pull(name), { code: 'UNAUTHENTICATED' });
  t.regex(String((refused as BerthError).hint), /client\.cert.*client\.key/);
  const cli = await d.berth(['pull', name]);
  t.not(cli.code, 0);
  t.regex(cli.stderr, /client certificate/);

  fs.copyFileSync(f('client.cert'), path.join(certsDir, 'client.cert'));
  fs.copyFileSync(f('client.key'), path.join(certsDir, 'client.key'));
  t.is((await d.docker(['tag', 'busybox', name])).code, 0);
  const push = await d.docker(['push', name]);
  t.is(push.code, 0, push.stderr);
  t.is((await d.docker(['rmi', name])).code, 0);
  const pull = await d.berth(['pull', name]);
  t.is(pull.code, 0, pull.stderr);
  const inspect = await exec('skopeo', ['inspect', '--cert-dir', certsDir, `docker://${name}`]);
  t.is(JSON.parse(inspect.stdout).Layers.length, 1);
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
  let expiresIn = 300;
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
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ [answerWith]: token, expires_in: expiresIn, issued_at: new Date().toISOString() }));
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
  // An image of its own (not busybox's config): a pull of it must fetch its blobs.
  t.is((await d.docker(['run', '--name', 'tokmaker', 'busybox', 'sh', '-c', 'echo tok > /tok'])).code, 0);
  t.is((await d.docker(['commit', 'tokmaker', name])).code, 0);
  await d.docker(['rm', 'tokmaker']);
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
  const id = (await d.images.inspect(name)).Id;

  // A token that expires within the pull (expires_in 1 s) is fetched again before the next
  // request, not sent stale: the pull succeeds, and the token server saw several requests.
  await d.images.remove(id, { force: true });
  expiresIn = 1;
  let from = asked.length;
  const short = await d.berth(['pull', name]);
  t.is(short.code, 0, short.stderr);
  t.true(asked.slice(from).filter((a) => a.scope.includes('repository:tok/bb:pull')).length > 1, JSON.stringify(asked.slice(from)));

  // A 401 mid-pull (the registry refuses a token it took a moment ago): the cached token is
  // dropped, a new one asked for, and the request tried once more.
  await d.images.remove(id, { force: true });
  expiresIn = 300;
  const proxy = await faultProxy(reg);
  t.teardown(() => proxy.close());
  proxy.unauthorizeNextBlob();
  from = asked.length;
  const viaProxy = `${proxy.host}/tok/bb:v1`;
  const refused = await d.berth(['pull', viaProxy]);
  t.is(refused.code, 0, refused.stderr);
  const blobs = proxy.seen.filter((r) => r.url.includes('/blobs/'));
  t.is(blobs[0].status, 401, JSON.stringify(blobs));
  t.true(blobs.slice(1).some((r) => r.url === blobs[0].url && r.status === 200), 'the refused blob was asked for again with a new token');
  t.is(asked.slice(from).length, 2, 'one token, then one after the 401');
  t.is((await d.images.inspect(viaProxy)).Id, id);
  t.false(d.log().includes(PASSWORD));
});

/**
 * Docker's certs.d directory for `reg` (not made yet); in teardown it goes, with the
 * parents this test makes (not ones that were there: /etc is left as found), and `reg` stops.
 */
function certsDirOf(t: ExecutionContext, reg: TestRegistry): string {
  const certsDir = `/etc/docker/certs.d/${reg.host}`;
  const made = ['/etc/docker', '/etc/docker/certs.d'].filter((p) => !fs.existsSync(p));
  t.teardown(async () => {
    fs.rmSync(certsDir, { recursive: true, force: true });
    for (const p of made.reverse()) fs.rmSync(p, { recursive: true, force: true });
    await reg.stop();
  });
  return certsDir;
}
