import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { EnvSchema } from '../../../src/config/index.js';
import { REPO } from '../../helpers/testEnv.js';

const DEPLOY = path.join(REPO, 'deploy');
const files = (fs.readdirSync(DEPLOY, { recursive: true }) as string[]).map((f) => path.join(DEPLOY, f)).filter((f) => fs.statSync(f).isFile());
const text = (f: string) => fs.readFileSync(f, 'utf8');
const BIN = path.join(REPO, 'dist/src/cli/main.js');
const helpCache = new Map<string, string>();
function help(command: string[]): string {
  const key = command.join(' ');
  if (!helpCache.has(key)) {
    const run = spawnSync(process.execPath, [BIN, ...command, '--help'], { encoding: 'utf8' });
    helpCache.set(key, run.status === 0 ? run.stdout : '');
  }
  return helpCache.get(key)!;
}

/** Every "docsift <command> [--flags]" invocation in deploy/, from shell lines and JSON/YAML arg arrays. */
function invocations(): Array<{ file: string; command: string[]; flags: string[] }> {
  const out: Array<{ file: string; command: string[]; flags: string[] }> = [];
  const SUBS = new Set(['db', 'deadletter', 'models', 'gpu']);
  for (const file of files) {
    for (const line of text(file).split('\n')) {
      let words: string[] = [];
      const arr = /(?:command|args|CMD|ENTRYPOINT):?\s*(\[.*\])/.exec(line);
      if (arr) {
        try { words = JSON.parse(arr[1]!.replace(/'/g, '"')) as string[]; } catch { continue; }
        if (words[0] === 'docsift') words = words.slice(1); // ENTRYPOINT ["docsift"]
        if (['redis-server', 'bash', 'sh'].includes(words[0]!)) continue; // the Redis service in compose
      } else {
        const m = /(?:\/usr\/bin\/docsift|docsift|\$\{docsift\[@\]\})\s+([a-z][\w-]*(?:\s+\S+)*)/.exec(line);
        if (!m || line.trim().startsWith('#')) continue;
        words = m[1]!.split(/\s+/);
      }
      if (words.length === 0 || !/^[a-z]/.test(words[0]!)) continue;
      const command = SUBS.has(words[0]!) && words[1] && /^[a-z]/.test(words[1]) ? words.slice(0, 2) : words.slice(0, 1);
      out.push({ file, command, flags: words.filter((w) => w.startsWith('--')).map((w) => w.split('=')[0]!) });
    }
  }
  return out;
}

describe('deploy/', () => {
  it('every YAML file parses', () => {
    const yamls = files.filter((f) => /\.ya?ml$/.test(f));
    expect(yamls.length).toBeGreaterThanOrEqual(5);
    for (const f of yamls) {
      for (const doc of parseAllDocuments(text(f))) expect(doc.errors, f).toEqual([]);
    }
  });

  it('every docsift command and flag named exists in the CLI', () => {
    const found = invocations().filter((i) => !['run', 'build', 'ci', 'link', 'start'].includes(i.command[0]!));
    expect(found.length).toBeGreaterThanOrEqual(6);
    for (const { file, command, flags } of found) {
      const h = help(command);
      expect(h, `${path.relative(REPO, file)}: docsift ${command.join(' ')}`).toContain('Usage: docsift');
      for (const flag of flags) expect(h, `${path.relative(REPO, file)}: docsift ${command.join(' ')} ${flag}`).toContain(flag);
    }
  });

  it('every DOCSIFT_* variable named exists in the configuration', () => {
    const known = new Set(Object.keys(EnvSchema.shape));
    for (const f of files) {
      for (const name of text(f).match(/\bDOCSIFT_[A-Z_]+\b/g) ?? []) expect(known, `${path.relative(REPO, f)}: ${name}`).toContain(name);
    }
  });

  it('secure defaults: compose needs every secret and a Redis password, refuses to start without them', () => {
    const compose = text(path.join(DEPLOY, 'docker-compose.yml'));
    const interpolated = [...compose.matchAll(/\$\{([A-Z_]+)(:[?-][^}]*)?\}/g)];
    for (const [whole, name, rest] of interpolated) {
      if (/SECRET|PASSWORD|TOKENS/.test(name!)) expect(rest ?? '', whole).toMatch(/^:\?/);
    }
    expect(compose).toContain('requirepass');
    for (const url of compose.match(/REDIS_URL: .*/g)!) expect(url).toContain(':${REDIS_PASSWORD:?');
  });

  it('secure defaults: k8s pods run as non-root, read-only, without capabilities; Redis is fenced off', () => {
    const docs = files.filter((f) => f.includes(`${path.sep}k8s${path.sep}`)).flatMap((f) => parseAllDocuments(text(f)).map((d) => d.toJS() as Record<string, any>));
    const deployments = docs.filter((d) => d?.kind === 'Deployment');
    expect(deployments.length).toBeGreaterThanOrEqual(2);
    for (const d of deployments) {
      const pod = d.spec.template.spec;
      expect(pod.securityContext, d.metadata.name).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
      expect(d.spec.template.metadata.labels['docsift-redis-client'], d.metadata.name).toBe('true');
      for (const c of pod.containers) {
        expect(c.securityContext, `${d.metadata.name}/${c.name}`).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
      }
    }
    const redisPolicy = docs.find((d) => d?.kind === 'NetworkPolicy' && d.spec.podSelector.matchLabels?.app === 'redis');
    expect(redisPolicy!.spec.ingress[0].from[0].podSelector.matchLabels).toEqual({ 'docsift-redis-client': 'true' });
    // REDIS_URL (with its password) is a secret, not plain configuration.
    expect(JSON.stringify(docs.filter((d) => d?.kind === 'ConfigMap'))).not.toContain('REDIS_URL');
  });

  it('secure defaults: the systemd example cannot run as shipped (its secrets are placeholders docsift refuses)', () => {
    const example = Object.fromEntries(text(path.join(DEPLOY, 'systemd', 'docsift.env.example')).split('\n')
      .filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    for (const key of ['REDIS_URL', 'DOCSIFT_API_TOKENS', 'DOCSIFT_BOARD_PASSWORD', 'DOCSIFT_WEBHOOK_SECRET']) {
      expect(() => EnvSchema.parse({ [key]: example[key] }), key).toThrow(/placeholder/);
    }
    expect(example.REDIS_URL).toMatch(/^redis:\/\/:[^@]+@/);
  });

  it('the CUDA image builds llama.cpp for the listed architectures in a devel stage and ships only the runtime', () => {
    const docker = text(path.join(DEPLOY, 'docker', 'Dockerfile.cuda'));
    const stages = docker.split(/^FROM /m).slice(1);
    const build = stages.find((s) => s.startsWith('nvidia/cuda:${CUDA_VERSION}-devel'))!;
    const runtime = stages.at(-1)!;
    expect(build).toMatch(/^ARG CUDA_ARCHITECTURES=[\d,]+$/m);
    expect(build).toContain('docsift gpu build --arch "$CUDA_ARCHITECTURES"');
    expect(runtime).toMatch(/^nvidia\/cuda:\$\{CUDA_VERSION\}-runtime-/);
    expect(runtime).toContain('COPY --from=build /app/node_modules ./node_modules');
    // No compiler or headers; the packages it installs are the native OCR and PDF engines (docs/OCR.md, CONFIGURATION.md).
    expect(runtime).not.toMatch(/cmake|g\+\+|gcc|build-essential|-dev\b/);
    expect(runtime).toMatch(/apt-get install -y --no-install-recommends libtesseract5 libpoppler-glib8t64 &&/);
    const compose = parseYaml(text(path.join(DEPLOY, 'docker-compose.yml')));
    expect(compose.services['worker-gpu'].build.dockerfile).toBe('deploy/docker/Dockerfile.cuda');
    expect(compose.services['worker-gpu'].deploy.resources.reservations.devices[0]).toMatchObject({ driver: 'nvidia', capabilities: ['gpu'] });
    const worker = parseAllDocuments(text(path.join(DEPLOY, 'k8s', 'worker.yaml'))).map((d) => d.toJSON()).find((d) => d?.kind === 'Deployment');
    expect(worker.spec.template.spec.containers[0].resources.limits['nvidia.com/gpu']).toBe(1);
  });

  it('secure defaults: images run as a numeric non-root user that owns the outbox', () => {
    for (const f of ['Dockerfile', 'Dockerfile.cuda']) {
      const docker = text(path.join(DEPLOY, 'docker', f));
      expect(docker, f).toMatch(/^USER 10001$/m);
      expect(docker, f).toMatch(/install -d -o docsift -g docsift .*\/var\/lib\/docsift\/outbox/);
    }
  });
});
