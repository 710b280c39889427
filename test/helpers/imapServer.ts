import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ImapFlow } from 'imapflow';
import { tempDir, until } from './testEnv.js';

export interface ImapServer {
  /** Plain IMAP, with STARTTLS when the server has a certificate. */
  port: number;
  /** IMAP over TLS from the first byte (when started with a certificate). */
  tlsPort: number | undefined;
  /** A client logged in as the user, for the test to deliver (APPEND) and look at mail. */
  client(): Promise<ImapFlow>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Debian's dovecot (dovecot-imapd) on a private loopback port, with its own configuration, state
 * and Maildir storage in a temporary folder, and one user. Run as root (CI), its login and mail
 * processes run as Debian's dovenull and dovecot users, which dovecot requires.
 */
export async function startImapServer(user: string, password: string, options: {
  /** PEM files: serve STARTTLS on port and TLS on tlsPort. */
  tls?: { cert: string; key: string };
  /** Accept XOAUTH2 bearer tokens, checked by POSTing them to this introspection URL (RFC 7662). */
  oauth2IntrospectionUrl?: string;
} = {}): Promise<ImapServer> {
  const dir = tempDir('imap');
  const port = await freePort();
  const tlsPort = options.tls ? await freePort() : undefined;
  const root = process.getuid?.() === 0;
  const id = (flag: string, name?: string) => execFileSync('id', name ? [flag, name] : [flag], { encoding: 'utf8' }).trim();
  const internal = root ? 'dovecot' : id('-un');
  const login = root ? 'dovenull' : id('-un');
  const mailUid = root ? id('-u', 'dovecot') : id('-u');
  const mailGid = root ? id('-g', 'dovecot') : id('-g');
  for (const sub of ['run', 'state', 'mail']) fs.mkdirSync(path.join(dir, sub), { recursive: true });
  fs.writeFileSync(path.join(dir, 'users'), `${user}:{PLAIN}${password}\n`);
  fs.writeFileSync(path.join(dir, 'dovecot.conf'), `protocols = imap
listen = 127.0.0.1
base_dir = ${dir}/run
state_dir = ${dir}/state
instance_name = docsift-test-${port}
${options.tls ? `ssl = yes\nssl_cert = <${options.tls.cert}\nssl_key = <${options.tls.key}` : 'ssl = no'}
disable_plaintext_auth = no
auth_mechanisms = plain login${options.oauth2IntrospectionUrl ? ' xoauth2 oauthbearer' : ''}
log_path = ${dir}/dovecot.log
default_internal_user = ${internal}
default_internal_group = ${internal}
default_login_user = ${login}
first_valid_uid = 1
mail_location = maildir:${dir}/mail/%u
passdb {
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u ${dir}/users
}
${options.oauth2IntrospectionUrl ? `passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = ${dir}/oauth2.conf
}` : ''}
userdb {
  driver = static
  args = uid=${mailUid} gid=${mailGid} home=${dir}/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = ${tlsPort ?? 0}
  }
  chroot =
}
service anvil {
  chroot =
}
service auth {
  user = $default_internal_user
}
service auth-worker {
  user = $default_internal_user
}
`);
  if (options.oauth2IntrospectionUrl) {
    fs.writeFileSync(path.join(dir, 'oauth2.conf'), `introspection_mode = post
introspection_url = ${options.oauth2IntrospectionUrl}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
`);
  }
  if (root) {
    execFileSync('chown', ['-R', `${mailUid}:${mailGid}`, path.join(dir, 'mail')]);
    fs.chmodSync(dir, 0o755);
    for (let d = path.dirname(dir); d !== path.dirname(d); d = path.dirname(d)) fs.chmodSync(d, fs.statSync(d).mode | 0o011);
  }
  const dovecot: ChildProcess = spawn('dovecot', ['-F', '-c', path.join(dir, 'dovecot.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  dovecot.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
  await until(async () => {
    if (dovecot.exitCode !== null) throw new Error(`dovecot exited: ${stderr}`);
    return new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.end(); resolve(true); });
      s.on('error', () => resolve(false));
    });
  }, 15_000);
  const clients: ImapFlow[] = [];
  return {
    port,
    tlsPort,
    async client() {
      const c = new ImapFlow({ host: '127.0.0.1', port, secure: false, doSTARTTLS: false, auth: { user, pass: password }, logger: false });
      await c.connect();
      clients.push(c);
      return c;
    },
    async stop() {
      await Promise.all(clients.map((c) => c.logout().catch(() => c.close())));
      dovecot.kill('SIGTERM');
      await new Promise((resolve) => (dovecot.exitCode !== null ? resolve(null) : dovecot.once('exit', resolve)));
    },
  };
}
