import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './redisServer.js';
import { tempDir } from './testEnv.js';

export interface RedisProcess { port: number; process: ChildProcess; kill(signal?: NodeJS.Signals): Promise<void> }

/** Starts redis-server with a config file (sentinel mode rewrites its own), waits for its port. */
async function run(port: number, conf: string[], sentinel: boolean): Promise<RedisProcess> {
  const dir = tempDir(sentinel ? 'sentinel' : 'redis-node');
  const file = path.join(dir, 'redis.conf');
  fs.writeFileSync(file, [`port ${port}`, 'bind 127.0.0.1', `dir "${dir}"`, 'save ""', ...conf, ''].join('\n'));
  const child = spawn('redis-server', [file, ...(sentinel ? ['--sentinel'] : [])], { stdio: 'ignore' });
  await waitForPort(port);
  return {
    port, process: child,
    kill: (signal = 'SIGTERM') => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill(signal);
    }),
  };
}

export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.end(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (up) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A primary, a replica and three sentinels (quorum 2) on private loopback ports, as Debian's
 * redis-server runs them; the master group is `docsift`. Sentinels declare the primary down after
 * 1 s without an answer, so a failover takes a few seconds.
 */
export async function startSentinelGroup(): Promise<{
  primary: RedisProcess; replica: RedisProcess; sentinels: RedisProcess[]; master: string;
  /** REDIS_SENTINELS for docsift. */
  sentinelList: string;
  /** The port Sentinel names as primary now. */
  primaryPort(): Promise<number>;
  stop(): Promise<void>;
}> {
  const master = 'docsift';
  const primary = await run(await freePort(), ['appendonly no'], false);
  const replica = await run(await freePort(), [`replicaof 127.0.0.1 ${primary.port}`], false);
  const sentinels: RedisProcess[] = [];
  for (let i = 0; i < 3; i++) {
    sentinels.push(await run(await freePort(), [
      `sentinel monitor ${master} 127.0.0.1 ${primary.port} 2`,
      `sentinel down-after-milliseconds ${master} 1000`,
      `sentinel failover-timeout ${master} 5000`,
      `sentinel parallel-syncs ${master} 1`,
    ], true));
  }
  const ask = async (command: string[]) => {
    const client = new Redis({ port: sentinels[0]!.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await client.connect();
      return await client.call('SENTINEL', ...command);
    } finally {
      client.disconnect();
    }
  };
  // Ready when the sentinels know the replica and each other (a failover needs both).
  const deadline = Date.now() + 30_000;
  const replicaClient = new Redis({ port: replica.port, host: '127.0.0.1' });
  try {
    for (;;) {
      const replicas = (await ask(['replicas', master])) as unknown[];
      const peers = (await ask(['sentinels', master])) as unknown[];
      const linked = (await replicaClient.info('replication')).includes('master_link_status:up');
      if (replicas.length === 1 && peers.length === 2 && linked) break;
      if (Date.now() > deadline) throw new Error(`sentinels not ready: ${replicas.length} replica(s), ${peers.length} peer(s), link ${linked}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    replicaClient.disconnect();
  }
  return {
    primary, replica, sentinels, master,
    sentinelList: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
    primaryPort: async () => Number(((await ask(['get-master-addr-by-name', master])) as string[])[1]),
    stop: async () => {
      for (const p of [...sentinels, replica, primary]) await p.kill('SIGKILL');
    },
  };
}

/**
 * A Redis Cluster of three primaries (no replicas) on private loopback ports, slots spread by
 * `redis-cli --cluster create`; resolves when every node reports cluster_state:ok.
 */
export async function startRedisCluster(): Promise<{ nodes: RedisProcess[]; nodeList: string; stop(): Promise<void> }> {
  const nodes: RedisProcess[] = [];
  for (let i = 0; i < 3; i++) nodes.push(await run(await freePort(), ['cluster-enabled yes', 'cluster-config-file nodes.conf', 'cluster-node-timeout 5000', 'appendonly no'], false));
  const create = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8' });
  if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
  const deadline = Date.now() + 30_000;
  for (const n of nodes) {
    const client = new Redis({ port: n.port, host: '127.0.0.1' });
    try {
      while (!(await client.cluster('INFO')).includes('cluster_state:ok')) {
        if (Date.now() > deadline) throw new Error(`cluster node ${n.port} not ok`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      client.disconnect();
    }
  }
  return {
    nodes, nodeList: nodes.map((n) => `127.0.0.1:${n.port}`).join(','),
    stop: async () => {
      for (const n of nodes) await n.kill('SIGKILL');
    },
  };
}
