/**
 * Child process that reads DOCX (mammoth), XLSX (exceljs), HTML (html-to-text), CSV and e-mail
 * (.eml by mailparser, .msg by msgreader; mail.ts). Like the PDF
 * parser it runs outside the worker under an OS memory cap and a time limit: these parsers
 * inflate ZIP entries and build whole DOM trees in memory, and a hostile file can make either
 * huge. Macros and embedded objects are never run or read: only the document's text parts are.
 */
import ExcelJS from 'exceljs';
import { convert } from 'html-to-text';
import mammoth from 'mammoth';
import { decodeText } from './decode.js';
import { bodyDocument, readEml, readMsg, type MailParts } from './mail.js';

export interface OfficeRequest {
  id: number;
  bytes: Uint8Array;
  format: OfficeFormat;
  /** Rows read per sheet at most; more are cut with a warning. */
  maxRows: number;
  /** Attachments of a mail returned at most; more are counted, not returned. */
  maxAttachments: number;
}

export type OfficeFormat = 'docx' | 'xlsx' | 'html' | 'csv' | 'eml' | 'msg';

export type OfficeReply =
  | { id: number; ok: true; pages: string[]; warnings: string[]; mail?: MailParts }
  | { id: number; ok: false; code: 'CORRUPT_DOCUMENT' | 'TOO_LARGE'; message: string };

/**
 * Headings as markdown (#, ##), tables as rows of cells between pipes, links as their text:
 * the model reads structure it has seen in training, and grounding finds values as written.
 */
export function htmlToText(html: string): string {
  const marked = html.replace(/<h([1-6])(\s[^>]*)?>/gi, (_m, level: string, attrs?: string) => `<h${level}${attrs ?? ''}>${'#'.repeat(Number(level))} `);
  return convert(marked, {
    wordwrap: false,
    selectors: [
      ...[1, 2, 3, 4, 5, 6].map((n) => ({ selector: `h${n}`, options: { uppercase: false } })),
      { selector: 'table', format: 'pipeTable' },
      { selector: 'a', options: { ignoreHref: true } },
      { selector: 'img', format: 'skip' },
    ],
    formatters: {
      // One line per row, cells between pipes: "| Item | Qty | Price |".
      pipeTable: (elem, _walk, builder) => {
        builder.openBlock({ leadingLineBreaks: 1 });
        const rows = (elem.children ?? []).flatMap((c: any) => (c.name === 'tr' ? [c] : (c.children ?? []).filter((r: any) => r.name === 'tr')));
        for (const row of rows) {
          const cells = (row.children ?? []).filter((c: any) => c.name === 'td' || c.name === 'th');
          builder.addLiteral(`| ${cells.map((c: any) => textOf(c).replace(/\s+/g, ' ').trim()).join(' | ')} |`);
          builder.addLineBreak();
        }
        builder.closeBlock({ trailingLineBreaks: 1 });
      },
    },
  }).trim();
}

/** The text of a cell's nodes, paragraphs and all, on one line. */
function textOf(node: any): string {
  if (node.type === 'text') return String(node.data ?? '');
  if (node.name === 'br') return ' ';
  return (node.children ?? []).map(textOf).join(' ');
}

/** A cell as people read it: formula results, dates as ISO dates, rich text as its text. */
function cellText(value: ExcelJS.CellValue): string {
  if (value === null || value === undefined) return '';
  if (value instanceof Date) return value.toISOString().slice(0, 10);
  if (typeof value !== 'object') return String(value);
  if ('result' in value) return cellText(value.result as ExcelJS.CellValue);
  if ('richText' in value) return value.richText.map((r) => r.text).join('');
  if ('text' in value) return String(value.text);
  if ('error' in value) return String(value.error);
  return '';
}

/** RFC 4180 values (quotes, doubled quotes, separators and line breaks inside quotes) as rows between pipes. */
export function csvTable(text: string, maxRows: number, warnings: string[]): string {
  const lines = text.split(/\r?\n/, 2);
  const sep = [';', '\t', ','].map((s) => [s, (lines[0] ?? '').split(s).length] as const).sort((a, b) => b[1] - a[1])[0]![0];
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  let total = 0;
  const endRow = () => {
    row.push(cell.trim());
    cell = '';
    if (row.some((c) => c !== '') && ++total <= maxRows) rows.push(row);
    row = [];
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { cell += '"'; i++; } else if (ch === '"') quoted = false; else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === sep) { row.push(cell.trim()); cell = ''; } else if (ch === '\n') endRow();
    else if (ch !== '\r') cell += ch;
  }
  endRow();
  if (total > maxRows) warnings.push(`ROWS_CUT: the CSV has ${total} rows; the first ${maxRows} were read`);
  return rows.map((r) => `| ${r.join(' | ')} |`).join('\n');
}

async function read(request: OfficeRequest): Promise<OfficeReply> {
  const buffer = Buffer.from(request.bytes.buffer, request.bytes.byteOffset, request.bytes.length);
  const warnings: string[] = [];
  try {
    if (request.format === 'html') return { id: request.id, ok: true, pages: [htmlToText(decodeText(buffer, warnings))], warnings };
    if (request.format === 'csv') return { id: request.id, ok: true, pages: [csvTable(decodeText(buffer, warnings), request.maxRows, warnings)], warnings };
    if (request.format === 'eml' || request.format === 'msg') {
      const mail = request.format === 'eml' ? await readEml(buffer, request.maxAttachments, htmlToText) : readMsg(buffer, request.maxAttachments, htmlToText);
      return { id: request.id, ok: true, pages: [bodyDocument(mail)], warnings, mail };
    }
    if (request.format === 'docx') {
      const { value } = await mammoth.convertToHtml({ buffer });
      return { id: request.id, ok: true, pages: [htmlToText(value)], warnings };
    }
    const workbook = new ExcelJS.Workbook();
    await workbook.xlsx.load(buffer as unknown as ArrayBuffer);
    const pages: string[] = [];
    workbook.eachSheet((sheet) => {
      const lines = [`## ${sheet.name}`];
      let rows = 0;
      sheet.eachRow({ includeEmpty: false }, (row) => {
        if (++rows > request.maxRows) return;
        const values = (row.values as ExcelJS.CellValue[]).slice(1).map(cellText);
        lines.push(`| ${values.join(' | ')} |`);
      });
      if (rows > request.maxRows) warnings.push(`ROWS_CUT: sheet ${sheet.name} has ${rows} rows; the first ${request.maxRows} were read`);
      pages.push(lines.join('\n'));
    });
    return { id: request.id, ok: true, pages, warnings };
  } catch (err) {
    const message = (err as Error)?.message ?? String(err);
    if (/allocation failed|out of memory|Invalid array length|Cannot create a string/i.test(message)) return { id: request.id, ok: false, code: 'TOO_LARGE', message: `reading the document needed more memory than the parser may use (limits.textMemoryMb): ${message}` };
    return { id: request.id, ok: false, code: 'CORRUPT_DOCUMENT', message: `the ${request.format.toUpperCase()} document cannot be read: ${message}` };
  }
}

process.on('message', (request: OfficeRequest) => {
  read(request).then(
    (reply) => process.send?.(reply),
    (err: unknown) => process.send?.({ id: request.id, ok: false, code: 'CORRUPT_DOCUMENT', message: String(err) } satisfies OfficeReply),
  );
});
process.on('disconnect', () => process.exit(0));
