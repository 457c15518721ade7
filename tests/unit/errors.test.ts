/** Typed errors survive the worker boundary (comlink sends name + message; the client rebuilds the class). */
import { describe, it, expect } from 'vitest';
import { reviveError } from '../../src/worker/client';
import { ERROR_CLASSES, errorSentence, sentence, UnsafePickleError, VisualRwkvError, WeightsFormatError } from '../../src/errors';

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

describe('sentence / errorSentence (messages shown on the page and in the widget)', () => {
  it('capitalises a plain first word and ends with a full stop', () => {
    expect(sentence('the GPU device was lost')).toBe('The GPU device was lost.');
    expect(sentence('  could not fetch: timeout!  ')).toBe('Could not fetch: timeout!');
    expect(errorSentence(new WeightsFormatError('missing tensor, expected [2]'))).toBe('Missing tensor, expected [2].');
    expect(errorSentence('boom')).toBe('Boom.');
  });
  it('keeps the case of a URL, a path or a file name at the start', () => {
    expect(sentence('https://huggingface.co/x/model.pth: cannot fetch the first byte: Failed to fetch')).toBe(
      'https://huggingface.co/x/model.pth: cannot fetch the first byte: Failed to fetch.',
    );
    expect(sentence('visualrwkv.pth: not a PyTorch .pth (zip) nor a .safetensors file')).toBe('visualrwkv.pth: not a PyTorch .pth (zip) nor a .safetensors file.');
    expect(sentence('/models/m.onnx is not an ONNX model.')).toBe('/models/m.onnx is not an ONNX model.');
  });
});
