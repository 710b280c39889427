import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/index.js';
import { CLASSIFY_QUESTION, documentText, renderExtractPrompt, renderReask, renderSystemPrompt } from '../../../src/pipeline/index.js';
import { plainText } from '../../../src/text/index.js';
import { REPO } from '../../helpers/testEnv.js';

const config = loadConfig({ DOCSIFT_HOME: REPO });
const text = { ...plainText(['Invoice 42\nACME GmbH', 'Total 10.00 EUR']), format: 'pdf' as const };

describe('prompt rendering', () => {
  it('marks page breaks in multi-page documents', () => {
    expect(documentText(text)).toBe('--- page 1 ---\nInvoice 42\nACME GmbH\n\n--- page 2 ---\nTotal 10.00 EUR');
    expect(documentText({ ...text, pages: [' one page '] })).toBe('one page');
  });

  it('a classifying queue: labels with descriptions and the fields of every type in one fixed system prompt', () => {
    const types = [...config.prompts.types.values()];
    const system = renderSystemPrompt(types, config.prompts);
    expect(system).toMatchSnapshot();
    expect(system).toContain('Labels:');
    for (const type of types) expect(system).toContain(`## ${type.name}`);
    expect(CLASSIFY_QUESTION).toMatch(/label/);
  });

  it('extraction: instructions and the field list are the fixed prefix; only the document varies', () => {
    for (const type of config.prompts.types.values()) {
      const a = renderExtractPrompt(type, 'doc A');
      const b = renderExtractPrompt(type, 'doc B');
      expect(a.system).toBe(b.system);
      expect(a.user).not.toBe(b.user);
      expect(a).toMatchSnapshot(type.name);
    }
  });

  it('a re-ask carries the validation error', () => {
    expect(renderReask('date: Invalid ISO date')).toContain('date: Invalid ISO date');
  });
});
