// Page-level messages (success, failure, information) shown above the screen in plain words.
import { h } from './dom.js';

/**
 * Show a notice. kind: success | error | info | warning. `lines` are extra paragraphs.
 * Errors use role=alert (read out at once); others role=status.
 */
export function showNotice({ kind = 'info', title, lines = [], id }) {
  const container = document.getElementById('notices');
  if (!container) return null;
  if (id) {
    const previous = container.querySelector(`[data-notice-id="${id}"]`);
    if (previous) previous.remove();
  }
  const notice = h('div', {
    class: ['notice', `notice-${kind}`],
    role: kind === 'error' ? 'alert' : 'status',
    dataset: id ? { noticeId: id } : undefined,
  },
  h('div', { class: 'notice-text' },
    h('p', { class: 'notice-title' }, title),
    lines.filter(Boolean).map((line) => h('p', {}, line))),
  h('button', {
    type: 'button',
    class: 'button button-quiet notice-dismiss',
    'aria-label': `Dismiss: ${title}`,
    onclick: () => {
      notice.remove();
      const heading = document.getElementById('page-title');
      if (heading) heading.focus();
    },
  }, '×'));
  container.append(notice);
  return notice;
}

export function clearNotices() {
  const container = document.getElementById('notices');
  if (container) container.replaceChildren();
}
