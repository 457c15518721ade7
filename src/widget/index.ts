/**
 * visualrwkv-web/widget: the `<visual-rwkv-chat>` custom element, registered on import (in browsers).
 * @example
 * import 'visualrwkv-web/widget';
 * // <visual-rwkv-chat model="/models/VisualRWKV-v060-1B6-v1.0-20240612.pth" encoder="/models/vision_model.onnx"></visual-rwkv-chat>
 * document.querySelector('visual-rwkv-chat')!.addEventListener('token', (e) => console.log(e.detail.text));
 */
import { defineVisualRwkvChat } from './element';

export {
  VisualRwkvChat,
  defineVisualRwkvChat,
  TAG,
  type WidgetState,
  type DoneDetail,
  type ErrorDetail,
  type VisualRwkvChatEventMap,
} from './element';

defineVisualRwkvChat();
