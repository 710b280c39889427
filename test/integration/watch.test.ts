import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FolderWatcher, freeName, isIgnored, type FolderWatcherOptions } from '../../src/ingest/folder/index.js';
import { createLogger } from '../../src/infra/logger.js';
import { CORPUS, tempDir, until } from '../helpers/testEnv.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';
import { makeMsg } from '../helpers/mail.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ documents: documentsQueue() }, 'documents');
});
afterAll(() => stack?.close());

const logger = createLogger({ level: 'silent', destination: 'stderr' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function watcher(dir: string, options: Partial<FolderWatcherOptions> = {}): FolderWatcher {
  return new FolderWatcher(stack.config, new Map([['documents', { queue: stack.queue, enqueuer: stack.enqueuer }]]), stack.redis, stack.keys, {
    dir, queue: 'documents', stableMs: 300, intervalMs: 100, useEvents: true, duplicates: 'skip', ...options,
  }, logger);
}

// withFileTypes: no stat after readdir, which would race with the watcher's renames.
// A sidecar being written (<name>.tmp, renamed when complete) is not there yet: a poll that saw it
// raced the watcher's rename.
const list = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile() && !e.name.endsWith('.result.json.tmp') && !e.name.endsWith('.error.json.tmp')).map((e) => e.name).sort() : []);


describe('filename rules', () => {
  it('ignores hidden and temporary files', () => {
    for (const name of ['.hidden.pdf', '~$lock.docx', 'a.pdf.part', 'b.tmp', 'c.crdownload', 'd.swp', 'e.pdf~']) expect(isIgnored(name), name).toBe(true);
    for (const name of ['invoice.pdf', 'scan 01.PDF', 'notes.md']) expect(isIgnored(name), name).toBe(false);
  });

  it('never overwrites: a clash gets "name (n).ext"', () => {
    const taken = new Set(['/d/a.pdf', '/d/a (1).pdf.result.json']);
    expect(freeName('/d', 'a.pdf', (p) => taken.has(p))).toBe('a (2).pdf');
    expect(freeName('/d', 'b.pdf', (p) => taken.has(p))).toBe('b.pdf');
  });
});

describe('watched folder lifecycle', () => {
  it('does not take a file still being written, then processes it into done/ with its result', async () => {
    const dir = tempDir('watch');
    const w = watcher(dir, { stableMs: 800 });
    await w.start();
    try {
      const target = path.join(dir, 'inbox', 'slow.pdf');
      const bytes = fs.readFileSync(path.join(CORPUS, 'oyo.pdf'));
      fs.writeFileSync(path.join(dir, 'inbox', '.hidden.pdf'), bytes);
      fs.writeFileSync(path.join(dir, 'inbox', 'copy.pdf.part'), bytes);
      const fd = fs.openSync(target, 'w');
      const chunk = Math.ceil(bytes.length / 5);
      for (let i = 0; i < 5; i++) {
        fs.writeSync(fd, bytes.subarray(i * chunk, (i + 1) * chunk));
        await sleep(400); // the size changes every 400 ms, within the 800 ms stability window
        expect(fs.existsSync(target), `taken early after chunk ${i}`).toBe(true);
      }
      fs.closeSync(fd);
      await until(() => list(path.join(dir, 'done')).length === 2);
      expect(list(path.join(dir, 'done'))).toEqual(['slow.pdf', 'slow.pdf.result.json']);
      const record = JSON.parse(fs.readFileSync(path.join(dir, 'done', 'slow.pdf.result.json'), 'utf8'));
      expect(record.filename).toBe('slow.pdf');
      expect(record.source).toBe(`watch:${dir}`);
      expect(fs.readFileSync(path.join(dir, 'done', 'slow.pdf'))).toEqual(bytes);
      expect(list(path.join(dir, 'inbox'))).toEqual(['.hidden.pdf', 'copy.pdf.part']);
      expect(list(path.join(dir, 'processing'))).toEqual([]);
    } finally {
      await w.stop();
    }
  });

  it('moves failures to failed/ with the code, skips duplicates, never overwrites, routes subfolders', async () => {
    const dir = tempDir('watch');
    const w = watcher(dir);
    await w.start();
    try {
      fs.writeFileSync(path.join(dir, 'inbox', 'empty.pdf'), '');
      fs.mkdirSync(path.join(dir, 'inbox', 'invoice'));
      fs.mkdirSync(path.join(dir, 'inbox', 'payslips'));
      fs.writeFileSync(path.join(dir, 'inbox', 'invoice', 'inv.txt'), 'Invoice 77, ACME, 10.00 EUR');
      fs.writeFileSync(path.join(dir, 'inbox', 'payslips', 'p.txt'), 'Payslip');
      fs.writeFileSync(path.join(dir, 'inbox', 'a.txt'), 'Receipt: 2 rolls 1.20 EUR');
      await until(() => list(path.join(dir, 'done')).length === 2 && list(path.join(dir, 'done', 'invoice')).length === 2 && list(path.join(dir, 'failed')).length === 2 && list(path.join(dir, 'failed', 'payslips')).length === 2);
      const error = JSON.parse(fs.readFileSync(path.join(dir, 'failed', 'empty.pdf.error.json'), 'utf8'));
      expect(error).toMatchObject({ code: 'EMPTY_TEXT', attempts: 1 });
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'failed', 'payslips', 'p.txt.error.json'), 'utf8')).code).toBe('UNKNOWN_FOLDER');
      const invoice = JSON.parse(fs.readFileSync(path.join(dir, 'done', 'invoice', 'inv.txt.result.json'), 'utf8'));
      expect(invoice.classification).toEqual({ label: 'invoice', method: 'fixed', confidence: null });

      // The same bytes again under the same name: not processed twice, and done/a.txt is not overwritten.
      const jobsBefore = (await stack.queue.getJobs(['completed'])).length;
      fs.writeFileSync(path.join(dir, 'inbox', 'a.txt'), 'Receipt: 2 rolls 1.20 EUR');
      await until(() => list(path.join(dir, 'done')).length === 4);
      expect(list(path.join(dir, 'done'))).toEqual(['a (1).txt', 'a (1).txt.result.json', 'a.txt', 'a.txt.result.json']);
      const first = JSON.parse(fs.readFileSync(path.join(dir, 'done', 'a.txt.result.json'), 'utf8'));
      const second = JSON.parse(fs.readFileSync(path.join(dir, 'done', 'a (1).txt.result.json'), 'utf8'));
      expect(second.documentId).toBe(first.documentId);
      expect(second.completedAt).toBe(first.completedAt);
      expect((await stack.queue.getJobs(['completed'])).length).toBe(jobsBefore);
    } finally {
      await w.stop();
    }
  });

  it('an Outlook .msg dropped into inbox/invoice/: done when its parts are, its attachment extracted as an invoice', async () => {
    const dir = tempDir('watch');
    const w = watcher(dir);
    await w.start();
    try {
      fs.mkdirSync(path.join(dir, 'inbox', 'invoice'));
      const pdf = fs.readFileSync(path.join(CORPUS, 'SammyMaystoneLinesTest.pdf'));
      fs.writeFileSync(path.join(dir, 'inbox', 'invoice', 'from-outlook.msg'), makeMsg({ from: 'Sammy <ar@sammy.test>', to: ['ap@example.test'], subject: 'Invoice', text: 'Attached.', attachments: [{ filename: 'sammy.pdf', content: pdf, contentType: 'application/pdf' }] }));
      await until(() => list(path.join(dir, 'done', 'invoice')).length === 2, 120_000);
      const record = JSON.parse(fs.readFileSync(path.join(dir, 'done', 'invoice', 'from-outlook.msg.result.json'), 'utf8'));
      expect(record.text.format).toBe('msg');
      expect(record.children.map((c: { filename: string; status: string; documentType: string | null }) => [c.filename, c.status, c.documentType])).toEqual([['from-outlook.msg (body).txt', 'done', expect.anything()], ['sammy.pdf', 'done', 'invoice']]);
    } finally {
      await w.stop();
    }
  });

  it('reprocess mode runs a duplicate again', async () => {
    const dir = tempDir('watch');
    const w = watcher(dir, { duplicates: 'reprocess' });
    await w.start();
    try {
      fs.writeFileSync(path.join(dir, 'inbox', 'r.txt'), 'Receipt: tea 3.00 EUR');
      await until(() => list(path.join(dir, 'done')).length === 2);
      fs.writeFileSync(path.join(dir, 'inbox', 'r.txt'), 'Receipt: tea 3.00 EUR');
      await until(() => list(path.join(dir, 'done')).length === 4);
      const a = JSON.parse(fs.readFileSync(path.join(dir, 'done', 'r.txt.result.json'), 'utf8'));
      const b = JSON.parse(fs.readFileSync(path.join(dir, 'done', 'r (1).txt.result.json'), 'utf8'));
      expect(b.documentId).toBe(a.documentId);
      expect(b.jobId).not.toBe(a.jobId);
    } finally {
      await w.stop();
    }
  });

  it('two watchers on one folder take each file exactly once', async () => {
    const dir = tempDir('watch');
    const [w1, w2] = [watcher(dir), watcher(dir, { useEvents: false })];
    await Promise.all([w1.start(), w2.start()]);
    try {
      for (let i = 0; i < 30; i++) fs.writeFileSync(path.join(dir, 'inbox', `doc-${i}.txt`), `Invoice ${i} from shared folder test, total ${i}.00 EUR`);
      await until(() => list(path.join(dir, 'done')).length === 60, 120_000);
      expect(list(path.join(dir, 'done')).filter((f) => / \(\d+\)/.test(f))).toEqual([]);
      expect(list(path.join(dir, 'failed'))).toEqual([]);
      const docs = new Set(list(path.join(dir, 'done')).filter((f) => f.endsWith('.result.json')).map((f) => JSON.parse(fs.readFileSync(path.join(dir, 'done', f), 'utf8')).jobId));
      expect(docs.size).toBe(30);
    } finally {
      await Promise.all([w1.stop(), w2.stop()]);
    }
  }, 180_000); // its wait for 60 files allows 120 s on a loaded machine; the default 60 s test timeout cut it short

  it('finishes what a watcher killed between claim and enqueue left in processing/', async () => {
    const dir = tempDir('watch');
    fs.mkdirSync(path.join(dir, 'processing'), { recursive: true });
    // As a crashed watcher leaves it: renamed into processing/, never enqueued.
    fs.writeFileSync(path.join(dir, 'processing', 'mabc123--orphan.txt'), 'Invoice 5150 orphaned by a crash');
    const w = watcher(dir);
    await w.start();
    try {
      await until(() => list(path.join(dir, 'done')).length === 2);
      expect(list(path.join(dir, 'done'))).toEqual(['orphan.txt', 'orphan.txt.result.json']);
      expect(list(path.join(dir, 'processing'))).toEqual([]);
    } finally {
      await w.stop();
    }
  });

  it('claims thousands of files without running out of file descriptors', async () => {
    const dir = tempDir('watch');
    const n = 3000;
    fs.mkdirSync(path.join(dir, 'inbox'), { recursive: true });
    for (let i = 0; i < n; i++) fs.writeFileSync(path.join(dir, 'inbox', `f${i}.txt`), `Receipt number ${i} of a bulk drop`);
    await stack.queue.pause();
    const w = watcher(dir, { stableMs: 1, intervalMs: 50, useEvents: false });
    const fdsBefore = fs.readdirSync('/proc/self/fd').length;
    try {
      await w.start();
      await until(() => list(path.join(dir, 'inbox')).length === 0, 120_000);
      const fdsAfter = fs.readdirSync('/proc/self/fd').length;
      expect(fdsAfter - fdsBefore).toBeLessThan(50);
      expect(list(path.join(dir, 'processing'))).toHaveLength(n);
      // A file leaves inbox/ (claimed into processing/) a moment before its job is added.
      await until(async () => (await stack.queue.count()) >= n, 30_000);
    } finally {
      await w.stop();
      await stack.queue.obliterate({ force: true });
      await stack.queue.resume();
    }
  });
});
