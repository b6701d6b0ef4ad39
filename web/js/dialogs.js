// Modal dialogs on the native <dialog> element: focus moves in on open and goes back
// to where it was on close (or to a stand-in when that control was re-rendered meanwhile).
import { h, uniqueId } from './dom.js';

/** Find the control to give focus back to: the same element, or its re-rendered twin. */
export function focusBack(opener) {
  if (!opener) return;
  if (opener.isConnected) {
    opener.focus();
    return;
  }
  const key = opener.dataset && opener.dataset.focusKey;
  if (key) {
    const twin = Array.from(document.querySelectorAll('[data-focus-key]')).find((el) => el.dataset.focusKey === key);
    if (twin) {
      twin.focus();
      return;
    }
  }
  const heading = document.getElementById('page-title');
  if (heading) heading.focus();
}

/**
 * Open a modal dialog. `build(parts)` fills it: parts = {dialog, body, footer, close, errorBox, titleId}.
 * Returns {dialog, close}. `onClose` runs after it closed. `initialFocus` picks the element to focus.
 */
export function openDialog({ title, description, build, onClose, initialFocus, className }) {
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  const titleId = uniqueId('dialog-title');
  const descriptionId = description ? uniqueId('dialog-description') : null;
  const errorBox = h('div', { class: 'dialog-error', role: 'alert' });
  const body = h('div', { class: 'dialog-body' });
  const footer = h('div', { class: 'dialog-footer' });
  const dialog = h('dialog', {
    class: ['dialog', className],
    'aria-labelledby': titleId,
    'aria-describedby': descriptionId,
  },
  h('h2', { id: titleId, class: 'dialog-title' }, title),
  description ? h('p', { id: descriptionId, class: 'dialog-description' }, description) : null,
  errorBox, body, footer);
  let closed = false;
  const close = (value) => {
    if (closed) return;
    dialog.returnValue = value === undefined ? '' : String(value);
    dialog.close();
  };
  dialog.addEventListener('close', () => {
    if (closed) return;
    closed = true;
    dialog.remove();
    focusBack(opener);
    if (onClose) onClose(dialog.returnValue);
  });
  build({ dialog, body, footer, close, errorBox, titleId });
  document.body.append(dialog);
  dialog.showModal();
  const target = (initialFocus && initialFocus(dialog))
    || dialog.querySelector('[autofocus]')
    || dialog.querySelector('input, select, textarea, button');
  if (target) target.focus();
  return { dialog, close };
}

/** Show an error inside a dialog in plain words. */
export function showDialogError(errorBox, message) {
  errorBox.replaceChildren();
  if (message) errorBox.append(h('p', {}, message));
}

/**
 * Ask to confirm. `lines` are paragraphs (text). Resolves true only when confirmed.
 * `action(errorBox)` (optional) runs on confirm and keeps the dialog open on failure.
 */
export function confirmDialog({ title, lines, confirmLabel, danger = true, action }) {
  return new Promise((resolve) => {
    let confirmed = false;
    openDialog({
      title,
      className: 'dialog-confirm',
      onClose: () => resolve(confirmed),
      initialFocus: (dialog) => dialog.querySelector('button[data-role="cancel"]'),
      build: ({ body, footer, close, errorBox }) => {
        for (const line of lines) body.append(h('p', {}, line));
        const confirmButton = h('button', {
          type: 'button',
          class: danger ? 'button button-danger' : 'button button-primary',
          onclick: async () => {
            if (action) {
              confirmButton.disabled = true;
              try {
                await action();
              } catch (error) {
                confirmButton.disabled = false;
                showDialogError(errorBox, error.message);
                return;
              }
            }
            confirmed = true;
            close('confirm');
          },
        }, confirmLabel);
        footer.append(
          h('button', { type: 'button', class: 'button', dataset: { role: 'cancel' }, onclick: () => close('cancel') },
            'Cancel'),
          confirmButton,
        );
      },
    });
  });
}
