import { describe, it, expect } from 'vitest';
import { readdirSync } from 'node:fs';
import { loadDefaultTokenizer } from '../../src/text/tokenizer';
import { v6ImagePrompt, v7ImagePrompt, normalizeQuestion, pyStrip, textTurn, IMAGE_TOKEN_V6 } from '../../src/text/prompt';
import { fixturePath, readJson } from '../helpers/fixtures';

const tok = await loadDefaultTokenizer();

describe('prompt layouts (spec §7)', () => {
  // Every fixture case that records the official prompt: the same ids from the same question and position.
  for (const model of ['rwkv6_tiny', 'rwkv6_vocab65536', 'rwkv7_tiny']) {
    for (const f of readdirSync(fixturePath(`cases/${model}`)).filter((f) => f.endsWith('.json'))) {
      const c = readJson(`cases/${model}/${f}`);
      if (!c.prompt?.official_token_ids) continue;
      it(`${model}/${c.label}: ${c.prompt.image_position} layout ids equal the official ones`, () => {
        const p = c.prompt;
        const ids = p.num_token_per_image
          ? v7ImagePrompt(tok, p.question, p.num_token_per_image)
          : v6ImagePrompt(tok, p.question, p.image_position);
        expect(ids).toEqual(p.official_token_ids);
      });
    }
  }

  it('reproduces the spec §7.3 worked example (612 rows in the middle layout)', () => {
    const q = 'What is the color of the bus?\nAnswer the question using a single word or phrase.';
    const ids = v6ImagePrompt(tok, q, 'middle');
    expect(ids.slice(0, 11)).toEqual([24281, 59, 30031, 4600, 22590, 38083, 4706, 22590, 21399, 64, 11]);
    expect(ids[11]).toBe(IMAGE_TOKEN_V6);
    expect(ids.length - 1 + 577).toBe(612);
    expect(v6ImagePrompt(tok, q, 'first').slice(0, 4)).toEqual([24281, 59, 33, IMAGE_TOKEN_V6]);
    expect(v6ImagePrompt(tok, q, 'last').length - 1 + 577).toBe(603);
  });

  it('normalises with Python whitespace rules', () => {
    expect(pyStrip('\u001c hi \u0085')).toBe('hi');
    expect(pyStrip('\ufeffhi')).toBe('\ufeffhi');
    expect(normalizeQuestion('  a\n\n \n b <image> ')).toBe('a\n b');
  });

  it('text-only follow-up turn', () => {
    expect(textTurn(tok, 'Hi')).toEqual([...tok.encode('User: Hi\n\n'), 5585, 41693, 59]);
  });
});
