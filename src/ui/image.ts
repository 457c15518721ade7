/**
 * The composer's image: picked with the `Image` file input, dropped on the page, or pasted; shown as a preview
 * until removed or replaced. The chosen image stays selected after sending (a new chat can reuse it).
 */
import { formatBytes } from './progress';

export interface ImagePickerElements {
  input: HTMLInputElement;
  /** Holds the preview; hidden while no image is selected. */
  figure: HTMLElement;
  preview: HTMLImageElement;
  caption: HTMLElement;
  remove: HTMLButtonElement;
  /** Where dropping a file selects it (highlighted with data-drag="true" while dragging over). */
  dropTarget: HTMLElement;
  /** Messages about refused files. */
  note: HTMLElement;
}

/** A selected image and the name to show for it. */
export interface PickedImage {
  blob: Blob;
  name: string;
}

function firstImage(files: Iterable<File> | null | undefined): File | null {
  for (const f of files ?? []) if (f.type.startsWith('image/') || f.type === '') return f;
  return null;
}

export class ImagePicker {
  private picked: PickedImage | null = null;
  private url: string | null = null;
  private listeners: ((p: PickedImage | null) => void)[] = [];

  constructor(private readonly ui: ImagePickerElements) {
    ui.input.addEventListener('change', () => {
      const f = firstImage(ui.input.files);
      if (f) this.set(f, f.name);
      else if (ui.input.files?.length) this.refuse(ui.input.files[0]!);
      else this.clear();
    });
    ui.remove.addEventListener('click', () => {
      this.clear();
      ui.input.focus();
    });
    const t = ui.dropTarget;
    const hasFiles = (e: DragEvent) => !!e.dataTransfer && Array.from(e.dataTransfer.types).includes('Files');
    t.addEventListener('dragover', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.dataTransfer!.dropEffect = 'copy';
      t.dataset.drag = 'true';
    });
    t.addEventListener('dragleave', (e) => {
      if (!t.contains(e.relatedTarget as Node | null)) delete t.dataset.drag;
    });
    t.addEventListener('drop', (e) => {
      delete t.dataset.drag;
      if (!hasFiles(e)) return;
      e.preventDefault();
      const files = Array.from(e.dataTransfer!.files);
      const f = firstImage(files);
      if (f) this.set(f, f.name, files.length > 1 ? 'Several files were dropped: using the first image.' : '');
      else if (files[0]) this.refuse(files[0]);
    });
    document.addEventListener('paste', (e) => {
      const items = Array.from(e.clipboardData?.items ?? []);
      const item = items.find((i) => i.kind === 'file' && i.type.startsWith('image/'));
      const f = item?.getAsFile();
      if (!f) return; // plain text pastes go to the focused field as usual
      e.preventDefault();
      this.set(f, f.name && f.name !== 'image.png' ? f.name : 'pasted image');
    });
  }

  /** The selected image, or null. */
  get current(): PickedImage | null {
    return this.picked;
  }

  /** Call `fn` whenever the selection changes. */
  onChange(fn: (p: PickedImage | null) => void): void {
    this.listeners.push(fn);
  }

  set(blob: Blob, name: string, note = ''): void {
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = URL.createObjectURL(blob);
    this.picked = { blob, name };
    const { figure, preview, caption } = this.ui;
    preview.src = this.url;
    caption.textContent = `${name} · ${formatBytes(blob.size)}`;
    figure.hidden = false;
    this.ui.note.textContent = note;
    this.syncInput();
    for (const fn of this.listeners) fn(this.picked);
  }

  /** Keep the file input's own display in step with the selection (after a drop, a paste or a refused file). */
  private syncInput(): void {
    const input = this.ui.input;
    const blob = this.picked?.blob;
    if (blob && Array.from(input.files ?? []).includes(blob as File)) return;
    try {
      const dt = new DataTransfer();
      if (blob) dt.items.add(blob instanceof File ? blob : new File([blob], this.picked!.name, { type: blob.type }));
      input.files = dt.files;
    } catch {
      input.value = '';
    }
  }

  clear(): void {
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
    this.picked = null;
    this.ui.input.value = '';
    this.ui.preview.removeAttribute('src');
    this.ui.figure.hidden = true;
    this.ui.note.textContent = '';
    for (const fn of this.listeners) fn(null);
  }

  private refuse(f: File): void {
    this.syncInput();
    this.ui.note.textContent = `${f.name || 'That file'} is not an image (type ${f.type || 'unknown'}): choose a PNG, JPEG, WebP, GIF or BMP file.`;
  }
}
