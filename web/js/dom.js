// Building DOM safely. Everything the server sends is put on the page as text
// (textContent or text nodes) or as attribute values; markup is never parsed from data,
// and no inline event handler attribute is ever set (the CSP forbids inline script).

/**
 * Create an element. `props`: `class`, `text`, `dataset` (object), `on<event>` (listener),
 * boolean `true` for empty attributes, anything else becomes an attribute value.
 * Children: nodes, strings (as text), arrays, null/false (skipped).
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') {
      element.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    } else if (key === 'text') {
      element.textContent = String(value);
    } else if (key === 'dataset') {
      for (const [name, item] of Object.entries(value)) element.dataset[name] = String(item);
    } else if (key.startsWith('on') && typeof value === 'function') {
      element.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key.startsWith('on')) {
      throw new Error(`refusing to set the inline handler attribute ${key}`);
    } else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'selected') {
      element[key] = value;
    } else {
      element.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(element, children);
  return element;
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

/** Announce a short message to screen readers (the polite live region). */
export function announce(message) {
  const live = document.getElementById('live');
  if (!live) return;
  live.textContent = '';
  // A separate task makes screen readers notice the same message twice in a row.
  window.setTimeout(() => { live.textContent = message; }, 50);
}

let uniqueCounter = 0;
export function uniqueId(prefix) {
  uniqueCounter += 1;
  return `${prefix}-${uniqueCounter}`;
}
