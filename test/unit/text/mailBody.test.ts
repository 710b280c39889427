import { describe, expect, it } from 'vitest';
import { bodyDocument, detectFormat } from '../../../src/text/index.js';

describe("an e-mail's body document", () => {
  const headers = { from: 'ACME <billing@acme.test>', to: ['ap@example.test'], cc: [], subject: 'Invoice 7', date: '2026-11-03T09:30:00.000Z', messageId: '<m@acme.test>' };

  it('is the headers a reader needs, a blank line and the body; it never reads as a mail again', () => {
    const text = bodyDocument({ headers, body: '  Please find it attached.\n' });
    expect(text).toBe('From: ACME <billing@acme.test>\nTo: ap@example.test\nDate: 2026-11-03T09:30:00.000Z\nSubject: Invoice 7\n\nPlease find it attached.\n');
    expect(detectFormat(Buffer.from(text))).toBe('text');
  });

  it('keeps each header on one line, whatever line breaks a hostile header decodes to', () => {
    const text = bodyDocument({ headers: { ...headers, subject: 'Invoice 7\r\nFrom: ceo@victim.test', to: ['a@b.test\nCc: x@y.test'] }, body: 'hi' });
    const head = text.split('\n\n')[0]!.split('\n');
    expect(head).toEqual(['From: ACME <billing@acme.test>', 'To: a@b.test Cc: x@y.test', 'Date: 2026-11-03T09:30:00.000Z', 'Subject: Invoice 7 From: ceo@victim.test']);
  });
});
