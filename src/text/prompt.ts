/**
 * Prompt assembly for VisualRWKV (spec §7): conversation template, text normalisation with Python's whitespace rules,
 * v6.0 image positions (first / middle "sandwich" / last), the v7.00 image-first layout, multi-turn continuation.
 * Every sentence is tokenised on its own and, inside a sentence, every piece between `<image>` markers on its own.
 */
export const IMAGE_MARKER = '<image>';
/** v6.0 placeholder id: replaced by all image rows (spec §7.1). */
export const IMAGE_TOKEN_V6 = -200;
/** v7.00 placeholder id: repeated once per image row, each replaced by one row. */
export const IMAGE_TOKEN_V7 = 65535;
/** "\n\n": ends every turn; generation stops on it. */
export const STOP_TOKEN = 261;
const SHORT_ANSWER_HINT = 'Answer the question using a single word or phrase.';

export type ImagePosition = 'first' | 'middle' | 'last';

export interface Encoder {
  encode(text: string): number[];
}

/** Python `str.isspace` code points (differs from JS `\s`: includes U+001C–U+001F and U+0085, excludes U+FEFF). */
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const STRIP_RE = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'g');
const BLANK_RUN_RE = new RegExp(`\\n([${PY_SPACE}]*\\n)+`, 'g');

/** Python `str.strip()`. */
export function pyStrip(s: string): string {
  return s.replace(STRIP_RE, '');
}

/** Remove `<image>`, strip, collapse runs of blank lines `\n(\s*\n)+` → `\n` (spec §7.2). */
export function normalizeQuestion(q: string): string {
  return pyStrip(pyStrip(q.split(IMAGE_MARKER).join('')).replace(BLANK_RUN_RE, '\n'));
}

/** The question as it appears before the image in the sandwich: without the short-answer hint (spec §7.3). */
export function sandwichPrefix(q: string): string {
  return normalizeQuestion(pyStrip(normalizeQuestion(q).split(SHORT_ANSWER_HINT).join('')));
}

/** The human turn's text with the image marker placed for `position` (v6.0). */
export function v6HumanText(question: string, position: ImagePosition): string {
  const q = normalizeQuestion(question);
  switch (position) {
    case 'first':
      return pyStrip(`${IMAGE_MARKER}\n${q}`);
    case 'middle':
      return pyStrip(`${sandwichPrefix(question)}\n${IMAGE_MARKER}\n${q}`);
    case 'last':
      return pyStrip(`${q}\n${IMAGE_MARKER}`);
  }
}

/** Tokenise one sentence: pieces between `<image>` markers separately, `placeholder` between them. */
export function encodeSentence(tok: Encoder, sentence: string, placeholder: number[]): number[] {
  const pieces = sentence.split(IMAGE_MARKER);
  const out: number[] = [];
  pieces.forEach((p, i) => {
    if (i > 0) out.push(...placeholder);
    if (p.length) out.push(...tok.encode(p));
  });
  return out;
}

/** Ids of `User: {human}\n\n` + `Assistant:` (each sentence tokenised on its own). */
export function encodeTurn(tok: Encoder, human: string, placeholder: number[] = [IMAGE_TOKEN_V6]): number[] {
  return [...encodeSentence(tok, `User: ${human}\n\n`, placeholder), ...encodeSentence(tok, 'Assistant:', placeholder)];
}

/** v6.0 prompt for one image and one question (spec §7.3). The result holds exactly one IMAGE_TOKEN_V6. */
export function v6ImagePrompt(tok: Encoder, question: string, position: ImagePosition = 'middle'): number[] {
  return encodeTurn(tok, v6HumanText(question, position), [IMAGE_TOKEN_V6]);
}

/** v7.00 prompt: images first, `rowsPerImage` placeholders 65535 per image (spec §7.4). */
export function v7ImagePrompt(tok: Encoder, question: string, rowsPerImage: number, images = 1): number[] {
  const human = pyStrip([...Array(images).fill(IMAGE_MARKER), normalizeQuestion(question)].join('\n'));
  return encodeTurn(tok, human, Array(rowsPerImage).fill(IMAGE_TOKEN_V7));
}

/** A text-only turn (also every follow-up turn of a chat, spec §7.6). */
export function textTurn(tok: Encoder, question: string): number[] {
  return encodeTurn(tok, normalizeQuestion(question), []);
}
