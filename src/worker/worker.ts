/** The Web Worker: owns the engine (model, encoder, RNN state, caches) and serves it over comlink. */
import * as Comlink from 'comlink';
import { workerApi } from './handler';

Comlink.expose(workerApi);
