import CFB from 'cfb';
import MailComposer from 'nodemailer/lib/mail-composer';

export interface TestMail {
  from: string;
  to: string[];
  subject: string;
  text?: string;
  html?: string;
  date?: Date;
  messageId?: string;
  attachments?: Array<{ filename: string; content: Buffer; contentType?: string; cid?: string }>;
}

/** An RFC 5322 message with MIME parts, written by nodemailer (what every mail client sends). */
export async function makeEml(mail: TestMail): Promise<Buffer> {
  const composer = new MailComposer({
    from: mail.from, to: mail.to, subject: mail.subject,
    ...(mail.text !== undefined ? { text: mail.text } : {}),
    ...(mail.html !== undefined ? { html: mail.html } : {}),
    date: mail.date ?? new Date(Date.UTC(2026, 10, 3, 9, 30)),
    messageId: mail.messageId ?? '<test-1@docsift.test>',
    // A forwarded mail is sent as an attachment (as mail clients do); nodemailer would mark it inline.
    attachments: (mail.attachments ?? []).map((a) => ({
      filename: a.filename, content: a.content, ...(a.contentType ? { contentType: a.contentType } : {}), ...(a.cid ? { cid: a.cid } : {}),
      ...(a.contentType === 'message/rfc822' ? { contentDisposition: 'attachment' as const } : {}),
    })),
  });
  return composer.compile().build();
}

/**
 * An Outlook .msg (MS-OXMSG) written with SheetJS's compound-file writer: property streams
 * (__substg1.0_<id><type>, strings UTF-16LE), the fixed-size properties streams, one storage per
 * recipient and attachment. Only what readers look at; Outlook writes many more properties.
 */
export function makeMsg(mail: TestMail): Buffer {
  const cfb = CFB.utils.cfb_new();
  const add = (path: string, content: Buffer) => CFB.utils.cfb_add(cfb, `/${path}`, content);
  const unicode = (s: string) => Buffer.from(`${s}\0`, 'utf16le');
  // Fixed-size properties (PT_LONG 0x0003, PT_SYSTIME 0x0040) live in __properties_version1.0.
  const properties = (header: number, fixed: Array<[number, number, bigint | number]>) => {
    const buf = Buffer.alloc(header + fixed.length * 16);
    if (header === 32) {
      buf.writeUInt32LE(mail.to.length, 8);
      buf.writeUInt32LE(mail.attachments?.length ?? 0, 12);
      buf.writeUInt32LE(mail.to.length, 16);
      buf.writeUInt32LE(mail.attachments?.length ?? 0, 20);
    }
    fixed.forEach(([id, type, value], i) => {
      const at = header + i * 16;
      buf.writeUInt32LE(((id << 16) | type) >>> 0, at);
      buf.writeUInt32LE(6, at + 4);
      buf.writeBigUInt64LE(BigInt(value), at + 8);
    });
    return buf;
  };
  const filetime = (d: Date) => BigInt(d.getTime()) * 10_000n + 116_444_736_000_000_000n;
  const date = mail.date ?? new Date(Date.UTC(2026, 10, 3, 9, 30));
  add('__properties_version1.0', properties(32, [[0x0e06, 0x0040, filetime(date)], [0x0039, 0x0040, filetime(date)]]));
  add('__substg1.0_001A001F', unicode('IPM.Note'));
  add('__substg1.0_0037001F', unicode(mail.subject));
  const [, name, address] = /^(?:(.*?)\s*<)?([^<>]+)>?$/.exec(mail.from) ?? [];
  add('__substg1.0_0C1A001F', unicode(name ?? address ?? mail.from));
  add('__substg1.0_0C1F001F', unicode(address ?? mail.from));
  add('__substg1.0_0C1E001F', unicode('SMTP'));
  if (mail.text !== undefined) add('__substg1.0_1000001F', unicode(mail.text));
  if (mail.html !== undefined) add('__substg1.0_10130102', Buffer.from(mail.html, 'utf8'));
  add('__substg1.0_1035001F', unicode(mail.messageId ?? '<test-1@docsift.test>'));
  mail.to.forEach((to, i) => {
    const dir = `__recip_version1.0_#${i.toString(16).toUpperCase().padStart(8, '0')}`;
    add(`${dir}/__properties_version1.0`, properties(8, [[0x0c15, 0x0003, 1]]));
    add(`${dir}/__substg1.0_3001001F`, unicode(to));
    add(`${dir}/__substg1.0_3003001F`, unicode(to));
    add(`${dir}/__substg1.0_39FE001F`, unicode(to));
  });
  (mail.attachments ?? []).forEach((a, i) => {
    const dir = `__attach_version1.0_#${i.toString(16).toUpperCase().padStart(8, '0')}`;
    add(`${dir}/__properties_version1.0`, properties(8, [[0x3705, 0x0003, 1], [0x0e20, 0x0003, a.content.length]]));
    add(`${dir}/__substg1.0_3707001F`, unicode(a.filename));
    add(`${dir}/__substg1.0_3704001F`, unicode(a.filename.slice(0, 12)));
    add(`${dir}/__substg1.0_3703001F`, unicode(a.filename.includes('.') ? a.filename.slice(a.filename.lastIndexOf('.')) : ''));
    if (a.contentType) add(`${dir}/__substg1.0_370E001F`, unicode(a.contentType));
    if (a.cid) add(`${dir}/__substg1.0_3712001F`, unicode(a.cid));
    add(`${dir}/__substg1.0_37010102`, a.content);
  });
  add('__nameid_version1.0/__substg1.0_00020102', Buffer.alloc(0));
  add('__nameid_version1.0/__substg1.0_00030102', Buffer.alloc(0));
  add('__nameid_version1.0/__substg1.0_00040102', Buffer.alloc(0));
  return Buffer.from(CFB.write(cfb, { type: 'buffer' }) as Uint8Array);
}
