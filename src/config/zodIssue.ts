import type { z } from 'zod';

/** The first problem of a failed parse as "dotted.key" + message, for errors that name the key. */
export function firstIssue(error: z.ZodError): { key: string; message: string } {
  const issue = error.issues[0];
  if (!issue) return { key: '(root)', message: 'invalid' };
  const key = issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)';
  return { key, message: issue.message };
}
