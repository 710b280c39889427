import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeValidator } from '../../src/model/index.js';
import type { ResultRecord } from '../../src/pipeline/index.js';
import { defaultTextLimits, detectFormat, TextExtractor } from '../../src/text/index.js';
import { outcomeOf } from '../helpers/extract.js';
import { makeEml, makeMsg, type TestMail } from '../helpers/mail.js';
import { makePdf } from '../helpers/pdf.js';
import { makeDocx } from '../helpers/office.js';
import { documentsQueue, startStack, type Stack } from '../helpers/stack.js';
import { CORPUS } from '../helpers/testEnv.js';

const extractor = new TextExtractor();
afterAll(() => extractor.close());
const limits = defaultTextLimits({ timeoutMs: 60_000 });

const invoicePdf = fs.readFileSync(path.join(CORPUS, 'AmazonWebServices.pdf'));
const logo = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');

const invoiceMail = (extra: Partial<TestMail> = {}): TestMail => ({
  from: 'AWS Billing <billing@aws.test>',
  to: ['ap@example.test'],
  subject: 'Your invoice for October',
  text: 'Hello,\n\nplease find your invoice attached.\n\nAWS Billing',
  html: '<p>Hello,</p><p>please find your invoice attached.</p><table><tr><td>Total</td><td>USD 12.00</td></tr></table><img src="cid:logo@aws">',
  attachments: [
    { filename: 'invoice-oct.pdf', content: invoicePdf, contentType: 'application/pdf' },
    { filename: 'logo.png', content: logo, contentType: 'image/png', cid: 'logo@aws' },
  ],
  ...extra,
});

describe('e-mail formats, detected from their bytes', () => {
  it('.eml (nodemailer\'s MIME): headers, the HTML body as text with its table, attachments with their bytes', async () => {
    const { text, mail } = await extractor.readMail(await makeEml(invoiceMail()), limits);
    expect(text.format).toBe('eml');
    expect(text.pages[0]).toBe('From: AWS Billing <billing@aws.test>\nTo: ap@example.test\nDate: 2026-11-03T09:30:00.000Z\nSubject: Your invoice for October\n\nHello,\n\nplease find your invoice attached.\n\n| Total | USD 12.00 |\n');
    expect(mail.headers).toEqual({ from: 'AWS Billing <billing@aws.test>', to: ['ap@example.test'], cc: [], subject: 'Your invoice for October', date: '2026-11-03T09:30:00.000Z', messageId: '<test-1@docsift.test>' });
    const pdf = mail.attachments.find((a) => a.filename === 'invoice-oct.pdf')!;
    expect(Buffer.from(pdf.bytes).equals(invoicePdf)).toBe(true);
    expect(pdf.inline).toBe(false);
    expect(mail.attachments.find((a) => a.filename === 'logo.png')!.inline).toBe(true);
  });

  it('Outlook .msg: the same parts, read by msgreader', async () => {
    const msg = makeMsg(invoiceMail());
    expect(detectFormat(msg)).toBe('msg');
    const { text, mail } = await extractor.readMail(msg, limits);
    expect(text.pages[0]).toContain('Subject: Your invoice for October\n\nHello,');
    expect(mail.headers.from).toBe('AWS Billing <billing@aws.test>');
    expect(mail.headers.to).toEqual(['ap@example.test']);
    expect(mail.attachments.map((a) => [a.filename, a.inline])).toEqual([['invoice-oct.pdf', false], ['logo.png', true]]);
    expect(Buffer.from(mail.attachments[0]!.bytes).equals(invoicePdf)).toBe(true);
    // extract-text shows a mail's body document.
    expect((await extractor.extract(msg, limits)).pages[0]).toBe(text.pages[0]);
  });

  it('a memo with From: and Subject: stays text; DOC/XLS and broken Outlook files get their codes', async () => {
    expect(detectFormat(Buffer.from('From: Anna\nSubject: lunch\n\nShall we meet at noon?'))).toBe('text');
    expect(detectFormat(Buffer.from('From: a@b.test\nMIME-Version: 1.0\n\nhi'))).toBe('eml');
    const ole2 = Buffer.concat([Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]), Buffer.alloc(600)]);
    expect(await outcomeOf(extractor, ole2, limits)).toMatch(/^UNSUPPORTED_FORMAT: the bytes are an OLE2 file \(DOC or XLS: save it as DOCX or XLSX\); docsift reads .*e-mail \(\.eml, Outlook \.msg\)/);
    const msg = makeMsg(invoiceMail());
    // The header's first directory sector pointed past the end of the file.
    const broken = Buffer.from(msg);
    broken.writeUInt32LE(0x7ffffff0, 0x30);
    expect(await outcomeOf(extractor, broken, limits)).toMatch(/^CORRUPT_DOCUMENT: the MSG document cannot be read/);
  });

  // Headers that decode to line breaks: test/unit/text/mailBody.test.ts (nodemailer would not write one).
  it('hostile attachment names lose their path and are cut to 255 characters', async () => {
    const eml = await makeEml(invoiceMail({ html: undefined, attachments: [
      { filename: '../../etc/passwd', content: Buffer.from('root:x:0:0') },
      { filename: `${'a'.repeat(2000)}.pdf`, content: invoicePdf },
    ] }));
    const { mail } = await extractor.readMail(eml, limits);
    expect(mail.attachments.map((a) => a.filename.length <= 255 && !a.filename.includes('/'))).toEqual([true, true]);
    expect(mail.attachments[0]!.filename).toBe('passwd');
    expect(mail.attachments[1]!.filename.endsWith('aaa.pdf')).toBe(true);
  });

  it('attachments beyond limits.maxAttachments are counted, not read', async () => {
    const many = await makeEml(invoiceMail({ html: undefined, attachments: Array.from({ length: 5 }, (_, i) => ({ filename: `n${i}.txt`, content: Buffer.from(`note ${i}`) })) }));
    const { text, mail } = await extractor.readMail(many, { ...limits, maxAttachments: 2 });
    expect(mail.attachments.map((a) => a.filename)).toEqual(['n0.txt', 'n1.txt']);
    expect(text.warnings).toEqual(['ATTACHMENTS_CUT: the mail has 5 attachments; the first 2 were read (limits.maxAttachments)']);
  });
});

describe('a mail through the worker: a parent document whose parts are documents of their own (BullMQ flow)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ documents: documentsQueue({ limits: { maxMailDepth: 2 } }) }, 'documents');
  });
  afterAll(() => stack?.close());

  const enqueueMail = async (bytes: Buffer, filename: string, extra: { documentType?: string; metadata?: Record<string, unknown> } = {}) =>
    stack.enqueuer.enqueue({ bytes, filename, source: 'test', ...extra });
  const recordOf = async (documentId: string) => JSON.parse((await stack.redis.get(stack.keys.result(documentId)))!) as ResultRecord;

  it('the body and the PDF invoice are processed by their own types; the mail completes when they do and lists them', async () => {
    const broken = makePdf({ pages: ['x'] }).subarray(0, 200);
    const zip = Buffer.from('PK\u0003\u0004 not really a zip');
    const eml = await makeEml(invoiceMail({
      attachments: [
        ...invoiceMail().attachments!,
        { filename: 'broken.pdf', content: broken, contentType: 'application/pdf' },
        { filename: 'photos.zip', content: zip, contentType: 'application/zip' },
        { filename: 'terms.docx', content: await makeDocx([{ paragraph: 'Payment within 30 days.' }]) },
      ],
    }));
    const outcome = await enqueueMail(eml, 'october.eml', { documentType: 'invoice', metadata: { customer: 7 } });
    const [status] = await stack.waitAll([outcome], 180_000);
    expect(status!.state, JSON.stringify(status)).toBe('done');
    if (status!.state !== 'done') return;
    const mail = status!.record;
    expect(mail.classification).toEqual({ label: 'mail', method: 'container', confidence: null });
    expect(mail.text.format).toBe('eml');
    expect(mail.mail?.subject).toBe('Your invoice for October');
    expect(mail.children!.map((c) => [c.filename, c.role, c.format, c.status, c.code ?? null])).toEqual([
      ['october.eml (body).txt', 'body', 'text', 'done', null],
      ['logo.png', 'attachment', null, 'skipped', null],
      ['invoice-oct.pdf', 'attachment', 'pdf', 'done', null],
      ['broken.pdf', 'attachment', 'pdf', 'failed', 'CORRUPT_DOCUMENT'],
      ['photos.zip', 'attachment', null, 'skipped', 'CORRUPT_DOCUMENT'],
      ['terms.docx', 'attachment', 'docx', 'done', null],
    ]);
    // The invoice was extracted as an invoice (the mail came with documentType invoice), schema-valid.
    const invoice = await recordOf(mail.children![2]!.documentId!);
    expect(invoice.documentType).toBe('invoice');
    expect(makeValidator(stack.config.prompts.types.get('invoice')!.schema)(invoice.fields).ok).toBe(true);
    expect(invoice.parent).toBe(mail.documentId);
    expect(invoice.metadata).toEqual({ customer: 7 });
    expect(mail.children![2]!.documentType).toBe('invoice');
    // The body is classified, not forced to the mail's type.
    const body = await recordOf(mail.children![0]!.documentId!);
    expect(body.classification.method).toBe('model');
    expect(body.text.format).toBe('text');
    // The same mail again: nothing new is queued, for the mail or any part.
    const jobs = await stack.queue.getJobCountByTypes('completed', 'failed', 'waiting', 'active', 'delayed', 'waiting-children');
    expect((await enqueueMail(eml, 'october-again.eml', { documentType: 'invoice', metadata: { customer: 7 } })).status).toBe('done');
    expect(await stack.queue.getJobCountByTypes('completed', 'failed', 'waiting', 'active', 'delayed', 'waiting-children')).toBe(jobs);
    // Metrics count completed documents by format and source.
    const counted = await stack.worker.metrics.registry.getSingleMetricAsString('docsift_documents_completed_total');
    for (const format of ['eml', 'pdf', 'text', 'docx']) expect(counted).toContain(`docsift_documents_completed_total{queue="documents",format="${format}",source="test"} 1`);
    // The plan is gone once the mail's record is written.
    expect(await stack.redis.exists(stack.keys.mailPlan(mail.documentId))).toBe(0);
  });

  it('a mail in a mail is opened to limits.maxMailDepth, deeper ones are listed; a .msg works the same; a part already done needs no job', async () => {
    const innermost = await makeEml({ from: 'c@x.test', to: ['b@x.test'], subject: 'level 3', text: 'deepest', messageId: '<l3@x.test>' });
    const inner = await makeEml({ from: 'b@x.test', to: ['a@x.test'], subject: 'level 2', text: 'forwarded', messageId: '<l2@x.test>', attachments: [{ filename: 'l3.eml', content: innermost, contentType: 'message/rfc822' }] });
    const outer = makeMsg({ from: 'a@x.test', to: ['ap@example.test'], subject: 'level 1', text: 'see below', attachments: [{ filename: 'l2.eml', content: inner, contentType: 'message/rfc822' }, { filename: 'invoice.pdf', content: invoicePdf, contentType: 'application/pdf' }] });
    // The PDF is already done when the mail arrives (the same bytes, classified).
    const [alone] = await stack.waitAll([await stack.enqueuer.enqueue({ bytes: invoicePdf, filename: 'alone.pdf', source: 'test' })]);
    expect(alone!.state).toBe('done');
    const [status] = await stack.waitAll([await enqueueMail(outer, 'outer.msg')], 180_000);
    expect(status!.state, JSON.stringify(status)).toBe('done');
    if (status!.state !== 'done') return;
    const children = status!.record.children!;
    expect(children.map((c) => [c.filename, c.format, c.status])).toEqual([['outer.msg (body).txt', 'text', 'done'], ['l2.eml', 'eml', 'done'], ['invoice.pdf', 'pdf', 'done']]);
    expect(children[2]!.documentId).toBe(alone!.documentId);
    const level2 = await recordOf(children[1]!.documentId!);
    expect(level2.classification.method).toBe('container');
    expect(level2.parent).toBe(status!.record.documentId);
    expect(level2.children!.map((c) => [c.filename, c.status, c.code ?? null])).toEqual([['l2.eml (body).txt', 'done', null], ['l3.eml', 'skipped', 'TOO_LARGE']]);
    expect(level2.children![1]!.message).toMatch(/a mail nested 3 deep is not opened \(limits\.maxMailDepth 2\)/);
  });
});
