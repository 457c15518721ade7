/** Typed errors survive the worker boundary (comlink sends name + message; the client rebuilds the class). */
import { describe, it, expect } from 'vitest';
import { reviveError } from '../../src/worker/client';
import { ERROR_CLASSES, UnsafePickleError, VisualRwkvError, WeightsFormatError } from '../../src/errors';

function crossed(e: Error): Error {
  // what comlink's error serializer delivers: a plain Error carrying name, message and stack
  const plain = new Error(e.message);
  plain.name = e.name;
  plain.stack = e.stack;
  return plain;
}

describe('error revival', () => {
  for (const [name, Cls] of Object.entries(ERROR_CLASSES)) {
    it(`${name} comes back as ${name}`, () => {
      const original = Cls === UnsafePickleError ? new UnsafePickleError('os.system') : new (Cls as typeof VisualRwkvError)(`bad ${name}`);
      const back = reviveError(crossed(original)) as Error;
      expect(back).toBeInstanceOf(Cls);
      expect(back).toBeInstanceOf(VisualRwkvError);
      expect(back.name).toBe(name);
      expect(back.message).toBe(original.message);
    });
  }
  it('leaves foreign errors alone', () => {
    const e = new TypeError('x');
    expect(reviveError(e)).toBe(e);
    const w = new WeightsFormatError('y');
    expect(reviveError(w)).toBe(w);
  });
});
