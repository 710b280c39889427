import calculateSlot from 'cluster-key-slot';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/index.js';
import { flowGroups, keys, keysFor } from '../../../src/queue/index.js';
import { makeHome } from '../../helpers/testEnv.js';

const extract = { pipeline: { mode: 'extract', documentType: 'invoice' } };

describe('key layout', () => {
  it('one Redis: the layout producers have always used', () => {
    const k = keys('docsift');
    expect(k.bull('ap')).toBe('docsift:bull');
    expect(k.document('a'.repeat(64))).toBe(`docsift:doc:${'a'.repeat(64)}`);
    expect(k.documentSha(`docsift:doc:${'a'.repeat(64)}`)).toBe('a'.repeat(64));
    for (const bad of [`docsift:doc:${'a'.repeat(63)}`, `other:doc:${'a'.repeat(64)}`, `docsift:doc:{${'a'.repeat(64)}}`, `docsift:doc:${'a'.repeat(64)}:holders`]) expect(k.documentSha(bad), bad).toBeNull();
  });

  it('a Cluster: ids are hash tags, so what a script touches together shares a slot, and each flow group\'s queues share one', () => {
    const config = loadConfig({
      REDIS_CLUSTER_NODES: '127.0.0.1:7000',
      DOCSIFT_HOME: makeHome({
        small: { ...extract, escalate: { to: 'large' } }, large: extract, check: extract,
        ap: { ...extract, challenge: { queue: 'check' } }, archive: { pipeline: { mode: 'classify-extract' } },
      }),
    });
    // small→large, ap→check: two groups named by their first queue; archive alone.
    expect(Object.fromEntries(flowGroups(config))).toEqual({ small: 'large', large: 'large', check: 'ap', ap: 'ap', archive: 'archive' });
    const k = keysFor(config);
    expect(k.bull('small')).toBe('docsift:bull:{large}');
    expect(calculateSlot(`${k.bull('small')}:small:wait`)).toBe(calculateSlot(`${k.bull('large')}:large:123:dependencies`));
    expect(calculateSlot(`${k.bull('archive')}:archive:wait`)).not.toBe(calculateSlot(`${k.bull('small')}:small:wait`));
    const sha = 'b'.repeat(64);
    expect(k.document(sha)).toBe(`docsift:doc:{${sha}}`);
    expect(calculateSlot(k.document(sha))).toBe(calculateSlot(k.documentHolders(sha)));
    expect(k.documentSha(k.document(sha))).toBe(sha);
    expect(k.documentSha(`docsift:doc:${sha}`)).toBeNull();
    expect(calculateSlot(k.result('doc-1'))).toBe(calculateSlot(k.failure('doc-1')));
    // Without REDIS_CLUSTER_NODES the same configuration keeps the one-Redis layout.
    expect(keysFor(loadConfig({ DOCSIFT_HOME: makeHome({ a: extract }) })).bull('a')).toBe('docsift:bull');
  });
});
