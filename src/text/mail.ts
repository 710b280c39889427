/**
 * E-mail (.eml, RFC 5322 / MIME, by mailparser) and Outlook items (.msg, by @kenjiuno/msgreader)
 * as their parts: headers, the body as text, and the attachments' bytes. Runs in the office
 * child process, under its OS memory cap: MIME decoding and OLE2 reading hold whole messages.
 */
import msgreader from '@kenjiuno/msgreader';
import { simpleParser, type AddressObject } from 'mailparser';

export interface MailHeaders {
  from: string;
  to: string[];
  cc: string[];
  subject: string;
  /** ISO 8601, or null when the mail has no (readable) date. */
  date: string | null;
  messageId: string | null;
}

export interface MailAttachment {
  filename: string;
  contentType: string;
  bytes: Uint8Array;
  /** Part of the body (an image the HTML shows by cid:, a logo in a signature), not a file sent along. */
  inline: boolean;
}

export interface MailParts {
  headers: MailHeaders;
  /** The body as text: the HTML part through htmlToText when there is one (tables stay tables), else the plain part. */
  body: string;
  attachments: MailAttachment[];
  /** Attachments beyond maxAttachments, not returned. */
  dropped: number;
}

/**
 * The text of a mail's body document: the headers a reader needs to know who sent what, a blank
 * line, the body. The headers are written in a form that is not itself detected as a mail
 * (no Message-ID, MIME-Version or Received line), so a body never reads as a mail again.
 */
export function bodyDocument(mail: Pick<MailParts, 'headers' | 'body'>): string {
  // One line per header, whatever line breaks a hostile header decodes to.
  const line = (v: string) => v.replace(/\s+/g, ' ').trim();
  const headers = { ...mail.headers, from: line(mail.headers.from), to: mail.headers.to.map(line), cc: mail.headers.cc.map(line), subject: line(mail.headers.subject) };
  const lines = [`From: ${headers.from}`];
  if (headers.to.length) lines.push(`To: ${headers.to.join(', ')}`);
  if (headers.cc.length) lines.push(`Cc: ${headers.cc.join(', ')}`);
  if (headers.date) lines.push(`Date: ${headers.date}`);
  lines.push(`Subject: ${headers.subject}`);
  return `${lines.join('\n')}\n\n${mail.body.trim()}\n`;
}

/** An attachment's name as a file name: no control characters or path, at most 255 characters. */
function fileName(name: string | undefined, fallback: string): string {
  const clean = (name ?? '').replace(/[\u0000-\u001f\u007f]/g, '').split(/[\\/]/).pop()!.trim().slice(-255);
  return clean || fallback;
}

export async function readEml(buffer: Buffer, maxAttachments: number, htmlToText: (html: string) => string): Promise<MailParts> {
  // message/rfc822 parts stay attachments (a forwarded mail is a child document of its own).
  const parsed = await simpleParser(buffer, { skipImageLinks: true, skipTextLinks: true, skipTextToHtml: true });
  const addresses = (a: AddressObject | AddressObject[] | undefined) => (Array.isArray(a) ? a : a ? [a] : []).flatMap((o) => o.value.map((v) => (v.name ? `${v.name} <${v.address ?? ''}>` : v.address ?? '')));
  const files = parsed.attachments.map((a) => ({
    filename: fileName(a.filename, a.contentType === 'message/rfc822' ? 'attached-message.eml' : 'attachment'),
    contentType: a.contentType,
    bytes: new Uint8Array(a.content.buffer, a.content.byteOffset, a.content.length),
    inline: a.related === true || (a.contentDisposition === 'inline' && a.cid !== undefined),
  }));
  return {
    headers: {
      from: addresses(parsed.from)[0] ?? '',
      to: addresses(parsed.to),
      cc: addresses(parsed.cc),
      subject: parsed.subject ?? '',
      date: parsed.date && !Number.isNaN(parsed.date.getTime()) ? parsed.date.toISOString() : null,
      messageId: parsed.messageId ?? null,
    },
    body: typeof parsed.html === 'string' && parsed.html.trim() ? htmlToText(parsed.html) : parsed.text ?? '',
    attachments: files.slice(0, maxAttachments),
    dropped: Math.max(0, files.length - maxAttachments),
  };
}

export function readMsg(buffer: Buffer, maxAttachments: number, htmlToText: (html: string) => string): MailParts {
  // A CommonJS package whose default export is itself under .default when Node imports it.
  const MsgReader = msgreader.default;
  const reader = new MsgReader(new DataView(buffer.buffer, buffer.byteOffset, buffer.length));
  const data = reader.getFileData();
  if (data.error) throw new Error(data.error);
  if (data.dataType !== 'msg') throw new Error('the OLE2 file is not an Outlook item');
  const person = (name?: string, email?: string) => (name && email && name !== email ? `${name} <${email}>` : email ?? name ?? '');
  const recipients = (kind: 'to' | 'cc') => (data.recipients ?? []).filter((r) => (r.recipType ?? 'to') === kind).map((r) => person(r.name, r.smtpAddress ?? r.email));
  const html = data.bodyHtml ?? (data.html ? Buffer.from(data.html).toString('utf8') : undefined);
  const listed = data.attachments ?? [];
  const files = listed.slice(0, maxAttachments).map((a) => {
    const { fileName: name, content } = reader.getAttachment(a);
    return {
      filename: fileName(name || a.fileName, 'attachment'),
      contentType: a.innerMsgContent ? 'application/vnd.ms-outlook' : a.attachMimeTag ?? 'application/octet-stream',
      bytes: content,
      inline: a.attachmentHidden === true || (a.pidContentId !== undefined && html?.includes(`cid:${a.pidContentId}`) === true),
    };
  });
  const date = data.messageDeliveryTime ?? data.clientSubmitTime;
  return {
    headers: {
      from: person(data.senderName, data.senderSmtpAddress ?? data.senderEmail),
      to: recipients('to'),
      cc: recipients('cc'),
      subject: data.subject ?? '',
      date: date && !Number.isNaN(Date.parse(date)) ? new Date(date).toISOString() : null,
      messageId: data.messageId ?? null,
    },
    body: html?.trim() ? htmlToText(html) : data.body ?? '',
    attachments: files,
    dropped: Math.max(0, listed.length - maxAttachments),
  };
}
